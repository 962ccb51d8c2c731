"""Code actions on a selection — explain, refactor, reviews — and the commands behind them.

Explain and refactor run on the local model; reviews are critical and go to
the cloud when the router allows it.  `gearshift.escalate` re-runs the last
(or a given) request on the cloud on purpose.  The router in
``lsp_server.cloud`` is the only place that decides what leaves the machine;
this module only asks it and shows its label with every answer.
"""

from __future__ import annotations

import asyncio
import logging
import uuid
from dataclasses import dataclass
from typing import Any

from lsprotocol import types
from pygls.capabilities import get_capability

from lsp_server.cloud.prompts import build_prompt, extract_code_block
from lsp_server.documents import DocumentError, find_open_document, model_text, offset_at, open_document
from lsp_server.errors import CloudError, RequestRefused
from lsp_server.features.command_arguments import (
    EscalateArguments,
    RefactorArguments,
    ReviewArguments,
    SelectionArguments,
)
from lsp_server.inference.chat import format_chat
from lsp_server.inference.types import GenerationRequest
from lsp_server.syntax import grammar, languages

log = logging.getLogger(__name__)

# Our own sub-kinds of the standard ones, so clients can filter ("only": ["refactor"]) as usual.
KIND_EXPLAIN = "quickfix.gearshift.explain"
KIND_REFACTOR = "refactor.rewrite.gearshift"
KIND_REVIEW = "source.gearshift.review"

# command -> (task, title, code action kind)
ACTIONS: dict[str, tuple[str, str, str]] = {
    "gearshift.explain": ("explain", "Gearshift: Explain selection", KIND_EXPLAIN),
    "gearshift.refactor": ("refactor", "Gearshift: Refactor selection…", KIND_REFACTOR),
    "gearshift.review": ("review_data_race", "Gearshift: Review for data races (cloud)", KIND_REVIEW),
    "gearshift.reviewSecurity": ("review_security", "Gearshift: Security review (cloud)", KIND_REVIEW),
}
REVIEW_KINDS = {"data_race": "review_data_race", "security": "review_security"}
ESCALATABLE_TASKS = {task for task, _title, _kind in ACTIONS.values()}


@dataclass(frozen=True)
class ActionRequest:
    """A task on a selection, as first asked (kept so `gearshift.escalate` can re-run it)."""

    task: str
    uri: str
    range: types.Range
    selection: str
    language: str | None
    path: str | None
    version: int | None
    instruction: str | None = None
    document_text: str = ""
    """The whole document, for routing only: a `gearshift: critical` marker anywhere in the file counts."""


def selection_request(
    ls, task: str, arguments: SelectionArguments | None, instruction: str | None = None
) -> ActionRequest:
    """Read the selected text the command's `{uri, range}` argument (structured by pygls) names."""
    if arguments is None:
        raise DocumentError("Expected arguments [{uri, range}] naming the selection")
    document = open_document(ls.workspace, arguments.uri)
    selected = arguments.range
    start, end = offset_at(document, selected.start), offset_at(document, selected.end)
    if end < start:
        start, end = end, start
    source = model_text(document.source)
    text = source[start:end]
    if not text.strip():
        raise RequestRefused("Select the code first: the selection is empty")
    return ActionRequest(
        task=task, uri=arguments.uri, range=selected, selection=text,
        language=document.language_id, path=document.path, version=document.version,
        instruction=instruction, document_text=source,
    )


