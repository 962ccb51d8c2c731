"""Replay real typing: delete function bodies from real source files and retype them keystroke by keystroke.

The files are modules of this interpreter's standard library (not written for
this project).  For each chosen function its body is deleted, then typed back
one character at a time through a real LSP client: `didChange` + an
`inlineCompletion` request per keystroke.  Keys come at least ``--interval-ms``
apart; the typist glances at the ghost text for at most ``--patience-ms``, and
a request still running then is cancelled (`$/cancelRequest`) when the next key
is typed, as editors do; Enter inserts the next line's indentation with it (auto-indent).
When a shown suggestion is exactly what comes next,
the typist accepts it (one edit) instead of typing it.

Reports p50/p95 milliseconds from keystroke to suggestion (a keystroke the
typist moved on from counts with the time waited),
the share of keystrokes answered from the typed-ahead cache, and the share of
retyped characters that accepted suggestions supplied.

Usage: python benchmarks/replay.py [--model qwen2.5-coder-0.5b] [--functions 6] [--json PATH]
"""

from __future__ import annotations

import argparse
import ast
import asyncio
import json
import sys
import sysconfig
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from benchmarks.lsp_driver import Editor  # noqa: E402

DEFAULT_MODULES = ("textwrap.py", "shlex.py", "fnmatch.py", "colorsys.py", "bisect.py", "heapq.py", "glob.py")


def pick_functions(modules: list[Path], count: int, max_body_chars: int) -> list[tuple[Path, str, int, int]]:
    """(file, source, body_start, body_end) for functions whose body (after any docstring) is short enough."""
    picked = []
    for path in modules:
        source = path.read_text()
        lines = source.splitlines(keepends=True)
        starts = [0]
        for line in lines:
            starts.append(starts[-1] + len(line))
        for node in ast.walk(ast.parse(source)):
            if not isinstance(node, ast.FunctionDef) or not node.body:
                continue
            body = node.body
            if isinstance(body[0], ast.Expr) and isinstance(getattr(body[0], "value", None), ast.Constant):
                body = body[1:]  # keep the docstring: it is the programmer's intent
            if not body:
                continue
            start = starts[body[0].lineno - 1]
            end = starts[node.end_lineno]
            if 40 <= end - start <= max_body_chars:
                picked.append((path, source, start, end))
                break  # one function per module: more variety
        if len(picked) >= count:
            break
    return picked


def percentile(values: list[float], fraction: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(round(fraction * (len(ordered) - 1))))]


