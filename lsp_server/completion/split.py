"""Where the text before the cursor is split into FIM prefix and typed middle, kept stable while the user types.

Every FIM layout puts the suffix after the prefix, so a keystroke that
changes the end of the prefix invalidates the suffix's KV cache: 64 suffix
tokens cost the 0.5B model about 1.5 s per keystroke on two CPU cores.  The
text typed since a *split point* therefore goes after the middle marker
instead (``FimTemplate.build(middle=...)``): the prompt then only grows at its
end, and each keystroke evaluates the one or two new tokens.

The split point is the end of a line's indentation, remembered per document;
the prompt window is counted back from it (``build_context(window_end=...)``),
so the window's start stays put too.  It is kept while it is still before the
cursor and at most ``middle_chars`` characters back; otherwise it moves to the end of the
cursor line's indentation (one full re-evaluation, as every keystroke used to
cost).  The indentation stays in the prefix: a middle that starts with bare
whitespace makes Qwen2.5-Coder end the middle at once far more often (editors
insert the indentation in one edit with the line break anyway).
"""

from __future__ import annotations

from cachetools import LRUCache

from lsp_server.completion.context import CompletionContext


class MiddleSplitter:
    """Per-document split points between the FIM prefix and the typed middle."""

    def __init__(self, max_documents: int = 256) -> None:
        self._points: LRUCache[str, int] = LRUCache(maxsize=max_documents)

    def point(self, uri: str, text: str, offset: int, middle_chars: int) -> int:
        """The split point for the cursor at ``offset`` (remembered), where the prefix window should end.

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
