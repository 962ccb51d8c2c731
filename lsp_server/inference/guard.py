"""The latency guard: hold a delivered tokens/s target by shifting down a ladder of rungs, and back up.

A rung is a model plus a way of decoding it.  The ladder goes from the
largest installed model at full thread count, to the same model on fewer
threads (with another process busy, llama.cpp's threads wait on each other,
so fewer threads can be faster), to the next smaller model, and so on.
Prompt-lookup speculation is on at every rung: it never changes the output
and only costs when drafts are rejected, which the engine adapts to.

Decisions, from measurements of real requests only:
- down one rung after ``slow_requests_to_downshift`` consecutive requests under target;
- up when a probe (one real request run on a higher rung, at most every ``probe_interval_s``,
  backing off to 8 s while probes fail) delivers target × ``_PROBE_MARGIN``; the rung probed is
  the highest one that held the target before, so the way back up can skip rungs;
- never two shifts within ``min_dwell_s``, and a rung that was just left for being slow is
  probed less often each time it fails again (back-off), so a steady load does not oscillate.
"""

from __future__ import annotations

import logging
import statistics
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Literal

from lsp_server.errors import EngineError
from lsp_server.settings import GuardSettings

log = logging.getLogger(__name__)

MIN_TOKENS_FOR_SPEED = 4
"""A request that generated fewer tokens says little about decode speed."""

_PROBE_MARGIN = 1.1
"""A probe must beat the target by this factor to shift up: the hysteresis that prevents flapping."""

_MAX_PROBE_BACKOFF_S = 8.0
"""Probes back off while they fail, but never beyond this: the guard must notice within ~10 s that a load left."""


@dataclass(frozen=True)
class Rung:
    model: str
    n_threads: int | None = None
    """None: the engine's thread count; a number: decode with that many threads."""

    prompt_lookup: bool = True
    max_tokens_scale: float = 1.0

    @property
    def name(self) -> str:
        return self.model if self.n_threads is None else f"{self.model}/{self.n_threads}-thread"


@dataclass(frozen=True)
class Shift:
    t_s: float
    from_rung: str
    to_rung: str
    reason: str
    direction: Literal["up", "down"]

    def to_json(self) -> dict[str, Any]:
        return {"tS": round(self.t_s, 2), "from": self.from_rung, "to": self.to_rung, "reason": self.reason,
                "direction": self.direction}


