"""When CompletionService.prewarm evaluates a prompt, and when it leaves the engine alone (a fake engine)."""

from __future__ import annotations

import asyncio
import time

import pytest

from lsp_server.documents import DocumentSnapshot
from tests.unit.fakes import FakeEngine, service_with


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
