"""The latency guard: hold a delivered tokens/s target by shifting down a ladder of rungs, and back up.

Pure decision logic (no model, no I/O beyond logging) so it can be unit-tested
with synthetic measurements and an injected clock.

A *rung* is a model plus a way of decoding it.  ``build_ladder`` orders them
from the best quality to the cheapest: each installed model at full speed,
then the same model decoded more cheaply (prompt-lookup speculation if the
engine has it off, fewer threads: with another process busy, llama.cpp's
threads wait on each other, so fewer threads can be faster), then the next
smaller model.  The smallest model shortens the prompt window to a quarter
before it drops threads, and to an eighth on fewer threads: a tiny model
spends much of each decode step on attention over the context (SmolLM2-135M
on one thread: 34 tok/s with a 576-token window, 47 with 144).

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
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Literal

from lsp_server.errors import EngineError
from lsp_server.settings import GuardSettings

if TYPE_CHECKING:
    from lsp_server.inference.types import GenerationResult

log = logging.getLogger(__name__)

MIN_TOKENS_FOR_SPEED = 4
"""A request that generated fewer tokens says little about decode speed; it counts for time to first token only."""

PROBES_TO_UPSHIFT = 2
"""Consecutive fast probes needed to shift up (the second runs on the very next request), so one lucky request
(a prompt-lookup burst) does not move the guard."""

MAX_PROBE_BACKOFF_S = 8.0
"""Probes of a plausible rung back off while they fail, never beyond this: the guard notices within ~10 s that a
load left."""

MAX_REFRESH_S = 60.0
"""Rungs predicted too slow are still probed now and then (their remembered speed may date from a loaded period),
backing off to this."""

FLAP_WINDOW_S = 60.0
"""A downshift this soon after an upshift reverses it: the guard then stops probing for this long
(doubling after each reversal in a row, reset by an upshift that holds)."""

MAX_BLOCK_S = 600.0
"""Longest pause of probing after reversals in a row."""

CORE_SLACK = 0.5
"""A rung on n threads needs n - this many cores that other processes leave free: a thread with most of a core
keeps pace, one sharing a core with a busy process holds the others up at every step."""

SHIFT_HISTORY = 100
"""Shifts kept in memory (``state()`` shows the last 20)."""


def _default_rung_name(model: str, n_threads: int | None, max_tokens_scale: float, context_scale: float) -> str:
    parts = [model]
    if n_threads is not None:
        parts.append(f"{n_threads}-thread")
    if context_scale != 1.0:
        parts.append(f"{context_scale:g}x-context")
    if max_tokens_scale != 1.0:
        parts.append(f"{max_tokens_scale:g}x-tokens")
    return "/".join(parts)


@dataclass(frozen=True)
class Rung:
    """One way of serving a request: a model and its decoding knobs."""

    model: str
    """Catalog name of the model (what ``TierManager.get`` loads)."""

    n_threads: int | None = None
    """Decode threads for this rung; None leaves the engine's count as it is (``build_ladder`` always sets it)."""

    prompt_lookup: bool = True
    """Prompt-lookup speculation for this rung (passed as ``GenerationRequest.prompt_lookup``)."""

    max_tokens_scale: float = 1.0
    """Multiplies the configured ``max_tokens`` (0.5: half-length suggestions)."""

    context_scale: float = 1.0
    """Multiplies the configured prompt window (``prefix_tokens``, ``suffix_tokens``): less attention per token."""

    name: str = ""
    """Shown in the status and logs, e.g. ``qwen2.5-coder-0.5b/1-thread``; derived from the knobs when empty."""

    remote: bool = False
    """Served by a team endpoint: this machine's busy cores neither slow it nor block probing it."""

    def __post_init__(self) -> None:
        if not self.model:
            raise EngineError("A latency guard rung needs a model name")
        if self.n_threads is not None and self.n_threads < 1:
            raise EngineError(f"Rung {self.model}: thread count must be positive, got {self.n_threads}")
        if not 0 < self.max_tokens_scale <= 1:
            raise EngineError(
                f"Rung {self.model}: max_tokens_scale must be in (0, 1], got {self.max_tokens_scale}"
            )
        if not 0 < self.context_scale <= 1:
            raise EngineError(f"Rung {self.model}: context_scale must be in (0, 1], got {self.context_scale}")
        if not self.name:
            object.__setattr__(
                self,
                "name",
                _default_rung_name(self.model, self.n_threads, self.max_tokens_scale, self.context_scale),
            )


