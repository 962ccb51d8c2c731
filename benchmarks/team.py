"""Team engine scaling: N editors typing at once against one llama-server vs N in-process servers.

Each simulated editor is a real Gearshift server driven by a real LSP client (``lsp_driver.Editor``) retyping
function bodies of standard-library modules keystroke by keystroke (``--interval-ms`` apart; a request still
running when the next key comes is cancelled, as editors do). In the *team* set-up all N Gearshift servers use
one ``llama-server --parallel N`` on loopback serving the same model; in the *local* set-up each Gearshift server
runs the model in-process. Reported per N and set-up: p50/p95 keystroke-to-suggestion latency, share of
keystrokes answered before the next key, and aggregate delivered tokens/s (generated tokens of all editors over
the wall time). One run measures both set-ups on the same machine, one after the other (never at once).

Usage: python benchmarks/team.py [--editors 1 2 4] [--keystrokes 60] [--json PATH]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from benchmarks.lsp_driver import Editor  # noqa: E402
from benchmarks.replay import DEFAULT_MODULES, percentile, pick_functions  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent


def llama_server_binary() -> str:
    done = subprocess.run([sys.executable, str(ROOT / "scripts" / "build_llama_server.py")],
                          capture_output=True, text=True, check=True)
    return done.stdout.strip().splitlines()[-1]


def start_llama_server(binary: str, model: str, port: int, parallel: int, threads: int) -> subprocess.Popen:
    import urllib.request

    process = subprocess.Popen(
        [binary, "-m", model, "--host", "127.0.0.1", "--port", str(port), "-c", str(4096 * parallel),
         "--parallel", str(parallel), "-t", str(threads), "--cache-reuse", "256", "--no-webui"],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )
    deadline = time.monotonic() + 180
    while time.monotonic() < deadline:
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/health", timeout=2) as response:
                if response.status == 200:
                    return process
        except OSError:
            time.sleep(0.3)
    process.kill()
    raise RuntimeError("llama-server did not become healthy")


async def one_editor(
    options: dict, function: tuple, keystrokes: int, interval_s: float, patience_s: float, reading_s: float
) -> dict:
    path, source, start, end = function
    editor = Editor(options)
    await editor.start()
    editor.open(path.resolve().as_uri() + f"#team{start}", source[:start] + source[end:])
    # As our clients do: the cursor rests where typing will start while the programmer reads.
    position = editor.position_at(start)
    editor.client.protocol.notify("gearshift/cursor", {
        "textDocument": {"uri": editor.uri}, "position": {"line": position.line, "character": position.character}})
    await asyncio.sleep(reading_s)
    cursor, remaining = start, source[start:end]
    latencies, answered, generated = [], 0, 0
    for _ in range(min(keystrokes, len(remaining))):
        future, sent = editor.request(cursor)
        answer = await editor.answer(future, sent, patience_s)
        latencies.append(answer.latency_ms)
        if not answer.superseded:
            answered += 1
            if not answer.status.get("cacheHit"):
                generated += int(answer.status.get("generatedTokens") or 0)
        editor.insert(cursor, remaining[0])
        cursor, remaining = cursor + 1, remaining[1:]
        await asyncio.sleep(max(0.0, interval_s - answer.latency_ms / 1000))
    await editor.stop()
    return {"latencies": latencies, "answered": answered, "generated": generated}


async def run_setup(options: dict, functions: list, n: int, keystrokes: int, interval_s: float,
                    patience_s: float, reading_s: float) -> dict:
    started = time.perf_counter()
    results = await asyncio.gather(*(one_editor(options, functions[i % len(functions)], keystrokes, interval_s,
                                                patience_s, reading_s) for i in range(n)))
    wall = time.perf_counter() - started
    latencies = [ms for r in results for ms in r["latencies"]]
    return {
        "editors": n,
        "p50_ms": round(percentile(latencies, 0.5), 1),
        "p95_ms": round(percentile(latencies, 0.95), 1),
        "answered_share": round(sum(r["answered"] for r in results) / max(1, len(latencies)), 3),
        "aggregate_tok_s": round(sum(r["generated"] for r in results) / wall, 1),
        "wall_s": round(wall, 1),
    }


async def main_async(args: argparse.Namespace) -> dict:
    import sysconfig

    from lsp_server.inference.models import ensure_model

    stdlib = Path(sysconfig.get_paths()["stdlib"])
    functions = pick_functions([stdlib / n for n in DEFAULT_MODULES if (stdlib / n).exists()], 8, 300)
    model_path = str(ensure_model(args.model))
    binary = llama_server_binary()
    report: dict = {"model": args.model, "team": [], "local": []}
    for n in args.editors:
        server = start_llama_server(binary, model_path, args.port, n, args.server_threads)
        try:
            team = {"endpoints": [{"name": "team", "urls": [f"http://127.0.0.1:{args.port}"]}],
                    "models": {"defaultModel": "team", "ladder": ["team"]}, "guard": {"enabled": False}}
            report["team"].append(await run_setup(team, functions, n, args.keystrokes, args.interval_ms / 1000,
                                                  args.patience_ms / 1000, args.reading_s))
        finally:
            server.kill()
            server.wait()
        print(f"  team  N={n}: {report['team'][-1]}", file=sys.stderr, flush=True)
        local = {"models": {"defaultModel": args.model, "ladder": [args.model]}, "guard": {"enabled": False}}
        report["local"].append(await run_setup(local, functions, n, args.keystrokes, args.interval_ms / 1000,
                                               args.patience_ms / 1000, args.reading_s))
        print(f"  local N={n}: {report['local'][-1]}", file=sys.stderr, flush=True)
    return report


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--editors", type=int, nargs="+", default=[1, 2, 4])
    parser.add_argument("--keystrokes", type=int, default=60, help="keystrokes per editor")
    parser.add_argument("--interval-ms", type=float, default=150.0)
    parser.add_argument("--patience-ms", type=float, default=2000.0,
                        help="a request still running this long after its keystroke is cancelled by the next one")
    parser.add_argument("--reading-s", type=float, default=8.0,
                        help="seconds each editor reads the file (its cursor hint sent) before typing")
    parser.add_argument("--model", default="qwen2.5-coder-0.5b")
    parser.add_argument("--port", type=int, default=18080)
    parser.add_argument("--server-threads", type=int, default=2)
    parser.add_argument("--json", metavar="PATH")
    args = parser.parse_args()
    report = asyncio.run(main_async(args))
    print(f"{'N':>3} {'set-up':<6} {'p50 ms':>8} {'p95 ms':>8} {'answered':>9} {'agg tok/s':>10}")
    for kind in ("team", "local"):
        for row in report[kind]:
            print(f"{row['editors']:>3} {kind:<6} {row['p50_ms']:>8} {row['p95_ms']:>8} "
                  f"{row['answered_share']:>9} {row['aggregate_tok_s']:>10}")
    if args.json:
        Path(args.json).write_text(json.dumps(report, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
