"""The suggestion after an accepted one is computed ahead, in the background, into the typed-ahead cache."""

from __future__ import annotations

import asyncio

from lsp_server.documents import DocumentSnapshot
from lsp_server.inference.types import GenerationRequest, GenerationResult, Priority
from tests.unit.fakes import FakeEngine, service_with

BEFORE = "def total_of(values):\n    "
AFTER = "\n\n\nprint(total_of([1, 2]))\n"


class ScriptedEngine(FakeEngine):
    """Answers each request with the next line of a script (what a model would write there)."""

    def __init__(self, answers: list[str]) -> None:
        super().__init__()
        self.answers = answers

    async def generate(self, request: GenerationRequest, cancel=None) -> GenerationResult:
        self.requests.append(request)
        text = self.answers[min(len(self.requests), len(self.answers)) - 1]
        return GenerationResult(
            text=text, stop_reason="eos", n_prompt_tokens=10, n_reused_tokens=0, n_generated_tokens=4,
            token_logprobs=[-0.05] * 4, prompt_eval_s=0.01, time_to_first_token_s=0.01, decode_s=0.1,
        )


def snapshot(text: str, offset: int) -> DocumentSnapshot:
    return DocumentSnapshot("file:///t.py", 1, text, offset, "python", "/t.py")


async def settle(service) -> None:
    while service._finishing:
        await asyncio.gather(*list(service._finishing), return_exceptions=True)


def accept(doc: DocumentSnapshot, suggestion: str) -> DocumentSnapshot:
    text = doc.text[: doc.offset] + suggestion + doc.text[doc.offset :]
    return snapshot(text, doc.offset + len(suggestion))


async def test_accepting_a_suggestion_shows_the_speculated_next_one_from_the_cache():
    engine = ScriptedEngine(["total = sum(values)", "return total", "def mean_of(values):"])
    service = service_with(engine, speculate=True)
    service.settings.completion.first_answer_ms = service.settings.completion.time_budget_ms  # no early answer
    doc = snapshot(BEFORE + AFTER, len(BEFORE))
    first = await service.complete(doc)
    assert first.suggestion == "total = sum(values)"
    await settle(service)
    speculation = engine.requests[1]
    assert speculation.priority == Priority.BACKGROUND
    assert "total = sum(values)" in speculation.prompt  # computed as if the suggestion were accepted

    # The suggestion ends its line: the speculation is for after Enter, on the next line indented the same.
    assert speculation.prompt.count("total = sum(values)\n    ") == 1

    enter = accept(accept(doc, first.suggestion), "\n    ")  # accept, then Enter (auto-indent)
    second = await service.complete(enter)
    assert second.cache_hit and second.suggestion == "return total"
    assert len(engine.requests) == 2  # the model was not asked again
    await settle(service)
    # Serving the speculated one speculates the next in turn.
    assert len(engine.requests) == 3 and engine.requests[2].priority == Priority.BACKGROUND
    assert "return total\n    " in engine.requests[2].prompt


async def test_a_suggestion_that_opens_a_block_is_followed_on_its_own_line():
    engine = ScriptedEngine(["for value in values:", "\n        total += value"])
    service = service_with(engine, speculate=True)
    service.settings.completion.first_answer_ms = service.settings.completion.time_budget_ms
    doc = snapshot(BEFORE + AFTER, len(BEFORE))
    first = await service.complete(doc)
    assert first.suggestion == "for value in values:"
    await settle(service)
    # After a block opener the pipeline suggests several lines right there: the speculation asks there.
    accepted = accept(doc, first.suggestion)
    second = await service.complete(accepted)
    assert second.cache_hit and second.suggestion == "\n        total += value"


async def test_no_speculation_when_turned_off():
    engine = ScriptedEngine(["total = sum(values)", "\n    return total"])
    service = service_with(engine, speculate=True)
    service.settings.completion.speculate_next = False
    first = await service.complete(snapshot(BEFORE + AFTER, len(BEFORE)))
    assert first.suggestion
    await settle(service)
    assert len(engine.requests) == 1


async def test_the_guard_never_measures_a_speculation():
    engine = ScriptedEngine(["total = sum(values)", "\n    return total"])
    service = service_with(engine, speculate=True)
    recorded = []
    original = service.guard.record_result

    def record(rung, result, **kwargs):
        recorded.append(result)
        return original(rung, result, **kwargs)

    service.guard.record_result = record  # type: ignore[method-assign]
    await service.complete(snapshot(BEFORE + AFTER, len(BEFORE)))
    await settle(service)
    assert len(engine.requests) == 2 and len(recorded) == 1


async def test_a_speculation_leaves_the_real_cursors_split_point_alone():
    """The split point keeps the prompt's start fixed while typing; a speculation about text not typed yet (a
    new line) must not move it, or the next real keystroke evaluates its window again."""
    engine = ScriptedEngine(["total = sum(values)", "return total"])
    service = service_with(engine, speculate=True)
    service.settings.completion.first_answer_ms = service.settings.completion.time_budget_ms
    # The accepted line plus Enter is longer than this: the speculation's own cursor needs a new split point.
    service.settings.completion.middle_chars = 20
    doc = snapshot(BEFORE + AFTER, len(BEFORE))
    await service.complete(doc)
    point = service.splitter._points[doc.uri]
    await settle(service)
    assert len(engine.requests) == 2
    assert service.splitter._points[doc.uri] == point