@dataclass(frozen=True)
class Shift:
    """One decision of the guard, kept for the status and logged at INFO."""

    t_s: float
    """Seconds since the guard was created."""

    from_rung: str
    to_rung: str
    reason: str
    """Figures only (tokens/s, counts): never document text."""

    direction: Literal["up", "down"]

    def to_status(self) -> dict[str, Any]:
        """The fields a completion's ``gearshift/status`` carries when it made this shift."""
        return {"reason": self.reason, "shiftFrom": self.from_rung, "shiftTo": self.to_rung,
                "shiftDirection": self.direction}

    def to_json(self) -> dict[str, Any]:
        return {
            "tS": round(self.t_s, 2),
            "from": self.from_rung,
            "to": self.to_rung,
            "reason": self.reason,
            "direction": self.direction,
        }


def build_ladder(
    installed_models: list[str],
    ladder: list[str],
    n_threads: int,
    *,
    prompt_lookup: bool = True,
    bottom_context_scale: float | None = 0.25,
    remote: frozenset[str] | set[str] = frozenset(),
) -> list[Rung]:
    """Rungs from the best quality to the cheapest for the installed models.

    ``ladder`` orders the models from largest to smallest; installed models
    missing from it (a custom ``modelPath``) go after the ladder's.  For each
    model: its full-speed rung (``n_threads`` threads, ``prompt_lookup`` as the
    engine is configured), then prompt lookup turned on if the engine has it
    off, then half the threads when ``n_threads > 1``.  The smallest model gets
    a rung whose prompt window is ``bottom_context_scale`` of the configured one
    before its fewer-threads rung (whose window is half that again); None: no such
    rung.  Less context makes suggestions worse, so only the smallest model,
    where nothing faster is left, trades it.  ``remote`` names team endpoints: one rung each, no knobs.
    """
    if n_threads < 1:
        raise EngineError(f"The latency guard needs a positive thread count, got {n_threads}")
    models = [model for model in dict.fromkeys(ladder) if model in installed_models]
    models += [model for model in dict.fromkeys(installed_models) if model not in models]
    if not models:
        raise EngineError(
            "No model of the ladder is installed "
            f"(ladder: {', '.join(ladder) or 'empty'}); "
            "run `make install` or `gearshift models list` to see what is missing"
        )
    rungs: list[Rung] = []
    local_models = [model for model in models if model not in remote]
    shorten = bottom_context_scale is not None and bottom_context_scale < 1
    for model in models:
        if model in remote:
            # A server's threads and window are its own business: one rung, measured like any other.
            rungs.append(Rung(model, n_threads=None, prompt_lookup=False, name=model, remote=True))
            continue
        position = local_models.index(model)
        rungs.append(Rung(model, n_threads=n_threads, prompt_lookup=prompt_lookup, name=model))
        tags: list[str] = []
        if not prompt_lookup:
            tags.append("lookup")
            rungs.append(Rung(model, n_threads=n_threads, prompt_lookup=True, name="/".join([model, *tags])))
        scale = 1.0
        if shorten and position == len(local_models) - 1:
            # The smallest model: a shorter window before fewer threads, because on one thread a tiny model's
            # full window is slower than the short one on all threads, and the short window on all threads is
            # where it goes back up to when a load leaves.
            scale = bottom_context_scale or 1.0
            tags.append(f"{scale:g}x-context")
            rungs.append(
                Rung(model, n_threads=n_threads, prompt_lookup=True, context_scale=scale, name="/".join([model, *tags]))
            )
        if n_threads > 1:
            fewer = n_threads // 2
            if scale < 1:
                # Halved again: on fewer threads the short window alone still hovers at the target (SmolLM2 on
                # one thread: 38-43 tok/s with a quarter window, 45-47 with an eighth).
                scale /= 2
                tags[-1] = f"{scale:g}x-context"
            tags.append(f"{fewer}-thread")
            rungs.append(
                Rung(model, n_threads=fewer, prompt_lookup=True, context_scale=scale, name="/".join([model, *tags]))
            )
    return rungs


