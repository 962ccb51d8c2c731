"""Raw stdio: malformed messages get JSON-RPC errors, and stdout carries nothing but framed protocol messages."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

from tests.e2e.conftest import E2E_MODEL

pytestmark = [pytest.mark.e2e, pytest.mark.model]


def frame(message: dict) -> bytes:
    body = json.dumps(message).encode()
    return b"Content-Length: %d\r\n\r\n" % len(body) + body


def parse_frames(stream: bytes) -> list[dict]:
    """Split stdout into messages; anything that is not a well-framed JSON message fails the test."""
    messages = []
    while stream:
        header, sep, rest = stream.partition(b"\r\n\r\n")
        assert sep, f"bytes outside a framed message on stdout: {stream[:200]!r}"
        fields = dict(line.split(b": ", 1) for line in header.split(b"\r\n"))
        length = int(fields[b"Content-Length"])
        messages.append(json.loads(rest[:length]))
        stream = rest[length:]
    return messages


def test_malformed_input_and_stdout_hygiene(tmp_path):
    requests = [
        {"jsonrpc": "2.0", "id": 1, "method": "initialize", "params": {
            "capabilities": {}, "initializationOptions": {"models": {"defaultModel": E2E_MODEL}}}},
        {"jsonrpc": "2.0", "method": "initialized", "params": {}},
        {"jsonrpc": "2.0", "method": "textDocument/didOpen", "params": {"textDocument": {
            "uri": "file:///tmp/h.py", "languageId": "python", "version": 1, "text": "def f():\n    return 1\n"}}},
        {"jsonrpc": "2.0", "id": 2, "method": "textDocument/inlineCompletion", "params": {"textDocument": 7}},
        {"jsonrpc": "2.0", "id": 3, "method": "textDocument/inlineCompletion", "params": {
            "textDocument": {"uri": "file:///tmp/h.py"}, "position": {"line": 1, "character": 4},
            "context": {"triggerKind": 2}}},
        {"jsonrpc": "2.0", "id": 4, "method": "gearshift/noSuchMethod", "params": {}},
        {"jsonrpc": "2.0", "id": 5, "method": "shutdown"},
        {"jsonrpc": "2.0", "method": "exit"},
    ]
    stdin = b"".join(frame(r) for r in requests[:3])
    stdin += b"Content-Length: 12\r\n\r\n{not json!!}"  # garbage in a valid frame
    stdin += b"".join(frame(r) for r in requests[3:])
    done = subprocess.run(
        [sys.executable, "-m", "lsp_server", "serve"], input=stdin, capture_output=True, timeout=300,
        env={**os.environ, "GEARSHIFT_LOG_TEST": "1"},
    )
    messages = parse_frames(done.stdout)  # fails on any non-protocol byte
    by_id = {m.get("id"): m for m in messages if "id" in m and ("result" in m or "error" in m)}
    assert "error" in by_id[2]  # malformed params: an error, not a crash
    assert "result" in by_id[3] or "error" in by_id[3]
    assert by_id[4]["error"]["code"] == -32601  # method not found
    assert "result" in by_id[5]  # still alive to answer shutdown after all that
    assert b"return 1" not in done.stderr  # document text never logged at INFO


@pytest.mark.parametrize(("shutdown_first", "exit_code"), [(True, 0), (False, 1)])
def test_process_exit_code_follows_the_spec(shutdown_first, exit_code):
    messages = [{"jsonrpc": "2.0", "id": 1, "method": "initialize", "params": {"capabilities": {}}}]
    if shutdown_first:
        messages.append({"jsonrpc": "2.0", "id": 2, "method": "shutdown"})
    messages.append({"jsonrpc": "2.0", "method": "exit"})
    done = subprocess.run(
        [sys.executable, "-m", "lsp_server", "serve"], input=b"".join(frame(m) for m in messages),
        capture_output=True, timeout=120,
    )
    assert done.returncode == exit_code, done.stderr[-2000:]
    assert [m["id"] for m in parse_frames(done.stdout) if "id" in m] == [1, 2][: len(messages) - 1]
