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

``--session`` replays a person's session with our clients instead (see ``session``): three open files,
cursor hints, a second of reading, switching among the files and coming back, scrolling.  It also reports the
latency of the first keystroke of each body, the largest prompt window used and the prompt tok/s measured.

Usage: python benchmarks/replay.py [--model qwen2.5-coder-0.5b] [--functions 6] [--session] [--json PATH]
"""

from __future__ import annotations

import argparse
import ast
import asyncio
import json
import sys
import sysconfig
from dataclasses import dataclass, field
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from benchmarks.lsp_driver import Editor  # noqa: E402
from benchmarks.report import write_json  # noqa: E402

DEFAULT_MODULES = ("textwrap.py", "shlex.py", "fnmatch.py", "colorsys.py", "bisect.py", "heapq.py", "glob.py")
SESSION_MODULES = ("textwrap.py", "shlex.py", "heapq.py", "glob.py", "fnmatch.py", "bisect.py", "colorsys.py")


def function_bodies(source: str, max_body_chars: int) -> list[tuple[int, int]]:
    """(body_start, body_end) of the functions in ``source`` whose body (after any docstring) is short enough,
    in ``ast.walk`` order (top-level functions before methods)."""
    lines = source.splitlines(keepends=True)
    starts = [0]
    for line in lines:
        starts.append(starts[-1] + len(line))
    found = []
    for node in ast.walk(ast.parse(source)):
        if not isinstance(node, ast.FunctionDef) or not node.body:
            continue
        body = node.body
        if isinstance(body[0], ast.Expr) and isinstance(getattr(body[0], "value", None), ast.Constant):
            body = body[1:]  # keep the docstring: it is the programmer's intent
        if not body:
            continue
        # After the first line's indentation: the editor's auto-indent put it there (Enter after the docstring or
        # the signature), so the typist starts on an indented empty line rather than typing spaces one by one.
        start = starts[body[0].lineno - 1] + body[0].col_offset
        end = starts[node.end_lineno]
        if 40 <= end - start <= max_body_chars:
            found.append((start, end))
    return found


def pick_functions(modules: list[Path], count: int, max_body_chars: int) -> list[tuple[Path, str, int, int]]:
    """(file, source, body_start, body_end): one function per module (more variety), ``count`` in all."""
    picked = []
    for path in modules:
        source = path.read_text()
        bodies = function_bodies(source, max_body_chars)
        if bodies:
            picked.append((path, source, *bodies[0]))
        if len(picked) >= count:
            break
    return picked


def percentile(values: list[float], fraction: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(round(fraction * (len(ordered) - 1))))]


@dataclass
class Tally:
    """What every keystroke of a run measured."""

    latencies: list[float] = field(default_factory=list)  # every keystroke
    answered: list[float] = field(default_factory=list)  # keystrokes whose request was answered before the next key
    steady: list[float] = field(default_factory=list)  # after the first answer of a body (its prompt is in the cache)
    firsts: list[float] = field(default_factory=list)  # the first keystroke of each body
    trace: list[dict] = field(default_factory=list)  # one entry per keystroke, for reading where the time went
    prompt_tokens: list[int] = field(default_factory=list)  # the prompt each model answer had
    keystrokes: int = 0
    cache_hits: int = 0
    superseded: int = 0
    supplied: int = 0
    total_chars: int = 0
    shown: int = 0


async def retype(editor: Editor, label: str, cursor: int, body: str, args: argparse.Namespace, tally: Tally) -> None:
    """Type ``body`` at ``cursor`` of the active document, a key at a time, accepting suggestions that match."""
    remaining = body
    tally.total_chars += len(body)
    warmed = False
    first = True
    while remaining:
        future, started = editor.request(cursor)
        answer = await editor.answer(future, started, args.patience_ms / 1000)
        tally.keystrokes += 1
        # A keystroke whose request was still running when the typist moved on counts with the time
        # waited (a lower bound): leaving it out would hide exactly the slow ones.
        tally.latencies.append(answer.latency_ms)
        if first:
            tally.firsts.append(answer.latency_ms)
            first = False
        tally.trace.append({"file": label, "offset": len(body) - len(remaining), "ms": round(answer.latency_ms, 1),
                            "superseded": answer.superseded, "cache": bool(answer.status.get("cacheHit")),
                            "tokens": answer.status.get("generatedTokens"), "stop": answer.status.get("stopReason"),
                            "ttft_ms": answer.status.get("timeToFirstTokenMs"),
                            "prompt": answer.status.get("promptTokens"), "reused": answer.status.get("reusedTokens"),
                            "shown": len(answer.text or ""),
                            "hidden": answer.status.get("hidden"), "bounded": answer.status.get("boundedWindow")})
        if answer.status.get("promptTokens"):
            tally.prompt_tokens.append(answer.status["promptTokens"])
        if warmed:
            tally.steady.append(answer.latency_ms)
        warmed = warmed or not answer.superseded
        if answer.superseded:
            tally.superseded += 1
        else:
            tally.answered.append(answer.latency_ms)
            tally.cache_hits += bool(answer.status.get("cacheHit"))
        if answer.text:
            tally.shown += 1
        if answer.text and remaining.startswith(answer.text):
            editor.insert(cursor, answer.text)  # accept the suggestion
            cursor += len(answer.text)
            tally.supplied += len(answer.text)
            remaining = remaining[len(answer.text) :]
            continue
        # One keystroke; Enter brings the next line's indentation with it, as editors auto-indent.
        key = len(remaining) - len(remaining[1:].lstrip(" \t")) if remaining[0] == "\n" else 1
        editor.insert(cursor, remaining[:key])
        cursor += key
        remaining = remaining[key:]
        if not answer.superseded:
            await asyncio.sleep(max(0.0, args.interval_ms / 1000 - answer.latency_ms / 1000))
    print(f"  {label}: {tally.keystrokes} keystrokes so far, {tally.supplied}/{tally.total_chars} chars supplied",
          file=sys.stderr, flush=True)


async def classic(editor: Editor, args: argparse.Namespace, tally: Tally) -> list[str]:
    """One file at a time: open it, (hint), read, retype one function's body, close it."""
    stdlib = Path(sysconfig.get_paths()["stdlib"])
    modules = [stdlib / name for name in DEFAULT_MODULES if (stdlib / name).exists()]
    functions = pick_functions(modules, args.functions, args.max_body_chars)
    for path, source, start, end in functions:
        editor.open(path.resolve().as_uri() + f"#replay{start}", source[:start] + source[end:])
        if args.cursor_hints:
            editor.hint(start)  # as our clients do: the cursor rests where typing will start while reading
        await asyncio.sleep(args.open_pause_ms / 1000)  # a programmer looks at the file before typing
        await retype(editor, f"{path.name}@{start}", start, source[start:end], args, tally)
        editor.close()
    return [f"{p.name}@{s}" for p, _, s, _ in functions]


