"""The latency guard's decisions from synthetic measurement sequences (no model, a clock we control)."""

from __future__ import annotations

import logging
import math
import random
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from itertools import pairwise

import pytest
from pydantic import ValidationError

from lsp_server.errors import EngineError
from lsp_server.inference.guard import LatencyGuard, Rung, Shift, build_ladder
from lsp_server.inference.guard.probes import FLAP_WINDOW_S, MAX_PROBE_BACKOFF_S, MAX_REFRESH_S
from lsp_server.settings import GuardSettings

TARGET = 40.0
LADDER = ["qwen2.5-coder-1.5b", "qwen2.5-coder-0.5b", "smollm2-135m"]
TWO = ["qwen2.5-coder-0.5b", "smollm2-135m"]
Q05, Q05_1 = "qwen2.5-coder-0.5b", "qwen2.5-coder-0.5b/1-thread"
S135, S135_1, S135_SHORT = "smollm2-135m", "smollm2-135m/0.25x-context", "smollm2-135m/0.125x-context/1-thread"
T0 = 1000.0

# What each rung of the 0.5B + 135M ladder delivers on two cores, alone and next to a process busy on one core
# (two threads wait on each other there; one thread keeps its core).
UNLOADED = {Q05: 60.0, Q05_1: 38.0, S135: 90.0, S135_1: 55.0, S135_SHORT: 56.0}
HOGGED = {Q05: 18.0, Q05_1: 30.0, S135: 25.0, S135_1: 48.0, S135_SHORT: 49.0}
# This machine's real figures, roughly: the 0.5B cannot hold 40 tok/s on two vCPUs without prompt lookup paying.
THIS_MACHINE = {Q05: 21.0, Q05_1: 13.0, S135: 65.0, S135_1: 40.5, S135_SHORT: 41.0}


class Clock:
    def __init__(self) -> None:
        self.now = T0

    def __call__(self) -> float:
        return self.now


def make_guard(
    installed: list[str] = TWO, n_threads: int = 2, start_index: int = 0, free_cores=None, **settings
) -> tuple[LatencyGuard, Clock]:
    clock = Clock()
    rungs = build_ladder(list(installed), LADDER, n_threads)
    guard = LatencyGuard(
        rungs,
        GuardSettings(**settings),
        target_tok_s=TARGET,
        start_index=start_index,
        clock=clock,
        free_cores=free_cores,
    )
    return guard, clock


@dataclass
class Run:
    shifts: list[Shift] = field(default_factory=list)
    probes: list[tuple[float, str]] = field(default_factory=list)
    served: list[tuple[float, str, float]] = field(default_factory=list)

    @property
    def ups(self) -> list[Shift]:
        return [s for s in self.shifts if s.direction == "up"]


SpeedOf = Callable[[str, float], float]


def serve(guard: LatencyGuard, clock: Clock, speed_of: SpeedOf, seconds: float, every_s: float = 0.5) -> Run:
    """Requests for ``seconds`` of simulated time; ``speed_of(rung name, t since start)`` is what a rung delivers."""
    run = Run()
    end = clock.now + seconds
    while clock.now < end - 1e-9:
        probe = guard.probe_rung()
        rung = probe or guard.current
        t = clock.now - T0
        speed = speed_of(rung.name, t)
        if probe:
            run.probes.append((t, rung.name))
        run.served.append((t, rung.name, speed))
        shift = guard.record(rung, speed, 0.05, 24)
        if shift:
            run.shifts.append(shift)
        clock.now += every_s
    return run


def table(speeds: dict[str, float]) -> SpeedOf:
    return lambda name, t: speeds[name]


def most_shifts_in_a_minute(shifts: list[Shift], after_s: float = 0.0) -> int:
    times = [s.t_s for s in shifts if s.t_s >= after_s]
    return max((sum(1 for u in times if t <= u < t + 60) for t in times), default=0)


