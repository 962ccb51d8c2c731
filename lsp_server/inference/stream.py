"""One generation as its caller sees it: partial outputs while it runs, then its result.

The engine hands each partial over without waiting for the consumer: only the newest one is kept, and the event
loop is woken at most once per pending partial (``call_soon_threadsafe``), so a slow consumer sees fewer, later
partials and never holds up decoding.  The consumer ends a generation with ``cancel()`` (stop reason
``cancelled``) or ``stop(cut)`` (its text is cut there, stop reason ``stop``): stop rules and early answers live in
the pipeline, which reads the partials.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable

from lsp_server.inference.types import CancelToken, GenerationResult, Partial


class GenerationStream(AsyncIterator[Partial]):
    """``async for partial in stream`` until the generation ends; ``await stream.result()`` for its result."""

    def __init__(self, cancel: CancelToken | None = None) -> None:
        self._loop = asyncio.get_running_loop()
        self.token = CancelToken()
        """Set by ``cancel`` and ``stop``: the engine checks it (with the caller's ``cancel``) between tokens."""
        self.caller = cancel
        self.cut: int | None = None
        """Where the consumer's ``stop`` cut the text (an index into a partial's text)."""
        self._latest: Partial | None = None
        self._published = 0
        self._taken = 0
        self._wake = asyncio.Event()
        self._wake_pending = False
        self._done: asyncio.Future[GenerationResult] | None = None

    def run(self, work: Awaitable[GenerationResult]) -> GenerationStream:
        """The engine's side: ``work`` produces the result (a task on this loop, or a worker thread's future)."""
        self._done = asyncio.ensure_future(work)
        self._done.add_done_callback(lambda _done: self._wake.set())
        return self

    # ---------------------------------------------------------------- producer (any thread)

    @property
    def cancelled(self) -> bool:
        """Whether the generation should end now (``cancel``, ``stop`` or the caller's token)."""
        caller = self.caller
        return self.token.cancelled or (caller is not None and caller.cancelled)

    def publish(self, partial: Partial) -> None:
        """Hand ``partial`` over (replacing one not taken yet); never blocks."""
        self._latest = partial
        self._published += 1
        if not self._wake_pending:
            self._wake_pending = True
            try:
                self._loop.call_soon_threadsafe(self._wake_up)
            except RuntimeError:  # the loop is closed: nobody is listening
                pass

    def _wake_up(self) -> None:
        self._wake_pending = False
        self._wake.set()

    # ---------------------------------------------------------------- consumer (event loop)

    @property
    def latest(self) -> Partial | None:
        """The newest partial published (read from any thread)."""
        return self._latest

    @property
    def done(self) -> bool:
        return self._done is not None and self._done.done()

    def cancel(self) -> None:
        """End the generation; its result has stop reason ``cancelled``."""
        self.token.cancel()

    def stop(self, cut: int) -> None:
        """End the generation with its text cut at ``cut`` (an index into a partial's text); stop reason ``stop``."""
        if self.cut is None:
            self.cut = max(0, cut)
        self.token.cancel()

    def __aiter__(self) -> GenerationStream:
        return self

    async def __anext__(self) -> Partial:
        assert self._done is not None, "GenerationStream.run was never called"
        while True:
            if self._published != self._taken:
                self._taken = self._published
                return self._latest  # type: ignore[return-value]
            if self._done.done():
                raise StopAsyncIteration
            self._wake.clear()
            if self._published == self._taken and not self._done.done():  # nothing slipped in since the check
                await self._wake.wait()

    async def result(self) -> GenerationResult:
        """The generation's result (raises what it raised); cancelling the awaiting task cancels the generation."""
        assert self._done is not None, "GenerationStream.run was never called"
        try:
            return await asyncio.shield(self._done)
        except asyncio.CancelledError:
            if not self._done.done():
                self.cancel()
            raise
