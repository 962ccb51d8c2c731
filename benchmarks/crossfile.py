"""Cross-file context: exact match with vs without it, on lines that use a symbol another module defines.

Real code nobody here wrote: an installed package's source tree (``--package``, default ``pygls``). A task is
a line of module A that reads a name A imports from module B of the same package (``from .b import name``,
``from pkg.b import name``); the line is masked from its indentation on and completed through the full pipeline
in-process (``CompletionService``, shipped defaults except: guard off, no speculation, no confidence floor,
whole answers, a generous time budget and the full prompt window whatever this machine's prompt speed, so only
the context differs). The editor has B and two other modules of the package open (recently used, as a person
would have them). Modes, same tasks, one run, each task in every mode in turn: *without* leaves
``completion.crossFileTokens`` 0; *recent* sets it with outlines of the open documents only
(``RecentFiles(read_imports=False)``, the behaviour before import resolution); *imports* sets it with the
shipped ``RecentFiles``: definitions of the names A imports, read from disk, then the open documents' outlines.

Reports, per mode: exact match (first line, whitespace-normalised), edit similarity, the share shown, context
chunks, mean prompt tokens, first-token time and latency. Each task is a file not seen before: its latency is
that of a cold prompt (none of it in the KV cache), on this machine, at whatever load it has. ``--keystroke``
adds the request after typing the line's first characters: the share of its prompt the KV cache held (the
other files' chunks must not change between keystrokes) and its latency.

Usage: python benchmarks/crossfile.py [--package pygls] [--tasks 30] [--tokens 384] [--modes without,recent,imports]
                                      [--keystroke] [--json PATH]
"""

from __future__ import annotations

import argparse
import ast
import asyncio
import difflib
import importlib
import json
import random
import sys
from contextlib import ExitStack
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from benchmarks.report import write_json  # noqa: E402
from lsp_server.completion.neighbours import RecentFiles  # noqa: E402
from lsp_server.documents import DocumentSnapshot  # noqa: E402
from lsp_server.settings import GearshiftSettings  # noqa: E402
from lsp_server.wiring import completion_service, whole_answers, with_model, without_guard  # noqa: E402

KEYSTROKE_CHARS = 3
"""Characters of the expected line typed for ``--keystroke``'s second request."""


def package_modules(package: str) -> dict[str, Path]:
    """Dotted module name -> file; a package's ``__init__.py`` is named as the package is (``pkg.sub``)."""
    root = Path(importlib.import_module(package).__file__).parent
    modules = {}
    for path in sorted(root.rglob("*.py")):
        parts = path.relative_to(root.parent).with_suffix("").parts
        modules[".".join(parts[:-1] if parts[-1] == "__init__" else parts)] = path
    return modules


def tasks_from(package: str, count: int, seed: int) -> list[dict]:
    modules = package_modules(package)
    found = []
    for name, path in sorted(modules.items()):
        source = path.read_text(errors="replace")
        try:
            tree = ast.parse(source)
        except SyntaxError:
            continue
        imported: dict[str, str] = {}  # symbol -> module it comes from
        base = name if path.name == "__init__.py" else name.rsplit(".", 1)[0]  # where "." points
        for node in tree.body:
            if isinstance(node, ast.ImportFrom) and node.module is not None or (
                isinstance(node, ast.ImportFrom) and node.level
            ):
                module = node.module or ""
                if node.level:
                    parts = base.split(".")[: len(base.split(".")) - node.level + 1]
                    module = ".".join([*parts, module] if module else parts)
                if module in modules and module != name:
                    for alias in node.names:
                        imported[alias.asname or alias.name] = module
        if not imported:
            continue
        lines = source.splitlines(keepends=True)
        import_lines = {n for node in ast.walk(tree) if isinstance(node, (ast.Import, ast.ImportFrom))
                        for n in range(node.lineno - 1, (node.end_lineno or node.lineno))}
        # Where code (not a docstring or comment) reads an imported name: the line of each such ``Name``.
        uses: dict[int, str] = {}
        for node in ast.walk(tree):
            if isinstance(node, ast.Name) and node.id in imported and isinstance(node.ctx, ast.Load):
                uses.setdefault(node.lineno - 1, node.id)
        for number, line in enumerate(lines):
            if number in import_lines or number not in uses:
                continue
            stripped = line.strip()
            if stripped.startswith(("#", "@", '"', "'", "def ", "async def ", "class ")) or len(stripped) < 12:
                continue
            symbol = uses[number]
            found.append({"module": name, "path": str(path), "line": number, "symbol": symbol,
                          "defined_in": imported[symbol]})
    random.Random(seed).shuffle(found)
    return found[:count]