# -- ladder ----------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "installed, n_threads, names",
    [
        pytest.param([S135], 2, [S135, S135_1, S135_SHORT], id="only-135m"),
        pytest.param(TWO, 2, [Q05, Q05_1, S135, S135_1, S135_SHORT], id="0.5b-and-135m"),
        pytest.param(
            LADDER,
            2,
            ["qwen2.5-coder-1.5b", "qwen2.5-coder-1.5b/1-thread", Q05, Q05_1, S135, S135_1, S135_SHORT],
            id="all-three",
        ),
        pytest.param(list(reversed(LADDER)), 2, build_ladder(LADDER, LADDER, 2), id="ladder-order-wins"),
        pytest.param([S135], 1, [S135, "smollm2-135m/0.25x-context"], id="single-core"),
        pytest.param(
            [S135], 8, [S135, S135_1, "smollm2-135m/0.125x-context/4-thread"], id="eight-cores"
        ),
        pytest.param(
            ["custom", S135],
            2,
            [S135, "smollm2-135m/1-thread", "custom", "custom/0.25x-context", "custom/0.125x-context/1-thread"],
            id="model-outside-the-ladder-goes-last",
        ),
    ],
)
def test_ladder_from_installed_models(installed, n_threads, names):
    expected = [n if isinstance(n, str) else n.name for n in names]
    assert [r.name for r in build_ladder(installed, LADDER, n_threads)] == expected


def test_ladder_with_prompt_lookup_off_turns_it_on_before_dropping_threads():
    rungs = build_ladder([S135], LADDER, 2, prompt_lookup=False, bottom_context_scale=None)
    assert [(r.name, r.prompt_lookup, r.n_threads) for r in rungs] == [
        (S135, False, 2),
        ("smollm2-135m/lookup", True, 2),
        ("smollm2-135m/lookup/1-thread", True, 1),
    ]


def test_full_speed_rungs_name_their_thread_count_so_an_upshift_restores_it():
    rungs = build_ladder(TWO, LADDER, 2)
    assert [r.n_threads for r in rungs] == [2, 1, 2, 2, 1]
    assert [r.context_scale for r in rungs] == [1.0, 1.0, 1.0, 0.25, 0.125]


@pytest.mark.parametrize(
    "installed, ladder",
    [
        pytest.param([], LADDER, id="nothing-installed"),
        pytest.param([], [], id="empty-ladder"),
    ],
)
def test_no_installed_model_is_a_clear_error(installed, ladder):
    with pytest.raises(EngineError, match="No model of the ladder is installed"):
        build_ladder(installed, ladder, 2)


def test_zero_threads_is_a_clear_error():
    with pytest.raises(EngineError, match="positive thread count"):
        build_ladder([S135], LADDER, 0)


@pytest.mark.parametrize(
    "kwargs, message",
    [
        pytest.param({"n_threads": 0}, "thread count must be positive", id="zero-threads"),
        pytest.param({"max_tokens_scale": 0.0}, "max_tokens_scale", id="zero-scale"),
        pytest.param({"max_tokens_scale": 1.5}, "max_tokens_scale", id="scale-above-one"),
        pytest.param({"context_scale": 0.0}, "context_scale", id="zero-context"),
    ],
)
def test_bad_rung_is_a_clear_error(kwargs, message):
    with pytest.raises(EngineError, match=message):
        Rung(S135, **kwargs)


def test_rung_names_default_from_their_knobs():
    assert Rung(S135).name == S135
    assert Rung(S135, n_threads=1, context_scale=0.25).name == "smollm2-135m/1-thread/0.25x-context"
    assert Rung(S135, max_tokens_scale=0.5).name == "smollm2-135m/0.5x-tokens"


# -- construction ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "target",
    [
        pytest.param(0, id="zero"),
        pytest.param(-1.0, id="negative"),
        pytest.param(math.nan, id="nan"),
        pytest.param(math.inf, id="infinite"),
    ],
)
def test_bad_target_is_a_clear_error(target):
    with pytest.raises(EngineError, match="target must be a positive number"):
        LatencyGuard([Rung(S135)], GuardSettings(), target_tok_s=target)


def test_bad_target_in_settings_is_refused_by_validation():
    with pytest.raises(ValidationError, match="inline_target_tok_s"):
        GuardSettings(inline_target_tok_s=0)


@pytest.mark.parametrize(
    "rungs, message",
    [
        pytest.param([], "at least one rung", id="no-rungs"),
        pytest.param([Rung(S135), Rung(S135)], "distinct names", id="duplicate-names"),
    ],
)
def test_bad_rungs_are_a_clear_error(rungs, message):
    with pytest.raises(EngineError, match=message):
        LatencyGuard(rungs, GuardSettings(), target_tok_s=TARGET)


