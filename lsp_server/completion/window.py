"""Every rule that decides which text around the cursor goes into the prompt, and how much of it.

* How many tokens: the configured window, shrunk where this machine would evaluate it slower than
  ``cold_prompt_ms`` (:func:`prompt_window`), then scaled by the guard's rung (:func:`rung_window`, the one
  place ``Rung.context_scale`` is applied).
* Where the prefix window ends: the split point between the FIM prefix and the typed middle, remembered per
  document so the prompt only grows at its end while the user types (:class:`MiddleSplitter`).
* Where the windows start and end: the longest slices within the budgets, cut on lines where possible, the
  prefix's start anchored to a coarse grid (:func:`prefix_start`, :func:`suffix_end`).

Windows never reach further than ``budget × MAX_CHARS_PER_TOKEN`` characters from the cursor, whatever the
document's size, and the token counter is asked a handful of times per keystroke.

Why a split point: every FIM layout puts the suffix after the prefix, so a keystroke that changes the end of
the prefix invalidates the suffix's KV cache: 64 suffix tokens cost the 0.5B model about 1.5 s per keystroke on
two CPU cores. The text typed since the split point therefore goes after the middle marker instead
(``FimTemplate.build(middle=...)``), and each keystroke evaluates the one or two new tokens. The point is the
end of a line's indentation; it is kept while it is still before the cursor and at most ``middle_chars``
characters back, otherwise it moves to the end of the cursor line's indentation (one full re-evaluation). The
indentation stays in the prefix: a middle that starts with bare whitespace makes Qwen2.5-Coder end the middle
at once far more often (editors insert the indentation in one edit with the line break anyway).
"""

from __future__ import annotations

import bisect
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING

from cachetools import LRUCache

if TYPE_CHECKING:
    from lsp_server.completion.context import CompletionContext
    from lsp_server.inference.guard import Rung
    from lsp_server.settings import CompletionSettings

EST_CHARS_PER_TOKEN = 3.5
"""First guess of characters per token before the counter has been asked (code averages 3–4)."""

MAX_CHARS_PER_TOKEN = 8
"""Windows never reach further than ``budget × this`` characters from the cursor, whatever the tokenizer."""

MIN_PREFIX_TOKENS = 32
"""A guard rung that shrinks the prompt window never shrinks the prefix below this."""

WINDOW_STEP_TOKENS = 64
"""The window sized from prompt speed is a multiple of this: the same on every load of a model on a machine,
whatever the measurement's jitter (a window that moves re-evaluates the whole prompt)."""


# --------------------------------------------------------------------------------------------------
# How many tokens


