"""Inline completion through the real server, a real model and a real LSP client."""

from __future__ import annotations

import asyncio

import pytest
import pytest_lsp
from lsprotocol import types
from pygls.exceptions import JsonRpcException
from pytest_lsp import ClientServerConfig, LanguageClient

from tests.e2e.conftest import (
    SERVER,
    inline_params,
    insert,
    open_doc,
    request_inline,
    settings,
    start,
    statuses,
    wait_ready,
)

pytestmark = [pytest.mark.e2e, pytest.mark.model]

OBVIOUS = '''def add(a, b):
    """Return the sum of a and b."""
    return a + b


def subtract(a, b):
    """Return a minus b."""
    return '''


async def test_capabilities_advertised(client: LanguageClient):
    caps = client.server_caps
    assert caps.inline_completion_provider
    assert caps.completion_provider is not None
    assert caps.text_document_sync.change == types.TextDocumentSyncKind.Incremental


async def test_completion_is_right_on_an_obvious_prompt(client: LanguageClient):
    uri = "file:///tmp/gearshift-e2e/obvious.py"
    open_doc(client, uri, OBVIOUS)
    assert (await wait_ready(client))["state"] == "ready"
    lines = OBVIOUS.split("\n")
    result = await client.text_document_inline_completion_async(inline_params(uri, len(lines) - 1, len(lines[-1])))
    assert result is not None and result.items, statuses(client)
    suggestion = result.items[0].insert_text
    assert suggestion.replace(" ", "").startswith("a-b"), suggestion
    status = statuses(client)[-1]
    assert status["tier"].startswith("qwen2.5-coder-0.5b") or status["tier"]
    assert status["tokensPerSecond"] is not None and status["timeToFirstTokenMs"] > 0
    assert status["cacheHit"] is False


async def test_typed_ahead_is_served_from_cache(client: LanguageClient):
    uri = "file:///tmp/gearshift-e2e/typed_ahead.py"
    open_doc(client, uri, OBVIOUS)
    await wait_ready(client)
    lines = OBVIOUS.split("\n")
    line, col = len(lines) - 1, len(lines[-1])
    first = await client.text_document_inline_completion_async(inline_params(uri, line, col))
    assert first.items, statuses(client)
    suggestion = first.items[0].insert_text
    assert len(suggestion) >= 2
    typed = suggestion[:2]
    insert(client, uri, 2, line, col, typed)
    second = await client.text_document_inline_completion_async(inline_params(uri, line, col + len(typed)))
    assert second.items and second.items[0].insert_text == suggestion[2:]
    assert statuses(client)[-1]["cacheHit"] is True


async def test_cancel_stops_generation(client: LanguageClient):
    uri = "file:///tmp/gearshift-e2e/cancel.py"
    text = "import math\n\n\nclass Matrix:\n    def __init__(self, rows):\n        "
    open_doc(client, uri, text)
    await wait_ready(client)
    pending, cancel = request_inline(client, inline_params(uri, 5, 8))
    await asyncio.sleep(0.3)
    cancel()  # $/cancelRequest, as editors send it
    with pytest.raises(JsonRpcException, match="cancel"):
        await pending
    # The server is still answering, and the generation it stopped reports "cancelled".
    report = await client.workspace_execute_command_async(types.ExecuteCommandParams(command="gearshift.status"))
    assert report is not None
    for _ in range(200):
        if any(s.get("hidden") == "cancelled" for s in statuses(client)):
            break
        await asyncio.sleep(0.05)
    assert any(s.get("hidden") == "cancelled" for s in statuses(client)), statuses(client)


async def test_new_keystroke_supersedes_running_request(client: LanguageClient):
    uri = "file:///tmp/gearshift-e2e/supersede.py"
    open_doc(client, uri, OBVIOUS)
    await wait_ready(client)
    lines = OBVIOUS.split("\n")
    line, col = len(lines) - 1, len(lines[-1])
    stale = asyncio.ensure_future(client.text_document_inline_completion_async(inline_params(uri, line, col)))
    await asyncio.sleep(0.05)
    insert(client, uri, 2, line, col, "a")
    fresh = await client.text_document_inline_completion_async(inline_params(uri, line, col + 1))
    stale_result = await stale
    assert not stale_result.items  # superseded: never shown after the user typed on
    assert any(s.get("hidden") == "cancelled" for s in statuses(client))  # and its generation was stopped
    assert fresh.items and fresh.items[0].insert_text.replace(" ", "").startswith("-b")


async def test_client_without_inline_completion_gets_completion_items(plain_client: LanguageClient):
    client = plain_client
    assert client.server_caps.completion_provider is not None
    uri = "file:///tmp/gearshift-e2e/plain.py"
    open_doc(client, uri, OBVIOUS)
    await wait_ready(client)
    lines = OBVIOUS.split("\n")
    result = await client.text_document_completion_async(
        types.CompletionParams(
            text_document=types.TextDocumentIdentifier(uri=uri),
            position=types.Position(line=len(lines) - 1, character=len(lines[-1])),
        )
    )
    assert result is not None and result.items, statuses(client)
    item = result.items[0]
    assert item.text_edit.new_text.replace(" ", "").startswith("a-b")
    assert "Gearshift" in item.detail