# -- downshifts ------------------------------------------------------------------------------------


def test_steady_fast_never_shifts():
    guard, clock = make_guard()
    run = serve(guard, clock, table(UNLOADED), 300)
    assert run.shifts == [] and run.probes == []
    assert guard.current.name == Q05


@pytest.mark.parametrize(
    "speeds",
    [
        pytest.param([12] + [45] * 11, id="blip-first"),
        pytest.param([45, 45, 12, 45, 45, 45, 20, 45, 45, 45, 45, 3], id="isolated-blips"),
        pytest.param([45, 30, 45, 45, 45, 31, 45, 45], id="slow-requests-a-window-apart"),
        pytest.param(([45] * 4 + [10]) * 6, id="one-slow-in-five"),
    ],
)
def test_short_slowness_does_not_shift(speeds):
    guard, clock = make_guard()
    feed = iter(speeds)
    run = serve(guard, clock, lambda name, t: next(feed), 0.5 * len(speeds))
    assert run.shifts == []


@pytest.mark.parametrize("needed", [pytest.param(n, id=f"{n}-slow-requests") for n in (2, 3, 5)])
def test_sustained_slowness_downshifts_one_rung_after_n_requests_with_a_reason(needed):
    guard, clock = make_guard(slow_requests_to_downshift=needed, window=8)
    run = serve(guard, clock, table(HOGGED), 0.5 * (needed - 1))
    assert run.shifts == []
    run = serve(guard, clock, table(HOGGED), 0.5)
    [shift] = run.shifts
    assert (shift.from_rung, shift.to_rung, shift.direction) == (Q05, Q05_1, "down")
    assert f"{needed} requests in a row under 40 tok/s (median 18.0)" in shift.reason
    assert guard.current.name == Q05_1


def test_a_window_whose_median_is_under_target_downshifts():
    guard, clock = make_guard(slow_requests_to_downshift=3, window=4)
    feed = iter([45, 20, 20, 45])
    run = serve(guard, clock, lambda name, t: next(feed), 2.0)
    [shift] = run.shifts
    assert "median of the last 4 requests 32.5 tok/s, under 40" in shift.reason


def test_no_second_shift_within_min_dwell():
    guard, clock = make_guard(min_dwell_s=5.0)
    run = serve(guard, clock, lambda name, t: 5.0, 12.0, every_s=0.5)
    times = [s.t_s for s in run.shifts]
    assert len(times) >= 2 and all(b - a >= 5.0 for a, b in pairwise(times))


def test_hog_walks_down_to_the_first_rung_that_holds_and_stays():
    guard, clock = make_guard()
    run = serve(guard, clock, table(HOGGED), 300)
    assert [s.to_rung for s in run.shifts] == [Q05_1, S135, S135_1]
    assert guard.current.name == S135_1


def test_remembered_speeds_let_a_downshift_skip_rungs_that_cannot_hold():
    guard, clock = make_guard(window=8)
    for name in (Q05_1, S135, S135_1, Q05):  # earlier measurements of every rung, machine idle
        for _ in range(8):
            guard.record(next(r for r in guard.rungs if r.name == name), UNLOADED[name], 0.05, 24)
    run = serve(guard, clock, table(HOGGED), 1.5)
    [shift] = run.shifts
    # The short-window rung on all threads is as hogged as the rung measured now; one thread escapes it.
    assert (shift.from_rung, shift.to_rung) == (Q05, S135_SHORT)
    assert f"skipped {Q05_1} (predicted 38.0), {S135} (predicted 27.0), {S135_1} (predicted 16.5)" in shift.reason


@pytest.mark.parametrize(
    "speed",
    [pytest.param(5.0, id="hopeless"), pytest.param(39.0, id="just-under-target")],
)
def test_too_slow_everywhere_walks_to_the_bottom_and_stays(speed):
    guard, clock = make_guard()
    run = serve(guard, clock, lambda name, t: speed, 600)
    assert guard.current == guard.rungs[-1]
    assert len(run.shifts) == len(guard.rungs) - 1 and not run.ups
    # Rungs already seen too slow are only re-measured now and then, backing off to once a minute.
    late = [t for t, _ in run.probes if t > 300]
    assert len(late) <= 300 / MAX_REFRESH_S + 1


