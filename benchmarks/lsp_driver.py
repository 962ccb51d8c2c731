"""A small real LSP client for benchmarks: starts `gearshift serve`, opens files, types, asks for completions.

Benchmarks talk to the server exactly as an editor does (stdio JSON-RPC through
pygls' LanguageClient), so what they measure is what a user would feel.
"""

from __future__ import annotations

import asyncio
import sys
import time
import uuid
from dataclasses import dataclass, field
from typing import Any

from lsprotocol import types
from pygls.lsp.client import LanguageClient


def as_dict(value: Any) -> Any:
    if hasattr(value, "_asdict"):
        return {key: as_dict(item) for key, item in value._asdict().items()}
    if isinstance(value, list):
        return [as_dict(item) for item in value]
    return value


@dataclass
class Answer:
    text: str | None
    """The first suggestion, or None when nothing was shown (or the request was superseded)."""

    latency_ms: float
    superseded: bool
    status: dict = field(default_factory=dict)


class Editor:
    """One server process and its open documents, one of them active and typed into like an editor would."""

    def __init__(self, options: dict, extra_args: tuple[str, ...] = ()) -> None:
        self.options = options
        self.extra_args = extra_args
        self.client = LanguageClient("gearshift-bench", "0.1")
        self.statuses: list[dict] = []
        self.version = 0
        self.uri = ""
        self.text = ""
        self._others: dict[str, tuple[str, int]] = {}
        """The open documents other than the active one: (text, version) by URI."""

        @self.client.feature("gearshift/status")
        def on_status(params) -> None:
            self.statuses.append(as_dict(params))

        self.prewarmed: list[dict] = []

        @self.client.feature("gearshift/prewarmed")
        def on_prewarmed(params) -> None:
            self.prewarmed.append(as_dict(params))

    async def start(self) -> dict:
        await self.client.start_io(sys.executable, "-m", "lsp_server", "serve", "--log-level", "WARNING",
                                   *self.extra_args)
        caps = types.ClientCapabilities(
            text_document=types.TextDocumentClientCapabilities(
                inline_completion=types.InlineCompletionClientCapabilities()
            )
        )
        await self.client.initialize_async(types.InitializeParams(capabilities=caps, initialization_options=self.options))
        self.client.initialized(types.InitializedParams())
        for _ in range(6000):
            ready = [s for s in self.statuses if s.get("state") in ("ready", "error")]
            if ready:
                if ready[-1]["state"] == "error":
                    raise RuntimeError(f"server could not load its model: {ready[-1].get('message')}")
                return ready[-1]
            await asyncio.sleep(0.02)
        raise RuntimeError("server did not become ready")

    async def stop(self) -> None:
        await self.client.shutdown_async(None)
        self.client.exit(None)
        await self.client.stop()

    def open(self, uri: str, text: str, language: str = "python") -> None:
        """Open ``uri`` and make it the active document."""
        if self.uri:
            self._others[self.uri] = (self.text, self.version)
        self.uri, self.text, self.version = uri, text, 1
        self.client.text_document_did_open(
            types.DidOpenTextDocumentParams(
                text_document=types.TextDocumentItem(uri=uri, language_id=language, version=1, text=text)
            )
        )

    def close(self) -> None:
        """Close the active document (another open one becomes active, if any)."""
        self.client.text_document_did_close(
            types.DidCloseTextDocumentParams(text_document=types.TextDocumentIdentifier(uri=self.uri))
        )
        self.uri, self.text, self.version = "", "", 0
        if self._others:
            self.focus(next(reversed(self._others)))

    def focus(self, uri: str) -> None:
        """Make the open document ``uri`` the active one (an editor switching tabs)."""
        if uri == self.uri:
            return
        if self.uri:
            self._others[self.uri] = (self.text, self.version)
        self.text, self.version = self._others.pop(uri)
        self.uri = uri

    def hint(self, offset: int) -> None:
        """Tell the server where the cursor rests (gearshift/cursor), as our editor clients do."""
        position = self.position_at(offset)
        self.client.protocol.notify("gearshift/cursor", {
            "textDocument": {"uri": self.uri}, "position": {"line": position.line, "character": position.character}})

    def position_at(self, offset: int) -> types.Position:
        before = self.text[:offset]
        line = before.count("\n")
        return types.Position(line=line, character=len(before) - (before.rfind("\n") + 1))

    def insert(self, offset: int, inserted: str) -> None:
        position = self.position_at(offset)
        self.text = self.text[:offset] + inserted + self.text[offset:]
        self.version += 1
        self.client.text_document_did_change(
            types.DidChangeTextDocumentParams(
                text_document=types.VersionedTextDocumentIdentifier(uri=self.uri, version=self.version),
                content_changes=[
                    types.TextDocumentContentChangePartial(
                        range=types.Range(start=position, end=position), text=inserted
                    )
                ],
            )
        )

    def request(self, offset: int) -> tuple[asyncio.Future, float]:
        params = types.InlineCompletionParams(
            text_document=types.TextDocumentIdentifier(uri=self.uri),
            position=self.position_at(offset),
            context=types.InlineCompletionContext(trigger_kind=types.InlineCompletionTriggerKind.Automatic),
        )
        msg_id = str(uuid.uuid4())
        future = asyncio.wrap_future(
            self.client.protocol.send_request(types.TEXT_DOCUMENT_INLINE_COMPLETION, params, msg_id=msg_id)
        )
        future.msg_id = msg_id  # type: ignore[attr-defined]
        return future, time.perf_counter()

    def cancel(self, future: asyncio.Future) -> None:
        """Send $/cancelRequest for a request still running, as editors do when the user types on."""
        self.client.protocol.notify(types.CANCEL_REQUEST, types.CancelParams(id=future.msg_id))  # type: ignore[attr-defined]
        future.add_done_callback(lambda f: f.cancelled() or f.exception())  # the error reply is expected

    async def answer(self, future: asyncio.Future, started: float, deadline_s: float | None) -> Answer:
        """Wait for a requested suggestion; past ``deadline_s`` the next keystroke supersedes it (cancelled)."""
        seen = len(self.statuses)
        try:
            result = await asyncio.wait_for(asyncio.shield(future), deadline_s) if deadline_s else await future
        except asyncio.TimeoutError:
            self.cancel(future)
            return Answer(text=None, latency_ms=(time.perf_counter() - started) * 1000, superseded=True)
        latency_ms = (time.perf_counter() - started) * 1000
        status = self.statuses[-1] if len(self.statuses) > seen else {}
        text = result.items[0].insert_text if result and result.items else None
        return Answer(text=text, latency_ms=latency_ms, superseded=False, status=status)

    async def status(self) -> dict:
        result = await self.client.workspace_execute_command_async(
            types.ExecuteCommandParams(command="gearshift.status")
        )
        return as_dict(result) if result is not None else {}
