"""Scores of one tier's suggestions against the masked text, and the per-tier summary `gearshift eval` prints.

Every sample counts, shown or not: a hidden suggestion is no help, so it is no exact match and similarity 0.
"""

from __future__ import annotations

import difflib
import math
import statistics
from dataclasses import asdict, dataclass

from lsp_server.inference.guard import MIN_TOKENS_FOR_SPEED


def normalise(line: str) -> str:
    """``line`` with its whitespace collapsed: indentation and spacing are not what a suggestion is judged on."""
    return " ".join(line.split())


def exact_match(suggestion: str | None, expected: str) -> bool:
    """Whether the suggestion's first line is the masked first line (whitespace-normalised)."""
    if suggestion is None:
        return False
    return normalise(suggestion.split("\n", 1)[0]) == normalise(expected.split("\n", 1)[0])


def edit_similarity(suggestion: str | None, expected: str) -> float:
    """difflib's ratio between the masked lines and as many first lines of the suggestion (normalised), 0..1."""
    if suggestion is None:
        return 0.0
    wanted = [normalise(line) for line in expected.split("\n")]
    got = [normalise(line) for line in suggestion.split("\n")[: len(wanted)]]
    return difflib.SequenceMatcher(None, "\n".join(got), "\n".join(wanted), autojunk=False).ratio()


def percentile(values: list[float], share: float) -> float | None:
    """The ``share`` quantile of ``values`` (nearest rank), or None for no values."""
    if not values:
        return None
    ordered = sorted(values)
    return ordered[max(0, math.ceil(share * len(ordered)) - 1)]


@dataclass(frozen=True)
class SampleResult:
    """One sample completed by one tier (no document text: results are kept on disk)."""

    path: str
    line: int
    n_lines: int
    shown: bool
    exact: bool
    similarity: float
    latency_ms: float
    """Until the first answer: what the user waits for."""

    tokens_per_s: float | None
    """Decode speed of the generation, when it generated enough tokens to say (``MIN_TOKENS_FOR_SPEED``)."""

    hidden_reason: str | None = None

    passed: bool | None = None
    """The repository's tests passed with the suggestion in place (``--tests``); None: not run."""


def score(
    path: str, line: int, n_lines: int, expected: str, suggestion: str | None, *, latency_ms: float,
    tokens_per_s: float | None, generated_tokens: int, hidden_reason: str | None = None, passed: bool | None = None,
) -> SampleResult:
    """The result of one sample from what the pipeline showed for it."""
    measured = tokens_per_s if tokens_per_s and generated_tokens >= MIN_TOKENS_FOR_SPEED else None
    return SampleResult(
        path=path, line=line, n_lines=n_lines, shown=suggestion is not None,
        exact=exact_match(suggestion, expected), similarity=round(edit_similarity(suggestion, expected), 4),
        latency_ms=round(latency_ms, 1), tokens_per_s=measured,
        hidden_reason=None if suggestion is not None else hidden_reason, passed=passed,
    )


@dataclass(frozen=True)
class TierSummary:
    """One tier's figures over all samples."""

    tier: str
    samples: int
    exact: float
    similarity: float
    hidden: float
    tokens_per_s: float | None
    """Median delivered decode speed over the requests that measured it."""

    p50_ms: float | None
    p95_ms: float | None
    seconds: float
    """Wall time of this tier's run, model load included."""

    pass_at_1: float | None = None
    """Share of samples whose suggestion passed the repository's tests (``--tests``); None: not run."""

    def to_json(self) -> dict:
        return asdict(self)


def summarise(tier: str, results: list[SampleResult], seconds: float) -> TierSummary:
    """The summary of ``results`` (one tier's)."""
    n = len(results)
    speeds = [r.tokens_per_s for r in results if r.tokens_per_s is not None]
    latencies = [r.latency_ms for r in results]
    p50, p95 = percentile(latencies, 0.5), percentile(latencies, 0.95)
    tested = any(r.passed is not None for r in results)
    return TierSummary(
        tier=tier,
        samples=n,
        exact=round(sum(r.exact for r in results) / n, 4) if n else 0.0,
        similarity=round(sum(r.similarity for r in results) / n, 4) if n else 0.0,
        hidden=round(sum(not r.shown for r in results) / n, 4) if n else 0.0,
        tokens_per_s=round(statistics.median(speeds), 1) if speeds else None,
        p50_ms=round(p50, 1) if p50 is not None else None,
        p95_ms=round(p95, 1) if p95 is not None else None,
        seconds=round(seconds, 1),
        pass_at_1=round(sum(bool(r.passed) for r in results) / n, 4) if n and tested else None,
    )