def test_this_machine_settles_on_the_135m_and_does_not_probe_back_often():
    guard, clock = make_guard()
    run = serve(guard, clock, table(THIS_MACHINE), 600)
    assert guard.current.name == S135
    assert len(run.shifts) == 2 and not run.ups
    assert len(run.probes) <= 600 / MAX_REFRESH_S + 6
    assert sum(1 for _, name, _ in run.served if name == S135) / len(run.served) > 0.97


# -- upshifts --------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "hog_s, every_s",
    [
        pytest.param(30, 0.5, id="short-hog"),
        pytest.param(180, 0.5, id="long-hog"),
        pytest.param(60, 1.0, id="slow-typist"),
        pytest.param(60, 0.25, id="fast-typist"),
    ],
)
def test_shifts_back_up_within_10_s_after_the_hog_stops(hog_s, every_s):
    guard, clock = make_guard()
    serve(guard, clock, table(UNLOADED), 10, every_s)  # the machine idle: learn what the top rung can do
    during = serve(guard, clock, table(HOGGED), hog_s, every_s)
    assert guard.current.name == S135_1 and not during.ups
    hog_end = clock.now - T0
    after = serve(guard, clock, table(UNLOADED), 40, every_s)
    assert after.ups, "never shifted back up"
    assert after.ups[0].t_s - hog_end <= 10.0
    assert (after.ups[0].to_rung, after.ups[0].direction) == (Q05, "up")
    assert "2 probes in a row delivered 52.0 tok/s or more" in after.ups[0].reason
    assert guard.current.name == Q05 and len(after.shifts) == 1


def test_a_hog_present_from_the_start_is_left_within_a_refresh_period():
    guard, clock = make_guard()
    serve(guard, clock, table(HOGGED), 120)
    assert guard.current.name == S135_1
    hog_end = clock.now - T0
    after = serve(guard, clock, table(UNLOADED), 120)
    assert after.ups and after.ups[0].t_s - hog_end <= MAX_REFRESH_S + 5
    assert guard.current.name == Q05


def test_probes_back_off_while_the_hog_stays():
    guard, clock = make_guard(probe_interval_s=3.0)
    serve(guard, clock, table(UNLOADED), 10)
    run = serve(guard, clock, table(HOGGED), 120)
    late = [t for t, _ in run.probes if t > 60]
    gaps = [b - a for a, b in pairwise(late)]
    assert gaps and min(gaps) >= MAX_PROBE_BACKOFF_S - 1e-9


def test_one_lucky_probe_does_not_shift_up():
    guard, clock = make_guard()
    serve(guard, clock, table(UNLOADED), 10)
    serve(guard, clock, table(HOGGED), 60)
    assert guard.current.name == S135_1
    lucky = iter([200.0])  # a prompt-lookup burst on the first probe only

    def speed(name, t):
        return next(lucky, HOGGED[name]) if name == Q05 else HOGGED[name]

    run = serve(guard, clock, speed, 60)
    assert len([p for p in run.probes if p[1] == Q05]) >= 2
    assert run.shifts == []


def test_never_probes_above_the_configured_model():
    guard, clock = make_guard(installed=LADDER, start_index=2)
    assert guard.current.name == Q05
    serve(guard, clock, table(HOGGED | {"qwen2.5-coder-1.5b": 90, "qwen2.5-coder-1.5b/1-thread": 90}), 60)
    run = serve(
        guard, clock, table(UNLOADED | {"qwen2.5-coder-1.5b": 90, "qwen2.5-coder-1.5b/1-thread": 90}), 60
    )
    assert all(not name.startswith("qwen2.5-coder-1.5b") for _, name in run.probes)
    assert guard.current.name == Q05


def test_a_late_measurement_of_an_upper_rung_is_not_taken_for_a_probe():
    guard, clock = make_guard()
    serve(guard, clock, table(HOGGED), 30)
    upper = guard.rungs[0]
    for _ in range(5):
        assert guard.record(upper, 200.0, 0.05, 24) is None
    assert guard.current.name == S135_1


# -- hysteresis ------------------------------------------------------------------------------------


