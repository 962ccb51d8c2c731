"""Property-based fuzzing of the real server's protocol handling (issue 12).

Each example is one session: initialize, then a random mix of valid and mutated messages of every method the
server handles (document sync with valid and invalid ranges, CRLF, non-BMP and non-LSP line-break characters,
requests with random params and ids, unknown methods, garbage bodies, cancellations), then shutdown and exit.
Checked after every message: the server's text of each open document equals the reference model's
(``ReferenceDocument``, written from the LSP specification), every request with a valid id is answered
exactly once, no answer carries a Python exception name, and routine mistakes raise no pop-ups.

``initialized`` is not sent, so no model loads: this is about the protocol, not about suggestions.
"""

from __future__ import annotations

import asyncio
import itertools
import json
import re

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.support.wire import Wire
from tests.unit.test_text_sync import ReferenceDocument

EXAMPLES = 250
MESSAGES_PER_EXAMPLE = (40, 60)  # so one run sends at least 250 × 40 = 10,000 messages
PYTHON_EXCEPTION = re.compile(r"\b\w+(Error|Exception)\b:|Traceback|object has no attribute")

URIS = ["file:///tmp/fuzz/a.py", "file:///tmp/fuzz/my%20file.py", "file:///c%3A/Users/d%C3%A9v/b.ts",
        "untitled:Untitled-1", "file:///tmp/fuzz/notes.md"]
REQUEST_METHODS = [
    "textDocument/inlineCompletion", "textDocument/completion", "textDocument/codeAction", "codeAction/resolve",
    "workspace/executeCommand", "gearshift/noSuchMethod", "$/fuzzRequest", "textDocument/hover",
]
COMMANDS = ["gearshift.explain", "gearshift.refactor", "gearshift.review", "gearshift.reviewSecurity",
            "gearshift.escalate", "gearshift.status", "gearshift.nope"]
TEXT = st.lists(
    st.sampled_from(list("abc xyz():=\t") + ["\n", "\r", "\r\n", "\f", "\v", "\x85", "\u2028", "\u2029",
                                                       "é", "😋", "𝔘", "\x1c", "\x00"]),
    max_size=30,
).map("".join)
JSON = st.recursive(
    st.none() | st.booleans() | st.integers(-3, 10**10) | st.floats(allow_nan=False) | st.text(max_size=8),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=6), inner, max_size=3),
    max_leaves=6,
)
POSITION = st.fixed_dictionaries({"line": st.integers(0, 8), "character": st.integers(0, 40)})
RANGE = st.fixed_dictionaries({"start": POSITION, "end": POSITION})


def ordered(rng: dict) -> dict:
    key = lambda p: (p["line"], p["character"])  # noqa: E731
    start, end = sorted([rng["start"], rng["end"]], key=key)
    return {"start": start, "end": end}


@st.composite
def well_formed_params(draw, method: str) -> dict:
    uri = draw(st.sampled_from(URIS))
    position = draw(POSITION)
    if method in ("textDocument/inlineCompletion", "textDocument/completion", "textDocument/hover"):
        params = {"textDocument": {"uri": uri}, "position": position}
        if method == "textDocument/inlineCompletion":
            params["context"] = {"triggerKind": draw(st.sampled_from([1, 2]))}
        return params
    if method == "textDocument/codeAction":
        return {"textDocument": {"uri": uri}, "range": draw(RANGE), "context": {"diagnostics": []}}
    if method == "codeAction/resolve":
        return {"title": "t", "data": draw(st.one_of(JSON, st.fixed_dictionaries(
            {"command": st.sampled_from(COMMANDS), "uri": st.just(uri), "range": RANGE})))}
    if method == "workspace/executeCommand":
        argument = draw(st.one_of(JSON, st.fixed_dictionaries({"uri": st.just(uri), "range": RANGE})))
        return {"command": draw(st.sampled_from(COMMANDS)), "arguments": [argument]}
    return draw(st.dictionaries(st.text(max_size=5), JSON, max_size=2))


@st.composite
def action(draw):
    kind = draw(st.sampled_from(["open", "change", "change", "change", "close", "request", "request",
                                 "mutated", "notification", "garbage", "cancel"]))
    if kind == "open":
        return ("open", draw(st.sampled_from(URIS)), draw(TEXT))
    if kind == "change":
        changes = draw(st.lists(st.one_of(
            st.fixed_dictionaries({"range": RANGE, "text": TEXT}),
            st.fixed_dictionaries({"text": TEXT}),
        ), min_size=1, max_size=3))
        return ("change", draw(st.sampled_from(URIS)), [
            {**c, "range": ordered(c["range"])} if "range" in c else c for c in changes])
    if kind == "close":
        return ("close", draw(st.sampled_from(URIS)))
    if kind in ("request", "mutated"):
        method = draw(st.sampled_from(REQUEST_METHODS))
        params = draw(well_formed_params(method))
        if kind == "mutated" and params:
            key = draw(st.sampled_from(sorted(params)))
            params = {**params, key: draw(JSON)} if draw(st.booleans()) else {
                k: v for k, v in params.items() if k != key}
        request_id = draw(st.one_of(st.none(), st.sampled_from(["int", "str"]), JSON))  # None: omit params
        return ("request", method, params if request_id is not None else None, request_id)
    if kind == "notification":
        method = draw(st.sampled_from(["textDocument/didChange", "textDocument/didOpen", "textDocument/didSave",
                                       "$/setTrace", "$/unknown", "workspace/unknown", "textDocument/didClose"]))
        return ("notification", method, draw(JSON))
    if kind == "garbage":
        return ("garbage", draw(st.one_of(
            st.binary(max_size=20), st.text(max_size=20).map(str.encode),
            JSON.map(lambda v: json.dumps(v).encode()),
            st.just(b'{"jsonrpc": "1.0", "id": 1, "method": "shutdown"}'),
            st.just(b'{"id": 1, "method": "textDocument/completion"}'))))
    return ("cancel", draw(st.one_of(st.integers(0, 50), JSON)))


