"""What an early answer (the text so far of a generation still running) shows: CompletionService._shown_early."""

from __future__ import annotations

import asyncio
import time

import pytest

from lsp_server.completion.service import _Job
from lsp_server.documents import DocumentSnapshot
from lsp_server.inference.stream import GenerationStream
from lsp_server.inference.types import GenerationResult, Partial
from tests.unit.fakes import FakeEngine, service_with

BEFORE = "def total_of(values):\n    "
AFTER = "\n    return total\n"


def early(text: str, before: str = BEFORE, after: str = AFTER) -> str | None:
    engine = FakeEngine()
    service = service_with(engine)
    doc = DocumentSnapshot("file:///a.py", 1, before + after, len(before), "python", "/a.py")
    rung = service.guard.current
    ctx = service._context(doc, engine, rung)
    job = _Job(doc.uri, doc.version, before, after, ctx, rung, time.perf_counter())
    answer = Partial(text=text, token_logprobs=[-0.05] * 6, n_tokens=6, elapsed_s=0.5, time_to_first_token_s=0.05,
                     decode_tokens_per_s=20.0)
    outcome = service._shown_early(job, answer)
    if outcome.suggestion is not None:
        # Shown means cached for typed-ahead hits, like any suggestion.
        assert service.cache.lookup(doc.uri, before, after).text == outcome.suggestion
    return outcome.suggestion


@pytest.mark.parametrize(
    "so_far, shown",
    [
        # Before: "total = sum" (the last word end that parsed), "total", "return": each a different statement than
        # the one being written.
        pytest.param("total = sum(values", None, id="an-unfinished-call-is-not-cut-at-a-word"),
        pytest.param("total = ", None, id="an-assignment-not-yet-written"),
        pytest.param("for value in range(", None, id="nothing-parses-yet-so-nothing-early"),
        # Parses, but the model is still writing it (` / len(values)` may follow): not shown either.
        pytest.param("total = sum(values)", None, id="a-line-that-parses-but-has-not-ended"),
        # Issue 13: masking an `if (…) and (…):` header showed `return`, the first word, which parses alone.
        pytest.param("return", None, id="a-first-word-that-parses-alone"),
    ],
)
def test_an_unfinished_line_is_never_shown_early(so_far, shown):
    assert early(so_far) == shown


def test_finished_lines_are_shown_early_without_the_unfinished_one():
    before, after = "def total_of(values):█\n\nprint(total_of([1]))\n".split("█")
    so_far = "\n    total = sum(values)\n    return tot"
    assert early(so_far, before, after) == "\n    total = sum(values)"


class FinishedLineEngine(FakeEngine):
    """Streams a finished line a second after the call (past firstAnswerMs), then goes on to its full answer."""

    def stream(self, request, cancel=None) -> GenerationStream:
        self.requests.append(request)
        stream = GenerationStream(cancel)

        async def generate() -> GenerationResult:
            stream.publish(Partial(text="\n    total = sum(values)\n    return tot", token_logprobs=[-0.05] * 8,
                                   n_tokens=8, elapsed_s=1.0, time_to_first_token_s=0.05, decode_tokens_per_s=20.0))
            await asyncio.sleep(0.05)  # still generating when the partial is read
            return GenerationResult(
                text="\n    total = sum(values)\n    return total", stop_reason="eos", n_prompt_tokens=10,
                n_reused_tokens=0, n_generated_tokens=9, token_logprobs=[-0.05] * 9, prompt_eval_s=0.01,
                time_to_first_token_s=0.05, decode_s=0.4,
            )

        return stream.run(generate())


@pytest.mark.parametrize("probing", [False, True])
def test_a_guard_probe_is_never_answered_early(probing):
    """A probe is there for its measurement; an early answer would let the next keystroke cut it short."""
    engine = FinishedLineEngine()
    service = service_with(engine)
    lower = service.guard.rungs[1]
    if probing:
        service.guard.probe_rung = lambda: lower  # type: ignore[method-assign]
    before, after = "def total_of(values):█\n\nprint(total_of([1]))\n".split("█")
    doc = DocumentSnapshot("file:///a.py", 1, before + after, len(before), "python", "/a.py")
    outcome = asyncio.run(service.complete(doc))
    assert len(engine.requests) == 1
    assert (outcome.stop_reason != "first_answer") is probing
