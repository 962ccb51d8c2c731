"""JSON-RPC and LSP lifecycle rules, one regression test per defect the fuzzing client found (issue 12)."""

from __future__ import annotations

import re

import pytest

from tests.support.wire import Wire

PYTHON_EXCEPTION = re.compile(r"\b\w+(Error|Exception)\b:|Traceback|object has no attribute")


@pytest.fixture
def wire(tmp_path):
    return Wire(str(tmp_path / "no-such-model.gguf"))


def request(request_id, method, params=None, **extra):
    message = {"jsonrpc": "2.0", "id": request_id, "method": method, **extra}
    if params is not None:
        message["params"] = params
    return message


def open_doc(wire, uri="file:///tmp/a.py", text="def f():\n    return 1\n"):
    wire.feed({"jsonrpc": "2.0", "method": "textDocument/didOpen", "params": {"textDocument": {
        "uri": uri, "languageId": "python", "version": 1, "text": text}}})


def only_error(wire, request_id):
    answers = wire.answers(request_id)
    assert len(answers) == 1, answers
    assert "error" in answers[0], answers[0]
    assert not PYTHON_EXCEPTION.search(answers[0]["error"]["message"]), answers[0]
    return answers[0]["error"]


async def test_request_before_initialize_gets_server_not_initialized(wire):
    wire.feed(request(1, "textDocument/inlineCompletion", {"textDocument": {"uri": "file:///a.py"},
                      "position": {"line": 0, "character": 0}, "context": {"triggerKind": 1}}))
    open_doc(wire)  # a notification before initialize is dropped
    await wire.settle()
    assert only_error(wire, 1)["code"] == -32002
    wire.initialize()
    await wire.settle()
    assert wire.server.workspace.text_documents == {}


async def test_unknown_method_without_params_is_method_not_found(wire):
    wire.initialize()
    wire.feed(request(2, "gearshift/noSuchThing"))
    wire.feed(request(3, "$/someExtension"))
    wire.feed({"jsonrpc": "2.0", "method": "$/someNotification"})
    await wire.settle()
    assert only_error(wire, 2)["code"] == -32601
    assert only_error(wire, 3)["code"] == -32601
    assert wire.pop_ups() == []


async def test_requests_after_shutdown_are_invalid_requests_and_exit_code_follows_the_spec(wire):
    wire.initialize()
    wire.feed(request(4, "shutdown"))
    wire.feed(request(5, "textDocument/completion", {"textDocument": {"uri": "file:///a.py"},
                      "position": {"line": 0, "character": 0}}))
    await wire.settle()
    assert wire.answers(4) == [{"jsonrpc": "2.0", "id": 4, "result": None}]
    assert only_error(wire, 5)["code"] == -32600
    wire.feed({"jsonrpc": "2.0", "method": "exit"})
    assert wire.exited == 0 and wire.server.protocol.exit_code == 0


async def test_exit_without_shutdown_asks_for_exit_code_one(wire):
    wire.initialize()
    wire.feed({"jsonrpc": "2.0", "method": "exit"})
    assert wire.exited == 1 and wire.server.protocol.exit_code == 1


@pytest.mark.parametrize("bad_id", [{"x": 1}, [1], 1.5, True, None])
async def test_a_malformed_id_is_answered_with_null(wire, bad_id):
    wire.initialize()
    wire.feed(request(bad_id, "textDocument/completion", {}))
    await wire.settle()
    answers = [m for m in wire.sent if "method" not in m and m.get("id") != 0]
    assert len(answers) == 1 and answers[0]["id"] is None and answers[0]["error"]["code"] == -32600, answers


async def test_invalid_json_gets_parse_error_and_no_pop_up(wire):
    wire.initialize()
    wire.feed(b"{not json!!}")
    wire.feed(b"[1, 2]")
    await wire.settle()
    errors = [m["error"]["code"] for m in wire.sent if m.get("id", 0) is None]
    assert errors == [-32700, -32600]
    assert wire.pop_ups() == []


