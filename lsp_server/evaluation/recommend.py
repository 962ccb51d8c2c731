"""Which tier to use on this machine for this repository, from measured speed and measured accuracy."""

from __future__ import annotations

from dataclasses import dataclass

from lsp_server.evaluation.metrics import TierSummary

MIN_WORTHWHILE_EXACT = 0.10
"""Below this exact-match rate a tier's suggestions are mostly wrong: showing them costs more attention than they
save."""


@dataclass(frozen=True)
class Recommendation:
    tier: str | None
    """The tier to use, or None when no tier was measured."""

    line: str
    """One sentence for the user: the choice and why."""

    fastest_too_weak: bool = False
    """The fastest tier's exact match is below ``MIN_WORTHWHILE_EXACT``."""


def _accuracy(summary: TierSummary) -> tuple[float, float]:
    return summary.exact, summary.similarity


def _pct(share: float) -> str:
    return f"{share * 100:.0f}%"


def recommend(
    summaries: list[TierSummary], target_tok_s: float, min_exact: float = MIN_WORTHWHILE_EXACT
) -> Recommendation:
    """The most accurate tier (exact match, then edit similarity) that delivers ``target_tok_s``; when none does,
    the fastest; with a warning when the fastest tier's exact match is under ``min_exact``."""
    if not summaries:
        return Recommendation(None, "no tier was measured")
    fast_enough = [s for s in summaries if s.tokens_per_s is not None and s.tokens_per_s >= target_tok_s]
    fastest = max(summaries, key=lambda s: (s.tokens_per_s or 0.0, _accuracy(s)))
    if fast_enough:
        chosen = max(fast_enough, key=_accuracy)
        line = (
            f"use {chosen.tier}: the most accurate tier that holds {target_tok_s:g} tok/s here"
            f" ({_pct(chosen.exact)} exact, {chosen.tokens_per_s:g} tok/s)"
        )
    else:
        chosen = fastest
        speed = f"{chosen.tokens_per_s:g} tok/s" if chosen.tokens_per_s is not None else "speed not measured"
        line = (
            f"use {chosen.tier}: no tier holds {target_tok_s:g} tok/s here, it is the fastest"
            f" ({_pct(chosen.exact)} exact, {speed})"
        )
    too_weak = fastest.exact < min_exact
    if too_weak:
        line += (
            f"; the fastest tier, {fastest.tier}, matches only {_pct(fastest.exact)} of lines exactly"
            f" (under {_pct(min_exact)}): not worth showing"
        )
        if chosen is fastest:
            line += ", consider a larger model if it fits (`gearshift fit`)"
    return Recommendation(chosen.tier, line, fastest_too_weak=too_weak)
