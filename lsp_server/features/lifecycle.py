"""Initialize, settings changes, open/change/close, shutdown: the server's life around the features."""

from __future__ import annotations

import asyncio
import logging
import time

from lsprotocol import types

from lsp_server.documents import DocumentError, find_open_document, snapshot
from lsp_server.errors import EndpointUnavailable

log = logging.getLogger(__name__)

CURSOR_NOTIFICATION = "gearshift/cursor"
"""Client → server: where the cursor rests in the active document (docs/protocol.md)."""

PREWARMED_NOTIFICATION = "gearshift/prewarmed"
"""Server → client: the prompt at a position was evaluated in the background (clients may ignore it)."""

# Pre-warm after the user pauses this long, so a burst of keystrokes does not queue evaluations.
_PREWARM_IDLE_S = 0.4
"""After an edit, how long the document must stay unchanged before its prompt is evaluated in the background."""
_HINT_PREWARM_S = 0.05
"""After a cursor hint (already debounced by the client), how long before the prompt there is evaluated."""


def register(server) -> None:
    pending_prewarm: dict[str, asyncio.TimerHandle] = {}
    running: list[asyncio.Task] = []
    """The prewarm in progress, if any: a newer one supersedes it (the cursor is in one place at a time)."""

    @server.feature(types.INITIALIZE)
    def on_initialize(ls, params: types.InitializeParams) -> None:
        ls.apply_settings(params.initialization_options)

    @server.feature(types.INITIALIZED)
    def on_initialized(ls, params: types.InitializedParams) -> None:
        ls.start_models()

    @server.feature(types.WORKSPACE_DID_CHANGE_CONFIGURATION)
    def on_configuration(ls, params: types.DidChangeConfigurationParams) -> None:
        if params.settings is not None:
            ls.apply_settings(params.settings)

    def schedule_prewarm(
        ls, uri: str, position: types.Position, *, guessed: bool = False, delay: float = _PREWARM_IDLE_S
    ) -> None:
        if not ls.settings.completion.prewarm:
            return
        if (handle := pending_prewarm.pop(uri, None)) is not None:
            handle.cancel()
        loop = asyncio.get_running_loop()
        since = time.monotonic()
        pending_prewarm[uri] = loop.call_later(delay, lambda: start_prewarm(ls, uri, position, since, guessed))

    def start_prewarm(ls, uri: str, position: types.Position, since: float, guessed: bool) -> None:
        # An older prewarm still running is for where the cursor was: it stops at its next batch (what it evaluated
        # stays in the cache, and a window that overlaps it is shifted into place), and this one runs.
        while running:
            running.pop().cancel()
        task = ls.spawn(prewarm(ls, uri, position, since, guessed))
        running.append(task)
        task.add_done_callback(lambda done: done in running and running.remove(done))

    async def prewarm(ls, uri: str, position: types.Position, since: float, guessed: bool) -> None:
        pending_prewarm.pop(uri, None)
        if ls.completions is None:
            return
        try:
            doc = snapshot(ls.workspace, uri, position)
        except DocumentError:
            return  # closed or shrunk meanwhile: nothing to warm
        try:
            warmed = await ls.completions.prewarm(doc, since, guessed=guessed)
        except EndpointUnavailable as exc:  # the team server evaluated nothing: nobody is told it is warm
            log.debug("prewarm failed: %s", exc)
            return
        if warmed:
            # Its own notification: a partial gearshift/status would replace the last completion's figures in clients.
            ls.notify_client(PREWARMED_NOTIFICATION, {"uri": uri, "line": position.line, "character": position.character})

    @server.feature(types.TEXT_DOCUMENT_DID_OPEN)
    def on_open(ls, params: types.DidOpenTextDocumentParams) -> None:
        # Warm the end of the document: where a person most often starts typing in a file just opened (a guess:
        # LSP does not say where the cursor is).
        lines = params.text_document.text.split("\n")
        end = types.Position(line=len(lines) - 1, character=0)
        document = find_open_document(ls.workspace, params.text_document.uri)
        if ls.completions is not None and document is not None:  # a file just opened is context for the others
            ls.completions.neighbours.seen(document.uri, document.path, document.source)
        schedule_prewarm(ls, params.text_document.uri, end, guessed=True)

    @server.feature(types.TEXT_DOCUMENT_DID_CHANGE)
    def on_change(ls, params: types.DidChangeTextDocumentParams) -> None:
        last = params.content_changes[-1] if params.content_changes else None
        if isinstance(last, types.TextDocumentContentChangePartial):
            text = last.text
            line = last.range.start.line + text.count("\n")
            character = len(text.rsplit("\n", 1)[-1]) + (last.range.start.character if "\n" not in text else 0)
            schedule_prewarm(ls, params.text_document.uri, types.Position(line=line, character=character))

    @server.feature(CURSOR_NOTIFICATION)
    def on_cursor(ls, params) -> None:
        # LSP never says where the cursor is until the first request; the client's hint lets the prompt there be
        # evaluated while the user reads, so the first keystroke in a file pays only for what it changed.
        try:
            uri = params.textDocument.uri
            position = types.Position(line=int(params.position.line), character=int(params.position.character))
        except (AttributeError, TypeError, ValueError):
            log.debug("ignored a malformed %s notification", CURSOR_NOTIFICATION)
            return
        if not isinstance(uri, str) or position.line < 0 or position.character < 0:
            return
        if find_open_document(ls.workspace, uri) is not None:
            schedule_prewarm(ls, uri, position, delay=_HINT_PREWARM_S)

    @server.feature(types.TEXT_DOCUMENT_DID_CLOSE)
    def on_close(ls, params: types.DidCloseTextDocumentParams) -> None:
        if (handle := pending_prewarm.pop(params.text_document.uri, None)) is not None:
            handle.cancel()
        if ls.completions is not None:
            ls.completions.cache.invalidate(params.text_document.uri)

    @server.feature(types.SHUTDOWN)
    def on_shutdown(ls, *args) -> None:
        for handle in pending_prewarm.values():
            handle.cancel()
        ls.shutdown_models()