def normalise(text: str) -> str:
    return " ".join(text.split())


async def run(args: argparse.Namespace) -> dict:
    modules = package_modules(args.package)
    tasks = tasks_from(args.package, args.tasks, args.seed)
    if not tasks:
        raise SystemExit(f"no cross-module tasks found in {args.package}")
    base = without_guard(with_model(GearshiftSettings(), args.model))
    results: dict[str, list[dict]] = {mode: [] for mode in args.modes}
    rng = random.Random(args.seed)
    with ExitStack() as stack:
        # One service per mode, each task in every mode in turn: the machine's load drifts alike for all modes,
        # and a run cut short has the same tasks done in each.
        services = {}
        for mode in args.modes:
            tokens = 0 if mode == "without" else args.tokens
            # The full prompt window in every mode (cold_prompt_ms 0): sized from the prompt speed measured at
            # load, it would move with this machine's load and change more than the cross-file context. No
            # speculation: one mode's background work would slow another mode's request.
            completion = base.completion.model_copy(update={
                "cross_file_tokens": tokens, "time_budget_ms": 60000, "min_confidence": 0.0, "cold_prompt_ms": 0,
                "speculate_next": False,
            })
            # whole_answers after the budget is set: its first answer waits for the whole (generous) budget.
            service = stack.enter_context(completion_service(whole_answers(base.model_copy(
                update={"completion": completion}))))
            service.neighbours = RecentFiles(read_imports=mode != "recent")
            services[mode] = service
        for index, task in enumerate(tasks):
            source = Path(task["path"]).read_text(errors="replace")
            lines = source.splitlines(keepends=True)
            target = lines[task["line"]]
            indent = target[: len(target) - len(target.lstrip())]
            before = "".join(lines[: task["line"]]) + indent
            after = "".join(lines[task["line"] + 1 :])
            text = before + "\n" + after
            # The editor has the defining module and two others of the package open (recently used).
            others = [m for m in sorted(modules) if m not in (task["module"], task["defined_in"])]
            opened = [modules[m] for m in [*rng.sample(others, min(2, len(others))), task["defined_in"]]]
            for mode, service in services.items():
                service.cache.invalidate(f"file://{task['path']}")
                for path in opened:
                    service.neighbours.seen(path.as_uri(), str(path), path.read_text(errors="replace"))
                doc = DocumentSnapshot(uri=f"file://{task['path']}", version=index, text=text, offset=len(before),
                                       language_id="python", path=task["path"])
                outcome = await service.complete(doc)
                expected = target.strip()
                got = (outcome.suggestion or "").split("\n", 1)[0].strip()
                results[mode].append({
                    "task": f"{task['module']}:{task['line'] + 1}", "symbol": task["symbol"],
                    "exact": normalise(got) == normalise(expected),
                    "similarity": round(difflib.SequenceMatcher(None, got, expected).ratio(), 3),
                    "shown": bool(outcome.suggestion), "chunks": outcome.facts.context_chunks or 0,
                    "prompt_tokens": outcome.facts.prompt_tokens or 0,
                    "generated_tokens": outcome.generated_tokens,
                    "first_token_ms": round(outcome.time_to_first_token_ms or 0),
                    "latency_ms": round(outcome.latency_ms),
                })
                if args.keystroke:
                    results[mode][-1].update(await keystroke(service, doc, before, after, expected, index))
                print(f"  {mode} {index + 1}/{len(tasks)} {results[mode][-1]}", file=sys.stderr, flush=True)
            if args.json:  # so far, in case the run is cut short
                write_json(args.json, report(args, tasks, results))
    return report(args, tasks, results)


