"""How often each rung's suggestions are right, as measured: the floor under the latency guard's downshifts.

A downshift trades quality for speed, and a faster wrong or empty suggestion is no win.  So each rung has a
measured quality score, and the guard never shifts to a rung whose score, as a share of the configured model's
score from the same source, is under ``guard.qualityFloor``.  Scores come from, best first:

* this repository's ``gearshift eval`` report (exact match per model, kept in the user cache), when it measured
  the configured model and at least one other;
* the table shipped beside this module (``measured_quality.json``, written by ``benchmarks/quality.py
  --write-table``): pass@1 of what each rung shows on HumanEval's masked lines, per model and prompt-window scale.

Scores are only ever compared within one source, so exact match on a repository and pass@1 on HumanEval never
mix.  A rung without a score (a custom model, a team endpoint) is not judged: nothing measured says it is worse.
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from lsp_server.inference.guard.ladder import Rung

log = logging.getLogger(__name__)

SHIPPED_TABLE = Path(__file__).with_name("measured_quality.json")


@dataclass(frozen=True)
class QualityTable:
    """Measured scores per (model, prompt-window scale)."""

    scores: dict[tuple[str, float], float] = field(default_factory=dict)
    source: str = "none"
    """Where the scores come from, for the status: "shipped HumanEval table" or the eval report's date."""

    def score(self, rung: Rung) -> float | None:
        """The rung's score: its model's at the largest measured window not above the rung's (a window the table
        does not list is judged by the next smaller one it does, never by a larger, which would flatter it)."""
        scales = [scale for model, scale in self.scores if model == rung.model and scale <= rung.context_scale + 1e-9]
        return self.scores[(rung.model, max(scales))] if scales else None

    def relative(self, rung: Rung, top: Rung) -> float | None:
        """``rung``'s score as a share of ``top``'s; None when either is unmeasured."""
        mine, best = self.score(rung), self.score(top)
        if mine is None or not best:
            return None
        return mine / best

    def usable(self, rungs: tuple[Rung, ...], top: Rung, floor: float) -> list[bool]:
        """Per rung: whether its measured quality clears ``floor`` (a share of ``top``'s; unmeasured rungs do)."""
        shares = [self.relative(rung, top) for rung in rungs]
        return [share is None or share >= floor - 1e-9 for share in shares]


def table_from_json(data: dict[str, Any], source: str) -> QualityTable:
    """``{"models": {model: {scale: score}}}`` (scales as strings, e.g. ``"0.25"``)."""
    scores: dict[tuple[str, float], float] = {}
    for model, by_scale in (data.get("models") or {}).items():
        for scale, score in (by_scale or {}).items():
            try:
                scores[(str(model), float(scale))] = float(score)
            except (TypeError, ValueError):
                continue
    return QualityTable(scores, source)


def shipped_table() -> QualityTable:
    try:
        return table_from_json(json.loads(SHIPPED_TABLE.read_text(encoding="utf-8")), "shipped HumanEval table")
    except (OSError, ValueError) as exc:
        log.warning("the measured quality table could not be read (%s): the quality floor judges nothing", exc)
        return QualityTable()


def table_from_eval(report: dict[str, Any] | None, configured: str) -> QualityTable | None:
    """Exact match per model from a ``gearshift eval`` report, when it measured ``configured`` and another model
    (full prompt window: eval runs each tier at its top rung)."""
    tiers = (report or {}).get("tiers")
    if not isinstance(tiers, dict) or configured not in tiers or len(tiers) < 2:
        return None
    scores = {}
    for model, tier in tiers.items():
        exact = tier.get("exact") if isinstance(tier, dict) else None
        if isinstance(exact, (int, float)):
            scores[(str(model), 1.0)] = float(exact)
    if (configured, 1.0) not in scores:
        return None
    return QualityTable(scores, f"gearshift eval of this repository ({report.get('date', 'undated')})")


def quality_table(configured: str, root: Path | None = None) -> QualityTable:
    """The best source for the repository at ``root`` (None: the shipped table)."""
    if root is not None:
        from lsp_server.evaluation.results import load_report, report_path

        table = table_from_eval(load_report(report_path(root)), configured)
        if table is not None:
            return table
    return shipped_table()