def pick_session(modules: list[Path], max_body_chars: int, gap_lines: int) -> list[tuple[Path, str, list[tuple[int, int]]]]:
    """Three files, each with two function bodies to retype, the second at least ``gap_lines`` below the first."""
    chosen = []
    for path in modules:
        source = path.read_text()
        bodies = sorted(function_bodies(source, max_body_chars))
        if not bodies:
            continue
        first = bodies[0]
        first_line = source.count("\n", 0, first[0])
        later = [b for b in bodies[1:] if source.count("\n", 0, b[0]) - first_line >= gap_lines]
        if later:
            chosen.append((path, source, [first, later[0]]))
        if len(chosen) == 3:
            break
    return chosen


async def session(editor: Editor, args: argparse.Namespace, tally: Tally) -> list[str]:
    """A person with our clients: three files open, cursor hints, reading, switching back and forth, scrolling.

    The three files are opened (an editor restoring its session), each with two function bodies deleted.  Then,
    in turn through the files twice: focus the file (the client's hint), scroll to where typing starts (a few
    hints on the way, a screen apart), read for ``--read-ms``, retype the body.  The second round comes back to
    each file and types further down: the window start moved, and the file's KV was saved while the others were
    typed into.
    """
    stdlib = Path(sysconfig.get_paths()["stdlib"])
    modules = [stdlib / name for name in SESSION_MODULES if (stdlib / name).exists()]
    files = pick_session(modules, args.max_body_chars, args.gap_lines)
    if len(files) < 3:
        raise SystemExit("session mode needs three standard-library modules with two short functions each")
    uris = {}
    last_cursor: dict[str, int] = {}
    for path, source, bodies in reversed(files):  # the first file ends up active, as the last one opened
        text = source
        for start, end in reversed(bodies):
            text = text[:start] + text[end:]
        uris[path] = path.resolve().as_uri()
        editor.open(uris[path], text)
        last_cursor[uris[path]] = 0
    labels = []
    for round_index in range(2):
        for path, source, bodies in files:
            start, end = bodies[round_index]
            # Earlier bodies of this file were retyped in full: offsets before this one are the source's again;
            # later deleted bodies come after it.
            uri = uris[path]
            editor.focus(uri)
            editor.hint(last_cursor[uri])  # focus: the cursor where it was
            await asyncio.sleep(args.scroll_ms / 1000)
            for step in scroll_steps(editor.text, last_cursor[uri], start, args.screen_lines):
                editor.hint(step)
                await asyncio.sleep(args.scroll_ms / 1000)
            editor.hint(start)
            await asyncio.sleep(args.read_ms / 1000)
            label = f"{path.name}@{start}"
            await retype(editor, label, start, source[start:end], args, tally)
            last_cursor[uri] = end
            labels.append(label)
    return labels