class ActionRunner:
    """Runs one task locally or on the cloud, as the router decides, reporting progress."""

    def __init__(self, ls) -> None:
        self.ls = ls

    async def run(self, request: ActionRequest, *, escalate: bool = False) -> dict[str, Any]:
        ls = self.ls
        spec = languages.resolve(request.language, request.path)
        if request.task == "refactor" and spec is None:
            raise RequestRefused(
                f"Refactor needs a language Gearshift can parse to check the result; "
                f"{request.language or 'this file type'} is not one ({languages.titles()})"
            )
        model = ls.tiers.local_model()
        engine = await ls.tiers.get(model, purpose="chat")
        n_tokens = engine.count_tokens(request.selection)
        limit = ls.settings.actions.max_selection_tokens
        if n_tokens > limit:
            raise RequestRefused(
                f"The selection is {n_tokens} tokens; Gearshift handles up to {limit} "
                f"(gearshift.actions.maxSelectionTokens). Select less; nothing was sent or truncated."
            )
        language_name = spec.name if spec is not None else (request.language or "text")
        prompt = build_prompt(request.task, request.selection, language=language_name, instruction=request.instruction)
        decision = ls.cloud.route(
            request.task, file_path=request.path, text=request.document_text or request.selection,
            explicit_escalation=escalate, local_model=model,
        )
        ls.last_action = request
        previous = ls.last_local_answer
        if escalate and not decision.is_cloud and previous is not None and previous[0] == request:
            # Kept local (no key, local_only, never_send) for the very request answered locally before: the
            # local model would only repeat that answer, seconds later. Say why it was not escalated instead.
            return {**previous[1], "note": f"Not escalated: {decision.reason}. This is the local answer from before.",
                    "routeReason": decision.reason, "repeated": True}
        async with self.progress(f"Gearshift: {request.task.replace('_', ' ')}") as report:
            answer_text, source, used_model, note = None, "local", model, ""
            if decision.is_cloud:
                try:
                    cloud_answer = await ls.cloud.ask(
                        decision, task=request.task, system=prompt.system, prompt=prompt.user,
                        file_name=request.path, on_text=lambda _t: report("receiving from the cloud"),
                    )
                    answer_text, source, used_model = cloud_answer.text, "cloud", cloud_answer.model
                except CloudError as exc:
                    note = f"Cloud unavailable ({exc}); answered by the local model instead."
                    ls.log_to_client(f"Gearshift: {note}", types.MessageType.Warning)
            if answer_text is None:
                answer_text = await self.local_answer(engine, prompt.system, prompt.user, report)
        label = decision.label if source == "cloud" else f"local ({model})"
        if not decision.is_cloud and decision.critical:
            note = note or f"Not sent to the cloud: {decision.reason}."
        result = {
            "task": request.task, "answer": answer_text, "source": source, "model": used_model,
            "label": label, "note": note, "routeReason": decision.reason,
        }
        if source == "local":
            ls.last_local_answer = (request, result)
        return result

    async def local_answer(self, engine, system: str, user: str, report) -> str:
        chat = format_chat(engine.metadata, system, user)
        stream = engine.stream(GenerationRequest(prompt=chat.text, max_tokens=self.ls.settings.actions.max_tokens,
                                                 stop=list(chat.stop)))
        reported = 0
        try:
            async for partial in stream:  # progress every 16 tokens
                if partial.n_tokens // 16 > reported:
                    reported = partial.n_tokens // 16
                    report(f"{reported * 16} tokens")
            result = await stream.result()
        except asyncio.CancelledError:
            stream.cancel()
            raise
        return result.text.strip()

    def progress(self, title: str):
        return _Progress(self.ls, title)


class _Progress:
    """Server-initiated `$/progress` when the client supports it; a no-op otherwise."""

    def __init__(self, ls, title: str) -> None:
        self.ls, self.title = ls, title
        self.token: str | None = None
        self.loop = asyncio.get_running_loop()

    async def __aenter__(self):
        if get_capability(self.ls.client_capabilities, "window.work_done_progress", False):
            self.token = str(uuid.uuid4())
            try:
                await self.ls.work_done_progress.create_async(self.token)
                self.ls.work_done_progress.begin(
                    self.token, types.WorkDoneProgressBegin(title=self.title, cancellable=False)
                )
            except Exception:  # a client that refuses progress still gets its answer
                self.token = None
        return self.report

    def report(self, message: str) -> None:
        if self.token is None:
            return

        def send() -> None:
            self.ls.work_done_progress.report(self.token, types.WorkDoneProgressReport(message=message))

        self.loop.call_soon_threadsafe(send)

    async def __aexit__(self, *exc) -> None:
        if self.token is not None:
            self.ls.work_done_progress.end(self.token, types.WorkDoneProgressEnd())


def _answer_markdown(result: dict[str, Any], title: str) -> dict[str, Any]:
    note = f"\n\n> {result['note']}" if result.get("note") else ""
    return {
        "title": title,
        "markdown": f"**{title}** · {result['label']}\n\n{result['answer']}{note}",
        "source": result["source"],
        "model": result["model"],
        "routeReason": result["routeReason"],
    }


async def _apply_refactor(ls, request: ActionRequest, answer: str) -> dict[str, Any]:
    code = extract_code_block(answer, allow_bare=False)
    if code is None:
        return {"applied": False, "message": "The model did not return a complete code block; nothing changed."}
    document = open_document(ls.workspace, request.uri)
    if document.version != request.version:
        return {"applied": False, "message": "The document changed while refactoring; nothing changed."}
    start, end = offset_at(document, request.range.start), offset_at(document, request.range.end)
    original = document.source
    if request.selection.endswith("\n") and not code.endswith("\n"):
        code += "\n"
    elif not request.selection.endswith("\n"):
        code = code.rstrip("\n")
    updated = original[:start] + code + original[end:]
    spec = languages.resolve(request.language, request.path)
    errors_before = grammar.count_errors(grammar.parse(spec, original).root_node)
    errors_after = grammar.count_errors(grammar.parse(spec, updated).root_node)
    if errors_after > errors_before:
        return {"applied": False, "message": "The refactored code does not parse; nothing changed."}
    if code == request.selection:
        return {"applied": False, "message": "The model proposed no change."}
    edit = types.WorkspaceEdit(
        document_changes=[
            types.TextDocumentEdit(
                text_document=types.OptionalVersionedTextDocumentIdentifier(uri=request.uri, version=request.version),
                edits=[types.TextEdit(range=request.range, new_text=code)],
            )
        ]
    )
    response = await ls.workspace_apply_edit_async(
        types.ApplyWorkspaceEditParams(edit=edit, label="Gearshift refactor")
    )
    if not response.applied:
        return {"applied": False, "message": f"The editor refused the edit: {response.failure_reason or 'no reason'}"}
    return {"applied": True, "message": "Refactored; the file still parses."}


