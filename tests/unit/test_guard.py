"""The latency guard's decisions from synthetic measurement sequences (no model, a clock we control)."""

from __future__ import annotations

import pytest

from lsp_server.errors import EngineError
from lsp_server.inference.guard import LatencyGuard, Rung, build_ladder
from lsp_server.settings import GuardSettings

TARGET = 40.0
LADDER = ["qwen2.5-coder-1.5b", "qwen2.5-coder-0.5b", "smollm2-135m"]


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def make_guard(installed=("qwen2.5-coder-0.5b", "smollm2-135m"), n_threads=2, **settings) -> tuple[LatencyGuard, Clock]:
    clock = Clock()
    rungs = build_ladder(list(installed), LADDER, n_threads)
    return LatencyGuard(rungs, GuardSettings(**settings), target_tok_s=TARGET, clock=clock), clock


def serve(guard: LatencyGuard, clock: Clock, speed_of, seconds: float, every_s: float = 0.5, tokens: int = 24):
    """Run requests for ``seconds`` of simulated time; ``speed_of(rung, t)`` is what each rung delivers."""
    shifts = []
    end = clock.now + seconds
    while clock.now < end:
        rung = guard.probe_rung() or guard.current
        shift = guard.record(rung, speed_of(rung, clock.now), 0.05, tokens)
        if shift:
            shifts.append(shift)
        clock.now += every_s
    return shifts


UNLOADED = {"qwen2.5-coder-0.5b": 45.0, "qwen2.5-coder-0.5b/1-thread": 30.0, "smollm2-135m": 65.0,
            "smollm2-135m/1-thread": 42.0, "qwen2.5-coder-1.5b": 9.0, "qwen2.5-coder-1.5b/1-thread": 6.0}
# A busy process on one of two cores: two threads wait on each other, one thread keeps its core.
HOGGED = {"qwen2.5-coder-0.5b": 15.0, "qwen2.5-coder-0.5b/1-thread": 26.0, "smollm2-135m": 22.0,
          "smollm2-135m/1-thread": 41.0, "qwen2.5-coder-1.5b": 3.0, "qwen2.5-coder-1.5b/1-thread": 5.0}


@pytest.mark.parametrize(
    "installed, names",
    [
        pytest.param(["smollm2-135m"], ["smollm2-135m", "smollm2-135m/1-thread"], id="only-135m"),
        pytest.param(
            ["qwen2.5-coder-0.5b", "smollm2-135m"],
            ["qwen2.5-coder-0.5b", "qwen2.5-coder-0.5b/1-thread", "smollm2-135m", "smollm2-135m/1-thread"],
            id="0.5b-and-135m",
        ),
        pytest.param(LADDER, [n for m in LADDER for n in (m, f"{m}/1-thread")], id="all-three"),
    ],
)
def test_ladder_from_installed_models(installed, names):
    assert [r.name for r in build_ladder(installed, LADDER, 2)] == names


def test_single_thread_machine_has_no_thread_rungs():
    assert [r.name for r in build_ladder(["smollm2-135m"], LADDER, 1)] == ["smollm2-135m"]


def test_no_installed_model_is_a_clear_error():
    with pytest.raises(EngineError, match="No model of the ladder is installed"):
        build_ladder([], LADDER, 2)


@pytest.mark.parametrize("target", [0, -1.0])
def test_bad_target_is_a_clear_error(target):
    with pytest.raises(EngineError, match="must be positive"):
        LatencyGuard([Rung("smollm2-135m")], GuardSettings(), target_tok_s=target)


def test_steady_fast_never_shifts():
    guard, clock = make_guard()
    assert serve(guard, clock, lambda rung, t: UNLOADED[rung.name], 120) == []
    assert guard.current.name == "qwen2.5-coder-0.5b"


def test_one_slow_blip_does_not_shift():
    guard, clock = make_guard()
    speeds = iter([45, 45, 12, 45, 45, 45, 20, 45, 45])
    assert serve(guard, clock, lambda rung, t: next(speeds, 45), 4.5) == []


def test_sustained_slowness_downshifts_with_a_reason():
    guard, clock = make_guard(slow_requests_to_downshift=3)
    shifts = serve(guard, clock, lambda rung, t: HOGGED[rung.name], 1.5)  # three requests
    assert len(shifts) == 1
    assert shifts[0].from_rung == "qwen2.5-coder-0.5b" and shifts[0].to_rung == "qwen2.5-coder-0.5b/1-thread"
    assert "3 requests under 40" in shifts[0].reason and shifts[0].direction == "down"


def test_hog_walks_down_to_a_rung_that_holds_and_stays():
    guard, clock = make_guard()
    shifts = serve(guard, clock, lambda rung, t: HOGGED[rung.name], 120)
    assert guard.current.name == "smollm2-135m/1-thread"  # the first rung that holds 40 under the hog
    assert all(s.direction == "down" for s in shifts)
    assert len(shifts) == 3


def test_everything_too_slow_ends_at_the_bottom_without_oscillating():
    guard, clock = make_guard()
    shifts = serve(guard, clock, lambda rung, t: 5.0, 300)
    assert guard.current == guard.rungs[-1]
    assert len(shifts) == len(guard.rungs) - 1


def test_shifts_back_up_within_10_s_after_the_hog_stops():
    guard, clock = make_guard()
    # Learn unloaded speeds first, then the hog arrives, then leaves at t = hog_end.
    serve(guard, clock, lambda rung, t: UNLOADED[rung.name], 10)
    serve(guard, clock, lambda rung, t: HOGGED[rung.name], 60)
    assert guard.current.name == "smollm2-135m/1-thread"
    hog_end = clock.now
    shifts = serve(guard, clock, lambda rung, t: UNLOADED[rung.name], 40)
    ups = [s for s in shifts if s.direction == "up"]
    assert ups, "never shifted back up"
    assert ups[0].t_s - (hog_end - guard._started) <= 10.0
    assert guard.current.name == "qwen2.5-coder-0.5b"


def test_steady_load_near_the_target_makes_at_most_two_shifts_a_minute():
    guard, clock = make_guard()
    # Upper rung alternates just around the target, lower rung comfortably above it.
    def speed(rung, t):
        if rung.name == "qwen2.5-coder-0.5b":
            return 43.0 if int(t) % 2 else 37.0
        return 50.0

    shifts = serve(guard, clock, speed, 600, every_s=0.25)
    assert len(shifts) / 10 <= 2.0


def test_disabled_guard_records_but_never_shifts():
    guard, clock = make_guard(enabled=False)
    assert serve(guard, clock, lambda rung, t: 3.0, 60) == []
    assert guard.state()["rungs"][0]["samples"] > 0


def test_short_generations_do_not_count_for_speed():
    guard, clock = make_guard()
    for _ in range(10):
        assert guard.record(guard.current, 1.0, 0.05, n_tokens=2) is None
    assert guard.current.name == "qwen2.5-coder-0.5b"


def test_state_shape():
    guard, clock = make_guard()
    serve(guard, clock, lambda rung, t: HOGGED[rung.name], 5)
    state = guard.state()
    assert state["targetTokS"] == TARGET and state["enabled"] is True
    assert state["current"] == guard.current.name
    assert {"name", "medianTokS", "medianTtftMs", "bestTokS", "samples"} <= set(state["rungs"][0])
    assert state["shifts"] and {"tS", "from", "to", "reason", "direction"} <= set(state["shifts"][0])


def test_next_model_below_is_what_to_keep_loaded():
    guard, _ = make_guard()
    assert guard.next_model_below() == "smollm2-135m"