def _hover(name: str, t: float) -> float:
    return (43.0 if int(t) % 2 else 37.0) if name == Q05 else 50.0


def _noisy(name: str, t: float) -> float:
    noise = random.Random(f"{name}@{t}")  # the same sequence on every run
    return max(1.0, noise.gauss(UNLOADED[name] * 0.7, 8.0))


def _intermittent(name: str, t: float) -> float:
    return (UNLOADED if int(t / 5) % 2 else HOGGED)[name]


def _bursty(name: str, t: float) -> float:
    # Prompt lookup pays now and then (a line copied from above): one request in seven is very fast.
    return 150.0 if int(t * 4) % 7 == 0 else HOGGED[name]


@pytest.mark.parametrize(
    "speed_of, every_s",
    [
        pytest.param(_hover, 0.25, id="hovering-around-target"),
        pytest.param(_noisy, 0.5, id="noisy-around-target"),
        pytest.param(_intermittent, 0.5, id="load-on-off-every-5s"),
        pytest.param(_bursty, 0.25, id="prompt-lookup-bursts"),
    ],
)
def test_steady_load_makes_at_most_two_shifts_a_minute(speed_of, every_s):
    guard, clock = make_guard()
    run = serve(guard, clock, speed_of, 600, every_s)
    assert len(run.shifts) / 10 <= 2.0
    assert most_shifts_in_a_minute(run.shifts, after_s=FLAP_WINDOW_S) <= 2


def test_a_reversed_upshift_pauses_probing_for_a_while():
    guard, clock = make_guard()
    serve(guard, clock, table(UNLOADED), 10)
    serve(guard, clock, table(HOGGED), 30)
    serve(guard, clock, table(UNLOADED), 15)  # hog gone: back up to the top...
    assert guard.current.name == Q05
    run = serve(guard, clock, table(HOGGED), 20)  # ...and it returns at once
    assert "no upshift for 60 s (upshift reversed 1x in a row)" in run.shifts[0].reason
    blocked = guard.state()["upshiftBlockedS"]
    assert blocked is not None and 30 < blocked < 60
    assert serve(guard, clock, table(UNLOADED), blocked - 1).probes == []
    assert serve(guard, clock, table(UNLOADED), 15).ups


# -- switches and bookkeeping ----------------------------------------------------------------------


def test_disabled_guard_records_but_never_shifts():
    guard, clock = make_guard(enabled=False)
    run = serve(guard, clock, lambda name, t: 3.0, 60)
    assert run.shifts == [] and run.probes == []
    state = guard.state()
    assert state["enabled"] is False and state["rungs"][0]["samples"] == 120


def test_turning_the_guard_off_returns_to_the_configured_model():
    guard, clock = make_guard()
    serve(guard, clock, table(HOGGED), 30)
    assert guard.current.name != Q05
    shift = guard.update_settings(GuardSettings(enabled=False))
    assert shift is not None and shift.to_rung == Q05 and "turned off" in shift.reason
    assert serve(guard, clock, table(HOGGED), 30).shifts == []


def test_new_target_applies_without_losing_measurements():
    guard, clock = make_guard()
    serve(guard, clock, table(UNLOADED), 5)
    guard.update_settings(GuardSettings(window=8), target_tok_s=70.0)
    assert guard.target == 70.0 and guard.state()["rungs"][0]["medianTokS"] == 60.0
    run = serve(guard, clock, table(UNLOADED), 5)
    assert run.shifts and "under 70 tok/s" in run.shifts[0].reason


@pytest.mark.parametrize("n_tokens", [pytest.param(n, id=f"{n}-tokens") for n in (0, 1, 2, 3)])
def test_short_generations_do_not_count_for_speed(n_tokens):
    guard, clock = make_guard()
    for _ in range(10):
        assert guard.record(guard.current, 1.0, 0.05, n_tokens=n_tokens) is None
        clock.now += 1
    assert guard.current.name == Q05
    assert guard.state()["rungs"][0]["samples"] == 0


def test_short_generations_neither_break_nor_extend_a_slow_streak():
    guard, clock = make_guard(slow_requests_to_downshift=3)
    rung = guard.current
    assert guard.record(rung, 10.0, 0.05, 24) is None
    assert guard.record(rung, 10.0, 0.05, 24) is None
    assert guard.record(rung, 99.0, 0.05, 2) is None
    assert guard.record(rung, 10.0, 0.05, 24) is not None