async def keystroke(service, doc: DocumentSnapshot, before: str, after: str, expected: str, index: int) -> dict:
    """The request after typing the expected line's first characters: how much of its prompt the KV cache held
    (the other files' chunks must not change between keystrokes) and its latency."""
    typed = expected[:KEYSTROKE_CHARS]
    service.cache.invalidate(doc.uri)  # measure the model's request, not the typed-ahead cache
    text = before + typed + "\n" + after
    outcome = await service.complete(DocumentSnapshot(uri=doc.uri, version=index, text=text,
                                                      offset=len(before) + len(typed), language_id="python",
                                                      path=doc.path))
    return {"keystroke_prompt_tokens": outcome.facts.prompt_tokens or 0,
            "keystroke_reused_tokens": outcome.facts.reused_tokens or 0,
            "keystroke_ms": round(outcome.latency_ms)}


def report(args: argparse.Namespace, tasks: list[dict], results: dict[str, list[dict]]) -> dict:
    summary = {}
    for mode, rows in results.items():
        if not rows:
            continue
        summary[mode] = {
            "exact_match": round(sum(r["exact"] for r in rows) / len(rows), 3),
            "similarity": round(sum(r["similarity"] for r in rows) / len(rows), 3),
            "shown": round(sum(r["shown"] for r in rows) / len(rows), 3),
            "chunks": round(sum(r["chunks"] for r in rows) / len(rows), 2),
            "prompt_tokens": round(sum(r["prompt_tokens"] for r in rows) / len(rows)),
            "first_token_ms": round(sum(r["first_token_ms"] for r in rows) / len(rows)),
            "latency_ms": round(sum(r["latency_ms"] for r in rows) / len(rows)),
            "done": len(rows),
        }
        if rows and "keystroke_ms" in rows[0]:
            prompt = sum(r["keystroke_prompt_tokens"] for r in rows)
            reused = sum(r["keystroke_reused_tokens"] for r in rows)
            summary[mode]["keystroke_reused"] = round(reused / max(prompt, 1), 3)
            summary[mode]["keystroke_ms"] = round(sum(r["keystroke_ms"] for r in rows) / len(rows))
    return {"package": args.package, "model": args.model, "tasks": len(tasks), "cross_file_tokens": args.tokens,
            "summary": summary, "rows": results}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--package", default="pygls")
    parser.add_argument("--tasks", type=int, default=30)
    parser.add_argument("--tokens", type=int, default=384, help="completion.crossFileTokens for the 'with' run")
    parser.add_argument("--model", default="qwen2.5-coder-0.5b")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--modes", type=lambda text: text.split(","), default=["without", "recent", "imports"],
                        help="comma-separated: without (no other files), recent (open documents' outlines only), "
                        "imports (the shipped context: imported definitions from disk, then the outlines)")
    parser.add_argument("--keystroke", action="store_true",
                        help=f"after each task, type the line's first {KEYSTROKE_CHARS} characters and "
                        "complete again: the share of that prompt the KV cache held, and its latency")
    parser.add_argument("--json", metavar="PATH")
    args = parser.parse_args()
    if unknown := set(args.modes) - {"without", "recent", "imports"}:
        parser.error(f"unknown modes: {', '.join(sorted(unknown))}")
    report = asyncio.run(run(args))
    print(json.dumps({k: v for k, v in report.items() if k != "rows"}, indent=2))
    if args.json:
        write_json(args.json, report)
    return 0


if __name__ == "__main__":
    sys.exit(main())
