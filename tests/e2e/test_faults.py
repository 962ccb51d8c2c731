"""Faults while the server runs (issue 12): a clear status and a working server, never a crash or a hang."""

from __future__ import annotations

import json
import os
import queue
import shutil
import subprocess
import threading

import pytest
import pytest_lsp
from lsprotocol import types
from pytest_lsp import ClientServerConfig, LanguageClient

from lsp_server.inference.assembly import ensure_model
from tests.e2e.conftest import E2E_MODEL, SERVER, inline_params, open_doc, start, statuses

pytestmark = [pytest.mark.e2e, pytest.mark.model]


def settings_with(model_path: str, **engine) -> dict:
    return {"models": {"defaultModel": E2E_MODEL, "modelPath": model_path, "ladder": [E2E_MODEL]},
            "guard": {"enabled": False}, "engine": engine,
            "completion": {"minConfidence": 0.0, "timeBudgetMs": 30000, "firstAnswerMs": 30000}}


async def wait_state(client: LanguageClient, after: int, timeout_s: float = 120.0) -> dict:
    import asyncio

    deadline = asyncio.get_running_loop().time() + timeout_s
    while asyncio.get_running_loop().time() < deadline:
        for status in statuses(client)[after:]:
            if status.get("state") in ("ready", "error"):
                return status
        await asyncio.sleep(0.05)
    raise AssertionError(f"no ready/error status: {statuses(client)[after:]}")


@pytest_lsp.fixture(config=ClientServerConfig(server_command=SERVER))
async def copied_model_client(lsp_client: LanguageClient, tmp_path_factory):
    copy = tmp_path_factory.mktemp("model") / "copy.gguf"
    shutil.copyfile(ensure_model(E2E_MODEL), copy)
    lsp_client.model_copy = copy  # type: ignore[attr-defined]
    await start(lsp_client, "visual_studio_code", options=settings_with(str(copy)))
    yield
    await lsp_client.shutdown_session()


@pytest.mark.parametrize("damage", ["truncated", "deleted"])
async def test_model_file_damaged_while_running(copied_model_client: LanguageClient, damage: str):
    client = copied_model_client
    copy = client.model_copy  # type: ignore[attr-defined]
    assert (await wait_state(client, 0))["state"] == "ready"
    if damage == "truncated":
        with open(copy, "r+b") as handle:
            handle.truncate(4096)
    else:
        os.unlink(copy)
    # A settings change that needs the model loaded again (a new context size).
    before = len(statuses(client))
    client.workspace_did_change_configuration(types.DidChangeConfigurationParams(
        settings=settings_with(str(copy), nCtx=2048)))
    status = await wait_state(client, before)
    assert status["state"] == "error" and "copy.gguf" in status["message"], status
    assert "Traceback" not in status["message"]

    uri = "file:///tmp/gearshift-e2e/faults.py"
    open_doc(client, uri, "def f():\n    return ")
    result = await client.text_document_inline_completion_async(inline_params(uri, 1, 11))
    assert result is None or not result.items  # no suggestion, no error pop-up per keystroke
    report = await client.workspace_execute_command_async(types.ExecuteCommandParams(command="gearshift.status"))
    assert "copy.gguf" in report["modelError"]

    # The file back: the next settings change loads it again.
    shutil.copyfile(ensure_model(E2E_MODEL), copy)
    before = len(statuses(client))
    client.workspace_did_change_configuration(types.DidChangeConfigurationParams(
        settings=settings_with(str(copy), nCtx=4096)))
    assert (await wait_state(client, before))["state"] == "ready"


def frame(message: dict) -> bytes:
    body = json.dumps(message).encode()
    return b"Content-Length: %d\r\n\r\n" % len(body) + body


def read_messages(stream, into: queue.Queue) -> None:
    while True:
        header = b""
        while not header.endswith(b"\r\n\r\n"):
            byte = stream.read(1)
            if not byte:
                return
            header += byte
        length = int(header.split(b"Content-Length: ")[1].split(b"\r\n")[0])
        into.put(json.loads(stream.read(length)))


def test_client_vanishing_mid_generation_ends_the_server_cleanly():
    server = subprocess.Popen([*SERVER], stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    messages: queue.Queue = queue.Queue()
    threading.Thread(target=read_messages, args=(server.stdout, messages), daemon=True).start()
    send = lambda m: (server.stdin.write(frame(m)), server.stdin.flush())  # noqa: E731
    send({"jsonrpc": "2.0", "id": 1, "method": "initialize", "params": {"capabilities": {}, "initializationOptions": {
        "models": {"defaultModel": E2E_MODEL, "ladder": [E2E_MODEL]}, "guard": {"enabled": False},
        "completion": {"timeBudgetMs": 60000, "firstAnswerMs": 60000, "maxTokens": 256, "minConfidence": 0.0}}}})
    send({"jsonrpc": "2.0", "method": "initialized", "params": {}})
    while (message := messages.get(timeout=120)).get("params", {}).get("state") not in ("ready", "error"):
        pass
    assert message["params"]["state"] == "ready", message
    text = "class Matrix:\n    def __init__(self, rows):\n        "
    send({"jsonrpc": "2.0", "method": "textDocument/didOpen", "params": {"textDocument": {
        "uri": "file:///tmp/vanish.py", "languageId": "python", "version": 1, "text": text}}})
    send({"jsonrpc": "2.0", "id": 2, "method": "textDocument/inlineCompletion", "params": {
        "textDocument": {"uri": "file:///tmp/vanish.py"}, "position": {"line": 2, "character": 8},
        "context": {"triggerKind": 1}}})
    server.stdin.close()  # the editor crashed: no shutdown, no exit
    try:
        code = server.wait(timeout=120)
    finally:
        if server.poll() is None:
            server.kill()
    stderr = server.stderr.read().decode(errors="replace")
    assert code == 0, stderr[-2000:]
    assert "Traceback" not in stderr, stderr[-2000:]