@pytest.mark.parametrize(
    "speed",
    [pytest.param(0.0, id="zero"), pytest.param(math.nan, id="nan"), pytest.param(math.inf, id="inf")],
)
def test_meaningless_speeds_are_ignored(speed):
    guard, clock = make_guard(slow_requests_to_downshift=1)
    assert guard.record(guard.current, speed, 0.05, 24) is None
    assert guard.state()["rungs"][0]["samples"] == 0


def test_a_rung_from_another_ladder_is_ignored():
    guard, _ = make_guard(slow_requests_to_downshift=1)
    assert guard.record(Rung("qwen2.5-coder-7b"), 1.0, 0.05, 24) is None
    assert guard.record(Rung(Q05, n_threads=3, name=Q05), 1.0, 0.05, 24) is None
    assert guard.current.name == Q05


def test_state_shape():
    guard, clock = make_guard()
    serve(guard, clock, table(HOGGED), 5)
    state = guard.state()
    assert set(state) == {
        "enabled",
        "targetTokS",
        "current",
        "top",
        "probing",
        "upshiftBlockedS",
        "qualityFloor",
        "qualitySource",
        "rungs",
        "shifts",
    }
    assert state["targetTokS"] == TARGET and state["enabled"] is True
    assert state["current"] == guard.current.name and state["top"] == Q05
    assert [r["name"] for r in state["rungs"]] == [r.name for r in guard.rungs]
    assert set(state["rungs"][0]) == {
        "name",
        "model",
        "nThreads",
        "promptLookup",
        "maxTokensScale",
        "contextScale",
        "medianTokS",
        "medianTtftMs",
        "referenceTokS",
        "samples",
        "quality",
        "belowQualityFloor",
    }
    assert state["rungs"][0]["medianTokS"] == 18.0 and state["rungs"][0]["medianTtftMs"] == 50.0
    assert state["rungs"][-1]["medianTokS"] is None
    assert state["shifts"] == [guard.shifts[0].to_json()]
    assert set(state["shifts"][0]) == {"tS", "from", "to", "reason", "direction"}


def test_state_shows_only_the_last_20_shifts():
    guard, clock = make_guard(installed=[S135], n_threads=1, min_dwell_s=0, probe_interval_s=1)
    for _ in range(15):  # down, then back up after the reversal block has passed
        serve(guard, clock, table({S135: 10.0, "smollm2-135m/0.25x-context": 10.0}), 2)
        clock.now += 10 * FLAP_WINDOW_S
        serve(guard, clock, table({S135: 90.0, "smollm2-135m/0.25x-context": 90.0}), 2)
    assert len(guard.shifts) == 30
    assert guard.state()["shifts"] == [s.to_json() for s in guard.shifts[-20:]]


def test_every_shift_is_logged_at_info_with_its_reason(caplog):
    guard, clock = make_guard()
    with caplog.at_level(logging.INFO, logger="lsp_server.inference.guard"):
        run = serve(guard, clock, table(HOGGED), 30)
    messages = [r.getMessage() for r in caplog.records if r.levelno == logging.INFO]
    assert len(messages) == len(run.shifts) == 3
    assert all(s.reason in m and s.to_rung in m for s, m in zip(run.shifts, messages, strict=True))


def test_next_model_below_is_what_to_keep_loaded():
    guard, clock = make_guard()
    assert guard.next_model_below() == S135
    serve(guard, clock, table(HOGGED), 60)
    assert guard.next_model_below() is None


def test_records_from_a_worker_thread_while_state_is_read():
    guard, clock = make_guard(min_dwell_s=0)
    errors: list[BaseException] = []

    def worker() -> None:
        try:
            for i in range(2000):
                rung = guard.probe_rung() or guard.current
                guard.record(rung, 10.0 if i % 400 < 200 else 90.0, 0.05, 24)
        except BaseException as exc:  # pragma: no cover - reported below
            errors.append(exc)

    threads = [threading.Thread(target=worker) for _ in range(2)]
    for thread in threads:
        thread.start()
    while any(thread.is_alive() for thread in threads):
        state = guard.state()
        assert state["current"] in {r.name for r in guard.rungs}
    for thread in threads:
        thread.join()
    assert not errors
    assert sum(r["samples"] for r in guard.state()["rungs"]) == 4000


