"""`gearshift eval`: sampling from a real temporary git repository, metrics, the recommendation, bad input."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest

from lsp_server import cli
from lsp_server.evaluation import results as results_module
from lsp_server.evaluation.metrics import (
    SampleResult,
    TierSummary,
    edit_similarity,
    exact_match,
    percentile,
    score,
    summarise,
)
from lsp_server.evaluation.recommend import recommend
from lsp_server.evaluation.repository import SourceFile, source_files
from lsp_server.evaluation.sampling import SPAN_LINES, draw_samples, mask, span_length
from lsp_server.inference.guard import MIN_TOKENS_FOR_SPEED
from lsp_server.inference.types import GenerationRequest, GenerationResult
from lsp_server.settings import CloudSettings
from tests.support.fake_team_server import fake_team_server as fake_team_server  # noqa: F401 (fixture)
from tests.unit.fakes import FakeEngine, service_with

FUNCTION = '''"""Module {n}."""

import os


def compute_{n}(values, scale):
    total = sum(value * scale for value in values)
    average = total / max(1, len(values))
    if average > {n}:
        return os.path.join("high", str(average))
    return os.path.join("low", str(total))


def describe_{n}(name):
    message = f"{{name}} has {n} parts"
    print(message)
    return message
'''


def git(repo: Path, *args: str) -> str:
    return subprocess.run(
        ["git", "-C", str(repo), "-c", "user.name=test", "-c", "user.email=test@example.com", *args],
        check=True, capture_output=True, text=True,
    ).stdout


def make_repo(root: Path, files: dict[str, str | bytes], ignore: str | None = None, untracked: dict | None = None):
    """A git repository at ``root`` with ``files`` committed (and ``untracked`` written but not added)."""
    root.mkdir(parents=True, exist_ok=True)
    git(root, "init", "-q")
    if ignore is not None:
        files = {**files, ".gitignore": ignore}
    for name, content in files.items():
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(content if isinstance(content, bytes) else content.encode())
    git(root, "add", ".")  # as a user would: what .gitignore names stays out
    git(root, "commit", "-q", "-m", "init")
    for name, content in (untracked or {}).items():
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        (root / name).write_text(content)
    return root


@pytest.fixture(autouse=True)
def no_parent_repository(monkeypatch, tmp_path):
    """git must not find a repository above tmp_path, and nothing may reach the real user cache."""
    monkeypatch.setenv("GIT_CEILING_DIRECTORIES", str(tmp_path.parent))
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))


@pytest.fixture
def repo(tmp_path) -> Path:
    return make_repo(tmp_path / "repo", {f"pkg/mod{n}.py": FUNCTION.format(n=n) for n in range(6)})


def _key(samples):
    return [(s.path, s.line, s.n_lines, s.expected) for s in samples]


# -- sampling ---------------------------------------------------------------------------------------


def test_samples_are_the_same_for_a_seed_and_differ_across_seeds(repo):
    files = source_files(repo, CloudSettings()).files
    first = draw_samples(files, 20, seed=7)
    assert len(first) == 20
    assert _key(first) == _key(draw_samples(list(reversed(files)), 20, seed=7))
    assert _key(first) != _key(draw_samples(files, 20, seed=8))


def test_samples_spread_over_files_and_mix_lines_and_spans(repo):
    samples = draw_samples(source_files(repo, CloudSettings()).files, 30, seed=1)
    assert len({s.path for s in samples}) == 6
    lengths = {s.n_lines for s in samples}
    assert 1 in lengths and any(n > 1 for n in lengths)
    assert all(1 <= n <= SPAN_LINES[1] for n in lengths)
    assert len({(s.path, s.line) for s in samples}) == len(samples)  # no position twice


def test_a_sample_is_the_file_with_its_lines_cut_out_at_the_cursor(repo):
    files = {f.path: f for f in source_files(repo, CloudSettings()).files}
    for sample in draw_samples(list(files.values()), 30, seed=3):
        original = files[sample.path].text
        assert sample.text[: sample.offset] + sample.expected + sample.text[sample.offset :] == original
        lines = original.split("\n")
        assert sample.expected.split("\n")[0] == lines[sample.line - 1].lstrip()
        assert sample.text.split("\n")[sample.line - 1].strip() == ""  # only the indentation is left


def test_a_span_is_cut_short_at_a_blank_line():
    source = SourceFile("a.py", "python", "a = 1\nb = 2\nc = 3\nvalue = 10\n\nz = 1\n")
    assert mask(source, 3, 1).expected == "value = 10"
    assert span_length(source.text.split("\n"), 3, 4) == 1
    assert span_length(source.text.split("\n"), 0, 3) == 3


def test_gitignore_and_untracked_files_are_left_out(tmp_path):
    repo = make_repo(
        tmp_path / "repo",
        {"keep.py": FUNCTION.format(n=1), "ignored_build/out.py": FUNCTION.format(n=2)},
        ignore="ignored_build/\n",
        untracked={"scratch.py": FUNCTION.format(n=3)},
    )
    found = source_files(repo, CloudSettings())
    assert [f.path for f in found.files] == ["keep.py"]
    assert {s.path for s in draw_samples(found.files, 30, seed=0)} == {"keep.py"}


def test_never_send_files_are_left_out(tmp_path):
    repo = make_repo(tmp_path / "repo", {
        "app.py": FUNCTION.format(n=1),
        "config/api_secret.py": FUNCTION.format(n=2),  # **/*secret* (a default)
        "private/notes.py": FUNCTION.format(n=3),  # **/private/**
        "vendor/keep.py": FUNCTION.format(n=4),
    })
    found = source_files(repo, CloudSettings())
    assert sorted(f.path for f in found.files) == ["app.py", "vendor/keep.py"]
    assert found.skipped["neverSend"] == 2
    custom = source_files(repo, CloudSettings(never_send=["vendor/**"]))
    assert sorted(f.path for f in custom.files) == ["app.py", "config/api_secret.py", "private/notes.py"]


def test_unsupported_binary_generated_and_huge_files_are_left_out(tmp_path):
    repo = make_repo(tmp_path / "repo", {
        "app.py": FUNCTION.format(n=1),
        "README.md": "# Title\n\nSome prose that is long enough to be masked.\n" * 5,
        "blob.py": b"x = 1\n\x00\x01\x02binary",
        "latin1.py": "name = 'caf\xe9'\n".encode("latin-1"),
        "schema_pb2.py": FUNCTION.format(n=2),
        "gen.go": "// Code generated by stringer. DO NOT EDIT.\npackage main\n" + "var x = 1\n" * 10,
        "dist/app.js": "var a=1;" * 200 + "\n",
        "big.py": "value = 1234567890\n" * 40_000,
    })
    found = source_files(repo, CloudSettings())
    assert [f.path for f in found.files] == ["app.py"]
    assert found.skipped == {"language": 1, "binary": 2, "generated": 3, "huge": 1}


def test_a_large_repository_is_read_only_as_far_as_the_limit_in_a_seeded_order(tmp_path):
    repo = make_repo(tmp_path / "repo", {f"m{n}.py": FUNCTION.format(n=n) for n in range(12)})
    picked = [f.path for f in source_files(repo, CloudSettings(), limit=4, seed=5).files]
    assert len(picked) == 4 and picked == sorted(picked)
    assert [f.path for f in source_files(repo, CloudSettings(), limit=4, seed=5).files] == picked
    others = {tuple(f.path for f in source_files(repo, CloudSettings(), limit=4, seed=s).files) for s in range(6)}
    assert len(others) > 1


def test_a_subfolder_evaluates_only_its_files(tmp_path):
    repo = make_repo(tmp_path / "repo", {"a/one.py": FUNCTION.format(n=1), "b/two.py": FUNCTION.format(n=2)})
    found = source_files(repo / "a", CloudSettings())
    assert found.root == repo.resolve()
    assert [f.path for f in found.files] == ["a/one.py"]


# -- metrics ----------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("suggestion", "expected", "exact"),
    [
        pytest.param("return a + b", "return a + b", True, id="same"),
        pytest.param("return  a +   b  ", "return a + b", True, id="whitespace"),
        pytest.param("return a + b\n    extra()", "return a + b", True, id="first-line-only"),
        pytest.param("x = f(a)\nnext()", "x = f(a)\ny = 2", True, id="span-first-line"),
        pytest.param("return a - b", "return a + b", False, id="different"),
        pytest.param("return a", "return a + b", False, id="prefix-is-not-a-match"),
        pytest.param(None, "return a + b", False, id="hidden"),
    ],
)
def test_exact_match(suggestion, expected, exact):
    assert exact_match(suggestion, expected) is exact


def test_edit_similarity_compares_as_many_lines_as_were_masked():
    assert edit_similarity("return a + b", "return a + b") == 1.0
    assert edit_similarity("return a + b\nmore()\nand_more()", "return a + b") == 1.0
    assert edit_similarity(None, "return a + b") == 0.0
    partial = edit_similarity("return a", "return a + b")
    assert 0.5 < partial < 1.0
    assert edit_similarity("x = 1\ny = 3", "x = 1\ny = 2") > edit_similarity("x = 1", "x = 1\ny = 2") > 0


def test_percentile_nearest_rank():
    assert percentile([], 0.5) is None
    assert percentile([5.0], 0.95) == 5.0
    values = [float(v) for v in range(1, 101)]
    assert percentile(values, 0.5) == 50.0
    assert percentile(values, 0.95) == 95.0


def _result(exact: bool, shown: bool = True, tok_s: float | None = 50.0, latency: float = 100.0) -> SampleResult:
    return SampleResult("a.py", 1, 1, shown, exact, 1.0 if exact else 0.2, latency, tok_s)


def test_summary_counts_every_sample_and_ignores_speeds_too_short_to_measure():
    short = score("a.py", 4, 1, "x = 1", "x = 1", latency_ms=10, tokens_per_s=900.0,
                  generated_tokens=MIN_TOKENS_FOR_SPEED - 1)
    assert short.exact and short.tokens_per_s is None
    hidden = score("a.py", 5, 1, "x = 1", None, latency_ms=30, tokens_per_s=20.0, generated_tokens=10,
                   hidden_reason="confidence 0.1 below 0.25")
    assert not hidden.shown and hidden.similarity == 0.0 and hidden.hidden_reason.startswith("confidence")
    summary = summarise("t", [short, hidden, _result(True, tok_s=40.0), _result(False, tok_s=60.0)], 12.0)
    assert summary.samples == 4
    assert summary.exact == 0.5
    assert summary.hidden == 0.25
    assert summary.tokens_per_s == 40.0  # median of 20, 40, 60: the 900 from 3 tokens is not a measurement
    assert summary.p50_ms == 30.0 and summary.p95_ms == 100.0


# -- recommendation ---------------------------------------------------------------------------------


def _summary(tier: str, exact: float, tok_s: float | None, similarity: float = 0.5) -> TierSummary:
    return TierSummary(tier, 60, exact, similarity, 0.1, tok_s, 200.0, 400.0, 30.0)


def test_recommends_the_most_accurate_tier_that_holds_the_target():
    summaries = [_summary("big", 0.40, 25.0), _summary("mid", 0.30, 45.0), _summary("small", 0.15, 120.0)]
    choice = recommend(summaries, target_tok_s=40.0)
    assert choice.tier == "mid"
    assert "holds 40 tok/s" in choice.line and not choice.fastest_too_weak


def test_accuracy_ties_are_broken_by_edit_similarity():
    summaries = [_summary("a", 0.3, 50.0, similarity=0.6), _summary("b", 0.3, 60.0, similarity=0.7)]
    assert recommend(summaries, 40.0).tier == "b"


def test_without_a_tier_holding_the_target_the_fastest_is_recommended():
    choice = recommend([_summary("big", 0.40, 12.0), _summary("small", 0.20, 30.0)], target_tok_s=40.0)
    assert choice.tier == "small"
    assert "no tier holds 40 tok/s" in choice.line


def test_says_when_the_fastest_tier_is_too_weak_to_be_worth_showing():
    choice = recommend([_summary("mid", 0.30, 45.0), _summary("tiny", 0.05, 150.0)], target_tok_s=40.0)
    assert choice.tier == "mid"
    assert choice.fastest_too_weak
    assert "tiny" in choice.line and "not worth showing" in choice.line
    assert not recommend([_summary("tiny", 0.12, 150.0)], 40.0).fastest_too_weak


def test_no_tier_no_recommendation():
    assert recommend([], 40.0).tier is None


# -- results ----------------------------------------------------------------------------------------


def test_report_is_kept_under_the_xdg_cache_and_keeps_tiers_measured_before(tmp_path):
    root = tmp_path / "repo"
    first = {"version": results_module.REPORT_VERSION, "tiers": {"a": {"exact": 0.1}, "b": {"exact": 0.2}}}
    path = results_module.save_report(root, first)
    assert path.parent == tmp_path / "cache" / "gearshift" / "eval"
    assert path.name == f"{results_module.repository_key(root)}.json"
    results_module.save_report(root, {"version": results_module.REPORT_VERSION, "tiers": {"b": {"exact": 0.3}}})
    assert json.loads(path.read_text())["tiers"] == {"a": {"exact": 0.1}, "b": {"exact": 0.3}}
    assert [p.name for p in path.parent.iterdir()] == [path.name]  # no temporary file left


# -- the command, bad input -------------------------------------------------------------------------


def _assert_refused(capsys, argv: list[str], words: str, tmp_path: Path, watched: Path | None = None) -> None:
    before = git(watched, "status", "--porcelain", "--ignored") if watched else None
    assert cli.main(["eval", *argv]) == 2
    captured = capsys.readouterr()
    lines = captured.err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("gearshift: ") and words in lines[0], captured.err
    assert not (tmp_path / "cache").exists()
    assert not (tmp_path / "out.json").exists()
    if watched:
        assert git(watched, "status", "--porcelain", "--ignored") == before


def test_a_folder_that_is_not_a_git_repository_is_refused(tmp_path, capsys):
    plain = tmp_path / "plain"
    plain.mkdir()
    (plain / "a.py").write_text(FUNCTION.format(n=1))
    _assert_refused(capsys, [str(plain), "--json", str(tmp_path / "out.json")], "not a git repository", tmp_path)
    assert [p.name for p in plain.iterdir()] == ["a.py"]


def test_a_missing_path_is_refused(tmp_path, capsys):
    _assert_refused(capsys, [str(tmp_path / "nowhere")], "does not exist", tmp_path)


def test_a_file_instead_of_a_folder_is_refused(tmp_path, capsys, repo):
    _assert_refused(capsys, [str(repo / "pkg" / "mod1.py")], "is not a folder", tmp_path, repo)


def test_a_repository_without_supported_files_is_refused(tmp_path, capsys):
    repo = make_repo(tmp_path / "repo", {"README.md": "# Notes\n" * 20, "data.csv": "a,b\n1,2\n"})
    _assert_refused(capsys, [str(repo), "--json", str(tmp_path / "out.json")], "no file under", tmp_path, repo)


def test_no_model_installed_is_refused(tmp_path, capsys, monkeypatch, repo):
    import lsp_server.inference.installed as installed

    monkeypatch.setattr(installed, "installed_models", lambda directory=None: [])
    _assert_refused(capsys, [str(repo), "--json", str(tmp_path / "out.json")], "no model is installed", tmp_path,
                    repo)


def test_a_tier_that_is_not_installed_or_unknown_is_refused(tmp_path, capsys, monkeypatch, repo):
    import lsp_server.inference.installed as installed

    monkeypatch.setattr(installed, "installed_models", lambda directory=None: ["smollm2-135m"])
    _assert_refused(capsys, [str(repo), "--tiers", "qwen2.5-coder-1.5b"], "is not installed", tmp_path, repo)
    _assert_refused(capsys, [str(repo), "--tiers", "gpt-9"], "unknown model", tmp_path, repo)


def test_progress_line_has_an_eta(capsys):
    import io

    from lsp_server.cli.eval import Progress

    stream = io.StringIO()
    progress = Progress(total=4, stream=stream)
    progress.start_tier("tiny")
    progress.samples_start()
    progress.sample_done(True, of=2)
    progress.sample_done(False, of=2)
    lines = stream.getvalue().splitlines()
    assert lines[0] == "tiny: loading the model"
    assert lines[-1].startswith("tiny: 2/2 samples, 1 exact,") and "ETA" in lines[-1]


# -- for real -----------------------------------------------------------------------------------------


@pytest.fixture
def real_smollm(tmp_path, monkeypatch):
    """The installed SmolLM2 where it is, the eval report under ``tmp_path``."""
    from lsp_server.errors import ModelError
    from lsp_server.inference.assembly import ensure_model
    from lsp_server.inference.catalog import model_dir

    monkeypatch.delenv("XDG_CACHE_HOME")
    try:
        ensure_model("smollm2-135m")
    except ModelError as exc:
        pytest.skip(f"smollm2-135m not installed: {exc}")
    monkeypatch.setenv("GEARSHIFT_MODEL_DIR", str(model_dir()))  # the models where they are, the report in tmp
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))


@pytest.mark.model
def test_eval_runs_the_real_pipeline_on_a_tiny_repository(tmp_path, capsys, real_smollm):
    repo = make_repo(tmp_path / "repo", {"calc.py": FUNCTION.format(n=1), "notes.md": "# Notes\n"})
    out = tmp_path / "out.json"
    argv = ["eval", str(repo), "--samples", "3", "--tiers", "smollm2-135m", "--seed", "2", "--json", str(out)]
    assert cli.main(argv) == 0
    captured = capsys.readouterr()
    assert "smollm2-135m" in captured.out and "Recommendation: use smollm2-135m" in captured.out
    assert "ETA" in captured.err
    report = json.loads(out.read_text())
    tier = report["tiers"]["smollm2-135m"]
    assert tier["samples"] == 3 and len(tier["results"]) == 3
    assert {r["path"] for r in tier["results"]} == {"calc.py"}
    assert all(r["latencyMs"] > 0 for r in tier["results"])
    assert 0.0 <= tier["exact"] <= 1.0 and 0.0 <= tier["hidden"] <= 1.0
    assert report["recommendation"]["tier"] == "smollm2-135m"
    saved = tmp_path / "cache" / "gearshift" / "eval" / f"{results_module.repository_key(repo)}.json"
    assert json.loads(saved.read_text())["tiers"]["smollm2-135m"]["results"] == tier["results"]
    assert "def " not in saved.read_text()  # positions and figures only, no code


@pytest.mark.model
def test_eval_tests_report_pass_at_1_from_the_repositorys_own_tests(tmp_path, capsys, real_smollm):
    check = "import calc\nassert calc.compute_1([1, 2, 3], 2) == 'high/4.0'\n"
    repo = make_repo(tmp_path / "repo", {"calc.py": FUNCTION.format(n=1), "check_calc.txt": check})
    out = tmp_path / "out.json"
    argv = ["eval", str(repo), "--samples", "4", "--tiers", "smollm2-135m", "--seed", "2", "--json", str(out),
            "--tests", "python3 -c \"exec(open('check_calc.txt').read())\""]
    assert cli.main(argv) == 0
    captured = capsys.readouterr()
    assert "pass@1" in captured.out
    tier = json.loads(out.read_text())["tiers"]["smollm2-135m"]
    assert 0.0 <= tier["passAt1"] <= 1.0
    assert all(isinstance(r["passed"], bool) for r in tier["results"])
    # An exact suggestion puts the file back as it was, and the unchanged repository passes.
    assert all(r["passed"] for r in tier["results"] if r["exact"])
    assert not any(r["passed"] for r in tier["results"] if not r["shown"])
    assert (repo / "calc.py").read_text() == FUNCTION.format(n=1)  # the user's tree is never written


def test_tests_failing_on_the_unchanged_repository_are_refused(tmp_path, capsys, repo):
    _assert_refused(capsys, [str(repo), "--tests", "exit 3", "--json", str(tmp_path / "out.json")],
                    "fails on the unchanged repository", tmp_path, repo)


def test_eval_measures_a_team_endpoint_from_a_settings_file(tmp_path, capsys, fake_team_server):
    # A team server (the fake speaks llama-server's /infill) is a tier like an installed model.
    repo = make_repo(tmp_path / "repo", {"calc.py": FUNCTION.format(n=1)})
    settings = tmp_path / "settings.json"
    settings.write_text(json.dumps({"endpoints": [{"name": "team", "urls": [fake_team_server.url]}],
                                    "models": {"ladder": ["team", "qwen2.5-coder-0.5b", "smollm2-135m"]}}))
    out = tmp_path / "out.json"
    argv = ["eval", str(repo), "--settings", str(settings), "--tiers", "team", "--samples", "2", "--cold",
            "--json", str(out)]
    assert cli.main(argv) == 0
    assert "team" in capsys.readouterr().out
    tier = json.loads(out.read_text())["tiers"]["team"]
    assert tier["samples"] == 2
    infills = [r for r in fake_team_server.requests if r["path"] == "/infill"]
    assert len(infills) >= 2  # every sample went to the server
    assert all("def compute_1" in r["body"]["input_prefix"] for r in infills)  # the masked file's own text


def test_a_team_endpoint_that_local_only_forbids_is_refused_before_anything_is_sent(tmp_path, capsys, repo,
                                                                                   fake_team_server):
    settings = tmp_path / "settings.json"
    settings.write_text(json.dumps({"cloud": {"localOnly": True},
                                    "endpoints": [{"name": "team", "urls": [fake_team_server.url]}]}))
    _assert_refused(capsys, [str(repo), "--settings", str(settings), "--tiers", "team"], "localOnly", tmp_path, repo)
    assert fake_team_server.requests == []


def test_a_broken_settings_file_is_refused(tmp_path, capsys, repo):
    settings = tmp_path / "settings.json"
    settings.write_text("{not json")
    _assert_refused(capsys, [str(repo), "--settings", str(settings)], "cannot read the settings file", tmp_path, repo)


def test_hidden_reasons_are_counted_with_confidence_as_one_reason():
    from lsp_server.evaluation.report import hidden_reasons

    hidden = [
        score("a.py", 4, 1, "x = 1", None, latency_ms=1, tokens_per_s=None, generated_tokens=0, hidden_reason=reason)
        for reason in ("confidence 0.10 below 0.25", "confidence 0.20 below 0.25", "removed by parse_check")
    ]
    shown = score("a.py", 5, 1, "x = 1", "x = 1", latency_ms=1, tokens_per_s=None, generated_tokens=0)
    assert hidden_reasons([*hidden, shown]) == {"confidence": 2, "removed by parse_check": 1}


# -- the runner, on a stand-in engine -----------------------------------------------------------------

CALC = "import math\n\n\ndef add(a, b):\n    return a + b\n\n\ndef root(x):\n    return math.sqrt(x)\n"


class AnsweringEngine(FakeEngine):
    """A stand-in engine that answers every prompt with one line and records what it was asked."""

    def __init__(self, text: str) -> None:
        super().__init__()
        self.text = text

    async def generate(self, request: GenerationRequest, cancel=None) -> GenerationResult:
        self.requests.append(request)
        return GenerationResult(
            text=self.text, stop_reason="stop", n_prompt_tokens=50, n_reused_tokens=0, n_generated_tokens=8,
            token_logprobs=[-0.01] * 8, prompt_eval_s=0.01, time_to_first_token_s=0.01, decode_s=0.1,
        )


@pytest.mark.parametrize("warm", [True, False], ids=["prewarmed", "cold"])
async def test_each_sample_goes_through_the_service_and_is_scored(monkeypatch, tmp_path, warm):
    from contextlib import contextmanager

    from lsp_server.evaluation import runner
    from lsp_server.settings import GearshiftSettings

    engine = AnsweringEngine("return a + b")
    used_settings = []

    @contextmanager
    def fake_service(settings):
        used_settings.append(settings)
        yield service_with(engine)

    monkeypatch.setattr(runner, "completion_service", fake_service)
    source = SourceFile("calc.py", "python", CALC)
    samples = [mask(source, 4, 1), mask(source, 8, 1)]  # "return a + b", "return math.sqrt(x)"
    seen = []
    results = await runner.run_tier(GearshiftSettings(), "smollm2-135m", tmp_path, samples,
                                    lambda index, result: seen.append(index), warm=warm)
    assert [r.exact for r in results] == [True, False]
    assert results[0].similarity == 1.0 and 0 < results[1].similarity < 1
    assert all(r.shown and r.tokens_per_s is not None for r in results)
    assert seen == [0, 1]
    assert len(engine.requests) == 2
    assert len(engine.prewarmed) == (2 if warm else 0)
    assert "math.sqrt" not in engine.requests[1].prompt  # the sample's document: its line masked
    settings = used_settings[0]
    assert not settings.guard.enabled and settings.models.ladder == ["smollm2-135m"]
    assert settings.completion == GearshiftSettings().completion  # otherwise the shipped settings
