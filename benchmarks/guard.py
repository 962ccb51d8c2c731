"""The latency guard under a CPU hog: the same typing replay with the guard on and off, in one run.

A busy process (started and stopped by this benchmark) takes one core in the
middle of a typing replay through the real server.  With the guard on, the
server should shift to cheaper decoding or a smaller model and keep delivering
the target tokens/s, then shift back up once the hog stops; with the guard off
it stays put and falls below target.

Usage: python benchmarks/guard.py [--model smollm2-135m] [--warm-s 20 --hog-s 45 --after-s 25] [--json PATH]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import subprocess
import sys
import sysconfig
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from benchmarks.lsp_driver import Editor  # noqa: E402
from benchmarks.replay import DEFAULT_MODULES, pick_functions  # noqa: E402
from benchmarks.report import write_json  # noqa: E402

MIN_TOKENS = 4  # shorter generations say little about decode speed


async def typing_session(args: argparse.Namespace, guard_on: bool) -> dict:
    options = {
        "models": {"defaultModel": args.model, **({"ladder": args.ladder.split(",")} if args.ladder else {})},
        "guard": {"enabled": guard_on, "inlineTargetTokS": args.target},
        "completion": {"minConfidence": 0.0},
    }
    editor = Editor(options)
    await editor.start()
    stdlib = Path(sysconfig.get_paths()["stdlib"])
    functions = pick_functions([stdlib / m for m in DEFAULT_MODULES if (stdlib / m).exists()], 50, 600)
    samples: list[dict] = []
    requests: list[dict] = []  # every request, for reading what happened
    shifts: list[dict] = []
    hog: subprocess.Popen | None = None
    hog_started = hog_stopped = None
    started = time.perf_counter()
    total_s = args.warm_s + args.hog_s + args.after_s
    seen_statuses = 0
    try:
        for index in range(10_000):
            path, source, start, end = functions[index % len(functions)]
            body = source[start:end]
            editor.open(path.resolve().as_uri() + f"#guard{index}", source[:start] + source[end:])
            cursor = start
            for char in body:
                now = time.perf_counter() - started
                if hog is None and hog_started is None and now >= args.warm_s:
                    hog = subprocess.Popen([sys.executable, "-c", "while True: pass"])
                    hog_started = now
                if hog is not None and now >= args.warm_s + args.hog_s:
                    hog.kill()
                    hog.wait()
                    hog, hog_stopped = None, now
                if now >= total_s:
                    break
                future, t0 = editor.request(cursor)
                answer = await editor.answer(future, t0, None)
                for status in editor.statuses[seen_statuses:]:
                    if status.get("shiftTo"):
                        shifts.append({"t_s": round(time.perf_counter() - started, 2), "from": status.get("shiftFrom", status.get("tier")),
                                       "to": status["shiftTo"], "reason": status.get("reason", ""),
                                       "direction": status.get("shiftDirection")})
                seen_statuses = len(editor.statuses)
                status = answer.status
                tokens = status.get("generatedTokens") or 0
                requests.append({"t_s": round(now, 2), "ms": round(answer.latency_ms), "tier": status.get("tier"),
                                 "tokens": tokens, "tok_s": status.get("tokensPerSecond"),
                                 "cache": bool(status.get("cacheHit"))})
                if not status.get("cacheHit") and tokens >= MIN_TOKENS and status.get("tokensPerSecond"):
                    samples.append({"t_s": now, "tok_s": status["tokensPerSecond"], "tier": status.get("tier")})
                editor.insert(cursor, char)
                cursor += 1
            editor.close()
            if time.perf_counter() - started >= total_s:
                break
    finally:
        if hog is not None:
            hog.kill()
            hog.wait()
        await editor.stop()
    hog_start, hog_end = hog_started or args.warm_s, hog_stopped or (args.warm_s + args.hog_s)
    during = [s for s in samples if hog_start <= s["t_s"] < hog_end]
    first_shift = next((s["t_s"] for s in shifts if s["t_s"] >= hog_start), None)
    after_first = [s for s in during if first_shift is not None and s["t_s"] > first_shift] if guard_on else during
    record = {
        "median_tok_s": round(statistics.median([s["tok_s"] for s in during]), 1) if during else None,
        "under_target_share": round(sum(s["tok_s"] < args.target for s in after_first) / len(after_first), 3)
        if after_first else None,
        "samples": len(samples),
        "samples_during_hog": len(during),
        "median_tok_s_before_hog": round(statistics.median([s["tok_s"] for s in samples if s["t_s"] < hog_start]), 1)
        if any(s["t_s"] < hog_start for s in samples) else None,
        "hog_started_s": round(hog_start, 2),
        "hog_stopped_s": round(hog_end, 2),
        "requests": requests,
    }
    if guard_on:
        record["shifts"] = [{k: v for k, v in s.items() if k != "direction"} for s in shifts]
        upshift = next((s["t_s"] for s in shifts if s["t_s"] >= hog_end and s.get("direction") == "up"), None)
        record["upshift_after_hog_stop_s"] = round(upshift - hog_end, 2) if upshift is not None else None
        minutes = max(1e-9, (time.perf_counter() - started) / 60)
        record["shifts_per_minute"] = round(len(shifts) / minutes, 2)
    return record


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="smollm2-135m",
                        help="tier both runs start on: the largest that holds the target unloaded (see `gearshift fit`)")
    parser.add_argument("--ladder", help="comma-separated models, largest first (default: every installed one)")
    parser.add_argument("--target", type=float, default=40.0)
    parser.add_argument("--warm-s", type=float, default=20.0)
    parser.add_argument("--hog-s", type=float, default=45.0)
    parser.add_argument("--after-s", type=float, default=25.0)
    parser.add_argument("--json", metavar="PATH")
    args = parser.parse_args()
    on = asyncio.run(typing_session(args, guard_on=True))
    off = asyncio.run(typing_session(args, guard_on=False))
    report = {
        "target_tok_s": args.target,
        "guard_on": on,
        "guard_off": off,
        "upshift_after_hog_stop_s": on.get("upshift_after_hog_stop_s"),
    }
    print(json.dumps(report, indent=2))
    if args.json:
        write_json(args.json, report)
    return 0


if __name__ == "__main__":
    sys.exit(main())
