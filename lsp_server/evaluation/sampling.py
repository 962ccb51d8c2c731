"""Masked lines and short multi-line spans drawn from a repository's files, the same ones for the same seed.

A sample is one file with one line (or 2-4 consecutive lines) emptied: its indentation stays and the cursor
sits after it, as when someone has just started that line.  The samples are spread over the files (round
robin over a seeded shuffle) so that one large file does not make the benchmark.
"""

from __future__ import annotations

import random
from dataclasses import dataclass

from lsp_server.evaluation.repository import SourceFile

MIN_LINE_CHARS = 6
"""A masked line has at least this many non-space characters: ``}``, ``else:`` and ``end`` say little."""

MAX_LINE_CHARS = 160
"""Longer lines are data (tables, long strings), not what a completion is for."""

MIN_LINES_BEFORE = 3
"""Lines a masked span needs above it: a cursor with no context at all is not a typing position."""

SPAN_SHARE = 0.3
"""Share of samples that mask a span of several lines rather than one line."""

SPAN_LINES = (2, 4)
"""Fewest and most lines of a multi-line span."""


@dataclass(frozen=True)
class Sample:
    """One masked position: the document as the model sees it, the cursor, and the text that was there."""

    path: str
    """The file, relative to the repository root."""

    line: int
    """1-based line of the first masked line."""

    n_lines: int
    language: str
    text: str
    """The file with the masked lines replaced by the first one's indentation."""

    offset: int
    """Cursor (code points into ``text``): after that indentation."""

    expected: str
    """The masked lines, without the first one's indentation (what a right suggestion inserts)."""


def maskable(line: str) -> bool:
    """Whether ``line`` is worth masking: enough code on it, at least one word, not a data line."""
    stripped = line.strip()
    return (
        len(stripped.replace(" ", "")) >= MIN_LINE_CHARS
        and len(stripped) <= MAX_LINE_CHARS
        and any(ch.isalnum() for ch in stripped)
    )


def candidate_lines(text: str) -> list[int]:
    """0-based indices of the lines of ``text`` a sample may start at."""
    lines = text.split("\n")
    return [index for index, line in enumerate(lines) if index >= MIN_LINES_BEFORE and maskable(line)]


def span_length(lines: list[str], start: int, wanted: int) -> int:
    """The most lines, up to ``wanted``, from ``start`` that are all non-blank and short enough."""
    length = 1
    while (
        length < wanted
        and start + length < len(lines)
        and lines[start + length].strip()
        and len(lines[start + length].strip()) <= MAX_LINE_CHARS
    ):
        length += 1
    return length


def mask(source: SourceFile, start: int, n_lines: int) -> Sample:
    """``source`` with lines ``start`` .. ``start + n_lines - 1`` (0-based) masked."""
    lines = source.text.split("\n")
    first = lines[start]
    indent = first[: len(first) - len(first.lstrip())]
    before = "\n".join(lines[:start] + [indent])
    after = "\n".join(["", *lines[start + n_lines :]])
    expected = "\n".join([first[len(indent) :], *lines[start + 1 : start + n_lines]])
    return Sample(
        path=source.path, line=start + 1, n_lines=n_lines, language=source.language,
        text=before + after, offset=len(before), expected=expected,
    )


def draw_samples(files: list[SourceFile], n: int, seed: int) -> list[Sample]:
    """``n`` samples (fewer when the files hold fewer positions), the same for the same files and seed."""
    rng = random.Random(seed)
    pools: list[tuple[SourceFile, list[int]]] = []
    for source in sorted(files, key=lambda f: f.path):
        candidates = candidate_lines(source.text)
        if candidates:
            rng.shuffle(candidates)
            pools.append((source, candidates))
    rng.shuffle(pools)
    samples: list[Sample] = []
    while len(samples) < n and pools:
        for source, candidates in list(pools):
            if len(samples) >= n:
                break
            if not candidates:
                pools.remove((source, candidates))
                continue
            start = candidates.pop()
            wanted = rng.randint(*SPAN_LINES) if rng.random() < SPAN_SHARE else 1
            samples.append(mask(source, start, span_length(source.text.split("\n"), start, wanted)))
    return samples
