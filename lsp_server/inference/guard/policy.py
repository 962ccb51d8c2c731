"""The latency guard: hold a delivered tokens/s target by shifting down a ladder of rungs (``ladder.py``), and back up.

Pure decision logic (no model, no I/O beyond logging) so it can be unit-tested with synthetic measurements and an
injected clock.

Per request, the server asks ``probe_rung() or current`` which rung to run and
reports the result with ``record``.  Decisions, from real requests only:

* **Down** when the last ``slow_requests_to_downshift`` requests on the current
  rung were all under target, or the median of a full window of them is.  The
  shift goes one rung down, unless remembered speeds show the next rungs cannot
  hold the target either; then it skips them in one shift.  Never two shifts
  within ``min_dwell_s``.
* **Up** through probes: at most every ``probe_interval_s`` (backing off to 8 s
  while probes fail) one request runs on a higher rung; two probes in a row
  delivering target × ``upshift_headroom`` shift up.  The rung probed is the
  highest one that could plausibly hold the target now, predicted from its
  remembered unloaded speed scaled by how loaded the current rung looks.
* **Hysteresis**: a rung must beat the target by ``upshift_headroom`` to be
  re-entered but is only left when it falls under the target itself, so a rung
  whose speed hovers around the target is never flapped in and out of.  When an
  upshift is reversed within a minute, the load comes and goes: no probing at
  all for a minute (two, four... after reversals in a row), which bounds shifts
  to about two a minute.  That pause is the one case where a load leaving is
  noticed later than ~10 s.
* **Cores**: given a ``free_cores`` reading (cores other processes leave this
  one), a rung running more threads than that is neither probed nor shifted
  down to.  A rung on fewer threads keeps its speed under a load, so its own
  measurements cannot tell when the load leaves; the free cores can.
"""

from __future__ import annotations

import logging
import math
import statistics
import threading
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, Literal

from lsp_server.errors import EngineError
from lsp_server.inference.guard.ladder import Rung, Shift
from lsp_server.inference.guard.measurements import LadderMeasurements
from lsp_server.inference.guard.probes import MAX_REFRESH_S, PROBES_TO_UPSHIFT, ProbeState
from lsp_server.inference.guard.quality import QualityTable
from lsp_server.inference.guard.status import GuardState, RungState
from lsp_server.settings import GuardSettings

if TYPE_CHECKING:
    from lsp_server.inference.types import GenerationResult

log = logging.getLogger(__name__)

SHIFT_HISTORY = 100
"""Shifts kept in memory (``state()`` shows the last 20)."""