@pytest.mark.parametrize("client", ["visual_studio_code"], indirect=True)
async def test_bad_input_keeps_the_server_answering(client: LanguageClient):
    await wait_ready(client)
    # Unknown document.
    with pytest.raises(JsonRpcException, match="not open"):
        await client.text_document_inline_completion_async(inline_params("file:///nowhere/never.py", 0, 0))
    uri = "file:///tmp/gearshift-e2e/bad.py"
    open_doc(client, uri, "x = 1\ny = 2\n")
    # Beyond the end of a line is clamped to the line's end (LSP Position); beyond the document is an error.
    await client.text_document_inline_completion_async(inline_params(uri, 0, 99))
    with pytest.raises(JsonRpcException, match="beyond the end of the document"):
        await client.text_document_inline_completion_async(inline_params(uri, 40, 0))
    # Binary content: no suggestion, no crash.
    binary_uri = "file:///tmp/gearshift-e2e/blob.bin"
    open_doc(client, binary_uri, "\x00\x01\x02garbage\x00" * 50 + "\n", language="plaintext")
    result = await client.text_document_inline_completion_async(inline_params(binary_uri, 0, 3))
    assert not result.items
    # A 5 MB file: answered (windowed context), not choked on.
    big_uri = "file:///tmp/gearshift-e2e/big.py"
    big = "".join(f"value_{i} = {i}\n" for i in range(300_000))
    assert len(big) > 5_000_000
    open_doc(client, big_uri, big)
    lines = big.count("\n")
    result = await client.text_document_inline_completion_async(inline_params(big_uri, lines, 0))
    assert result is not None
    # An unsupported language falls back to plain text.
    odd_uri = "file:///tmp/gearshift-e2e/notes.cobol"
    open_doc(client, odd_uri, "       IDENTIFICATION DIVISION.\n       PROGRAM-ID. HELLO.\n", language="cobol")
    result = await client.text_document_inline_completion_async(inline_params(odd_uri, 2, 0))
    assert result is not None
    # And it still completes normally afterwards.
    ok_uri = "file:///tmp/gearshift-e2e/ok.py"
    open_doc(client, ok_uri, OBVIOUS)
    lines = OBVIOUS.split("\n")
    result = await client.text_document_inline_completion_async(inline_params(ok_uri, len(lines) - 1, len(lines[-1])))
    assert result.items


@pytest_lsp.fixture(config=ClientServerConfig(server_command=SERVER))
async def early_client(lsp_client: LanguageClient):
    # An answer as soon as the first token is out: the rest of the suggestion comes in the background.
    await start(lsp_client, "visual_studio_code", options=settings(firstAnswerMs=1, maxTokens=24))
    yield
    await lsp_client.shutdown_session()


async def test_first_answer_is_shown_early_and_the_rest_is_served_from_the_cache(early_client: LanguageClient):
    # A multi-line position: the early answer is its first finished line(s); a one-line position waits for its line.
    client = early_client
    uri = "file:///tmp/gearshift-e2e/early.py"
    text = ('import math\n\n\ndef circle_area(radius):\n'
            '    """Return the area of a circle of this radius, after checking that it is not negative."""\n    ')
    open_doc(client, uri, text)
    await wait_ready(client)
    lines = text.split("\n")
    line, col = len(lines) - 1, len(lines[-1])
    seen = len(statuses(client))
    first = await client.text_document_inline_completion_async(inline_params(uri, line, col))
    assert first.items, statuses(client)[seen:]
    early = first.items[0].insert_text
    early_status = statuses(client)[-1]
    assert early_status["stopReason"] == "first_answer", statuses(client)[seen:]

    deadline = asyncio.get_running_loop().time() + 60
    while not any(s.get("background") for s in statuses(client)[seen:]):
        assert asyncio.get_running_loop().time() < deadline, "the rest of the suggestion never finished"
        await asyncio.sleep(0.05)
    finished = next(s for s in statuses(client)[seen:] if s.get("background"))
    assert finished["generatedTokens"] >= early_status["generatedTokens"]
    assert (finished["uri"], finished["version"]) == (uri, 1)  # so the editor can ask again if it is still there

    insert(client, uri, 2, line, col, early)  # accept what was shown
    end_line = line + early.count("\n")
    end_col = len(early.rsplit("\n", 1)[-1]) + (col if "\n" not in early else 0)
    await client.text_document_inline_completion_async(inline_params(uri, end_line, end_col))
    assert statuses(client)[-1]["cacheHit"] is True, statuses(client)[seen:]  # the rest came from the typed-ahead cache