def test_rungs_on_another_prompt_window_are_refreshed_at_most_once_a_minute():
    guard, clock = make_guard()
    speeds = {Q05: 10.0, Q05_1: 10.0, S135: 30.0, S135_1: 45.0, S135_SHORT: 45.0}
    run = serve(guard, clock, table(speeds), 400)
    assert guard.current.name == S135_1  # the short window on all threads holds the target
    full_window = [t for t, name in run.probes if name in (Q05, Q05_1, S135)]
    assert full_window, "slow rungs are still re-measured now and then"
    assert all(b - a >= MAX_REFRESH_S - 1e-6 for a, b in zip(full_window, full_window[1:], strict=False))


def probes_delivering_nothing(guard: LatencyGuard, clock: Clock, seconds: float, speed_of) -> list[float]:
    """Requests every 0.5 s; each probe's time budget runs out in the prompt (not one token). Probe times."""
    probes = []
    for _ in range(int(seconds / 0.5)):
        clock.now += 0.5
        rung = guard.probe_rung()
        if rung is not None:
            probes.append(clock.now)
            guard.record(rung, 0.0, 3.0, 0)
        else:
            guard.record(guard.current, speed_of(guard.current.name), 0.05, 12)
    return probes


def test_a_rung_seen_slow_before_its_window_filled_is_not_probed_as_plausible():
    guard, clock = make_guard(installed=[S135])
    for _ in range(3):  # three slow requests (fewer than a full window): down to the short window
        guard.record(guard.current, 30.0, 0.05, 12)
        clock.now += 1.0
    assert guard.current.name == S135_1
    probes = probes_delivering_nothing(guard, clock, 30, lambda name: 45.0)
    # The top rung, seen at 30 tok/s, is not plausible: refreshed on its other window at most once a minute.
    assert len(probes) <= 1


def test_a_probe_that_delivers_nothing_counts_as_failed_and_backs_off():
    guard, clock = make_guard(installed=[S135])
    serve(guard, clock, table(UNLOADED), 10)  # the top rung's window fills at full speed: it is remembered fast
    serve(guard, clock, table(HOGGED), 10)  # a load arrives: down, and the top still looks plausible
    assert guard.current.name != S135
    probes = probes_delivering_nothing(guard, clock, 60, HOGGED.__getitem__)
    gaps = [b - a for a, b in zip(probes, probes[1:], strict=False)]
    assert gaps and gaps[-1] >= MAX_PROBE_BACKOFF_S - 1e-6  # backed off, as after a probe measured too slow


# -- free cores --------------------------------------------------------------------------------------

# This machine's 135M ladder, roughly: two threads next to a process busy on one of the two cores wait on each
# other; the one-thread rung keeps its core and its speed, so its own measurements cannot tell the load left.
ONE_CORE_HOG = {S135: 12.0, S135_1: 18.0, S135_SHORT: 46.0}
NO_HOG = {S135: 60.0, S135_1: 70.0, S135_SHORT: 46.0}


class Cores:
    """What a CpuMonitor would read: cores other processes leave free."""

    def __init__(self, free: float | None) -> None:
        self.free = free

    def __call__(self) -> float | None:
        return self.free


@pytest.mark.parametrize("watch_cpu", [True, False])
def test_busy_cores_keep_probes_off_two_thread_rungs_and_freed_cores_bring_the_guard_back_up(watch_cpu):
    cores = Cores(2.0)
    guard, clock = make_guard(installed=[S135], free_cores=cores, watch_cpu=watch_cpu)
    serve(guard, clock, table(NO_HOG), 10)  # learn the rungs' unloaded speeds
    assert guard.current.name == S135
    cores.free = 1.0
    during = serve(guard, clock, table(ONE_CORE_HOG), 120)
    assert guard.current.name == S135_SHORT
    slow_probes = [(t, name) for t, name in during.probes if name != S135_SHORT]
    if watch_cpu:
        # Straight down to the one-thread rung (the two-thread short window would wait on the hog too), and not
        # one probe (a slow request) up there while the cores stay busy.
        assert [s.to_rung for s in during.shifts] == [S135_SHORT]
        assert "skipped smollm2-135m/0.25x-context" in during.shifts[0].reason
        assert slow_probes == []
    else:
        assert slow_probes, "without the cores reading the guard probes on its schedule"
    cores.free = 2.0
    hog_end = clock.now - T0
    after = serve(guard, clock, table(NO_HOG), 30)
    assert after.ups and after.ups[0].t_s - hog_end <= 10.0


