"""The latency guard's quality floor and its single-line rule, with synthetic measurements (no model)."""

from __future__ import annotations

import json

import pytest

from lsp_server.inference.guard import LatencyGuard, Rung, build_ladder
from lsp_server.inference.guard.quality import (
    SHIPPED_TABLE,
    QualityTable,
    quality_table,
    shipped_table,
    table_from_eval,
    table_from_json,
)
from lsp_server.settings import GuardSettings

TARGET = 40.0
Q05, Q05_1 = "qwen2.5-coder-0.5b", "qwen2.5-coder-0.5b/1-thread"
S135 = "smollm2-135m"
TWO = [Q05, S135]
# Shaped like the shipped table: the 135M shows a right line far less often, and less still on a short window.
MEASURED = table_from_json(
    {"models": {Q05: {"1": 0.60}, S135: {"1": 0.30, "0.25": 0.20, "0.125": 0.12}}}, "test table"
)
# A busy machine: the 0.5B is slow on two threads and on one; the 135M would be fast.
HOGGED = {Q05: 18.0, Q05_1: 30.0, S135: 70.0}


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def make_guard(quality: QualityTable | None = MEASURED, **settings) -> tuple[LatencyGuard, Clock]:
    clock = Clock()
    rungs = build_ladder(TWO, TWO, 2)
    guard = LatencyGuard(rungs, GuardSettings(**settings), target_tok_s=TARGET, clock=clock, quality=quality)
    return guard, clock


def speed_of(rung: Rung) -> float:
    return HOGGED.get(rung.name, HOGGED[rung.model])


def serve(guard: LatencyGuard, clock: Clock, seconds: float, *, line_s: float | None = None) -> list[str]:
    """Requests every 0.5 s; the rung names they ran on."""
    served = []
    end = clock.now + seconds
    while clock.now < end:
        rung = guard.probe_rung() or guard.current
        served.append(rung.name)
        guard.record(rung, speed_of(rung), 0.05, 24, line_s=line_s)
        clock.now += 0.5
    return served


def test_a_slow_machine_never_shifts_to_a_rung_under_the_floor():
    guard, clock = make_guard()
    served = serve(guard, clock, 120)
    assert {name.split("/")[0] for name in served} == {Q05}, "the 135M's suggestions are right half as often"
    assert guard.current.name == Q05_1  # the faster of the rungs that clear the floor
    state = guard.state()
    assert state["qualityFloor"] == 0.75 and state["qualitySource"] == "test table"
    floor_flags = {r["name"]: r["belowQualityFloor"] for r in state["rungs"]}
    assert floor_flags[Q05] is False and floor_flags[Q05_1] is False
    assert all(flag for name, flag in floor_flags.items() if name.startswith(S135))


def test_without_a_floor_the_guard_goes_down_to_the_fast_small_model():
    # The old behaviour, kept for a user who wants speed whatever the quality (and what the floor changes).
    guard, clock = make_guard(quality_floor=0.0)
    serve(guard, clock, 120)
    assert guard.current.model == S135


def test_an_unmeasured_rung_is_not_judged():
    guard, clock = make_guard(quality=QualityTable())
    serve(guard, clock, 120)
    assert guard.current.model == S135
    assert all(r["quality"] is None and r["belowQualityFloor"] is False for r in guard.state()["rungs"])


def test_floor_is_a_share_of_the_configured_models_score():
    guard, _ = make_guard(quality_floor=0.5)  # 0.30 / 0.60 = 0.5: the 135M's full window clears it, nothing shorter
    flags = {r["name"]: r["belowQualityFloor"] for r in guard.state()["rungs"]}
    assert flags[S135] is False
    assert flags["smollm2-135m/0.25x-context"] is True


def test_settings_change_rejudges_the_ladder():
    guard, clock = make_guard()
    guard.update_settings(GuardSettings(quality_floor=0.0))
    serve(guard, clock, 120)
    assert guard.current.model == S135


def test_the_next_model_kept_loaded_is_one_the_guard_may_use():
    guard, _ = make_guard()
    assert guard.next_model_below() is None  # no point keeping the 135M in memory
    guard, _ = make_guard(quality_floor=0.0)
    assert guard.next_model_below() == S135


def test_a_server_down_with_nothing_usable_below_makes_no_shift():
    guard, _ = make_guard()
    guard.update_settings(GuardSettings(quality_floor=0.99))  # only the 0.5B's own rungs clear it
    assert guard.unavailable(guard.current, "connection refused").to_rung == Q05_1
    assert guard.unavailable(guard.current, "connection refused") is None
    assert guard.current.name == Q05_1


def test_single_lines_finished_in_time_are_on_target_whatever_their_tokens_per_s():
    guard, clock = make_guard(quality_floor=0.0)
    serve(guard, clock, 60, line_s=0.6)  # 18 tok/s, but each line done 0.6 s after the keystroke
    assert guard.current.name == Q05
    assert guard.shifts == []


def test_single_lines_finished_late_count_as_slow():
    guard, clock = make_guard(quality_floor=0.0)
    serve(guard, clock, 60, line_s=1.8)
    assert guard.current.name != Q05


def test_single_line_rule_off():
    guard, clock = make_guard(quality_floor=0.0, single_line_target_ms=0)
    serve(guard, clock, 60, line_s=0.6)
    assert guard.current.name != Q05


@pytest.mark.parametrize(
    "rung, expected",
    [
        pytest.param(Rung(S135), 0.30, id="full-window"),
        pytest.param(Rung(S135, context_scale=0.25), 0.20, id="listed-scale"),
        pytest.param(Rung(S135, context_scale=0.5), 0.20, id="unlisted-scale-judged-by-the-smaller"),
        pytest.param(Rung(S135, context_scale=0.1), None, id="smaller-than-any-measured"),
        pytest.param(Rung("custom-model"), None, id="unknown-model"),
    ],
)
def test_score_lookup(rung: Rung, expected):
    assert MEASURED.score(rung) == expected


def test_shipped_table_is_measured_and_readable():
    data = json.loads(SHIPPED_TABLE.read_text())
    assert data["metric"].startswith("pipeline pass@1") and data["lines"] > 0 and data["cpu"]
    table = shipped_table()
    assert table.score(Rung(Q05)) is not None and table.score(Rung(S135)) is not None


def test_eval_report_wins_when_it_measured_the_configured_model_and_another():
    report = {"date": "2026-12-02", "tiers": {Q05: {"exact": 0.30}, S135: {"exact": 0.06}}}
    table = table_from_eval(report, Q05)
    assert table is not None and table.relative(Rung(S135), Rung(Q05)) == pytest.approx(0.2)
    assert "gearshift eval" in table.source
    assert table_from_eval({"tiers": {Q05: {"exact": 0.3}}}, Q05) is None  # nothing to compare with
    assert table_from_eval({"tiers": {S135: {"exact": 0.1}, "x": {"exact": 0.2}}}, Q05) is None
    assert table_from_eval(None, Q05) is None


def test_quality_table_reads_this_repositorys_eval_report(tmp_path, monkeypatch):
    from lsp_server.evaluation.results import REPORT_VERSION, report_path

    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    repo = tmp_path / "repo"
    repo.mkdir()
    assert quality_table(Q05, repo).source == "shipped HumanEval table"
    path = report_path(repo)
    path.parent.mkdir(parents=True)
    path.write_text(json.dumps({"version": REPORT_VERSION, "date": "d",
                                "tiers": {Q05: {"exact": 0.3}, S135: {"exact": 0.1}}}))
    assert quality_table(Q05, repo).source == "gearshift eval of this repository (d)"
