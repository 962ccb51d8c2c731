"""What the latency guard remembers about each rung, and the speeds it predicts from that.

Per rung: the last ``window`` meaningful requests' speeds, their times to first token, the speeds measured while
other processes left the rung's threads their cores ("calm"), and the best median of a full calm window (the
rung's unloaded speed, optimistic).  A rung's predicted speed now is that reference scaled by how loaded the rung
measured now looks.
"""

from __future__ import annotations

import math
import statistics
from collections import deque
from dataclasses import dataclass, field
from typing import Any

from lsp_server.inference.guard.ladder import Rung

MIN_TOKENS_FOR_SPEED = 4
"""A request that generated fewer tokens says little about decode speed; it counts for time to first token only."""

CORE_SLACK = 0.5
"""A rung on n threads needs n - this many cores that other processes leave free: a thread with most of a core
keeps pace, one sharing a core with a busy process holds the others up at every step."""


@dataclass
class RungStats:
    """What the guard remembers about one rung."""

    window: int

    speeds: deque[tuple[float, float, float]] = field(init=False)
    """(clock time, tokens/s, judged tokens/s) of the last ``window`` meaningful requests.  The judged figure is
    what the shift decisions compare with the target: the measured one, or the target itself for a single-line
    suggestion whose line was finished in time (its tokens/s did not keep the user waiting)."""

    ttfts: deque[float] = field(init=False)
    calm_speeds: deque[float] = field(init=False)
    """Tokens/s of the last ``window`` meaningful requests run while other processes left the rung's threads
    their cores (all of them when that is unknown): what the rung can do, as opposed to what a load left it."""

    reference: float | None = None
    """Best median of a full window of ``calm_speeds``: the rung's unloaded speed as far as the guard knows
    (optimistic)."""

    samples_total: int = 0

    def __post_init__(self) -> None:
        self.speeds, self.ttfts, self.calm_speeds = deque(), deque(), deque()
        self.resize(self.window)

    def resize(self, window: int) -> None:
        """Keep the last ``window`` of each measurement (the newest, when the window shrinks)."""
        self.window = window
        self.speeds = deque(self.speeds, maxlen=window)
        self.ttfts = deque(self.ttfts, maxlen=window)
        self.calm_speeds = deque(self.calm_speeds, maxlen=window)


class LadderMeasurements:
    """The stats of every rung of a ladder and the predictions made from them (not thread-safe: the guard's lock
    covers it)."""

    def __init__(self, rungs: tuple[Rung, ...], window: int) -> None:
        self._rungs = rungs
        # Remote rungs have no local threads (n_threads None means "the engine's count" for local ones only).
        self._full_threads = max((r.n_threads for r in rungs if r.n_threads is not None), default=1)
        self.stats = [RungStats(window) for _ in rungs]

    def resize(self, window: int) -> None:
        for stats in self.stats:
            stats.resize(window)

    def threads(self, index: int) -> int:
        threads = self._rungs[index].n_threads
        return self._full_threads if threads is None else threads

    def short_of_cores(self, index: int, free: float | None) -> bool:
        """Whether other processes leave fewer cores than rung ``index`` runs threads (False when unknown)."""
        if self._rungs[index].remote:
            return False
        return free is not None and free < self.threads(index) - CORE_SLACK

    def add(
        self, index: int, now: float, tokens_per_s: float, ttft_s: float, n_tokens: int, *,
        judged: float, free: float | None,
    ) -> bool:
        """Remember one request on rung ``index``; whether it was long enough to measure speed."""
        stats = self.stats[index]
        if n_tokens >= 1 and math.isfinite(ttft_s) and ttft_s >= 0:
            stats.ttfts.append(ttft_s)
        meaningful = n_tokens >= MIN_TOKENS_FOR_SPEED and math.isfinite(tokens_per_s) and tokens_per_s > 0
        if meaningful:
            stats.speeds.append((now, tokens_per_s, judged))
            stats.samples_total += 1
            if not self.short_of_cores(index, free):
                stats.calm_speeds.append(tokens_per_s)
                if len(stats.calm_speeds) == stats.calm_speeds.maxlen:
                    # A full window only: a rung measured by sparse probes must not be judged by one burst.
                    stats.reference = max(stats.reference or 0.0, statistics.median(stats.calm_speeds))
        return meaningful

    def judged_since(self, index: int, since: float) -> list[float]:
        """The judged speeds of rung ``index``'s requests from ``since`` on, oldest first."""
        return [judged for t, _, judged in self.stats[index].speeds if t >= since]

    def load_factor(self, index: int, recent_speed: float | None = None) -> float | None:
        """How far the rung's recent speed (by default its window median) is below its remembered best.

        1 means unloaded; None when the rung has not been measured.
        """
        stats = self.stats[index]
        if not stats.reference:
            return None
        if recent_speed is None:
            if not stats.speeds:
                return None
            recent_speed = statistics.median(speed for _, speed, _ in stats.speeds)
        return min(1.0, recent_speed / stats.reference)

    def predict(self, index: int, from_index: int, recent_speed: float | None = None) -> float | None:
        """Speed rung ``index`` would deliver now, judged from rung ``from_index``; None if unknown.

        ``recent_speed`` is what ``from_index`` delivers now (by default its window median).

        A rung's remembered best bounds it.  If it runs at least as many threads as
        the rung measured now, a busy CPU slows it at least as much, so the bound
        is scaled by the measured rung's load factor; a rung on fewer threads may
        escape the contention, so only its bound is used.
        """
        stats = self.stats[index]
        reference = stats.reference
        if reference is None and stats.calm_speeds:
            # No full window yet: the fastest request seen bounds it (optimistically).
            reference = max(stats.calm_speeds)
        if reference is None:
            return None
        factor = None
        if not self._rungs[index].remote and self.threads(index) >= self.threads(from_index):
            factor = self.load_factor(from_index, recent_speed)
        return reference * (factor if factor is not None else 1.0)

    def rung_figures(self, index: int) -> dict[str, Any]:
        """Rung ``index``'s figures as ``RungState`` fields."""
        stats = self.stats[index]
        speeds = [speed for _, speed, _ in stats.speeds]
        return {
            "median_tok_s": round(statistics.median(speeds), 1) if speeds else None,
            "median_ttft_ms": round(statistics.median(stats.ttfts) * 1000, 1) if stats.ttfts else None,
            "reference_tok_s": round(stats.reference, 1) if stats.reference is not None else None,
            "samples": stats.samples_total,
        }
