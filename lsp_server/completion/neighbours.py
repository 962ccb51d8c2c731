"""Context from other files: outlines of recently used documents, for the prompt's repository section.

What a line needs is often defined in another file: the function it calls, the class it builds. The models'
repository formats (Qwen2.5-Coder: ``<|file_sep|>path`` sections before the current file) carry that. Each
recently used document contributes an *outline*: its top-level and method signatures, class lines and
module-level constants, one line each (the names and parameters a call needs, not bodies). Files the current
file imports come first, then the most recently used; the chunks are sized to a token budget and depend only on
the *other* documents, so they stay the same while the user types in this one and the KV cache keeps them.

Never-send files never contribute (a prompt may go to a team endpoint).
"""

from __future__ import annotations

import re
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import PurePath

MAX_RECENT = 8
"""Documents remembered: more than a person keeps in mind while typing one file."""

MAX_SCAN_CHARS = 200_000
"""Only the start of a huge file is outlined (generated files, data)."""

_SIGNATURE = re.compile(
    r"^[ \t]*(?:"
    r"(?:async[ \t]+)?def[ \t]+\w+|class[ \t]+\w+"  # Python
    r"|(?:export[ \t]+)?(?:default[ \t]+)?(?:async[ \t]+)?function\*?[ \t]+\w+"  # JavaScript, TypeScript
    r"|(?:export[ \t]+)?(?:abstract[ \t]+)?(?:class|interface|type|enum)[ \t]+\w+"
    r"|(?:pub(?:\([^)]*\))?[ \t]+)?(?:async[ \t]+)?(?:fn|struct|enum|trait|impl)\b"  # Rust
    r"|func[ \t]+(?:\([^)]*\)[ \t]*)?\w+|type[ \t]+\w+[ \t]+(?:struct|interface)"  # Go
    r")"
)
_CONSTANT = re.compile(r"^(?:export[ \t]+)?(?:const[ \t]+)?[A-Z][A-Z0-9_]{2,}[ \t]*(?::[^=]+)?=")


@dataclass(frozen=True)
class Neighbour:
    uri: str
    path: str | None
    text: str


def outline(text: str, max_lines: int = 60) -> str:
    """The signature lines of ``text`` (see the module docstring), joined; empty when it has none."""
    lines = []
    for line in text[:MAX_SCAN_CHARS].splitlines():
        if _SIGNATURE.match(line) or _CONSTANT.match(line):
            lines.append(line.rstrip())
            if len(lines) >= max_lines:
                break
    return "\n".join(lines)


def _module_names(path: str | None) -> set[str]:
    """How other files may import this one: its stem, and for a package's ``__init__`` or ``index`` its folder."""
    if not path:
        return set()
    pure = PurePath(path)
    names = {pure.stem}
    if pure.stem in ("__init__", "index", "mod", "lib"):
        names.add(pure.parent.name)
    return {name for name in names if name}


_IMPORT_LINE = re.compile(r"^\s*(?:from\s+\S+\s+import|import\s|use\s|#include|const\s+\w+\s*=\s*require|import\s*\{)",
                          re.MULTILINE)


def _imported_words(text: str) -> set[str]:
    words: set[str] = set()
    for match in _IMPORT_LINE.finditer(text[:MAX_SCAN_CHARS]):
        line_end = text.find("\n", match.start())
        line = text[match.start(): line_end if line_end >= 0 else len(text)]
        words.update(re.findall(r"[A-Za-z_][A-Za-z0-9_]*", line))
    return words


class RecentFiles:
    """A bounded ring of recently used documents and the context chunks they give another one."""

    def __init__(self, max_recent: int = MAX_RECENT) -> None:
        self._docs: OrderedDict[str, Neighbour] = OrderedDict()
        self._outlines: dict[str, tuple[str, str]] = {}
        """uri -> (the text it was made from, its outline): outlining is done once per version."""
        self.max_recent = max_recent

    def seen(self, uri: str, path: str | None, text: str) -> None:
        """``uri`` was opened, edited or completed in: the most recent now."""
        self._docs[uri] = Neighbour(uri, path, text)
        self._docs.move_to_end(uri)
        while len(self._docs) > self.max_recent:
            old, _ = self._docs.popitem(last=False)
            self._outlines.pop(old, None)

    def forget(self, uri: str) -> None:
        self._docs.pop(uri, None)
        self._outlines.pop(uri, None)

    def _outline(self, doc: Neighbour) -> str:
        cached = self._outlines.get(doc.uri)
        if cached is not None and cached[0] is doc.text:
            return cached[1]
        made = outline(doc.text)
        self._outlines[doc.uri] = (doc.text, made)
        return made

    def chunks(
        self,
        uri: str,
        text: str,
        budget_tokens: int,
        count_tokens: Callable[[str], int],
        excluded: Callable[[str], bool] = lambda _path: False,
    ) -> tuple[tuple[str, str], ...]:
        """(file name, outline) chunks for the document at ``uri`` with ``text``, within ``budget_tokens``.

        Imported files first, then the most recent; duplicates (the same outline twice) and files ``excluded``
        says no to (never-send) are left out; the order is stable while only ``text`` changes.
        """
        if budget_tokens <= 0:
            return ()
        imported = _imported_words(text)
        others = [doc for doc in reversed(self._docs.values()) if doc.uri != uri]
        others.sort(key=lambda doc: 0 if _module_names(doc.path) & imported else 1)  # stable: recency within
        chosen: list[tuple[str, str]] = []
        seen_outlines: set[str] = set()
        left = budget_tokens
        for doc in others:
            if doc.path and excluded(doc.path):
                continue
            body = self._outline(doc)
            if not body or body in seen_outlines:
                continue
            cost = count_tokens(body) + 8  # the file separator and name
            if cost > left:
                continue
            seen_outlines.add(body)
            chosen.append((PurePath(doc.path).name if doc.path else doc.uri.rsplit("/", 1)[-1], body))
            left -= cost
        # Oldest first, so the most relevant chunk sits nearest the current file.
        return tuple(reversed(chosen))