@dataclass
class _RungStats:
    """What the guard remembers about one rung."""

    speeds: deque[tuple[float, float]]
    """(clock time, tokens/s) of the last ``window`` meaningful requests."""

    ttfts: deque[float]
    calm_speeds: deque[float]
    """Tokens/s of the last ``window`` meaningful requests run while other processes left the rung's threads
    their cores (all of them when that is unknown): what the rung can do, as opposed to what a load left it."""

    reference: float | None = None
    """Best median of a full window of ``calm_speeds``: the rung's unloaded speed as far as the guard knows
    (optimistic)."""

    samples_total: int = 0


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
    ) -> None:
        """``free_cores`` says how many cores other processes leave this one (None: unknown), e.g.
        ``CpuMonitor.free_cores``: rungs that need more threads than that are neither probed nor shifted to."""
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
        self._full_threads = max((r.n_threads for r in self._rungs if r.n_threads is not None), default=1)
        # Remote rungs have no local threads (n_threads None means "the engine's count" for local ones only).
        self._stats = [
            _RungStats(
                speeds=deque(maxlen=settings.window),
                ttfts=deque(maxlen=settings.window),
                calm_speeds=deque(maxlen=settings.window),
            )
            for _ in self._rungs
        ]
        self._arrived_at = self._started
        self._slow_streak = 0
        self._last_shift = -math.inf
        self._last_probe = -math.inf
        self._probe_wait_s = settings.probe_interval_s
        self._refresh_wait_s = max(settings.probe_interval_s, MAX_PROBE_BACKOFF_S)
        self._pending_probe: int | None = None
        """Rung index handed out by probe_rung and not yet recorded."""
        self._pending_plausible = True
        self._good_probes = 0
        self._good_probe_rung: int | None = None
        self._shifts: list[Shift] = []
        self._last_upshift = -math.inf
        self._flaps = 0
        """Upshifts reversed within FLAP_WINDOW_S, in a row."""
        self._upshift_blocked_until = -math.inf

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
        """The next smaller model on the ladder (what to keep loaded for a cold-start-free downshift)."""
        with self._lock:
            model = self._rungs[self._index].model
            return next((r.model for r in self._rungs[self._index + 1 :] if r.model != model), None)

    def state(self) -> dict[str, Any]:
        """The guard as the ``gearshift.status`` command shows it (camelCase)."""
        with self._lock:
            now = self._clock()
            rungs = []
            for i, rung in enumerate(self._rungs):
                stats = self._stats[i]
                speeds = [speed for _, speed in stats.speeds]
                rungs.append(
                    {
                        "name": rung.name,
                        "model": rung.model,
                        "nThreads": rung.n_threads,
                        "promptLookup": rung.prompt_lookup,
                        "maxTokensScale": rung.max_tokens_scale,
                        "contextScale": rung.context_scale,
                        "medianTokS": round(statistics.median(speeds), 1) if speeds else None,
                        "medianTtftMs": round(statistics.median(stats.ttfts) * 1000, 1)
                        if stats.ttfts
                        else None,
                        "referenceTokS": round(stats.reference, 1) if stats.reference is not None else None,
                        "samples": stats.samples_total,
                    }
                )
            return {
                "enabled": self._settings.enabled,
                "targetTokS": self._target,
                "current": self._rungs[self._index].name,
                "top": self._rungs[self._top].name,
                "probing": self._rungs[self._pending_probe].name if self._pending_probe is not None else None,
                "upshiftBlockedS": round(self._upshift_blocked_until - now, 1)
                if self._upshift_blocked_until > now
                else None,
                "rungs": rungs,
                "shifts": [shift.to_json() for shift in self._shifts[-20:]],
            }

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
                for stats in self._stats:
                    stats.speeds = deque(stats.speeds, maxlen=settings.window)
                    stats.calm_speeds = deque(stats.calm_speeds, maxlen=settings.window)
                    stats.ttfts = deque(stats.ttfts, maxlen=settings.window)
            self._settings = settings
            if target_tok_s is not None:
                self._target = float(target_tok_s)
            self._probe_wait_s = settings.probe_interval_s
            self._refresh_wait_s = max(settings.probe_interval_s, MAX_PROBE_BACKOFF_S)
            self._reset_probe()
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
            if (
                self._good_probes
                and self._good_probe_rung is not None
                and self._good_probe_rung < self._index
            ):
                # Confirm a fast probe on the very next request.
                return self._hand_out_probe(self._good_probe_rung, plausible=self._pending_plausible, now=now)
            if now - self._last_shift < self._settings.min_dwell_s:
                return None
            candidate = self._probe_candidate(now)
            if candidate is None:
                return None
            index, plausible = candidate
            wait = self._probe_wait_s if plausible else self._refresh_wait_s
            if not plausible and self._rungs[index].context_scale != self._rungs[self._index].context_scale:
                # Probing another prompt window evaluates the whole prompt twice (there and back: seconds on a
                # CPU), so a rung that does not even look plausible is refreshed there only once a minute.
                wait = max(wait, MAX_REFRESH_S)
            if now - self._last_probe < wait:
                return None
            return self._hand_out_probe(index, plausible=plausible, now=now)

    def expected_rung(self) -> Rung:
        """The rung the next request will most likely run on (what a prewarm should warm): the rung a fast
        probe is being confirmed on, else ``current``.  Hands nothing out."""
        with self._lock:
            confirming = self._good_probes and self._good_probe_rung is not None and self._good_probe_rung < self._index
            return self._rungs[self._good_probe_rung] if confirming else self._rungs[self._index]

    def record(self, rung: Rung, tokens_per_s: float, ttft_s: float, n_tokens: int) -> Shift | None:
        """Take one request's measurement on ``rung``; return the shift it caused, if any.

        ``tokens_per_s`` is the delivered decode speed after the first token
        (``GenerationResult.decode_tokens_per_s``); requests with fewer than
        ``MIN_TOKENS_FOR_SPEED`` tokens count for time to first token only.
        Measurements of a rung this guard does not know (a guard rebuilt since) are ignored.
        """
        with self._lock:
            index = self._position.get(rung.name)
            if index is None or self._rungs[index] != rung:
                return None
            now = self._clock()
            stats = self._stats[index]
            if n_tokens >= 1 and math.isfinite(ttft_s) and ttft_s >= 0:
                stats.ttfts.append(ttft_s)
            meaningful = n_tokens >= MIN_TOKENS_FOR_SPEED and math.isfinite(tokens_per_s) and tokens_per_s > 0
            if meaningful:
                stats.speeds.append((now, tokens_per_s))
                stats.samples_total += 1
                if not self._short_of_cores(index, self._read_free_cores()):
                    stats.calm_speeds.append(tokens_per_s)
                    if len(stats.calm_speeds) == stats.calm_speeds.maxlen:
                        # A full window only: a rung measured by sparse probes must not be judged by one burst.
                        stats.reference = max(stats.reference or 0.0, statistics.median(stats.calm_speeds))
            was_probe = index == self._pending_probe
            if was_probe:
                self._pending_probe = None
            if not self._settings.enabled:
                return None
            if not meaningful:
                if was_probe and index < self._index and n_tokens < 1:
                    # Nothing delivered at all (cancelled while its prompt evaluated: too slow up there): a failed probe.
                    return self._after_probe(index, 0.0, now)
                if was_probe and index == self._good_probe_rung:
                    # Too short to measure: the confirmation waits for the next probe instead of taking every
                    # request (each may evaluate a whole prompt on the probed window).
                    self._good_probes, self._good_probe_rung = 0, None
                return None
            if was_probe and index < self._index:
                return self._after_probe(index, tokens_per_s, now)
            if index == self._index:
                return self._after_request(tokens_per_s, now)
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
            if index == self._pending_probe:
                self._pending_probe = None
                if index < self._index:
                    return self._after_probe(index, 0.0, now)
            if index != self._index or index + 1 >= len(self._rungs) or not self._settings.enabled:
                return None
            return self._shift(index + 1, f"{rung.name} unavailable: {reason}")

    def record_result(self, rung: Rung, result: GenerationResult) -> Shift | None:
        """``record`` from an engine result."""
        return self.record(
            rung, result.decode_tokens_per_s, result.time_to_first_token_s, result.n_generated_tokens
        )

    # -- decisions (lock held) ------------------------------------------------------------------

    def _threads(self, index: int) -> int:
        threads = self._rungs[index].n_threads
        return self._full_threads if threads is None else threads

    def _read_free_cores(self) -> float | None:
        if self._free_cores is None or not self._settings.watch_cpu:
            return None
        free = self._free_cores()
        log.debug("latency guard: %s cores free", "unknown" if free is None else f"{free:.2f}")
        return free

    def _short_of_cores(self, index: int, free: float | None) -> bool:
        """Whether other processes leave fewer cores than rung ``index`` runs threads (False when unknown)."""
        if self._rungs[index].remote:
            return False
        return free is not None and free < self._threads(index) - CORE_SLACK

    def _load_factor(self, index: int, recent_speed: float | None = None) -> float | None:
        """How far the rung's recent speed (by default its window median) is below its remembered best.

        1 means unloaded; None when the rung has not been measured.
        """
        stats = self._stats[index]
        if not stats.reference:
            return None
        if recent_speed is None:
            if not stats.speeds:
                return None
            recent_speed = statistics.median(speed for _, speed in stats.speeds)
        return min(1.0, recent_speed / stats.reference)

    def _predict(self, index: int, from_index: int, recent_speed: float | None = None) -> float | None:
        """Speed rung ``index`` would deliver now, judged from rung ``from_index``; None if unknown.

        ``recent_speed`` is what ``from_index`` delivers now (by default its window median).

        A rung's remembered best bounds it.  If it runs at least as many threads as
        the rung measured now, a busy CPU slows it at least as much, so the bound
        is scaled by the measured rung's load factor; a rung on fewer threads may
        escape the contention, so only its bound is used.
        """
        stats = self._stats[index]
        reference = stats.reference
        if reference is None and stats.calm_speeds:
            # No full window yet: the fastest request seen bounds it (optimistically).
            reference = max(stats.calm_speeds)
        if reference is None:
            return None
        factor = None
        if not self._rungs[index].remote and self._threads(index) >= self._threads(from_index):
            factor = self._load_factor(from_index, recent_speed)
        return reference * (factor if factor is not None else 1.0)

    def _after_request(self, tokens_per_s: float, now: float) -> Shift | None:
        settings = self._settings
        self._slow_streak = self._slow_streak + 1 if tokens_per_s < self._target else 0
        if self._index >= len(self._rungs) - 1 or now - self._last_shift < settings.min_dwell_s:
            return None
        recent = [speed for t, speed in self._stats[self._index].speeds if t >= self._arrived_at]
        median = statistics.median(recent[-settings.window :]) if recent else tokens_per_s
        if self._slow_streak >= settings.slow_requests_to_downshift:
            basis = statistics.median(recent[-self._slow_streak :])
            why = f"{self._slow_streak} requests in a row under {self._target:g} tok/s (median {basis:.1f})"
        elif len(recent) >= settings.window and median < self._target:
            basis = median
            why = f"median of the last {settings.window} requests {median:.1f} tok/s, under {self._target:g}"
        else:
            return None
        destination, skipped = self._downshift_destination(basis)
        if skipped:
            why += "; skipped " + ", ".join(f"{name} (predicted {speed:.1f})" for name, speed in skipped)
        return self._shift(destination, why)

    def _downshift_destination(self, current_speed: float) -> tuple[int, list[tuple[str, float]]]:
        """The first rung below that could hold the target, skipping those predicted too slow.

        ``current_speed`` is what the current rung delivers now (the figure that triggered the downshift).
        """
        skipped: list[tuple[str, float]] = []
        best: tuple[float, int] | None = None
        free = self._read_free_cores()
        for index in range(self._index + 1, len(self._rungs)):
            predicted = self._predict(index, self._index, current_speed)
            if self._short_of_cores(index, free):
                # Its threads would wait on another busy process's: at best as slow as now.
                predicted = min(predicted if predicted is not None else current_speed, current_speed)
            if predicted is None or predicted >= self._target:
                return index, skipped
            skipped.append((self._rungs[index].name, predicted))
            if best is None or predicted > best[0]:
                best = (predicted, index)
        # No rung below is predicted to hold the target: take the fastest predicted (the next on ties).
        assert best is not None
        return best[1], [item for item in skipped if self._position[item[0]] < best[1]]

    def _probe_candidate(self, now: float) -> tuple[int, bool] | None:
        """The highest rung above worth probing and whether it is predicted to hold target × headroom.

        A rung predicted too slow is still probed now and then (its remembered
        speed may be from a loaded period), but on the slower refresh schedule.
        """
        needed = self._target * self._settings.upshift_headroom
        if now < self._upshift_blocked_until:
            return None
        free = self._read_free_cores()
        # A rung whose threads would share cores with another busy process cannot hold the target: not worth a
        # probe (a slow request) until the cores are free again, which is how a load leaving is noticed from
        # a rung on fewer threads, whose own speed does not change.
        open_rungs = [index for index in range(self._top, self._index) if not self._short_of_cores(index, free)]
        for index in open_rungs:
            predicted = self._predict(index, self._index)
            if predicted is None or predicted >= needed:
                return index, True
        if open_rungs:
            return open_rungs[0], False
        return None

    def _hand_out_probe(self, index: int, *, plausible: bool, now: float) -> Rung:
        self._pending_probe = index
        self._pending_plausible = plausible
        self._last_probe = now
        log.debug("latency guard: probing %s", self._rungs[index].name)
        return self._rungs[index]

    def _after_probe(self, index: int, tokens_per_s: float, now: float) -> Shift | None:
        needed = self._target * self._settings.upshift_headroom
        if tokens_per_s >= needed:
            if self._good_probe_rung != index:
                self._good_probe_rung, self._good_probes = index, 0
            self._good_probes += 1
            if self._good_probes >= PROBES_TO_UPSHIFT:
                return self._shift(
                    index,
                    f"{self._good_probes} probes in a row delivered {needed:.1f} tok/s or more "
                    f"(target {self._target:g} x headroom {self._settings.upshift_headroom:g}; "
                    f"last {tokens_per_s:.1f})",
                )
            return None
        # Still too slow up there: probe less often while it keeps failing (capped, to notice a load leaving).
        self._good_probes, self._good_probe_rung = 0, None
        if self._pending_plausible:
            self._probe_wait_s = min(
                max(self._settings.probe_interval_s, MAX_PROBE_BACKOFF_S), 2 * self._probe_wait_s
            )
        else:
            self._refresh_wait_s = min(MAX_REFRESH_S, 2 * self._refresh_wait_s)
        log.debug(
            "latency guard: probe of %s delivered %.1f tok/s, needs %.1f",
            self._rungs[index].name,
            tokens_per_s,
            needed,
        )
        return None

    def _reset_probe(self) -> None:
        self._pending_probe = None
        self._good_probes = 0
        self._good_probe_rung = None

    def _shift(self, to_index: int, reason: str) -> Shift:
        now = self._clock()
        from_index = self._index
        direction: Literal["up", "down"] = "up" if to_index < from_index else "down"
        entered_by_upshift = bool(self._shifts) and self._shifts[-1].direction == "up"
        if direction == "down" and entered_by_upshift:
            if now - self._last_upshift < FLAP_WINDOW_S:
                # The last upshift did not hold: the load comes and goes.  Stay low a while, longer each time.
                self._flaps += 1
                hold_off = min(MAX_BLOCK_S, FLAP_WINDOW_S * 2 ** (self._flaps - 1))
                self._upshift_blocked_until = now + hold_off
                reason += f"; no upshift for {hold_off:g} s (upshift reversed {self._flaps}x in a row)"
            else:
                self._flaps = 0
        elif direction == "up":
            self._last_upshift = now
        shift = Shift(
            now - self._started, self._rungs[from_index].name, self._rungs[to_index].name, reason, direction
        )
        self._index = to_index
        self._arrived_at = now
        self._slow_streak = 0
        self._last_shift = now
        self._probe_wait_s = self._settings.probe_interval_s
        self._refresh_wait_s = max(self._settings.probe_interval_s, MAX_PROBE_BACKOFF_S)
        self._reset_probe()
        self._shifts.append(shift)
        del self._shifts[:-SHIFT_HISTORY]
        log.info("latency guard: shift %s %s -> %s: %s", direction, shift.from_rung, shift.to_rung, reason)
        return shift
