"""Context from other files: what the current file imports, and outlines of recently used documents.

What a line needs is often defined in another file: the function it calls, the class it builds. The models'
repository formats (Qwen2.5-Coder: ``<|file_sep|>path`` sections before the current file) carry that. First come
the definitions of the names the current file imports, read from disk (``imports``); then each recently used
document contributes an *outline*: its top-level and method signatures, class lines and module-level constants,
one line each (the names and parameters a call needs, not bodies), files the current file imports nearest. The
chunks are sized to one token budget and depend only on the import lines and the *other* files, so they stay the
same while the user types in this one and the KV cache keeps them (the steadier import chunks go first).

Never-send files never contribute (a prompt may go to a team endpoint).
"""

from __future__ import annotations

import os
import re
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path, PurePath

from pygls.uris import to_fs_path

from lsp_server.completion.imports import ImportedDefinitions, display_name, workspace_root

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

    def __init__(self, max_recent: int = MAX_RECENT, read_imports: bool = True) -> None:
        self._docs: OrderedDict[str, Neighbour] = OrderedDict()
        self._outlines: dict[str, tuple[str, str]] = {}
        """uri -> (the text it was made from, its outline): outlining is done once per version."""
        self.max_recent = max_recent
        self._imports = ImportedDefinitions() if read_imports else None
        """Definitions of what a document imports, from disk; None: outlines of recent documents only."""

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
        root: str | Path | None = None,
    ) -> tuple[tuple[str, str], ...]:
        """(file name, text) chunks for the document at ``uri`` with ``text``, within ``budget_tokens``.

        The definitions it imports (from files under ``root``: by default the nearest folder above the document
        with ``.git``, ``pyproject.toml`` or ``package.json``) first, then outlines of recent documents, imported
        ones nearest; duplicates (the same outline twice, a file already given by its imports) and files
        ``excluded`` says no to (never-send) are left out; the result is stable while only ``text`` changes
        outside its import lines.
        """
        if budget_tokens <= 0:
            return ()
        from_imports, covered, left = self._import_chunks(uri, text, budget_tokens, count_tokens, excluded, root)
        imported = _imported_words(text)
        others = [doc for doc in reversed(self._docs.values()) if doc.uri != uri and _real(doc.path) not in covered]
        others.sort(key=lambda doc: 0 if _module_names(doc.path) & imported else 1)  # stable: recency within
        chosen: list[tuple[str, str]] = []
        seen_outlines: set[str] = set()
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
        return from_imports + tuple(reversed(chosen))

    def _import_chunks(
        self,
        uri: str,
        text: str,
        budget_tokens: int,
        count_tokens: Callable[[str], int],
        excluded: Callable[[str], bool],
        root: str | Path | None,
    ) -> tuple[tuple[tuple[str, str], ...], set[str], int]:
        """(chunks of what the document imports, the files they come from, the budget left after them)."""
        path = to_fs_path(uri) if uri.startswith("file:") else None
        if self._imports is None or path is None:
            return (), set(), budget_tokens
        document = Path(path)
        workspace = Path(root) if root is not None else workspace_root(document)
        found, spent = self._imports.chunks(document, text, workspace, budget_tokens, count_tokens, excluded)
        base = workspace.resolve()
        chunks = tuple((display_name(file, base), body) for file, body in found)
        return chunks, {str(file) for file, _ in found}, budget_tokens - spent


def _real(path: str | None) -> str | None:
    return os.path.realpath(path) if path else None
