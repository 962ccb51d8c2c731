"""KV reuse across documents and moved windows: evaluated tokens, and answers compared with a cold evaluation.

Three real files (standard-library modules nobody here wrote) are worked on in turn, as a person switches
between open files: the prompt at a cursor in each, then back to each (one character typed there), then the
cursor moved down by a few screens in each (the prompt window's start moves: its cached runs are shifted into
place, as llama-server's ``--cache-reuse`` does).  Every prompt is built by the completion pipeline at the full
window and answered greedily twice: by an engine that keeps its KV between requests (per-document states and
shifts, the shipped settings) and then cold by the same engine: its document's state saved (a scratch request
for another document), its context emptied, the prompt evaluated from nothing.  The same engine, because two
engine instances on one CPU are not bit-identical (seen on a 2-vCPU Xeon: the same prompt, the same text, token
log-probabilities up to 0.07 apart), while one engine run twice is.  Reported per kind of step: prompt tokens
evaluated warm and cold, tokens kept through a shift, and the share of answers (text) identical to the cold one.
A shift moves entries computed while they attended to the dropped lines, so shifted answers are close to, not
always identical with, cold ones.

Usage: python benchmarks/kv_reuse.py [--model qwen2.5-coder-0.5b] [--json PATH]
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import sysconfig
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from benchmarks.report import write_json  # noqa: E402
from lsp_server.documents import DocumentSnapshot  # noqa: E402
from lsp_server.inference.cpu import cpu_name  # noqa: E402
from lsp_server.inference.llama.engine import LlamaEngine  # noqa: E402
from lsp_server.inference.types import GenerationRequest  # noqa: E402
from lsp_server.settings import parse_settings  # noqa: E402
from lsp_server.wiring import completion_service, with_model, without_guard  # noqa: E402

MODULES = ("textwrap.py", "shlex.py", "heapq.py")
START_LINE = 200
"""Where the first cursor goes in each file: far enough down that the prompt window is full."""
MOVES = (8, 20, 45)
"""Lines the cursor moves down in each file, one after another (a few screens: the window's start moves)."""


def code_line_offset(text: str, line: int) -> int:
    """The offset after the indentation of the first non-blank line at or after ``line``."""
    lines = text.splitlines(keepends=True)
    line = min(line, len(lines) - 1)
    while line < len(lines) - 1 and not lines[line].strip():
        line += 1
    start = sum(len(item) for item in lines[:line])
    return start + len(lines[line]) - len(lines[line].lstrip(" \t"))


def rss_after_documents(service, engine: LlamaEngine, rung, template, count: int) -> dict:
    """Prewarm ``count`` more files' prompts (distinct documents) and measure what the process holds after."""
    from lsp_server.inference.machine import rss_bytes

    stdlib = Path(sysconfig.get_paths()["stdlib"])
    paths = [p for p in sorted(stdlib.glob("*.py")) if p.name not in MODULES and p.stat().st_size > 20_000][:count]
    before = rss_bytes()
    for path in paths:
        text = path.read_text(errors="replace")
        offset = code_line_offset(text, START_LINE)
        doc = DocumentSnapshot(path.resolve().as_uri(), 1, text, offset, "python", str(path))
        prompt = service._prompt(template, doc, service._infill_parts(doc, service._context(doc, engine, rung)))
        engine.prewarm_blocking(prompt, document=doc.uri)
    stats = engine.stats()
    return {
        "documents": len(paths), "rss_growth_mib": round((rss_bytes() - before) / 2**20, 1),
        "saved_mib": round(stats["saved_document_bytes"] / 2**20, 1), "saved_documents": stats["saved_documents"],
        "budget_mib": engine._settings.document_kv_mib,
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="qwen2.5-coder-0.5b")
    parser.add_argument("--max-tokens", type=int, default=48)
    parser.add_argument("--rss-documents", type=int, default=20,
                        help="then prewarm this many more files' prompts and report RSS against the budget")
    parser.add_argument("--json", metavar="PATH")
    args = parser.parse_args()
    settings = without_guard(with_model(parse_settings({"completion": {"coldPromptMs": 0}}), args.model))
    stdlib = Path(sysconfig.get_paths()["stdlib"])
    files = {stdlib / name: (stdlib / name).read_text() for name in MODULES}
    steps: list[dict] = []

    with completion_service(settings) as service:
        warm: LlamaEngine = asyncio.run(service.tiers.get(args.model))

        def cold_answer(request: dict):
            warm.generate_blocking(GenerationRequest(prompt="\n", max_tokens=1, affinity_key="kv-reuse:scratch"))
            warm.reset_cache(documents=False)  # the document's state was saved by the switch to the scratch one
            return warm.generate_blocking(GenerationRequest(**request))

        rung = service.guard.current
        template = service.template(warm)
        cursors = {path: code_line_offset(text, START_LINE) for path, text in files.items()}

        def step(kind: str, path: Path, text: str, offset: int) -> None:
            uri = path.resolve().as_uri()
            doc = DocumentSnapshot(uri, 1, text, offset, "python", str(path))
            ctx = service._context(doc, warm, rung)
            prompt = service._prompt(template, doc, service._infill_parts(doc, ctx))
            request = dict(prompt=prompt, max_tokens=args.max_tokens, stop=list(template.stop_strings))
            hot = warm.generate_blocking(GenerationRequest(**request, affinity_key=uri))
            shifted = warm.stats()["shifted_tokens"]
            reference = cold_answer(request)
            steps.append({
                "kind": kind, "file": path.name, "prompt_tokens": hot.n_prompt_tokens,
                "evaluated": hot.n_prompt_tokens - hot.n_reused_tokens,
                "evaluated_cold": reference.n_prompt_tokens - reference.n_reused_tokens,
                "shifted": shifted, "identical": hot.text == reference.text,
                "identical_logprobs": hot.token_logprobs == reference.token_logprobs,
                "prompt_s": round(hot.prompt_eval_s, 3), "prompt_s_cold": round(reference.prompt_eval_s, 3),
            })
            row = steps[-1]
            print(f"  {kind:<6} {path.name:<12} prompt {row['prompt_tokens']:>5}  evaluated {row['evaluated']:>5}"
                  f" (cold {row['evaluated_cold']:>5})  shifted {shifted:>5}  identical {row['identical']}"
                  f" (log-probabilities {row['identical_logprobs']})",
                  file=sys.stderr, flush=True)

        for path, text in files.items():
            step("first", path, text, cursors[path])
        edited = {}
        for path, text in files.items():  # back to each file, one character typed at its cursor
            offset = cursors[path]
            edited[path] = text[:offset] + "x" + text[offset:]
            step("back", path, edited[path], offset + 1)
        for move in MOVES:
            for path in files:
                text = edited[path]
                line = text.count("\n", 0, cursors[path]) + move
                cursors[path] = code_line_offset(text, line)
                step("moved", path, text, cursors[path])
        report_rss = rss_after_documents(service, warm, rung, template, args.rss_documents) if args.rss_documents else None

    report: dict = {"model": args.model, "cpu": cpu_name(), "steps": steps, "kinds": {}, "rss": report_rss}
    for kind in ("first", "back", "moved"):
        rows = [row for row in steps if row["kind"] == kind]
        report["kinds"][kind] = {
            "steps": len(rows),
            "mean_prompt_tokens": round(sum(r["prompt_tokens"] for r in rows) / len(rows), 1),
            "mean_evaluated": round(sum(r["evaluated"] for r in rows) / len(rows), 1),
            "mean_evaluated_cold": round(sum(r["evaluated_cold"] for r in rows) / len(rows), 1),
            "mean_shifted": round(sum(r["shifted"] for r in rows) / len(rows), 1),
            "identical_share": round(sum(r["identical"] for r in rows) / len(rows), 3),
            "identical_logprobs_share": round(sum(r["identical_logprobs"] for r in rows) / len(rows), 3),
            "prompt_s": round(sum(r["prompt_s"] for r in rows), 2),
            "prompt_s_cold": round(sum(r["prompt_s_cold"] for r in rows), 2),
        }
    print(f"{args.model} on {report['cpu']}:")
    for kind, row in report["kinds"].items():
        print(f"  {kind:<6} {row['steps']} steps: prompt {row['mean_prompt_tokens']} tokens, evaluated"
              f" {row['mean_evaluated']} (cold {row['mean_evaluated_cold']}), shifted {row['mean_shifted']},"
              f" identical to cold {row['identical_share']:.0%} (log-probabilities too:"
              f" {row['identical_logprobs_share']:.0%})")
    if report_rss:
        print(f"  RSS after {report_rss['documents']} more documents: grew {report_rss['rss_growth_mib']} MiB;"
              f" saved states {report_rss['saved_mib']} MiB of the {report_rss['budget_mib']} MiB budget"
              f" ({report_rss['saved_documents']} documents kept)")
    if args.json:
        write_json(args.json, report)
    return 0


if __name__ == "__main__":
    sys.exit(main())