async def test_routine_client_mistakes_raise_no_pop_ups(wire):
    wire.initialize()
    wire.feed({"jsonrpc": "2.0", "method": "textDocument/didChange", "params": {
        "textDocument": {"uri": "file:///never/opened.py", "version": 2},
        "contentChanges": [{"text": "x"}]}})
    wire.feed({"jsonrpc": "2.0", "method": "textDocument/didOpen", "params": {"textDocument": 7}})
    wire.feed({"jsonrpc": "2.0", "method": "textDocument/didClose", "params": None})
    await wire.settle()
    assert wire.pop_ups() == []


async def test_bad_params_name_the_method_and_never_a_python_exception(wire):
    wire.initialize()
    wire.feed(request(6, "textDocument/inlineCompletion", {"textDocument": 7}))
    await wire.settle()
    error = only_error(wire, 6)
    assert error["code"] == -32602 and "textDocument/inlineCompletion" in error["message"]


async def test_ordinary_refusals_are_sentences_not_exception_names(wire):
    wire.initialize()
    open_doc(wire)
    empty = {"uri": "file:///tmp/a.py", "range": {"start": {"line": 0, "character": 0},
                                                  "end": {"line": 0, "character": 0}}}
    wire.feed(request(7, "workspace/executeCommand", {"command": "gearshift.review", "arguments": [empty]}))
    wire.feed(request(8, "workspace/executeCommand", {"command": "gearshift.escalate", "arguments": ["str"]}))
    wire.feed(request(9, "codeAction/resolve", {"title": "t", "data": "x"}))
    wire.feed(request(10, "workspace/executeCommand", {"command": "gearshift.escalate", "arguments": [
        {**empty, "task": 12}]}))
    await wire.settle()
    review = only_error(wire, 7)
    assert review["code"] == -32602 and "selection is empty" in review["message"]
    assert only_error(wire, 8)["code"] == -32602
    assert wire.answers(9)[0]["result"]["title"] == "t"
    assert only_error(wire, 10)["code"] == -32602


async def test_lone_surrogates_reach_no_encoder(wire):
    wire.initialize()
    open_doc(wire, text="x = '\ud800'\ny = 1\n")
    selection = {"uri": "file:///tmp/a.py", "range": {"start": {"line": 0, "character": 0},
                                                      "end": {"line": 1, "character": 5}}}
    wire.feed(request(11, "workspace/executeCommand", {"command": "gearshift.explain", "arguments": [selection]}))
    await wire.settle()
    error = only_error(wire, 11)  # no model here: the model error, not a UnicodeEncodeError
    assert "no-such-model" in error["message"] or "model" in error["message"].lower()


async def test_the_same_settings_mistake_pops_up_once(wire):
    wire.initialize()
    for _ in range(3):
        wire.feed({"jsonrpc": "2.0", "method": "workspace/didChangeConfiguration",
                   "params": {"settings": {"gearshift": {"completion": {"maxTokens": -5}}}}})
    await wire.settle()
    assert len(wire.pop_ups()) == 1, wire.pop_ups()


async def test_escalating_a_refactor_after_its_file_changed_asks_for_a_fresh_selection(wire):
    from lsprotocol import types

    from lsp_server.features.actions import ActionRequest

    wire.initialize()
    open_doc(wire)
    rng = types.Range(start=types.Position(line=0, character=0), end=types.Position(line=1, character=0))
    wire.server.last_action = ActionRequest(task="refactor", uri="file:///tmp/a.py", range=rng,
                                            selection="def f():\n", language="python", path="/tmp/a.py", version=1)
    wire.feed({"jsonrpc": "2.0", "method": "textDocument/didChange", "params": {
        "textDocument": {"uri": "file:///tmp/a.py", "version": 2},
        "contentChanges": [{"range": {"start": {"line": 0, "character": 0}, "end": {"line": 0, "character": 0}},
                            "text": "# x\n"}]}})
    wire.feed(request(12, "workspace/executeCommand", {"command": "gearshift.escalate", "arguments": []}))
    await wire.settle()
    error = only_error(wire, 12)
    assert error["code"] == -32602 and "select the code again" in error["message"]
