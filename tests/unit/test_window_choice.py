"""Which prompt window a request gets where prompt evaluation is slow: the full one once the engine holds it."""

from __future__ import annotations

import asyncio

from lsp_server.completion import service as service_module
from lsp_server.completion.service import BOUNDED_WINDOW_KEY
from lsp_server.documents import DocumentSnapshot
from tests.unit.fakes import FakeEngine, service_with

LINES = "".join(f"value_{i} = compute({i}, limit={i * 3})\n" for i in range(400))


class HoldingEngine(FakeEngine):
    """A slow engine (20 prompt tokens/s) that says how much of a prompt it holds for a document key."""

    prompt_tokens_per_s = 20.0

    def __init__(self) -> None:
        super().__init__()
        self.held: dict[str, str] = {}  # document key -> the prompt it holds

    def held_tokens(self, prompt: str, document: str) -> tuple[int, int]:
        held = self.held.get(document, "")
        common = 0
        for a, b in zip(held, prompt, strict=False):
            if a != b:
                break
            common += 1
        return self.count_tokens(prompt[:common]) if common else 0, self.count_tokens(prompt)


def doc() -> DocumentSnapshot:
    text = LINES + "total = "
    return DocumentSnapshot("file:///slow.py", 1, text, len(text), "python", "/slow.py")


def service_on(engine: HoldingEngine):
    service = service_with(engine, prefix_tokens=1024)
    service.settings.completion.cold_prompt_ms = 4000  # 80 tokens at 20 tok/s: far below the configured window
    return service


def test_a_document_not_seen_yet_gets_the_bounded_window_under_its_own_key():
    engine = HoldingEngine()
    service = service_on(engine)
    window = service._window(doc(), engine, service.guard.current)
    assert window.key == "file:///slow.py" + BOUNDED_WINDOW_KEY
    assert engine.count_tokens(window.prompt) < 200


def test_once_the_engine_holds_the_full_window_requests_use_it():
    engine = HoldingEngine()
    service = service_on(engine)
    bounded, full = service._windows(doc(), engine, service.guard.current)
    assert full is not None and full.key == "file:///slow.py"
    assert engine.count_tokens(full.prompt) > 3 * engine.count_tokens(bounded.prompt)
    engine.held[full.key] = full.prompt  # a prewarm evaluated it while the programmer read
    assert service._window(doc(), engine, service.guard.current).key == full.key
    # Half of it held leaves more to evaluate than the bounded window costs cold: the bounded one again.
    engine.held[full.key] = full.prompt[: len(full.prompt) // 2]
    assert service._window(doc(), engine, service.guard.current).key == bounded.key


async def test_a_prewarm_evaluates_the_bounded_window_first_then_the_full_one():
    engine = HoldingEngine()
    service = service_on(engine)
    bounded, full = service._windows(doc(), engine, service.guard.current)
    assert await service.prewarm(doc())
    assert engine.prewarmed == [bounded.prompt, full.prompt]


def test_a_fast_engine_has_one_window():
    engine = HoldingEngine()
    engine.prompt_tokens_per_s = 10_000.0
    service = service_on(engine)
    bounded, full = service._windows(doc(), engine, service.guard.current)
    assert full is None and bounded.key == "file:///slow.py"


async def test_a_request_on_the_bounded_window_is_followed_by_the_full_window_in_a_pause(monkeypatch):
    monkeypatch.setattr(service_module, "CATCH_UP_IDLE_S", 0.05)
    engine = HoldingEngine()
    service = service_on(engine)
    bounded, full = service._windows(doc(), engine, service.guard.current)
    await service.complete(doc())
    assert engine.requests[-1].affinity_key == bounded.key  # the request itself did not wait for the full window
    # A keystroke before the pause is over: the catch-up waits for the next pause.
    service.cache.clear()
    await service.complete(doc())
    assert engine.prewarmed == []
    await asyncio.sleep(0.1)
    await service._catching_up
    assert engine.prewarmed == [full.prompt]
    engine.held[full.key] = full.prompt
    engine.prewarmed.clear()
    service.cache.clear()  # the same cursor again: asked of the model, not the typed-ahead cache
    await service.complete(doc())
    assert engine.requests[-1].affinity_key == full.key
    assert service._catching_up.done() and engine.prewarmed == []  # nothing left to catch up on
