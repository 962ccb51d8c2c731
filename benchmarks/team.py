"""Team engine scaling: N editors typing at once against one llama-server vs N in-process servers.

Each simulated editor is a real Gearshift server driven by a real LSP client (``lsp_driver.Editor``) retyping
function bodies of standard-library modules keystroke by keystroke (``--interval-ms`` apart; a request still
running when the next key comes is cancelled, as editors do). In the *team* set-up all N Gearshift servers use
one ``llama-server --parallel N`` on loopback serving the same model; in the *local* set-up each Gearshift server
runs the model in-process. Reported per N and set-up: p50/p95 keystroke-to-suggestion latency, share of
keystrokes answered before the next key, aggregate delivered tokens/s (generated tokens of all editors over
the wall time), one stream's decode tokens/s, and how many editors had the prompt at their cursor evaluated (the
server's ``gearshift/prewarmed``) before they started typing. One run measures both set-ups on the same machine,
one after the other (never at once); the closing note states the measured scaling and what a GPU box or a
cluster changes, calculated from these figures and published GPU memory bandwidths.

Usage: python benchmarks/team.py [--editors 1 2 4 8] [--setups team local] [--keystrokes 60]
       [--server-threads 2] [--local-threads N] [--json PATH]
"""

from __future__ import annotations

import argparse
import asyncio
import shlex
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from benchmarks.lsp_driver import Editor  # noqa: E402
from benchmarks.replay import DEFAULT_MODULES, percentile, pick_functions  # noqa: E402
from benchmarks.report import write_json  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent


def llama_server_binary() -> str:
    done = subprocess.run([sys.executable, str(ROOT / "scripts" / "build_llama_server.py")],
                          capture_output=True, text=True, check=True)
    return done.stdout.strip().splitlines()[-1]


