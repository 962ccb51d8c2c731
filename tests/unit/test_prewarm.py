"""When CompletionService.prewarm evaluates a prompt, and when it leaves the engine alone (a fake engine)."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

import pytest

from lsp_server.completion.fim import TEMPLATES
from lsp_server.completion.service import CompletionService
from lsp_server.documents import DocumentSnapshot
from lsp_server.inference.guard import LatencyGuard, build_ladder
from lsp_server.settings import GearshiftSettings

MODEL = "smollm2-135m"


class FakeEngine:
    model_path = Path("/nowhere/model.gguf")
    metadata: dict = {}
    prompt_tokens_per_s = None

    def __init__(self) -> None:
        self.prewarmed: list[str] = []

    def count_tokens(self, text: str) -> int:
        return len(text) // 3 + 1

    async def prewarm(self, prompt: str) -> None:
        self.prewarmed.append(prompt)


class FakeTiers:
    def __init__(self, engine: FakeEngine) -> None:
        self.engine = engine

    def get_loaded(self, model: str) -> FakeEngine:
        return self.engine


def service_with(engine: FakeEngine, prefix_tokens: int = 256) -> CompletionService:
    settings = GearshiftSettings.model_validate({"completion": {"prefixTokens": prefix_tokens}})
    guard = LatencyGuard(build_ladder([MODEL], [MODEL], 2), settings.guard, target_tok_s=40.0)
    service = CompletionService(settings, FakeTiers(engine), guard)  # type: ignore[arg-type]
    service._templates[(str(engine.model_path), None)] = TEMPLATES["qwen"]  # no GGUF file to read here
    return service


def doc_at_end(text: str) -> DocumentSnapshot:
    return DocumentSnapshot("file:///a.py", 1, text, len(text), "python", "/a.py")


SMALL = "import os\n\n\ndef walk(root):\n    return os.listdir(root)\n"
LARGE = "".join(f"def helper_{i}(value):\n    return value + {i}\n\n\n" for i in range(200))


def test_an_idle_prewarm_evaluates_the_prompt_at_the_cursor():
    engine = FakeEngine()
    asyncio.run(service_with(engine).prewarm(doc_at_end(SMALL), time.monotonic()))
    assert len(engine.prewarmed) == 1 and "return os.listdir(root)" in engine.prewarmed[0]


def test_a_prewarm_after_a_request_for_the_same_change_is_skipped():
    engine = FakeEngine()
    service = service_with(engine)
    changed_at = time.monotonic()
    service._requested_at["file:///a.py"] = time.monotonic()  # a completion request came after that change
    asyncio.run(service.prewarm(doc_at_end(SMALL), changed_at))
    assert engine.prewarmed == []


@pytest.mark.parametrize("text, warmed", [(SMALL, True), (LARGE, False)])
def test_a_guessed_cursor_is_warmed_only_where_the_window_reaches_the_file_start(text, warmed):
    engine = FakeEngine()
    asyncio.run(service_with(engine).prewarm(doc_at_end(text), time.monotonic(), guessed=True))
    assert bool(engine.prewarmed) is warmed
