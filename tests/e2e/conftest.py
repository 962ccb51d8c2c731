"""A real Gearshift server in a subprocess, driven by pytest-lsp's real LSP client.

Parametrized over the capabilities of the clients we ship for: Neovim 0.12
(built-in inline completion) and VS Code (vscode-languageclient 10), plus a
client without inline completion that must get `textDocument/completion`.
"""

from __future__ import annotations

import os
import sys

import pytest_lsp
from lsprotocol import types
from pytest_lsp import ClientServerConfig, LanguageClient, client_capabilities

E2E_MODEL = os.environ.get("GEARSHIFT_E2E_MODEL", "qwen2.5-coder-0.5b")
SERVER = [sys.executable, "-m", "lsp_server", "serve", "--log-level", "INFO"]

INLINE_CLIENTS = ["neovim@v0.11.0", "visual_studio_code"]


def capabilities(spec: str, *, inline: bool = True) -> types.ClientCapabilities:
    caps = client_capabilities(spec)
    if inline:
        # Neovim 0.12 (vim.lsp.inline_completion) and vscode-languageclient 10 both send this.
        caps.text_document.inline_completion = types.InlineCompletionClientCapabilities(dynamic_registration=False)
    else:
        caps.text_document.inline_completion = None
    return caps


def settings(**completion) -> dict:
    return {
        "models": {"defaultModel": E2E_MODEL, "ladder": [E2E_MODEL]},
        # These tests are about behaviour, not speed: no shifting to another tier mid-test.
        "guard": {"enabled": False},
        # Other processes share these 2 cores in CI: behaviour, not speed, is under test.
        # Whole suggestions, never early partial ones (test_first_answer_* turns that on).
        "completion": {
            "minConfidence": 0.0,
            "timeBudgetMs": 30000,
            "firstAnswerMs": 30000,
            "prefixTokens": 384,
            **completion,
        },
    }


def as_dict(value):
    """pygls hands custom notifications over as namedtuples; tests want dicts."""
    if hasattr(value, "_asdict"):
        return {key: as_dict(item) for key, item in value._asdict().items()}
    if isinstance(value, dict):
        return {key: as_dict(item) for key, item in value.items()}
    if isinstance(value, list):
        return [as_dict(item) for item in value]
    return value


async def start(client: LanguageClient, spec: str, *, inline: bool = True, options: dict | None = None) -> None:
    client.gearshift_statuses = []  # type: ignore[attr-defined]

    @client.feature("gearshift/status")
    def on_status(params) -> None:
        client.gearshift_statuses.append(as_dict(params))  # type: ignore[attr-defined]

    result = await client.initialize_session(
        types.InitializeParams(
            capabilities=capabilities(spec, inline=inline),
            initialization_options=options if options is not None else settings(),
        )
    )
    client.server_caps = result.capabilities  # type: ignore[attr-defined]


@pytest_lsp.fixture(config=ClientServerConfig(server_command=SERVER), params=INLINE_CLIENTS)
async def client(request, lsp_client: LanguageClient):
    await start(lsp_client, request.param)
    yield
    await lsp_client.shutdown_session()


@pytest_lsp.fixture(config=ClientServerConfig(server_command=SERVER))
async def plain_client(lsp_client: LanguageClient):
    await start(lsp_client, "neovim@v0.11.0", inline=False)
    yield
    await lsp_client.shutdown_session()


def open_doc(client: LanguageClient, uri: str, text: str, language: str = "python", version: int = 1) -> None:
    client.text_document_did_open(
        types.DidOpenTextDocumentParams(
            text_document=types.TextDocumentItem(uri=uri, language_id=language, version=version, text=text)
        )
    )


def insert(client: LanguageClient, uri: str, version: int, line: int, character: int, text: str) -> None:
    position = types.Position(line=line, character=character)
    client.text_document_did_change(
        types.DidChangeTextDocumentParams(
            text_document=types.VersionedTextDocumentIdentifier(uri=uri, version=version),
            content_changes=[
                types.TextDocumentContentChangePartial(range=types.Range(start=position, end=position), text=text)
            ],
        )
    )


def inline_params(uri: str, line: int, character: int) -> types.InlineCompletionParams:
    return types.InlineCompletionParams(
        text_document=types.TextDocumentIdentifier(uri=uri),
        position=types.Position(line=line, character=character),
        context=types.InlineCompletionContext(trigger_kind=types.InlineCompletionTriggerKind.Automatic),
    )


def statuses(client: LanguageClient) -> list[dict]:
    """Every `gearshift/status` notification received so far."""
    return list(client.gearshift_statuses)  # type: ignore[attr-defined]


async def wait_ready(client: LanguageClient, timeout_s: float = 120.0) -> dict:
    """Wait until the server reports its model loaded (or failed)."""
    import asyncio

    deadline = asyncio.get_running_loop().time() + timeout_s
    while asyncio.get_running_loop().time() < deadline:
        for status in statuses(client):
            if status.get("state") in ("ready", "error"):
                return status
        await asyncio.sleep(0.05)
    raise AssertionError(f"server never became ready: {statuses(client)}")


def request_inline(client: LanguageClient, params: types.InlineCompletionParams):
    """Send an inlineCompletion request; return (asyncio future, a function that sends $/cancelRequest for it)."""
    import asyncio
    import uuid

    msg_id = str(uuid.uuid4())
    future = asyncio.wrap_future(
        client.protocol.send_request(types.TEXT_DOCUMENT_INLINE_COMPLETION, params, msg_id=msg_id)
    )

    def cancel() -> None:
        client.protocol.notify(types.CANCEL_REQUEST, types.CancelParams(id=msg_id))

    return future, cancel
