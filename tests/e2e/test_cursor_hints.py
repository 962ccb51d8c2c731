"""Cursor hints (`gearshift/cursor`): the prompt where the cursor rests is evaluated before the first keystroke.

Counted in evaluated prompt tokens, never in time: the first request in a hinted file evaluates only what the
hint's prewarm could not know (the last token, for its logits), where an unhinted file evaluates its window.
"""

from __future__ import annotations

import asyncio

import pytest
import pytest_lsp
from lsprotocol import types
from pytest_lsp import ClientServerConfig, LanguageClient

from tests.e2e.conftest import SERVER, as_dict, inline_params, open_doc, start, statuses, wait_ready

pytestmark = [pytest.mark.e2e, pytest.mark.model]


@pytest_lsp.fixture(config=ClientServerConfig(server_command=SERVER))
async def client(lsp_client: LanguageClient):
    # One client is enough: hints are the server's business once they arrive (both clients send the same).
    await start(lsp_client, "visual_studio_code")
    yield
    await lsp_client.shutdown_session()


def long_module(name: str) -> str:
    parts = [f'def {name}_{i}(values):\n    """Scale the values by {i}."""\n    return [v * {i} for v in values]\n\n'
             for i in range(60)]
    return "".join(parts)


def listen_for_prewarms(client: LanguageClient) -> list[dict]:
    prewarmed: list[dict] = []

    @client.feature("gearshift/prewarmed")
    def on_prewarmed(params) -> None:
        prewarmed.append(as_dict(params))

    return prewarmed


async def wait_prewarmed(prewarmed: list[dict], uri: str, timeout_s: float = 120.0) -> None:
    deadline = asyncio.get_running_loop().time() + timeout_s
    while asyncio.get_running_loop().time() < deadline:
        if any(p.get("uri") == uri for p in prewarmed):
            return
        await asyncio.sleep(0.05)
    raise AssertionError(f"no prewarm reported for {uri}: {prewarmed}")


async def first_request_evaluated(client: LanguageClient, uri: str, line: int, character: int) -> int:
    before = len(statuses(client))
    await client.text_document_inline_completion_async(inline_params(uri, line, character))
    done = [s for s in statuses(client)[before:] if "promptTokens" in s]
    assert done, statuses(client)[before:]
    return done[0]["promptTokens"] - done[0]["reusedTokens"]


async def test_a_cursor_hint_evaluates_the_prompt_before_the_first_keystroke(client: LanguageClient):
    prewarmed = listen_for_prewarms(client)
    await wait_ready(client)
    hinted, cold = "file:///tmp/gearshift-e2e/hinted.py", "file:///tmp/gearshift-e2e/cold.py"
    line = 30 * 4 + 2  # inside the 31st function's body, far from the file's start and end
    open_doc(client, cold, long_module("shrink"))
    cold_evaluated = await first_request_evaluated(client, cold, line, 4)

    open_doc(client, hinted, long_module("grow"))
    client.protocol.notify("gearshift/cursor", {"textDocument": {"uri": hinted},
                                                "position": {"line": line, "character": 4}})
    await wait_prewarmed(prewarmed, hinted)
    hinted_evaluated = await first_request_evaluated(client, hinted, line, 4)

    assert cold_evaluated >= 100, cold_evaluated  # the window, evaluated at the keystroke
    assert hinted_evaluated <= 4, hinted_evaluated  # already in the KV cache


async def test_malformed_or_unknown_document_hints_are_ignored(client: LanguageClient):
    await wait_ready(client)
    client.protocol.notify("gearshift/cursor", {"textDocument": {"uri": "file:///never/opened.py"},
                                                "position": {"line": 1, "character": 1}})
    client.protocol.notify("gearshift/cursor", {"position": "x"})
    client.protocol.notify("gearshift/cursor", None)
    status = await client.workspace_execute_command_async(types.ExecuteCommandParams(command="gearshift.status"))
    assert status is not None  # still serving
