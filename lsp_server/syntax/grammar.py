"""Tree-sitter grammars and parsers for the registry's languages.

Grammars are imported on first use and parsers are cached per thread
(a tree-sitter ``Parser`` must not be shared between threads).
"""

from __future__ import annotations

import importlib
import threading

import tree_sitter

from lsp_server.syntax.spec import LanguageSpec

_languages: dict[str, tree_sitter.Language] = {}
_languages_lock = threading.Lock()
_local = threading.local()


def grammar(spec: LanguageSpec) -> tree_sitter.Language:
    """The tree-sitter Language of ``spec`` (imported once per process)."""
    language = _languages.get(spec.name)
    if language is None:
        with _languages_lock:
            language = _languages.get(spec.name)
            if language is None:
                module = importlib.import_module(spec.module)
                language = tree_sitter.Language(getattr(module, spec.function)())
                _languages[spec.name] = language
    return language


def parser(spec: LanguageSpec) -> tree_sitter.Parser:
    """A parser for ``spec``, cached per thread (parsers are not thread-safe)."""
    parsers: dict[str, tree_sitter.Parser] | None = getattr(_local, "parsers", None)
    if parsers is None:
        parsers = _local.parsers = {}
    found = parsers.get(spec.name)
    if found is None:
        found = parsers[spec.name] = tree_sitter.Parser(grammar(spec))
    return found


def parse(spec: LanguageSpec, text: str) -> tree_sitter.Tree:
    """Parse ``text`` (callers pass bounded windows, never a whole multi-megabyte file)."""
    return parser(spec).parse(text.encode("utf-8", "surrogatepass"))


def count_errors(node: tree_sitter.Node, limit: int = 1000) -> int:
    """ERROR and MISSING nodes under ``node``; subtrees without errors are skipped, so it is cheap."""
    if not node.has_error:
        return 0
    count = 0
    stack = [node]
    while stack and count < limit:
        current = stack.pop()
        if current.is_error or current.is_missing:
            count += 1
        stack.extend(child for child in current.children if child.has_error or child.is_missing)
    return count
