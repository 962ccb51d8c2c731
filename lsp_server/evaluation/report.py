"""The report `gearshift eval` keeps and prints with --json: positions and figures, never document text.

camelCase like every other --json output: the evaluation's own dataclasses are dumped inside a ``WireModel``,
whose key rule they take on.
"""

from __future__ import annotations

from collections import Counter
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from lsp_server.evaluation.metrics import SampleResult, TierSummary
from lsp_server.evaluation.recommend import Recommendation
from lsp_server.evaluation.repository import RepositoryFiles
from lsp_server.evaluation.sampling import Sample
from lsp_server.wire import WireModel

Measured = list[tuple[TierSummary, list[SampleResult]]]
"""Per tier: its summary and its per-sample results."""


class SampleSet(WireModel):
    """Which positions were drawn."""

    seed: int
    requested: int
    drawn: int
    multiline: int
    files: int
    commit: str | None


class _TierFigures(WireModel):
    summary: TierSummary
    results: list[SampleResult]


def hidden_reasons(results: list[SampleResult]) -> dict[str, int]:
    """How many suggestions each reason hid, most first (``confidence 0.12 below 0.25`` counts as ``confidence``)."""
    reasons: Counter[str] = Counter()
    for result in results:
        if not result.shown:
            reason = result.hidden_reason or "nothing"
            reasons["confidence" if reason.startswith("confidence") else reason] += 1
    return dict(reasons.most_common())


def build_report(
    *, root: Path, path: Path, commit: str | None, seed: int, requested: int, samples: list[Sample],
    found: RepositoryFiles, measured: Measured, recommendation: Recommendation, target_tok_s: float, warm: bool,
) -> dict[str, Any]:
    """This run's report: no document text, only positions and figures."""
    from lsp_server.evaluation.results import REPORT_VERSION
    from lsp_server.inference.cpu import cpu_name

    date = datetime.now(timezone.utc).isoformat(timespec="seconds")
    sample_set = SampleSet(
        seed=seed, requested=requested, drawn=len(samples), multiline=sum(1 for s in samples if s.n_lines > 1),
        files=len({s.path for s in samples}), commit=commit,
    ).to_json()
    tiers = {}
    for summary, results in measured:
        figures = _TierFigures(summary=summary, results=results).to_json()
        tiers[summary.tier] = {**figures["summary"], "date": date, "sample": sample_set,
                               "hiddenReasons": hidden_reasons(results), "results": figures["results"]}
    return {
        "version": REPORT_VERSION,
        "repository": str(root),
        "path": str(path),
        "commit": commit,
        "date": date,
        "cpu": cpu_name(),
        "settings": "shipped defaults, latency guard off (one tier at a time)",
        "latency": "prompt prewarmed (cursor hint)" if warm else "cold prompt (no prewarm)",
        "targetTokS": target_tok_s,
        "sample": {**sample_set, "filesRead": len(found.files), "skippedFiles": dict(found.skipped)},
        "tiers": tiers,
        "recommendation": {"tier": recommendation.tier, "line": recommendation.line,
                           "fastestTooWeak": recommendation.fastest_too_weak},
    }