async def replay(args: argparse.Namespace) -> dict:
    stdlib = Path(sysconfig.get_paths()["stdlib"])
    modules = [stdlib / name for name in DEFAULT_MODULES if (stdlib / name).exists()]
    functions = pick_functions(modules, args.functions, args.max_body_chars)
    options = {
        "models": {"defaultModel": args.model, "ladder": [args.model]},
        "guard": {"enabled": False},
        "completion": json.loads(args.completion),
    }
    editor = Editor(options)
    ready = await editor.start()
    latencies: list[float] = []  # every keystroke
    answered: list[float] = []  # keystrokes whose request was answered before the next key
    steady: list[float] = []  # keystrokes after the first answer in a file (its prompt is in the KV cache)
    trace: list[dict] = []  # one entry per keystroke, for reading where the time went
    keystrokes = cache_hits = superseded = supplied = total_chars = shown = 0
    for path, source, start, end in functions:
        body = source[start:end]
        editor.open(path.resolve().as_uri() + f"#replay{start}", source[:start] + source[end:])
        if args.cursor_hints:
            # As our clients do: the cursor rests where typing will start while the programmer reads.
            position = editor.position_at(start)
            editor.client.protocol.notify("gearshift/cursor", {
                "textDocument": {"uri": editor.uri},
                "position": {"line": position.line, "character": position.character}})
        await asyncio.sleep(args.open_pause_ms / 1000)  # a programmer looks at the file before typing
        cursor, remaining = start, body
        total_chars += len(body)
        warmed = False
        while remaining:
            future, started = editor.request(cursor)
            answer = await editor.answer(future, started, args.patience_ms / 1000)
            keystrokes += 1
            # A keystroke whose request was still running when the typist moved on counts with the time
            # waited (a lower bound): leaving it out would hide exactly the slow ones.
            latencies.append(answer.latency_ms)
            trace.append({"file": path.name, "offset": cursor - start, "ms": round(answer.latency_ms, 1),
                          "superseded": answer.superseded, "cache": bool(answer.status.get("cacheHit")),
                          "tokens": answer.status.get("generatedTokens"), "stop": answer.status.get("stopReason"),
                          "ttft_ms": answer.status.get("timeToFirstTokenMs"), "shown": len(answer.text or "")})
            if warmed:
                steady.append(answer.latency_ms)
            warmed = warmed or not answer.superseded
            if answer.superseded:
                superseded += 1
            else:
                answered.append(answer.latency_ms)
                cache_hits += bool(answer.status.get("cacheHit"))
            if answer.text:
                shown += 1
            if answer.text and remaining.startswith(answer.text):
                editor.insert(cursor, answer.text)  # accept the suggestion
                cursor += len(answer.text)
                supplied += len(answer.text)
                remaining = remaining[len(answer.text) :]
                continue
            # One keystroke; Enter brings the next line's indentation with it, as editors auto-indent.
            key = len(remaining) - len(remaining[1:].lstrip(" \t")) if remaining[0] == "\n" else 1
            editor.insert(cursor, remaining[:key])
            cursor += key
            remaining = remaining[key:]
            if not answer.superseded:
                await asyncio.sleep(max(0.0, args.interval_ms / 1000 - answer.latency_ms / 1000))
        editor.close()
        print(f"  {path.name}@{start}: {keystrokes} keystrokes so far, {supplied}/{total_chars} chars supplied",
              file=sys.stderr, flush=True)
    status = await editor.status()
    await editor.stop()
    return {
        "tier": ready.get("tier", args.model),
        "keystrokes": keystrokes,
        "p50_ms": round(percentile(latencies, 0.5), 1),
        "p95_ms": round(percentile(latencies, 0.95), 1),
        "cache_share": round(cache_hits / keystrokes, 3) if keystrokes else 0.0,
        "accepted_char_share": round(supplied / total_chars, 3) if total_chars else 0.0,
        "superseded_share": round(superseded / keystrokes, 3) if keystrokes else 0.0,
        "shown_share": round(shown / keystrokes, 3) if keystrokes else 0.0,
        "functions": [f"{p.name}@{s}" for p, _, s, _ in functions],
        "interval_ms": args.interval_ms,
        "cursor_hints": args.cursor_hints,
        "patience_ms": args.patience_ms,
        "steady_p50_ms": round(percentile(steady, 0.5), 1),
        "steady_p95_ms": round(percentile(steady, 0.95), 1),
        "answered_p50_ms": round(percentile(answered, 0.5), 1),
        "answered_p95_ms": round(percentile(answered, 0.95), 1),
        "guard": status.get("guard"),
        "trace": trace,
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="qwen2.5-coder-0.5b")
    parser.add_argument("--functions", type=int, default=6)
    parser.add_argument("--max-body-chars", type=int, default=400)
    parser.add_argument("--interval-ms", type=float, default=150.0, help="time between two keystrokes")
    parser.add_argument("--patience-ms", type=float, default=2000.0,
                        help="longest wait for a suggestion before typing on (the request is then cancelled)")
    parser.add_argument("--open-pause-ms", type=float, default=1500.0, help="pause after opening a file")
    parser.add_argument("--completion", default="{}", help='completion settings to override, as JSON ({"prefixTokens": 512})')
    parser.add_argument("--cursor-hints", action="store_true",
                        help="send gearshift/cursor where typing starts when a file opens, as the editor clients do")
    parser.add_argument("--json", metavar="PATH")
    args = parser.parse_args()
    report = asyncio.run(replay(args))
    print(
        f"tier={report['tier']} keystrokes={report['keystrokes']} p50={report['p50_ms']} ms "
        f"p95={report['p95_ms']} ms cache_share={report['cache_share']:.1%} "
        f"accepted_char_share={report['accepted_char_share']:.1%} superseded={report['superseded_share']:.1%} "
        f"(after the first answer in each file: p50={report['steady_p50_ms']} ms p95={report['steady_p95_ms']} ms)"
    )
    if args.json:
        Path(args.json).parent.mkdir(parents=True, exist_ok=True)
        Path(args.json).write_text(json.dumps(report, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
