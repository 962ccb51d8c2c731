"""Soak: a long typing session against the real server; does anything leak or get lost?

Replays real typing (function bodies of standard-library modules retyped keystroke by keystroke, as
``replay.py`` does) for ``--minutes``, with the things a working day brings: requests cancelled when the
typist moves on, switches among three open files and back, files closed and opened, code-action lists on
selections, and now and then an explain on a selection. Every ``--sample-s`` it reads the server process's
resident memory, thread count and open file descriptors from /proc.

Reports the slope per hour of RSS (MiB), threads and fds (least squares over the samples after the first
``--warmup-min`` minutes, when the model and caches have settled) and the number of requests that never got an
answer (must be 0).

Usage: python benchmarks/soak.py [--minutes 20] [--model qwen2.5-coder-0.5b] [--json PATH]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from lsprotocol import types  # noqa: E402

from benchmarks.lsp_driver import Editor  # noqa: E402
from benchmarks.replay import DEFAULT_MODULES, pick_functions  # noqa: E402
from benchmarks.report import write_json  # noqa: E402


def process_sample(pid: int) -> dict:
    status = Path(f"/proc/{pid}/status").read_text()
    fields = dict(line.split(":", 1) for line in status.splitlines() if ":" in line)
    return {
        "rss_mib": int(fields["VmRSS"].split()[0]) / 1024,
        "threads": int(fields["Threads"]),
        "fds": len(os.listdir(f"/proc/{pid}/fd")),
    }


def slope_per_hour(samples: list[tuple[float, float]]) -> float:
    """Least-squares slope of (seconds, value) pairs, per hour."""
    if len(samples) < 2:
        return 0.0
    n = len(samples)
    mean_t = sum(t for t, _ in samples) / n
    mean_v = sum(v for _, v in samples) / n
    var = sum((t - mean_t) ** 2 for t, _ in samples)
    if var == 0:
        return 0.0
    return sum((t - mean_t) * (v - mean_v) for t, v in samples) / var * 3600


class Session:
    """Three open documents in one server, switched among as a person does."""

    def __init__(self, editor: Editor) -> None:
        self.editor = editor
        self.docs: dict[str, tuple[str, int]] = {}
        self.sent = 0
        self.answered = 0
        self.outstanding: set[asyncio.Future] = set()

    def track(self, future: asyncio.Future) -> asyncio.Future:
        self.sent += 1
        self.outstanding.add(future)

        def done(f: asyncio.Future) -> None:
            self.outstanding.discard(f)
            self.answered += 1  # a result, an error or the cancelled-request error: each is an answer
            if not f.cancelled():
                f.exception()

        future.add_done_callback(done)
        return future

    def switch_to(self, uri: str, text: str) -> None:
        editor = self.editor
        if editor.uri and editor.uri in self.docs:
            self.docs[editor.uri] = (editor.text, editor.version)
        if uri in self.docs:
            editor.uri, (editor.text, editor.version) = uri, self.docs[uri]
            return
        if len(self.docs) >= 3:  # a fourth file: close the oldest
            oldest = next(iter(self.docs))
            self.editor.client.text_document_did_close(
                types.DidCloseTextDocumentParams(text_document=types.TextDocumentIdentifier(uri=oldest)))
            del self.docs[oldest]
        editor.open(uri, text)
        self.docs[uri] = (text, 1)

    def code_actions(self, offset: int, length: int) -> None:
        editor = self.editor
        params = types.CodeActionParams(
            text_document=types.TextDocumentIdentifier(uri=editor.uri),
            range=types.Range(start=editor.position_at(offset), end=editor.position_at(offset + length)),
            context=types.CodeActionContext(diagnostics=[]),
        )
        self.track(asyncio.wrap_future(editor.client.protocol.send_request(types.TEXT_DOCUMENT_CODE_ACTION, params)))

    def explain(self, offset: int, length: int) -> asyncio.Future:
        editor = self.editor
        argument = {"uri": editor.uri, "range": {
            "start": {"line": editor.position_at(offset).line, "character": editor.position_at(offset).character},
            "end": {"line": editor.position_at(offset + length).line,
                    "character": editor.position_at(offset + length).character}}}
        params = types.ExecuteCommandParams(command="gearshift.explain", arguments=[argument])
        return self.track(asyncio.wrap_future(
            editor.client.protocol.send_request(types.WORKSPACE_EXECUTE_COMMAND, params)))


async def soak(args: argparse.Namespace) -> dict:
    import sysconfig

    rng = random.Random(args.seed)
    stdlib = Path(sysconfig.get_paths()["stdlib"])
    modules = [stdlib / name for name in DEFAULT_MODULES if (stdlib / name).exists()]
    functions = pick_functions(modules, 40, 300)
    options = {"models": {"defaultModel": args.model}}  # shipped defaults otherwise: guard, prewarm, cloud off
    editor = Editor(options)
    await editor.start()
    session = Session(editor)
    pid = editor.client._server.pid  # type: ignore[union-attr]
    started = time.monotonic()
    samples: list[dict] = []
    last_sample = -1e9
    last_explain = started
    keystrokes = 0
    while time.monotonic() - started < args.minutes * 60:
        path, source, start, end = rng.choice(functions)
        uri = path.resolve().as_uri() + f"#soak{start}"
        session.switch_to(uri, source[:start] + source[end:])
        cursor, remaining = start, source[start:end]
        while remaining and time.monotonic() - started < args.minutes * 60:
            future, sent_at = editor.request(cursor)
            session.track(future)
            # A quick typist: the next key comes after 60-150 ms; a request still running is then cancelled.
            await editor.answer(future, sent_at, rng.uniform(0.06, 0.15))
            keystrokes += 1
            editor.insert(cursor, remaining[0])
            cursor += 1
            remaining = remaining[1:]
            if keystrokes % 40 == 0:
                session.code_actions(max(start, cursor - 30), 30)
            if rng.random() < 0.01:  # glance at another open file and come back
                other = rng.choice(list(session.docs))
                here = (editor.uri, editor.text)
                session.switch_to(other, "")
                await asyncio.sleep(rng.uniform(0.2, 1.0))
                session.switch_to(*here)
            now = time.monotonic()
            if now - last_explain > args.explain_every_s:
                last_explain = now
                await session.explain(start, max(1, min(120, cursor - start)))
            if now - last_sample >= args.sample_s:
                last_sample = now
                samples.append({"t": round(now - started, 1), **process_sample(pid)})
                print(f"  {samples[-1]['t']:7.0f}s rss {samples[-1]['rss_mib']:.0f} MiB threads "
                      f"{samples[-1]['threads']} fds {samples[-1]['fds']} keystrokes {keystrokes}",
                      file=sys.stderr, flush=True)
    # Everything sent must come back: wait for the stragglers (a request may still be generating).
    deadline = time.monotonic() + 120
    while session.outstanding and time.monotonic() < deadline:
        await asyncio.sleep(0.1)
    samples.append({"t": round(time.monotonic() - started, 1), **process_sample(pid)})
    status = await editor.status()
    await editor.stop()
    settled = [s for s in samples if s["t"] >= args.warmup_min * 60] or samples
    return {
        "minutes": args.minutes,
        "keystrokes": keystrokes,
        "requests_sent": session.sent,
        "requests_lost": session.sent - session.answered,
        "rss_mib_first_last": [round(settled[0]["rss_mib"], 1), round(settled[-1]["rss_mib"], 1)],
        "rss_mib_per_hour": round(slope_per_hour([(s["t"], s["rss_mib"]) for s in settled]), 1),
        "threads_per_hour": round(slope_per_hour([(s["t"], s["threads"]) for s in settled]), 2),
        "fds_per_hour": round(slope_per_hour([(s["t"], s["fds"]) for s in settled]), 2),
        "threads_first_last": [settled[0]["threads"], settled[-1]["threads"]],
        "fds_first_last": [settled[0]["fds"], settled[-1]["fds"]],
        "tier_at_end": status.get("tier"),
        "samples": samples,
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--minutes", type=float, default=20.0)
    parser.add_argument("--model", default="qwen2.5-coder-0.5b")
    parser.add_argument("--sample-s", type=float, default=10.0)
    parser.add_argument("--warmup-min", type=float, default=2.0)
    parser.add_argument("--explain-every-s", type=float, default=120.0)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--json", metavar="PATH")
    args = parser.parse_args()
    result = asyncio.run(soak(args))
    summary = {k: v for k, v in result.items() if k != "samples"}
    print(json.dumps(summary, indent=2))
    if args.json:
        write_json(args.json, result)
    return 1 if result["requests_lost"] else 0


if __name__ == "__main__":
    sys.exit(main())