def run_session(actions: list, missing_model: str) -> int:
    wire = Wire(missing_model)
    reference: dict[str, ReferenceDocument] = {}
    ids = itertools.count(1)
    expected_ids: list = []
    sent = 0

    async def session() -> None:
        nonlocal sent
        wire.initialize(0)
        expected_ids.append(0)
        for step in actions:
            kind = step[0]
            if kind == "open":
                _, uri, text = step
                wire.feed({"jsonrpc": "2.0", "method": "textDocument/didOpen", "params": {"textDocument": {
                    "uri": uri, "languageId": "python", "version": 1, "text": text}}})
                reference[uri] = ReferenceDocument(text)
            elif kind == "change":
                _, uri, changes = step
                wire.feed({"jsonrpc": "2.0", "method": "textDocument/didChange", "params": {
                    "textDocument": {"uri": uri, "version": next(ids)}, "contentChanges": changes}})
                if uri in reference:
                    for change in changes:
                        if "range" in change:
                            r = change["range"]
                            reference[uri].apply((r["start"]["line"], r["start"]["character"]),
                                                 (r["end"]["line"], r["end"]["character"]), change["text"])
                        else:
                            reference[uri].text = change["text"]
            elif kind == "close":
                wire.feed({"jsonrpc": "2.0", "method": "textDocument/didClose",
                           "params": {"textDocument": {"uri": step[1]}}})
                reference.pop(step[1], None)
            elif kind == "request":
                _, method, params, id_kind = step
                message = {"jsonrpc": "2.0", "method": method}
                if params is not None:
                    message["params"] = params
                if id_kind in ("int", "str"):
                    request_id = next(ids) if id_kind == "int" else f"r{next(ids)}"
                    expected_ids.append(request_id)
                else:
                    request_id = id_kind
                message["id"] = request_id
                wire.feed(message)
            elif kind == "notification":
                wire.feed({"jsonrpc": "2.0", "method": step[1], "params": step[2]})
            elif kind == "garbage":
                wire.feed(step[1])
            else:
                wire.feed({"jsonrpc": "2.0", "method": "$/cancelRequest", "params": {"id": step[1]}})
            sent += 1
            await asyncio.sleep(0)
            documents = wire.server.workspace.text_documents
            for uri, doc in reference.items():
                from urllib.parse import unquote

                assert documents[unquote(uri)].source == doc.text, (uri, step)
        await wire.settle()
        wire.feed({"jsonrpc": "2.0", "id": "last", "method": "shutdown"})
        await wire.settle()
        expected_ids.append("last")
        wire.feed({"jsonrpc": "2.0", "method": "exit"})
        sent += 3

    asyncio.run(session())
    for request_id in expected_ids:
        answers = wire.answers(request_id)
        assert len(answers) == 1, (request_id, answers)
        if "error" in answers[0]:
            assert not PYTHON_EXCEPTION.search(answers[0]["error"]["message"]), answers[0]
    # Nobody is told twice about the same thing; the only expected pop-up would be the model error.
    pop_ups = wire.pop_ups()
    assert len(pop_ups) == len(set(pop_ups)), pop_ups
    assert wire.exited == 0
    return sent


MESSAGES_SENT: list[int] = []


@settings(max_examples=EXAMPLES, deadline=None, derandomize=True,
          suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large, HealthCheck.large_base_example])
@given(actions=st.lists(action(), min_size=MESSAGES_PER_EXAMPLE[0], max_size=MESSAGES_PER_EXAMPLE[1]))
def test_fuzzed_sessions_keep_documents_in_sync_and_answer_every_request(actions, tmp_path_factory):
    MESSAGES_SENT.append(run_session(actions, str(tmp_path_factory.getbasetemp() / "no-such-model.gguf")))


def test_the_fuzz_run_sent_at_least_ten_thousand_messages():
    # Runs after the property test in file order; alone (-k) it has nothing to check.
    if not MESSAGES_SENT:
        return
    assert sum(MESSAGES_SENT) >= 10_000, sum(MESSAGES_SENT)