def scroll_steps(text: str, frm: int, to: int, screen_lines: int) -> list[int]:
    """Offsets a screen apart from ``frm`` towards ``to`` (excluded), where the cursor passes while scrolling."""
    starts = [0] + [i + 1 for i, ch in enumerate(text) if ch == "\n"]
    line_of = lambda offset: text.count("\n", 0, offset)  # noqa: E731
    a, b = line_of(frm), line_of(to)
    step = screen_lines if b > a else -screen_lines
    return [starts[line] for line in range(a + step, b, step)] if a != b else []


async def replay(args: argparse.Namespace) -> dict:
    options = {
        "models": {"defaultModel": args.model, "ladder": [args.model]},
        "guard": {"enabled": False},
        "completion": json.loads(args.completion),
    }
    editor = Editor(options)
    ready = await editor.start()
    tally = Tally()
    run = session if args.session else classic
    labels = await run(editor, args, tally)
    status = await editor.status()
    await editor.stop()
    return {
        "mode": "session" if args.session else "classic",
        "tier": ready.get("tier", args.model),
        "keystrokes": tally.keystrokes,
        "p50_ms": round(percentile(tally.latencies, 0.5), 1),
        "p95_ms": round(percentile(tally.latencies, 0.95), 1),
        "first_keystroke_ms": [round(ms) for ms in tally.firsts],
        "cache_share": round(tally.cache_hits / tally.keystrokes, 3) if tally.keystrokes else 0.0,
        "accepted_char_share": round(tally.supplied / tally.total_chars, 3) if tally.total_chars else 0.0,
        "superseded_share": round(tally.superseded / tally.keystrokes, 3) if tally.keystrokes else 0.0,
        "shown_share": round(tally.shown / tally.keystrokes, 3) if tally.keystrokes else 0.0,
        "window_tokens_max": max(tally.prompt_tokens, default=0),
        # Of the keystrokes the model answered, the share that made do with the window coldPromptMs bounds.
        "bounded_window_share": bounded_share(tally.trace),
        "prompt_tok_s": prompt_speed(tally.trace),
        "functions": labels,
        "interval_ms": args.interval_ms,
        "cursor_hints": args.cursor_hints or args.session,
        "patience_ms": args.patience_ms,
        "steady_p50_ms": round(percentile(tally.steady, 0.5), 1),
        "steady_p95_ms": round(percentile(tally.steady, 0.95), 1),
        "answered_p50_ms": round(percentile(tally.answered, 0.5), 1),
        "answered_p95_ms": round(percentile(tally.answered, 0.95), 1),
        "guard": status.get("guard"),
        "engine": status.get("engine") or status.get("engines"),
        "trace": tally.trace,
    }


def bounded_share(trace: list[dict]) -> float | None:
    answered = [t for t in trace if t.get("prompt")]
    return round(sum(bool(t.get("bounded")) for t in answered) / len(answered), 3) if answered else None


def prompt_speed(trace: list[dict]) -> float | None:
    """The fastest prompt evaluation the keystrokes showed (tokens evaluated / time to first token, over answers
    that evaluated 64 tokens or more; the first token's decode is in it, so a slight underestimate)."""
    speeds = [(t["prompt"] - t["reused"]) / (t["ttft_ms"] / 1000) for t in trace
              if t.get("prompt") and t.get("reused") is not None and t.get("ttft_ms")
              and t["prompt"] - t["reused"] >= 64]
    return round(max(speeds), 1) if speeds else None


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
    parser.add_argument("--session", action="store_true",
                        help="a person's session: three open files, hints, switching back and forth, scrolling")
    parser.add_argument("--read-ms", type=float, default=1000.0,
                        help="session: time the cursor rests where typing starts before the first key")
    parser.add_argument("--scroll-ms", type=float, default=300.0, help="session: time between scroll steps")
    parser.add_argument("--screen-lines", type=int, default=40, help="session: lines per scroll step")
    parser.add_argument("--gap-lines", type=int, default=60,
                        help="session: the second body of a file is at least this many lines below the first")
    parser.add_argument("--json", metavar="PATH")
    args = parser.parse_args()
    report = asyncio.run(replay(args))
    print(
        f"mode={report['mode']} window<={report['window_tokens_max']} tokens prompt={report['prompt_tok_s']} tok/s "
        f"first keystrokes={report['first_keystroke_ms']} ms bounded window={report['bounded_window_share']}")
    print(
        f"tier={report['tier']} keystrokes={report['keystrokes']} p50={report['p50_ms']} ms "
        f"p95={report['p95_ms']} ms cache_share={report['cache_share']:.1%} "
        f"accepted_char_share={report['accepted_char_share']:.1%} superseded={report['superseded_share']:.1%} "
        f"(after the first answer in each file: p50={report['steady_p50_ms']} ms p95={report['steady_p95_ms']} ms)"
    )
    if args.json:
        write_json(args.json, report)
    return 0


if __name__ == "__main__":
    sys.exit(main())
