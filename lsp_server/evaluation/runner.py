"""Each sample completed by one tier through the full pipeline, in-process, as the editor would get it.

The tier runs with the shipped settings except the latency guard, which is off so that every request is
answered by that tier.  Early answers stay on (they are what the editor shows first): when a request was
answered early, the editor asks again once the rest is ready (as the VS Code client does), and that second
answer is the one scored; latency is the first answer's.  Each sample is its own document.  By default its
prompt is evaluated first, as the editor's cursor hint has the server do where the cursor rests, so latency is
what a keystroke there waits for; ``warm=False`` leaves the prompt to the request (a cursor that just jumped).
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from lsp_server.documents import DocumentSnapshot
from lsp_server.errors import EndpointUnavailable
from lsp_server.evaluation.metrics import SampleResult, score
from lsp_server.evaluation.sampling import Sample
from lsp_server.settings import GearshiftSettings
from lsp_server.wiring import completion_service, with_model, without_guard

if TYPE_CHECKING:
    from lsp_server.completion.service import CompletionOutcome, CompletionService

BACKGROUND_WAIT_S = 30.0
"""Longest wait for the rest of an early answer before asking again."""

OnSample = Callable[[int, SampleResult], None]
"""Called after each sample with its index and result (progress)."""

CheckSample = Callable[[Sample, "str | None"], bool]
"""Whether a suggestion for a sample passes the repository's tests (``RepositoryTests.sample_passes``)."""


def tier_settings(settings: GearshiftSettings, tier: str) -> GearshiftSettings:
    """``settings`` for measuring ``tier`` alone: it is the whole ladder and the guard is off."""
    return without_guard(with_model(settings, tier))


@dataclass(frozen=True)
class Answer:
    """What the editor got for one sample."""

    first: CompletionOutcome
    """The first answer (maybe early: the finished lines so far)."""

    final: CompletionOutcome
    """The answer to asking again once an early answer's rest is ready; ``first`` when not answered early."""

    measured: CompletionOutcome
    """The outcome of the whole generation (the background one after an early answer): its speed is scored."""


async def shown(service: CompletionService, doc: DocumentSnapshot) -> Answer:
    """Complete ``doc`` as an editor would, asking again when the first answer was early."""
    finished = asyncio.Event()
    background: list[CompletionOutcome] = []

    def on_background(outcome: CompletionOutcome) -> None:
        background.append(outcome)
        finished.set()

    service.on_background_outcome = on_background
    first = await service.complete(doc)
    if first.stop_reason != "first_answer":
        return Answer(first, first, first)
    try:
        await asyncio.wait_for(finished.wait(), BACKGROUND_WAIT_S)
    except asyncio.TimeoutError:  # not the builtin TimeoutError before Python 3.11
        pass
    final = await service.complete(doc)
    return Answer(first, final, background[0] if background else first)


def sample_document(root: Path, sample: Sample, index: int) -> DocumentSnapshot:
    """The editor's view of ``sample``: its own URI (a document of its own), the real path and language."""
    path = root / sample.path
    return DocumentSnapshot(
        uri=f"{path.as_uri()}#gearshift-eval-{index}", version=0, text=sample.text, offset=sample.offset,
        language_id=sample.language, path=str(path),
    )


async def run_tier(
    settings: GearshiftSettings, tier: str, root: Path, samples: list[Sample], on_sample: OnSample | None = None,
    on_loaded: Callable[[], None] | None = None, *, warm: bool = True, check: CheckSample | None = None,
) -> list[SampleResult]:
    """Every sample through ``tier``, in order; ``on_loaded`` is called once its model is loaded; ``check``
    runs the repository's tests on each suggestion (after the completion, so it is not timed)."""
    with completion_service(tier_settings(settings, tier)) as service:
        await service.tiers.get(service.guard.current.model)  # loaded before the first sample is timed
        if on_loaded is not None:
            on_loaded()
        results: list[SampleResult] = []
        for index, sample in enumerate(samples):
            doc = sample_document(root, sample, index)
            if warm:
                try:
                    await service.prewarm(doc)
                except EndpointUnavailable:
                    pass  # a team server that fails: the request below finds out and is answered by the next rung
            answer = await shown(service, doc)
            result = score(
                sample.path, sample.line, sample.n_lines, sample.expected, answer.final.suggestion,
                latency_ms=answer.first.latency_ms, tokens_per_s=answer.measured.tokens_per_s,
                generated_tokens=answer.measured.generated_tokens, hidden_reason=answer.final.hidden_reason,
                passed=await asyncio.to_thread(check, sample, answer.final.suggestion) if check else None,
            )
            results.append(result)
            if on_sample is not None:
                on_sample(index, result)
    return results