def register(server) -> None:
    @server.feature(
        types.TEXT_DOCUMENT_CODE_ACTION,
        types.CodeActionOptions(code_action_kinds=[KIND_EXPLAIN, KIND_REFACTOR, KIND_REVIEW], resolve_provider=True),
    )
    def code_actions(ls, params: types.CodeActionParams) -> list[types.CodeAction]:
        if params.range.start == params.range.end:
            return []  # actions act on a selection
        wanted = params.context.only
        actions = []
        for command, (_task, title, kind) in ACTIONS.items():
            if wanted and not any(kind.startswith(getattr(w, "value", w)) for w in wanted):
                continue
            data = {"command": command, "uri": params.text_document.uri,
                    "range": {"start": {"line": params.range.start.line, "character": params.range.start.character},
                              "end": {"line": params.range.end.line, "character": params.range.end.character}}}
            actions.append(types.CodeAction(title=title, kind=kind, data=data))
        return actions

    @server.feature(types.CODE_ACTION_RESOLVE)
    def resolve_code_action(ls, action: types.CodeAction) -> types.CodeAction:
        data = action.data if isinstance(action.data, dict) else {}  # another client's or a mangled action
        command = data.get("command")
        if command not in ACTIONS:
            return action
        argument = {"uri": data.get("uri"), "range": data.get("range")}
        action.command = types.Command(title=action.title, command=command, arguments=[argument])
        return action

    async def answer(ls, task: str, arguments: SelectionArguments | None, title: str) -> dict[str, Any]:
        request = selection_request(ls, task, arguments)
        result = await ActionRunner(ls).run(request)
        return _answer_markdown(result, title)

    # Arguments are structured by pygls from the annotations (lsp_server/features/command_arguments.py); None
    # when the request has no `arguments` at all.
    @server.command("gearshift.explain")
    async def explain(ls, arguments: SelectionArguments | None = None) -> dict[str, Any]:
        return await answer(ls, "explain", arguments, "Explanation")

    @server.command("gearshift.review")
    async def review(ls, arguments: ReviewArguments | None = None) -> dict[str, Any]:
        requested = arguments.kind if arguments is not None else "data_race"
        kind = REVIEW_KINDS.get(requested)
        if kind is None:
            raise RequestRefused(f"Unknown review kind {requested!r}; use data_race or security")
        return await answer(ls, kind, arguments, "Data-race review" if kind == "review_data_race" else "Security review")

    @server.command("gearshift.reviewSecurity")
    async def review_security(ls, arguments: SelectionArguments | None = None) -> dict[str, Any]:
        return await answer(ls, "review_security", arguments, "Security review")

    @server.command("gearshift.refactor")
    async def refactor(ls, arguments: RefactorArguments | None = None) -> dict[str, Any]:
        request = selection_request(ls, "refactor", arguments, arguments.instruction if arguments else None)
        result = await ActionRunner(ls).run(request)
        outcome = await _apply_refactor(ls, request, result["answer"])
        return {**outcome, "source": result["source"], "model": result["model"], "note": result["note"]}

    @server.command("gearshift.escalate")
    async def escalate(ls, *args: Any) -> dict[str, Any]:
        # `[]`, or an argument naming no document, re-runs the last request: pygls structures required parameters
        # only, so this optional one is structured here, by the same converter.
        given = args[0] if args and isinstance(args[0], dict) and args[0].get("uri") is not None else None
        if given is not None:
            arguments = ls.converter.structure(given, EscalateArguments)
            task = {"review": "review_data_race", "reviewSecurity": "review_security"}.get(arguments.task, arguments.task)
            if task not in ESCALATABLE_TASKS:
                raise RequestRefused(
                    f"Unknown task {task!r} to escalate; use one of {', '.join(sorted(ESCALATABLE_TASKS))}"
                )
            request = selection_request(ls, task, arguments, arguments.instruction)
        elif ls.last_action is not None:
            request = ls.last_action
            document = find_open_document(ls.workspace, request.uri)
            if request.task == "refactor" and (document is None or document.version != request.version):
                # Its range points into text that has moved (often the local refactor itself, applied).
                raise RequestRefused("The file changed since that refactor; select the code again to escalate it")
        else:
            raise RequestRefused("Nothing to escalate yet: run Explain, Refactor or Review on a selection first")
        # When the router keeps it local (no key, local-only, never_send), the answer says so and why.
        result = await ActionRunner(ls).run(request, escalate=True)
        if request.task == "refactor" and result.get("repeated"):
            return {"applied": False, "message": f"Not escalated: {result['routeReason']}; nothing changed.",
                    "source": "local", "model": result["model"], "note": ""}
        if request.task == "refactor":
            outcome = await _apply_refactor(ls, request, result["answer"])
            return {**outcome, "source": result["source"], "model": result["model"], "note": result["note"]}
        return _answer_markdown(result, f"{request.task.replace('_', ' ').capitalize()} (escalated)")
