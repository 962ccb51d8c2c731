"""`gearshift complete FILE:LINE:COL`: one completion through the same pipeline the server uses."""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
from pathlib import Path

from lsp_server.documents import DocumentSnapshot, language_of
from lsp_server.errors import GearshiftError
from lsp_server.wire import CompletionResult


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("location", metavar="FILE:LINE:COL", help="1-based line and column of the cursor")
    parser.add_argument("--model", help="catalog name or GGUF path (default: the configured default model)")
    parser.add_argument("--json", action="store_true", help="print a JSON object instead of the suggestion")


def parse_location(location: str) -> tuple[Path, int, int]:
    path, _, rest = location.rpartition(":")
    path2, _, line = path.rpartition(":")
    if not path2 or not line.isdigit() or not rest.isdigit() or int(line) < 1 or int(rest) < 1:
        raise GearshiftError(f"expected FILE:LINE:COL with 1-based numbers, got {location!r}")
    return Path(path2), int(line), int(rest)


def cursor_offset(text: str, line: int, column: int) -> int:
    lines = text.split("\n")
    if line > len(lines):
        raise GearshiftError(f"line {line} is beyond the end of the file ({len(lines)} lines)")
    if column > len(lines[line - 1]) + 1:
        raise GearshiftError(f"column {column} is beyond the end of line {line} ({len(lines[line - 1])} characters)")
    return sum(len(previous) + 1 for previous in lines[: line - 1]) + column - 1


async def _complete(args: argparse.Namespace) -> CompletionResult:
    from lsp_server.settings import GearshiftSettings
    from lsp_server.wiring import completion_service, whole_answers, with_model

    path, line, column = parse_location(args.location)
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise GearshiftError(f"cannot read {path} as UTF-8 text: {exc}") from None
    # A script wants the whole suggestion, not the early part an editor shows while the rest is generated.
    settings = whole_answers(GearshiftSettings())
    if args.model:
        settings = with_model(settings, args.model)
    doc = DocumentSnapshot(
        uri=path.resolve().as_uri(), version=0, text=text, offset=cursor_offset(text, line, column),
        language_id=language_of(None, str(path)), path=str(path.resolve()),
    )
    with completion_service(settings) as service:
        outcome = await service.complete(doc)
    return CompletionResult.of(outcome)


def main(args: argparse.Namespace) -> int:
    result = asyncio.run(_complete(args))
    if args.json:
        print(json.dumps(result.to_json(), indent=2))
    elif result.suggestion is not None:
        print(result.suggestion)
    else:
        print(f"(no suggestion: {result.hidden_reason})", file=sys.stderr)
        return 1
    return 0
