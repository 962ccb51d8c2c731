"""What an early answer (the text so far of a generation still running) shows: CompletionService._shown_early."""

from __future__ import annotations

import asyncio
import time

import pytest

from lsp_server.completion.service import _Job, _word_ends
from lsp_server.documents import DocumentSnapshot
from lsp_server.inference.types import FirstAnswer
from tests.unit.fakes import FakeEngine, service_with

BEFORE = "def total_of(values):\n    "
AFTER = "\n    return total\n"


def early(text: str) -> str | None:
    engine = FakeEngine()
    service = service_with(engine)
    doc = DocumentSnapshot("file:///a.py", 1, BEFORE + AFTER, len(BEFORE), "python", "/a.py")
    rung = service.guard.current
    ctx = service._context(doc, engine, rung)
    job = _Job(doc.uri, doc.version, BEFORE, AFTER, ctx, rung, time.perf_counter())
    answer = FirstAnswer(text=text, token_logprobs=[-0.05] * 6, time_to_first_token_s=0.05, decode_tokens_per_s=20.0)
    outcome = service._shown_early(job, answer)
    if outcome.suggestion is not None:
        # Shown means cached for typed-ahead hits, like any suggestion.
        assert service.cache.lookup(doc.uri, BEFORE, AFTER).text == outcome.suggestion
    return outcome.suggestion


@pytest.mark.parametrize(
    "so_far, shown",
    [
        pytest.param("total = sum(values)", "total = sum(values)", id="a-finished-line-as-it-is"),
        pytest.param("total = sum(values", "total = sum", id="unfinished-cut-at-the-last-word-that-parses"),
        pytest.param("total = ", "total", id="an-assignment-not-yet-written"),
        pytest.param("for value in range(", None, id="nothing-parses-yet-so-nothing-early"),
    ],
)
def test_an_unfinished_line_is_shown_up_to_its_last_word_that_parses(so_far, shown):
    assert early(so_far) == shown


def test_word_ends_are_tried_longest_first_and_only_on_the_last_line():
    text = "x = f(a)\ny = g(b, c"
    assert [text[:i] for i in _word_ends(text, text.rfind("\n") + 1)] == ["x = f(a)\ny = g(b", "x = f(a)\ny = g", "x = f(a)\ny"]


@pytest.mark.parametrize("probing", [False, True])
def test_a_guard_probe_is_never_answered_early(probing):
    """A probe is there for its measurement; an early answer would let the next keystroke cut it short."""
    engine = FakeEngine()
    service = service_with(engine)
    lower = service.guard.rungs[1]
    if probing:
        service.guard.probe_rung = lambda: lower  # type: ignore[method-assign]
    doc = DocumentSnapshot("file:///a.py", 1, BEFORE + AFTER, len(BEFORE), "python", "/a.py")
    asyncio.run(service.complete(doc))
    (request,) = engine.requests
    assert (request.on_first_answer is None) is probing
