"""An editor that quits while answers are on their way: the server notes it once and writes nothing more."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path


def frame(message: dict) -> bytes:
    body = json.dumps(message).encode()
    return b"Content-Length: %d\r\n\r\n" % len(body) + body


def test_a_client_that_closed_its_end_gets_no_traceback_at_error(tmp_path: Path):
    log = tmp_path / "server.log"
    server = subprocess.Popen(
        [sys.executable, "-m", "lsp_server", "serve", "--log-file", str(log)],
        stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL,
    )
    assert server.stdin is not None and server.stdout is not None
    server.stdin.write(frame({"jsonrpc": "2.0", "id": 1, "method": "initialize",
                              "params": {"processId": None, "rootUri": None, "capabilities": {},
                                         "initializationOptions": {"models": {"defaultModel": "/nonexistent.gguf"}}}}))
    server.stdin.flush()
    header = server.stdout.readline()
    assert header.startswith(b"Content-Length")
    server.stdout.close()  # the editor quits: nobody reads what the server writes from here on
    for request_id in range(2, 6):
        server.stdin.write(frame({"jsonrpc": "2.0", "id": request_id, "method": "workspace/executeCommand",
                                  "params": {"command": "gearshift.status"}}))
    server.stdin.write(frame({"jsonrpc": "2.0", "id": 9, "method": "shutdown"}))
    server.stdin.write(frame({"jsonrpc": "2.0", "method": "exit"}))
    server.stdin.close()
    server.wait(timeout=60)
    text = log.read_text()
    assert "the client closed the connection" in text
    assert text.count("the client closed the connection") == 1
    assert "BrokenPipeError" not in text and " ERROR " not in text, text[-3000:]