def build_ladder(installed_models: list[str], ladder: list[str], n_threads: int) -> list[Rung]:
    """Rungs from fastest-to-deliver-quality to cheapest: each installed model, then it on fewer threads."""
    models = [model for model in ladder if model in installed_models]
    models += [model for model in installed_models if model not in models]
    if not models:
        raise EngineError(
            "No model of the ladder is installed "
            f"(ladder: {', '.join(ladder) or 'empty'}); run `make install` or `gearshift models list` to see what is missing"
        )
    rungs: list[Rung] = []
    for model in models:
        rungs.append(Rung(model))
        if n_threads > 1:
            rungs.append(Rung(model, n_threads=max(1, n_threads // 2)))
    return rungs


class LatencyGuard:
    """Per-rung rolling measurements and the shift decisions; thread-safe."""

    def __init__(
        self,
        rungs: list[Rung],
        settings: GuardSettings,
        *,
        target_tok_s: float,
        start_index: int = 0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if not rungs:
            raise EngineError("The latency guard needs at least one rung (an installed model)")
        if not target_tok_s > 0:
            raise EngineError(f"The tokens/s target must be positive, got {target_tok_s}")
        self.rungs = list(rungs)
        self.settings = settings
        self.target = float(target_tok_s)
        self._clock = clock
        self._started = clock()
        self._index = min(max(0, start_index), len(rungs) - 1)
        self._speeds: dict[str, deque[float]] = {r.name: deque(maxlen=settings.window) for r in rungs}
        self._ttfts: dict[str, deque[float]] = {r.name: deque(maxlen=settings.window) for r in rungs}
        self._best: dict[str, float] = {}
        """The fastest each rung has been seen: its speed on an unloaded machine, as far as we know."""
        self._slow_streak = 0
        self._last_shift = -float("inf")
        self._last_probe = -float("inf")
        self._probe_backoff: dict[str, float] = {}
        self.shifts: list[Shift] = []
        self._lock = threading.Lock()

    @property
    def current(self) -> Rung:
        return self.rungs[self._index]

    def next_model_below(self) -> str | None:
        """The next smaller model on the ladder (what to keep loaded for a cold-start-free downshift)."""
        current = self.current.model
        return next((r.model for r in self.rungs[self._index + 1 :] if r.model != current), None)

    def probe_rung(self) -> Rung | None:
        """A higher rung when this request should measure it; None to use ``current``.

        The rung probed is the highest one seen holding the target before (it may have
        been left only because of a passing load), else the one right above.
        """
        with self._lock:
            if not self.settings.enabled or self._index == 0:
                return None
            now = self._clock()
            upper = self._probe_candidate()
            interval = self._probe_backoff.get(upper.name, self.settings.probe_interval_s)
            if now - self._last_shift < self.settings.min_dwell_s or now - self._last_probe < interval:
                return None
            self._last_probe = now
            return upper

    def _probe_candidate(self) -> Rung:
        for rung in self.rungs[: self._index]:
            if self._best.get(rung.name, 0.0) >= self.target * _PROBE_MARGIN:
                return rung
        return self.rungs[self._index - 1]

    def record(self, rung: Rung, tokens_per_s: float, ttft_s: float, n_tokens: int) -> Shift | None:
        """Take one request's measurement; return the shift it caused, if any."""
        with self._lock:
            if rung.name not in self._speeds:
                return None
            self._ttfts[rung.name].append(ttft_s)
            if n_tokens < MIN_TOKENS_FOR_SPEED or tokens_per_s <= 0:
                return None
            self._speeds[rung.name].append(tokens_per_s)
            self._best[rung.name] = max(self._best.get(rung.name, 0.0), tokens_per_s)
            if not self.settings.enabled:
                return None
            index = self.rungs.index(rung)
            if index < self._index:
                return self._after_probe(index, tokens_per_s)
            if index != self._index:
                return None
            self._slow_streak = self._slow_streak + 1 if tokens_per_s < self.target else 0
            if (
                self._slow_streak >= self.settings.slow_requests_to_downshift
                and self._index < len(self.rungs) - 1
                and self._clock() - self._last_shift >= self.settings.min_dwell_s
            ):
                window = list(self._speeds[rung.name])[-self._slow_streak :]
                reason = (
                    f"downshift: {self._slow_streak} requests under {self.target:g} tok/s "
                    f"(median {statistics.median(window):.1f})"
                )
                return self._shift(self._index + 1, reason)
            return None

    def _after_probe(self, index: int, tokens_per_s: float) -> Shift | None:
        upper = self.rungs[index]
        if tokens_per_s >= self.target * _PROBE_MARGIN:
            self._probe_backoff.pop(upper.name, None)
            return self._shift(index, f"upshift: probe delivered {tokens_per_s:.1f} tok/s")
        # Still too slow up there: wait longer before the next probe (doubling, capped).
        previous = self._probe_backoff.get(upper.name, self.settings.probe_interval_s)
        self._probe_backoff[upper.name] = min(_MAX_PROBE_BACKOFF_S, previous * 2)
        return None

    def _shift(self, to_index: int, reason: str) -> Shift:
        now = self._clock()
        direction: Literal["up", "down"] = "up" if to_index < self._index else "down"
        shift = Shift(now - self._started, self.current.name, self.rungs[to_index].name, reason, direction)
        if direction == "down" and self.shifts and self.shifts[-1].direction == "up" and now - self._last_shift < 30:
            # The upshift did not hold: probe that rung less eagerly from now on.
            name = self.current.name
            self._probe_backoff[name] = min(
                _MAX_PROBE_BACKOFF_S, 2 * self._probe_backoff.get(name, self.settings.probe_interval_s)
            )
        self._index = to_index
        self._slow_streak = 0
        self._last_shift = now
        self.shifts.append(shift)
        del self.shifts[:-100]
        log.info("guard %s: %s -> %s (%s)", direction, shift.from_rung, shift.to_rung, reason)
        return shift

    def state(self) -> dict[str, Any]:
        """The guard as `gearshift.status` shows it."""
        with self._lock:
            rungs = []
            for rung in self.rungs:
                speeds, ttfts = self._speeds[rung.name], self._ttfts[rung.name]
                rungs.append({
                    "name": rung.name,
                    "medianTokS": round(statistics.median(speeds), 1) if speeds else None,
                    "medianTtftMs": round(statistics.median(ttfts) * 1000, 1) if ttfts else None,
                    "bestTokS": round(self._best[rung.name], 1) if rung.name in self._best else None,
                    "samples": len(speeds),
                })
            return {
                "enabled": self.settings.enabled,
                "targetTokS": self.target,
                "current": self.current.name,
                "rungs": rungs,
                "shifts": [shift.to_json() for shift in self.shifts[-20:]],
            }
