"""`textDocument/inlineCompletion`, and `textDocument/completion` for clients without inline completion.

A new request for a document supersedes the one still running for it (its
generation is cancelled between two tokens), and `$/cancelRequest` cancels
the handler's task, which cancels the generation the same way.
"""

from __future__ import annotations

import asyncio
import logging

from lsprotocol import types
from pygls.capabilities import get_capability

from lsp_server.completion.service import CompletionOutcome
from lsp_server.documents import DocumentSnapshot, find_open_document, snapshot
from lsp_server.errors import GearshiftError
from lsp_server.inference.types import CancelToken

log = logging.getLogger(__name__)


def register(server) -> None:
    running: dict[str, CancelToken] = {}

    async def complete(ls, doc: DocumentSnapshot) -> CompletionOutcome | None:
        if not ls.settings.completion.enabled:
            return None
        if (previous := running.pop(doc.uri, None)) is not None:
            previous.cancel()  # superseded by this keystroke
        token = CancelToken()
        running[doc.uri] = token
        try:
            service = await ls.ready_completions()
            work = asyncio.ensure_future(service.complete(doc, token))
            try:
                outcome = await asyncio.shield(work)
            except asyncio.CancelledError:
                # $/cancelRequest: stop the generation between two tokens and report that it stopped.
                token.cancel()
                ls.report_completion(await work)
                raise
        except GearshiftError as exc:
            ls.log_to_client(f"Gearshift: {exc}", types.MessageType.Error)
            return None
        finally:
            if running.get(doc.uri) is token:
                del running[doc.uri]
        ls.report_completion(outcome)
        if token.cancelled:
            return None
        document = find_open_document(ls.workspace, doc.uri)
        if document is not None and document.version != doc.version:
            return None  # the document moved on while we computed: the answer is stale
        return outcome

    @server.feature(types.TEXT_DOCUMENT_INLINE_COMPLETION, types.InlineCompletionOptions())
    async def inline_completion(ls, params: types.InlineCompletionParams) -> types.InlineCompletionList:
        doc = snapshot(ls.workspace, params.text_document.uri, params.position)
        outcome = await complete(ls, doc)
        if outcome is None or not outcome.suggestion:
            return types.InlineCompletionList(items=[])
        # No range: "insert at the cursor". An empty range makes Neovim 0.12 draw the ghost text as an
        # overlay that hides the rest of the line instead of pushing it aside.
        item = types.InlineCompletionItem(insert_text=outcome.suggestion)
        return types.InlineCompletionList(items=[item])

    @server.feature(types.TEXT_DOCUMENT_COMPLETION, types.CompletionOptions(resolve_provider=False))
    async def completion(ls, params: types.CompletionParams) -> types.CompletionList:
        empty = types.CompletionList(is_incomplete=True, items=[])
        if get_capability(ls.client_capabilities, "text_document.inline_completion", None) is not None:
            return empty  # the client shows our ghost text already; don't duplicate it in its menu
        doc = snapshot(ls.workspace, params.text_document.uri, params.position)
        outcome = await complete(ls, doc)
        if outcome is None or not outcome.suggestion:
            return empty
        first_line = outcome.suggestion.split("\n", 1)[0]
        confidence = f" · {round(outcome.confidence * 100)}%" if outcome.confidence is not None else ""
        item = types.CompletionItem(
            label=(first_line.strip() or outcome.suggestion.strip())[:60],
            kind=types.CompletionItemKind.Text,
            detail=f"Gearshift · {outcome.tier}{confidence}",
            text_edit=types.TextEdit(
                range=types.Range(start=params.position, end=params.position), new_text=outcome.suggestion
            ),
            insert_text_format=types.InsertTextFormat.PlainText,
            filter_text=doc.text[doc.text.rfind("\n", 0, doc.offset) + 1 : doc.offset].lstrip() + first_line,
            sort_text="0",
            preselect=True,
        )
        return types.CompletionList(is_incomplete=True, items=[item])