def prompt_window(
    prefix_tokens: int, suffix_tokens: int, cold_prompt_ms: int, prompt_tokens_per_s: float | None
) -> tuple[int, int]:
    """(prefix, suffix) tokens: the configured window, or less where this machine would evaluate it slower than
    ``cold_prompt_ms``; the suffix keeps its share, but at least a quarter (the next lines matter most)."""
    configured = prefix_tokens + suffix_tokens
    if not cold_prompt_ms or not prompt_tokens_per_s or configured <= 0:
        return prefix_tokens, suffix_tokens
    affordable = prompt_tokens_per_s * cold_prompt_ms / 1000
    window = max(2 * WINDOW_STEP_TOKENS, int(affordable // WINDOW_STEP_TOKENS) * WINDOW_STEP_TOKENS)
    if window >= configured:
        return prefix_tokens, suffix_tokens
    suffix = min(suffix_tokens, max(window // 4, window * suffix_tokens // configured))
    return window - suffix, suffix


def rung_window(
    settings: CompletionSettings, rung: Rung, prompt_tokens_per_s: float | None
) -> tuple[int, int]:
    """(prefix, suffix) tokens for a request on ``rung``: :func:`prompt_window` scaled by ``rung.context_scale``,
    the prefix never below ``MIN_PREFIX_TOKENS``.  A remote rung gets the configured window whatever prompt speed
    was measured: that speed is a shared server's (other editors' requests, its queue), and a window that moved
    with it would change the prompt's start and throw away the document's KV cache on the server."""
    prefix_tokens, suffix_tokens = prompt_window(
        settings.prefix_tokens, settings.suffix_tokens, settings.cold_prompt_ms,
        None if rung.remote else prompt_tokens_per_s,
    )
    return max(MIN_PREFIX_TOKENS, int(prefix_tokens * rung.context_scale)), int(suffix_tokens * rung.context_scale)


# --------------------------------------------------------------------------------------------------
# Where the prefix window ends: the split point


class MiddleSplitter:
    """Per-document split points between the FIM prefix and the typed middle (see the module docstring)."""

    def __init__(self, max_documents: int = 256) -> None:
        self._points: LRUCache[str, int] = LRUCache(maxsize=max_documents)

    def point(self, uri: str, text: str, offset: int, middle_chars: int, remember: bool = True) -> int:
        """The split point for the cursor at ``offset`` (remembered unless ``remember`` is False: a speculation
        about text not typed yet must not move the real cursor's), where the prefix window should end.

        Counting the prompt window back from here rather than from the cursor keeps its start, and so the
        whole prompt before the middle, fixed while the user types (the cursor when ``middle_chars`` is 0).
        """
        if middle_chars <= 0:
            return offset
        point = self._points.get(uri)
        if point is None or not self._usable(text, point, offset, middle_chars):
            line = text.rfind("\n", 0, offset) + 1
            before = text[line:offset]
            point = line + len(before) - len(before.lstrip(" \t"))
        if remember:
            self._points[uri] = point
        return point

    @staticmethod
    def _usable(text: str, point: int, offset: int, middle_chars: int) -> bool:
        """Whether ``point`` still splits ``text`` for the cursor at ``offset``."""
        if not 0 <= point <= offset or offset - point > middle_chars:
            return False
        line = text.rfind("\n", 0, point) + 1
        # Still the end of a line's indentation (the text before it may have been edited since).
        return not text[line:point].strip(" \t") and (point == offset or text[point] not in " \t")


def split_middle(ctx: CompletionContext) -> tuple[str, str]:
    """``(prefix, middle)`` of ``ctx.prefix``, split where its window was counted back from (``ctx.window_end``)."""
    cut = ctx.window_end - ctx.prefix_start
    return ctx.prefix[:cut], ctx.prefix[cut:]


# --------------------------------------------------------------------------------------------------
# Where the windows start and end


def _largest_fitting(
    candidates: Sequence[int], tokens_of: Callable[[int], int], size_of: Callable[[int], int], budget: int
) -> tuple[int, int]:
    """Index of the largest candidate window within ``budget`` tokens and its token count, or (-1, 0).

    Window sizes (and token counts) grow with the index. The first probes are placed by a
    characters-per-token estimate refined from each count (secant steps), then bisection.
    """
    good, bad = -1, len(candidates)
    good_tokens = 0
    ratio = EST_CHARS_PER_TOKEN
    probes = 0
    while bad - good > 1:
        if probes < 6:
            # Place the probe where the last measured ratio says the budget runs out.
            index = bisect.bisect_right(candidates, budget * ratio, key=size_of) - 1
            index = min(max(index, good + 1), bad - 1)
        else:
            index = (good + bad) // 2
        probes += 1
        position = candidates[index]
        tokens = tokens_of(position)
        if tokens <= budget:
            good, good_tokens = index, tokens
        else:
            bad = index
        if tokens > 0:
            ratio = size_of(position) / tokens
    return good, good_tokens


def prefix_start(text: str, offset: int, budget: int, count_tokens: Callable[[str], int]) -> int:
    """Start of the longest prefix window within ``budget`` tokens, on a line start where possible."""
    if budget <= 0 or offset == 0:
        return offset
    floor = max(0, offset - budget * MAX_CHARS_PER_TOKEN)
    starts: list[int] = []
    position = offset
    while True:
        newline = text.rfind("\n", floor, position)
        if newline < 0:
            break
        if newline + 1 < offset:
            starts.append(newline + 1)
        position = newline
    if floor == 0 and (not starts or starts[-1] != 0):
        starts.append(0)

    def tokens_of(start: int) -> int:
        return count_tokens(text[start:offset])

    def size_of(start: int) -> int:
        return offset - start

    best, used = _largest_fitting(starts, tokens_of, size_of, budget)
    if best >= 0:
        start = starts[best]
        more_text = best + 1 < len(starts) or start > floor
        if not more_text or used * 2 >= budget:
            return _anchor(text, start, offset)
        lower = starts[best + 1] if best + 1 < len(starts) else floor
        upper = start - 1
    else:
        lower = starts[0] if starts else floor
        upper = offset - 1
    # One line longer than half the budget (minified code): cut inside it.
    positions = range(upper, lower - 1, -1)
    inner, _ = _largest_fitting(positions, tokens_of, size_of, budget)
    if inner >= 0:
        return positions[inner]
    return starts[best] if best >= 0 else offset


def _anchor(text: str, start: int, offset: int) -> int:
    """Move a window start forward to a coarse grid so it stays put while the user types.

    The engine re-uses the KV cache of the longest common prompt prefix; a window start that
    moved by one line on every keystroke would make it re-evaluate the whole prompt. The start
    only moves when the minimal start crosses a multiple of ``window/8`` characters (rounded to
    a power of two), at the cost of at most that much context.
    """
    size = offset - start
    grain = 64
    while grain * 2 <= size // 8:
        grain *= 2
    aligned = -(-start // grain) * grain
    if aligned <= start:
        return start
    newline = text.find("\n", aligned - 1, offset)
    if newline < 0:
        return start
    cursor_line = text.rfind("\n", 0, offset) + 1
    return newline + 1 if newline + 1 <= cursor_line else start


def suffix_end(text: str, offset: int, budget: int, count_tokens: Callable[[str], int]) -> int:
    """End of the longest suffix window within ``budget`` tokens, after a newline where possible."""
    if budget <= 0 or offset >= len(text):
        return offset
    ceiling = min(len(text), offset + budget * MAX_CHARS_PER_TOKEN)
    ends: list[int] = []
    position = offset
    while True:
        newline = text.find("\n", position, ceiling)
        if newline < 0:
            break
        ends.append(newline + 1)
        position = newline + 1
    if ceiling == len(text) and (not ends or ends[-1] != len(text)):
        ends.append(len(text))

    def tokens_of(end: int) -> int:
        return count_tokens(text[offset:end])

    def size_of(end: int) -> int:
        return end - offset

    best, used = _largest_fitting(ends, tokens_of, size_of, budget)
    if best >= 0:
        end = ends[best]
        more_text = best + 1 < len(ends) or end < ceiling
        if not more_text or used * 2 >= budget:
            return end
        lower = end + 1
        upper = ends[best + 1] if best + 1 < len(ends) else ceiling
    else:
        lower = offset + 1
        upper = ends[0] if ends else ceiling
    positions = range(lower, upper + 1)
    inner, _ = _largest_fitting(positions, tokens_of, size_of, budget)
    if inner >= 0:
        return positions[inner]
    return ends[best] if best >= 0 else offset