def start_llama_server(binary: str, model: str, port: int, parallel: int, threads: int,
                       log_path: str | None = None, extra: tuple[str, ...] = ()) -> subprocess.Popen:
    import urllib.request

    log = open(log_path, "a") if log_path else subprocess.DEVNULL  # noqa: SIM115 (the process writes it)
    if log_path:
        print(f"==== llama-server --parallel {parallel} -t {threads} {' '.join(extra)}", file=log, flush=True)
    process = subprocess.Popen(
        [binary, "-m", model, "--host", "127.0.0.1", "--port", str(port), "-c", str(4096 * parallel),
         "--parallel", str(parallel), "-t", str(threads), "--cache-reuse", "256", "--no-webui", *extra],
        stdout=log, stderr=log,
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


async def read(editor: Editor, offset: int, reading_s: float, wait_warm_s: float) -> float | None:
    """The programmer reads for ``reading_s`` with the cursor resting where typing will start (our clients send
    that as a hint, and the server evaluates the prompt there); past that, waits up to ``wait_warm_s`` more for that
    prompt to be evaluated. Returns seconds from the hint to the server's ``gearshift/prewarmed`` for it, or None
    when it had not come by the time typing starts."""
    position = editor.position_at(offset)
    editor.client.protocol.notify("gearshift/cursor", {
        "textDocument": {"uri": editor.uri}, "position": {"line": position.line, "character": position.character}})
    hinted, warm_s = time.perf_counter(), None
    while True:
        elapsed = time.perf_counter() - hinted
        if warm_s is None and any(p.get("line") == position.line and p.get("character") == position.character
                                  for p in editor.prewarmed):
            warm_s = round(elapsed, 2)
        if elapsed >= reading_s and (warm_s is not None or elapsed >= reading_s + wait_warm_s):
            return warm_s
        await asyncio.sleep(0.05)


async def one_editor(
    options: dict, function: tuple, keystrokes: int, interval_s: float, patience_s: float, reading_s: float,
    wait_warm_s: float,
) -> dict:
    path, source, start, end = function
    editor = Editor(options)
    await editor.start()
    editor.open(path.resolve().as_uri() + f"#team{start}", source[:start] + source[end:])
    warm_s = await read(editor, start, reading_s, wait_warm_s)
    cursor, remaining = start, source[start:end]
    latencies, speeds, answered, generated = [], [], 0, 0
    for _ in range(min(keystrokes, len(remaining))):
        future, sent = editor.request(cursor)
        answer = await editor.answer(future, sent, patience_s)
        latencies.append(answer.latency_ms)
        if not answer.superseded:
            answered += 1
            if not answer.status.get("cacheHit"):
                generated += int(answer.status.get("generatedTokens") or 0)
                if answer.status.get("tokensPerSecond"):
                    speeds.append(float(answer.status["tokensPerSecond"]))
        editor.insert(cursor, remaining[0])
        cursor, remaining = cursor + 1, remaining[1:]
        await asyncio.sleep(max(0.0, interval_s - answer.latency_ms / 1000))
    await editor.stop()
    return {"latencies": latencies, "speeds": speeds, "answered": answered, "generated": generated, "warm_s": warm_s}


async def run_setup(options: dict, functions: list, n: int, args: argparse.Namespace) -> dict:
    started = time.perf_counter()
    results = await asyncio.gather(*(
        one_editor(options, functions[i % len(functions)], args.keystrokes, args.interval_ms / 1000,
                   args.patience_ms / 1000, args.reading_s, args.wait_warm_s)
        for i in range(n)))
    wall = time.perf_counter() - started
    latencies = [ms for r in results for ms in r["latencies"]]
    warm = [r["warm_s"] for r in results if r["warm_s"] is not None]
    return {
        "editors": n,
        "p50_ms": round(percentile(latencies, 0.5), 1),
        "p95_ms": round(percentile(latencies, 0.95), 1),
        "answered_share": round(sum(r["answered"] for r in results) / max(1, len(latencies)), 3),
        "aggregate_tok_s": round(sum(r["generated"] for r in results) / wall, 1),
        "stream_tok_s": round(percentile([v for r in results for v in r["speeds"]], 0.5), 1),
        "warm_before_typing": f"{len(warm)}/{n}",
        "prewarm_s_max": max(warm, default=None),
        "wall_s": round(wall, 1),
    }


async def main_async(args: argparse.Namespace) -> dict:
    import sysconfig

    from lsp_server.inference.assembly import ensure_model
    from lsp_server.inference.machine import measure_read_bandwidth

    stdlib = Path(sysconfig.get_paths()["stdlib"])
    functions = pick_functions([stdlib / n for n in DEFAULT_MODULES if (stdlib / n).exists()], 8, 300)
    model_path = str(ensure_model(args.model))
    binary = llama_server_binary() if "team" in args.setups else ""
    report: dict = {"model": args.model, "model_bytes": Path(model_path).stat().st_size,
                    "read_bandwidth_gb_s": round(measure_read_bandwidth() / 1e9, 1), "team": [], "local": []}
    for n in args.editors:
        if "team" in args.setups:
            server = start_llama_server(binary, model_path, args.port, n, args.server_threads, args.server_log,
                                        tuple(shlex.split(args.server_args)))
            try:
                team = {"endpoints": [{"name": "team", "urls": [f"http://127.0.0.1:{args.port}"]}],
                        "models": {"defaultModel": "team", "ladder": ["team"]}, "guard": {"enabled": False}}
                report["team"].append(await run_setup(team, functions, n, args))
            finally:
                server.kill()
                server.wait()
            print(f"  team  N={n}: {report['team'][-1]}", file=sys.stderr, flush=True)
        if "local" in args.setups:
            local = {"models": {"defaultModel": args.model, "ladder": [args.model]}, "guard": {"enabled": False}}
            if args.local_threads:
                local["engine"] = {"nThreads": args.local_threads}
            report["local"].append(await run_setup(local, functions, n, args))
            print(f"  local N={n}: {report['local'][-1]}", file=sys.stderr, flush=True)
    return report


GPU_READ_GB_S = {"L4": 300, "A100 80GB": 2039, "H100 SXM": 3350}
"""Published memory bandwidth of common inference GPUs: decoding a small model is bound by reading its weights."""


def closing_note(report: dict) -> list[str]:
    """The measured scaling, and what a GPU box or a cluster changes, calculated from these figures."""
    lines = []
    for kind in ("team", "local"):
        rows = report[kind]
        if len(rows) < 2 or not rows[0]["aggregate_tok_s"]:
            continue
        first, last = rows[0], rows[-1]
        lines.append(
            f"{kind}: {first['editors']} -> {last['editors']} editors: aggregate tok/s x"
            f"{last['aggregate_tok_s'] / first['aggregate_tok_s']:.2f} (ideal x{last['editors'] / first['editors']:.0f}),"
            f" p95 {first['p95_ms']:.0f} -> {last['p95_ms']:.0f} ms, answered {first['answered_share']:.0%} ->"
            f" {last['answered_share']:.0%}.")
    team = [row for row in report["team"] if row["aggregate_tok_s"] and row["stream_tok_s"] == row["stream_tok_s"]]
    if team:  # (NaN != NaN: a set-up where nothing was answered)
        demand, capacity = team[0]["aggregate_tok_s"] / team[0]["editors"], max(r["aggregate_tok_s"] for r in team)
        cpu_gb_s, stream = report["read_bandwidth_gb_s"], team[0]["stream_tok_s"]
        efficiency = min(1.0, stream / (cpu_gb_s * 1e9 / report["model_bytes"]))
        lines.append(
            f"One editor typing used {demand:.1f} tok/s; this box delivered at most {capacity:.1f} tok/s in all, about"
            f" {capacity / demand:.1f} editors' worth. One stream decoded {stream:.1f} tok/s, {efficiency:.0%} of"
            f" what reading the weights at the measured {cpu_gb_s} GB/s allows; decoding is bound by that read,"
            " which llama-server's slots share (continuous batching), so a GPU box gives each stream at most:")
        for gpu, gb_s in GPU_READ_GB_S.items():
            per_stream = efficiency * gb_s * 1e9 / report["model_bytes"]
            lines.append(f"  {gpu} ({gb_s} GB/s, {gb_s / cpu_gb_s:.0f}x): {per_stream:.0f} tok/s (an upper bound:"
                         f" small models hit kernel-launch limits first): {per_stream / demand:.0f} typing editors"
                         " from one stream's speed alone, more with batching.")
        lines.append("A vLLM cluster of R replicas behind one gateway serves R times the editors; document affinity"
                     " (several endpoints.urls) keeps each file's KV cache on one replica.")
    return lines


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--editors", type=int, nargs="+", default=[1, 2, 4, 8])
    parser.add_argument("--setups", nargs="+", choices=("team", "local"), default=["team", "local"])
    parser.add_argument("--keystrokes", type=int, default=60, help="keystrokes per editor")
    parser.add_argument("--interval-ms", type=float, default=150.0)
    parser.add_argument("--patience-ms", type=float, default=2000.0,
                        help="a request still running this long after its keystroke is cancelled by the next one")
    parser.add_argument("--reading-s", type=float, default=8.0,
                        help="seconds each editor reads the file (its cursor hint sent) before typing")
    parser.add_argument("--wait-warm-s", type=float, default=120.0,
                        help="after reading, wait up to this long more for the prompt at the cursor to be evaluated:"
                             " typing is measured warm, the cold prompt's time is reported on its own (0: type anyway)")
    parser.add_argument("--model", default="qwen2.5-coder-0.5b")
    parser.add_argument("--port", type=int, default=18080)
    parser.add_argument("--server-threads", type=int, default=2)
    parser.add_argument("--local-threads", type=int, default=None,
                        help="engine.nThreads of each in-process server (default: its own, the physical cores);"
                             " on a box that other work keeps busy, 1 thread each avoids decode steps waiting"
                             " for a descheduled thread, in llama-server (--server-threads 1) as in-process")
    parser.add_argument("--server-args", default="",
                        help="more llama-server options, e.g. '-b 128 -ub 128': a cold prompt is evaluated in chunks"
                             " that the other slots' tokens join, instead of one call that stalls every slot")
    parser.add_argument("--server-log", metavar="PATH", help="append llama-server's log here (slot choices, timings)")
    parser.add_argument("--json", metavar="PATH")
    args = parser.parse_args()
    report = asyncio.run(main_async(args))
    print(f"{'N':>3} {'set-up':<6} {'p50 ms':>8} {'p95 ms':>8} {'answered':>9} {'agg tok/s':>10} {'warm':>5}"
          f" {'cold s':>7}")
    for kind in ("team", "local"):
        for row in report[kind]:
            print(f"{row['editors']:>3} {kind:<6} {row['p50_ms']:>8} {row['p95_ms']:>8} "
                  f"{row['answered_share']:>9} {row['aggregate_tok_s']:>10} {row['warm_before_typing']:>5}"
                  f" {row['prewarm_s_max'] if row['prewarm_s_max'] is not None else '-':>7}")
    report["note"] = closing_note(report)
    print("\n".join(report["note"]))
    if args.json:
        write_json(args.json, report)
    return 0


if __name__ == "__main__":
    sys.exit(main())