def test_unknown_free_cores_leave_the_decisions_to_measured_speeds():
    guard, clock = make_guard(installed=[S135], free_cores=Cores(None))
    serve(guard, clock, table(NO_HOG), 10)
    during = serve(guard, clock, table(ONE_CORE_HOG), 60)
    assert during.probes, "probing upward on the schedule as without a reading"


def test_a_prewarm_warms_the_rung_a_fast_probe_is_being_confirmed_on():
    guard, clock = make_guard(installed=[S135], free_cores=Cores(2.0))
    serve(guard, clock, table(NO_HOG), 10)
    serve(guard, clock, table(ONE_CORE_HOG), 60)
    assert guard.expected_rung() == guard.current
    for _ in range(40):  # the hog left: requests until a probe runs and is fast
        clock.now += 0.5
        probe = guard.probe_rung()
        if probe is not None:
            guard.record(probe, NO_HOG[probe.name], 0.05, 24)
            break
        guard.record(guard.current, NO_HOG[guard.current.name], 0.05, 24)
    assert probe is not None and probe != guard.current
    assert guard.expected_rung() == probe  # the confirmation comes next: its window is what to keep warm


def test_a_confirmation_too_short_to_measure_does_not_make_every_request_a_probe():
    guard, clock = make_guard(installed=[S135], free_cores=Cores(2.0))
    serve(guard, clock, table(NO_HOG), 10)
    serve(guard, clock, table(ONE_CORE_HOG), 60)
    probes = []
    fast_once = False
    for _ in range(40):
        clock.now += 0.5
        probe = guard.probe_rung()
        if probe is None:
            guard.record(guard.current, NO_HOG[guard.current.name], 0.05, 24)
            continue
        probes.append(clock.now)
        if not fast_once:
            guard.record(probe, NO_HOG[probe.name], 0.05, 24)  # a fast probe...
            fast_once = True
        else:
            guard.record(probe, 0.0, 2.0, 1)  # ...then confirmations that deliver one token
    assert guard.current.name == S135_SHORT
    gaps = [b - a for a, b in pairwise(probes[1:])]
    assert gaps and min(gaps) >= 3.0 - 1e-9  # back on the probe schedule, not every request


def test_a_rung_measured_only_while_its_cores_were_busy_is_probed_once_they_are_free():
    cores = Cores(2.0)
    guard, clock = make_guard(installed=[S135], free_cores=cores)
    serve(guard, clock, table({**NO_HOG, S135: 30.0}), 1.2)  # the full window is too slow even unloaded
    assert guard.current.name == S135_1
    cores.free = 1.0  # a hog arrives before the short window was measured unloaded: it fills with hogged speeds
    serve(guard, clock, table(ONE_CORE_HOG), 60)
    assert guard.current.name == S135_SHORT
    cores.free = 2.0
    hog_end = clock.now - T0
    after = serve(guard, clock, table(NO_HOG), 30)
    assert after.ups and after.ups[0].to_rung == S135_1 and after.ups[0].t_s - hog_end <= 10.0


def test_on_free_cores_a_slow_model_is_not_moved_to_fewer_threads_of_itself():
    # The 0.5B on a quiet 2-vCPU machine: 21-27 tok/s on two threads.  One thread would only halve that (it was
    # shifted there in a Neovim session); the guard goes to the next model instead.
    guard, clock = make_guard(installed=TWO, free_cores=Cores(2.0))
    run = serve(guard, clock, table(THIS_MACHINE), 10)
    assert run.shifts and run.shifts[0].to_rung == S135
    assert Q05_1 in run.shifts[0].reason  # said why it was passed over
    # Another process on one core: fewer threads may well be faster, and are tried.
    busy, clock = make_guard(installed=TWO, free_cores=Cores(1.0))
    run = serve(busy, clock, table(HOGGED), 10)
    assert run.shifts[0].to_rung == Q05_1
