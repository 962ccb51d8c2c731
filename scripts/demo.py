"""The main job, as an editor does it: start `gearshift serve`, open a file, ask for inline completions.

Prints each suggestion with the tier that produced it, time to first token,
delivered tokens/s and whether it came from the typed-ahead cache.
Usage: python scripts/demo.py [FILE] [--model NAME]
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import time
from pathlib import Path

from lsprotocol import types
from pygls.lsp.client import LanguageClient

HERE = Path(__file__).resolve().parent.parent


def cursor_points(text: str) -> list[types.Position]:
    """Where a programmer would pause: the end of the file, and after each `return ` (the rest of that line is
    taken out first, as if it were being written: the server never repeats what follows the cursor)."""
    lines = text.split("\n")
    points = [types.Position(line=len(lines) - 1, character=len(lines[-1]))]
    for number, line in enumerate(lines[:-1]):
        stripped = line.strip()
        if stripped.startswith("return ") and number + 1 < len(lines):
            points.append(types.Position(line=number, character=line.index("return") + len("return ")))
    return points[:4]


async def run(path: Path, model: str | None) -> int:
    client = LanguageClient("gearshift-demo", "0.1")
    statuses: list[dict] = []

    @client.feature("gearshift/status")
    def on_status(params) -> None:
        # pygls hands custom notifications over as namedtuples.
        statuses.append(params._asdict() if hasattr(params, "_asdict") else dict(params))

    @client.feature(types.WINDOW_LOG_MESSAGE)
    def on_log(params: types.LogMessageParams) -> None:
        print(f"[server] {params.message}", file=sys.stderr)

    await client.start_io(sys.executable, "-m", "lsp_server", "serve", "--log-level", "WARNING")
    options = {"models": {"defaultModel": model}} if model else {}
    await client.initialize_async(
        types.InitializeParams(
            capabilities=types.ClientCapabilities(
                text_document=types.TextDocumentClientCapabilities(
                    inline_completion=types.InlineCompletionClientCapabilities()
                )
            ),
            initialization_options=options,
        )
    )
    client.initialized(types.InitializedParams())
    text = path.read_text()
    uri = path.resolve().as_uri()
    client.text_document_did_open(
        types.DidOpenTextDocumentParams(
            text_document=types.TextDocumentItem(uri=uri, language_id="python", version=1, text=text)
        )
    )
    print(f"Gearshift demo: {path.name}, {len(text.splitlines())} lines")
    version = 1

    def change(position: types.Position, end: int, new_text: str) -> None:
        nonlocal version
        version += 1
        client.text_document_did_change(
            types.DidChangeTextDocumentParams(
                text_document=types.VersionedTextDocumentIdentifier(uri=uri, version=version),
                content_changes=[
                    types.TextDocumentContentChangePartial(
                        range=types.Range(start=position, end=types.Position(line=position.line, character=end)),
                        text=new_text,
                    )
                ],
            )
        )

    for position in cursor_points(text):
        rest = text.split("\n")[position.line][position.character :]
        if rest:
            change(position, position.character + len(rest), "")  # the line is being written
        started = time.perf_counter()
        result = await client.text_document_inline_completion_async(
            types.InlineCompletionParams(
                text_document=types.TextDocumentIdentifier(uri=uri),
                position=position,
                context=types.InlineCompletionContext(trigger_kind=types.InlineCompletionTriggerKind.Automatic),
            )
        )
        elapsed_ms = (time.perf_counter() - started) * 1000
        items = result.items if result else []
        status = statuses[-1] if statuses else {}
        line = text.split("\n")[position.line][: position.character]
        print(f"\n── at {position.line + 1}:{position.character + 1}  `{line.strip()[-50:]}`")
        if items:
            print("   " + items[0].insert_text.replace("\n", "\n   "))
        else:
            print(f"   (nothing shown: {status.get('hidden', 'no suggestion')})")
        print(
            f"   tier={status.get('tier')} ttft={status.get('timeToFirstTokenMs')} ms "
            f"tok/s={status.get('tokensPerSecond')} confidence={status.get('confidence')} "
            f"cache={'hit' if status.get('cacheHit') else 'miss'} total={elapsed_ms:.0f} ms"
        )
        if items and status.get("stopReason") == "first_answer":
            # Shown early; the rest is still being generated and lands in the typed-ahead cache.
            seen = len(statuses)
            for _ in range(600):
                if any(s.get("background") for s in statuses[seen - 1 :]):
                    break
                await asyncio.sleep(0.05)
            again = await client.text_document_inline_completion_async(
                types.InlineCompletionParams(
                    text_document=types.TextDocumentIdentifier(uri=uri),
                    position=position,
                    context=types.InlineCompletionContext(trigger_kind=types.InlineCompletionTriggerKind.Invoked),
                )
            )
            if again and again.items:
                print("   then, asked again once generated (from the cache):")
                print("   " + again.items[0].insert_text.replace("\n", "\n   "))
        if rest:
            print(f"   (the file had: {rest.strip()[:60]})")
            change(position, position.character, rest)  # back as it was
    await client.shutdown_async(None)
    client.exit(None)
    await client.stop()
    return 0


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("file", nargs="?", default=str(HERE / "samples" / "inventory.py"))
    parser.add_argument("--model", help="catalog model name (default: the server's default model)")
    args = parser.parse_args()
    return asyncio.run(run(Path(args.file), args.model))


if __name__ == "__main__":
    sys.exit(main())