class LatencyGuard:
    """Per-rung rolling measurements and the shift decisions; thread-safe.

    ``start_index`` is the rung to start on and also the highest rung the guard
    will shift up to: the configured default model is the top of the ladder.
    """

    def __init__(
        self,
        rungs: list[Rung],
        settings: GuardSettings,
        *,
        target_tok_s: float,
        start_index: int = 0,
        clock: Callable[[], float] = time.monotonic,
        free_cores: Callable[[], float | None] | None = None,
        quality: QualityTable | None = None,
    ) -> None:
        """``free_cores`` says how many cores other processes leave this one (None: unknown), e.g.
        ``CpuMonitor.free_cores``: rungs that need more threads than that are neither probed nor shifted to.
        ``quality``: measured scores per rung; rungs scoring under ``settings.quality_floor`` of the top rung's
        are never shifted to (None: nothing is judged)."""
        if not rungs:
            raise EngineError("The latency guard needs at least one rung (an installed model)")
        names = [rung.name for rung in rungs]
        if len(set(names)) != len(names):
            raise EngineError(f"Latency guard rungs must have distinct names, got {names}")
        self._check_target(target_tok_s)
        self._lock = threading.RLock()
        self._rungs = tuple(rungs)
        self._position = {rung.name: i for i, rung in enumerate(self._rungs)}
        self._settings = settings
        self._target = float(target_tok_s)
        self._clock = clock
        self._free_cores = free_cores
        self._started = clock()
        self._top = min(max(0, start_index), len(self._rungs) - 1)
        self._index = self._top
        self._measured = LadderMeasurements(self._rungs, settings.window)
        self._quality = quality or QualityTable()
        self._usable = self._quality.usable(self._rungs, self._rungs[self._top], settings.quality_floor)
        self._arrived_at = self._started
        self._slow_streak = 0
        self._last_shift = -math.inf
        self._probes = ProbeState(settings.probe_interval_s)
        self._shifts: list[Shift] = []

    @staticmethod
    def _check_target(target_tok_s: float) -> None:
        if not (isinstance(target_tok_s, (int, float)) and math.isfinite(target_tok_s) and target_tok_s > 0):
            raise EngineError(f"The tokens/s target must be a positive number, got {target_tok_s!r}")

    # -- reading --------------------------------------------------------------------------------

    @property
    def rungs(self) -> tuple[Rung, ...]:
        return self._rungs

    @property
    def current(self) -> Rung:
        """The rung requests run on unless ``probe_rung`` says otherwise."""
        with self._lock:
            return self._rungs[self._index]

    @property
    def target(self) -> float:
        return self._target

    @property
    def settings(self) -> GuardSettings:
        return self._settings

    @property
    def shifts(self) -> list[Shift]:
        """The shifts made so far (the last hundred), oldest first; a copy."""
        with self._lock:
            return list(self._shifts)

    def next_model_below(self) -> str | None:
        """The next smaller model on the ladder the guard may shift to (what to keep loaded for a cold-start-free
        downshift)."""
        with self._lock:
            model = self._rungs[self._index].model
            below = range(self._index + 1, len(self._rungs))
            return next((self._rungs[i].model for i in below if self._usable[i] and self._rungs[i].model != model),
                        None)

    def state(self) -> dict[str, Any]:
        """The guard as the ``gearshift.status`` command shows it (camelCase)."""
        with self._lock:
            now = self._clock()
            rungs = [
                RungState(
                    name=rung.name, model=rung.model, n_threads=rung.n_threads, prompt_lookup=rung.prompt_lookup,
                    max_tokens_scale=rung.max_tokens_scale, context_scale=rung.context_scale,
                    quality=self._quality.score(rung), below_quality_floor=not self._usable[i],
                    **self._measured.rung_figures(i),
                )
                for i, rung in enumerate(self._rungs)
            ]
            blocked = self._probes.blocked_until - now
            return GuardState(
                enabled=self._settings.enabled,
                target_tok_s=self._target,
                current=self._rungs[self._index].name,
                top=self._rungs[self._top].name,
                probing=self._rungs[self._probes.pending].name if self._probes.pending is not None else None,
                upshift_blocked_s=round(blocked, 1) if blocked > 0 else None,
                quality_floor=self._settings.quality_floor,
                quality_source=self._quality.source,
                rungs=rungs,
                shifts=[shift.record() for shift in self._shifts[-20:]],
            ).to_json()

    # -- settings -------------------------------------------------------------------------------

    def update_settings(self, settings: GuardSettings, *, target_tok_s: float | None = None) -> Shift | None:
        """Apply new guard settings without losing what was measured.

        Turning the guard off returns to the top rung (the configured model), so a
        disabled guard always serves what the user chose; that return is a shift.
        """
        if target_tok_s is not None:
            self._check_target(target_tok_s)
        with self._lock:
            if settings.window != self._settings.window:
                self._measured.resize(settings.window)
            self._settings = settings
            self._usable = self._quality.usable(self._rungs, self._rungs[self._top], settings.quality_floor)
            if target_tok_s is not None:
                self._target = float(target_tok_s)
            self._probes.restart_backoff(settings.probe_interval_s)
            self._probes.reset()
            if not settings.enabled and self._index != self._top:
                return self._shift(self._top, "guard turned off: back to the configured model")
            return None

    # -- per request ----------------------------------------------------------------------------

    def probe_rung(self) -> Rung | None:
        """A higher rung to run THIS request on, to measure it; None means use ``current``.

        Record the request's measurement with the rung returned here.
        """
        with self._lock:
            if not self._settings.enabled or self._index <= self._top:
                return None
            now = self._clock()
            if (confirming := self._probes.confirming(self._index)) is not None:
                # Confirm a fast probe on the very next request.
                return self._hand_out_probe(confirming, plausible=self._probes.plausible, now=now)
            if now - self._last_shift < self._settings.min_dwell_s:
                return None
            candidate = self._probe_candidate(now)
            if candidate is None:
                return None
            index, plausible = candidate
            wait = self._probes.wait_s if plausible else self._probes.refresh_wait_s
            if not plausible and self._rungs[index].context_scale != self._rungs[self._index].context_scale:
                # Probing another prompt window evaluates the whole prompt twice (there and back: seconds on a
                # CPU), so a rung that does not even look plausible is refreshed there only once a minute.
                wait = max(wait, MAX_REFRESH_S)
            if now - self._probes.last_probe < wait:
                return None
            return self._hand_out_probe(index, plausible=plausible, now=now)

    def expected_rung(self) -> Rung:
        """The rung the next request will most likely run on (what a prewarm should warm): the rung a fast
        probe is being confirmed on, else ``current``.  Hands nothing out."""
        with self._lock:
            confirming = self._probes.confirming(self._index)
            return self._rungs[confirming if confirming is not None else self._index]

    def record(
        self, rung: Rung, tokens_per_s: float, ttft_s: float, n_tokens: int, *, line_s: float | None = None
    ) -> Shift | None:
        """Take one request's measurement on ``rung``; return the shift it caused, if any.

        ``tokens_per_s`` is the delivered decode speed after the first token
        (``GenerationResult.decode_tokens_per_s``); requests with fewer than
        ``MIN_TOKENS_FOR_SPEED`` tokens count for time to first token only.
        ``line_s``: for a single-line suggestion, seconds from the request to its finished line.  One finished
        within ``single_line_target_ms`` counts as on target whatever its tokens/s: there the person waits for
        the line, and a smaller model's faster tokens would not bring it sooner enough to be worth its quality.
        Measurements of a rung this guard does not know (a guard rebuilt since) are ignored.
        """
        with self._lock:
            index = self._position.get(rung.name)
            if index is None or self._rungs[index] != rung:
                return None
            now = self._clock()
            judged = tokens_per_s
            line_target_s = self._settings.single_line_target_ms / 1000
            if line_s is not None and 0 <= line_s <= line_target_s:
                judged = max(tokens_per_s, self._target)
            meaningful = self._measured.add(
                index, now, tokens_per_s, ttft_s, n_tokens, judged=judged, free=self._read_free_cores()
            )
            was_probe = index == self._probes.pending
            if was_probe:
                self._probes.pending = None
            if not self._settings.enabled:
                return None
            if not meaningful:
                if was_probe and index < self._index and n_tokens < 1:
                    # Nothing delivered at all (cancelled while its prompt evaluated: too slow up there): a failed probe.
                    return self._after_probe(index, 0.0, now)
                if was_probe and index == self._probes.good_rung:
                    # Too short to measure: the confirmation waits for the next probe instead of taking every
                    # request (each may evaluate a whole prompt on the probed window).
                    self._probes.reset_confirmation()
                return None
            if was_probe and index < self._index:
                return self._after_probe(index, tokens_per_s, now)
            if index == self._index:
                return self._after_request(judged, now)
            return None

    def unavailable(self, rung: Rung, reason: str) -> Shift | None:
        """``rung`` gave no answer at all (a team server down or refusing): shift below it at once.

        Probes bring it back like any faster rung once it answers again; a failed probe backs off as a slow one.
        """
        with self._lock:
            index = self._position.get(rung.name)
            if index is None or self._rungs[index] != rung:
                return None
            now = self._clock()
            if index == self._probes.pending:
                self._probes.pending = None
                if index < self._index:
                    return self._after_probe(index, 0.0, now)
            if index != self._index or not self._settings.enabled:
                return None
            below = next((i for i in range(index + 1, len(self._rungs)) if self._usable[i]), None)
            if below is None:
                return None
            return self._shift(below, f"{rung.name} unavailable: {reason}")

    def record_result(self, rung: Rung, result: GenerationResult, *, single_line: bool = False) -> Shift | None:
        """``record`` from an engine result; ``single_line``: the suggestion is one line, finished at its end."""
        line_s = result.time_to_first_token_s + result.decode_s if single_line else None
        return self.record(
            rung, result.decode_tokens_per_s, result.time_to_first_token_s, result.n_generated_tokens, line_s=line_s
        )

    # -- decisions (lock held) ------------------------------------------------------------------

    def _read_free_cores(self) -> float | None:
        if self._free_cores is None or not self._settings.watch_cpu:
            return None
        free = self._free_cores()
        log.debug("latency guard: %s cores free", "unknown" if free is None else f"{free:.2f}")
        return free

    def _after_request(self, tokens_per_s: float, now: float) -> Shift | None:
        settings = self._settings
        self._slow_streak = self._slow_streak + 1 if tokens_per_s < self._target else 0
        if self._index >= len(self._rungs) - 1 or now - self._last_shift < settings.min_dwell_s:
            return None
        recent = self._measured.judged_since(self._index, self._arrived_at)
        median = statistics.median(recent[-settings.window :]) if recent else tokens_per_s
        if self._slow_streak >= settings.slow_requests_to_downshift:
            basis = statistics.median(recent[-self._slow_streak :])
            why = f"{self._slow_streak} requests in a row under {self._target:g} tok/s (median {basis:.1f})"
        elif len(recent) >= settings.window and median < self._target:
            basis = median
            why = f"median of the last {settings.window} requests {median:.1f} tok/s, under {self._target:g}"
        else:
            return None
        found = self._downshift_destination(basis)
        if found is None:
            log.debug("latency guard: %s is slow, but no rung below is faster and above the quality floor",
                      self.current.name)
            return None
        destination, skipped = found
        if skipped:
            why += "; skipped " + ", ".join(f"{name} (predicted {speed:.1f})" for name, speed in skipped)
        return self._shift(destination, why)

    def _downshift_destination(self, current_speed: float) -> tuple[int, list[tuple[str, float]]] | None:
        """The first rung below that could hold the target, skipping those predicted too slow; None when no rung
        below clears the quality floor.

        ``current_speed`` is what the current rung delivers now (the figure that triggered the downshift).
        """
        skipped: list[tuple[str, float]] = []
        best: tuple[float, int] | None = None
        free = self._read_free_cores()
        below = [index for index in range(self._index + 1, len(self._rungs)) if self._usable[index]]
        if not below:
            return None
        for index in below:
            predicted = self._measured.predict(index, self._index, current_speed)
            if self._measured.short_of_cores(index, free):
                # Its threads would wait on another busy process's: at best as slow as now.
                predicted = min(predicted if predicted is not None else current_speed, current_speed)
            elif predicted is None and self._fewer_threads_on_free_cores(index, free):
                # Nothing else runs: the slowness is this machine's own, and fewer threads only divide the speed
                # (the 0.5B on a quiet 2-vCPU Xeon: 27 tok/s on two threads, 13 on one).  Never a destination.
                predicted = current_speed * self._measured.threads(index) / self._measured.threads(self._index)
                skipped.append((self._rungs[index].name, predicted))
                continue
            if predicted is None or predicted >= self._target:
                return index, skipped
            skipped.append((self._rungs[index].name, predicted))
            if best is None or predicted > best[0]:
                best = (predicted, index)
        if best is None:
            return None  # only slower rungs of the same model below
        # No rung below is predicted to hold the target: take the fastest predicted (the next on ties).
        return best[1], [item for item in skipped if self._position[item[0]] < best[1]]

    def _fewer_threads_on_free_cores(self, index: int, free: float | None) -> bool:
        """Whether rung ``index`` is the current rung on fewer threads (same model and window) while the current
        rung's cores are free."""
        rung, current = self._rungs[index], self._rungs[self._index]
        return (not rung.remote and not current.remote and rung.model == current.model and free is not None
                and rung.context_scale == current.context_scale
                and not self._measured.short_of_cores(self._index, free)
                and self._measured.threads(index) < self._measured.threads(self._index))

    def _probe_candidate(self, now: float) -> tuple[int, bool] | None:
        """The highest rung above worth probing and whether it is predicted to hold target × headroom.

        A rung predicted too slow is still probed now and then (its remembered
        speed may be from a loaded period), but on the slower refresh schedule.
        """
        needed = self._target * self._settings.upshift_headroom
        if now < self._probes.blocked_until:
            return None
        free = self._read_free_cores()
        # A rung whose threads would share cores with another busy process cannot hold the target: not worth a
        # probe (a slow request) until the cores are free again, which is how a load leaving is noticed from
        # a rung on fewer threads, whose own speed does not change.
        open_rungs = [index for index in range(self._top, self._index) if not self._measured.short_of_cores(index, free)]
        for index in open_rungs:
            predicted = self._measured.predict(index, self._index)
            if predicted is None or predicted >= needed:
                return index, True
        if open_rungs:
            return open_rungs[0], False
        return None

    def _hand_out_probe(self, index: int, *, plausible: bool, now: float) -> Rung:
        self._probes.hand_out(index, plausible=plausible, now=now)
        log.debug("latency guard: probing %s", self._rungs[index].name)
        return self._rungs[index]

    def _after_probe(self, index: int, tokens_per_s: float, now: float) -> Shift | None:
        needed = self._target * self._settings.upshift_headroom
        if tokens_per_s >= needed:
            fast = self._probes.fast(index)
            if fast >= PROBES_TO_UPSHIFT:
                return self._shift(
                    index,
                    f"{fast} probes in a row delivered {needed:.1f} tok/s or more "
                    f"(target {self._target:g} x headroom {self._settings.upshift_headroom:g}; "
                    f"last {tokens_per_s:.1f})",
                )
            return None
        self._probes.failed()
        log.debug(
            "latency guard: probe of %s delivered %.1f tok/s, needs %.1f",
            self._rungs[index].name,
            tokens_per_s,
            needed,
        )
        return None

    def _shift(self, to_index: int, reason: str) -> Shift:
        now = self._clock()
        from_index = self._index
        direction: Literal["up", "down"] = "up" if to_index < from_index else "down"
        entered_by_upshift = bool(self._shifts) and self._shifts[-1].direction == "up"
        reason += self._probes.after_shift(direction, now, entered_by_upshift=entered_by_upshift)
        shift = Shift(
            now - self._started, self._rungs[from_index].name, self._rungs[to_index].name, reason, direction
        )
        self._index = to_index
        self._arrived_at = now
        self._slow_streak = 0
        self._last_shift = now
        self._shifts.append(shift)
        del self._shifts[:-SHIFT_HISTORY]
        log.info("latency guard: shift %s %s -> %s: %s", direction, shift.from_rung, shift.to_rung, reason)
        return shift
