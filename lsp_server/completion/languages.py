"""Which tree-sitter grammar and which lexical rules apply to a document.

Maps an LSP ``languageId`` (or, failing that, a file extension) to a
:class:`LanguageSpec`: the grammar, the comment prefix used for a file-path
header in prompts, and the few lexical facts the completion rules need
(comment and string delimiters, whether blocks are delimited by indentation).
Unknown languages resolve to ``None`` and get plain-text treatment.

Grammars are imported on first use and parsers are cached per thread
(a tree-sitter ``Parser`` must not be shared between threads).
"""

from __future__ import annotations

import importlib
import threading
from dataclasses import dataclass, field
from pathlib import PurePath

import tree_sitter


@dataclass(frozen=True)
class LanguageSpec:
    """One supported language: its grammar and the lexical facts the completion rules use."""

    name: str
    """Registry key, e.g. ``"python"``, ``"tsx"``, ``"cpp"``."""

    language_ids: tuple[str, ...]
    """LSP ``languageId`` values that select this language."""

    extensions: tuple[str, ...]
    """File extensions (with the dot, lower case) that select it when no languageId is known."""

    comment_prefix: str
    """Line comment marker, used for the ``<comment> Path: …`` header in prompts."""

    block_comment: tuple[str, str] | None
    """Block comment delimiters, if the language has them."""

    strings: tuple[tuple[str, bool], ...]
    """String delimiters, longest first, each with whether the string may span lines."""

    char_literal: str | None = None
    """Regex of a character literal that must be skipped as a unit (Rust's ``'a'`` but not the lifetime ``'a``)."""

    indent_blocks: bool = False
    """Blocks are delimited by indentation (Python), not by braces."""

    module: str = ""
    """Python module of the grammar."""

    function: str = "language"
    """Function of that module returning the grammar's language pointer."""

    block_openers: tuple[str, ...] = field(default=("{",))
    """Line endings after which the cursor starts a new block (multi-line completion)."""


_C_CHAR = r"'(?:\\.|[^'\\\n])*'"
_RUST_CHAR = r"'(?:\\(?:x[0-9a-fA-F]{2}|u\{[0-9a-fA-F]{1,6}\}|.)|[^'\\\n])'"

LANGUAGES: tuple[LanguageSpec, ...] = (
    LanguageSpec(
        name="python",
        language_ids=("python",),
        extensions=(".py", ".pyi", ".pyw"),
        comment_prefix="#",
        block_comment=None,
        strings=(('"""', True), ("'''", True), ('"', False), ("'", False)),
        indent_blocks=True,
        module="tree_sitter_python",
        block_openers=(":", "{", "(", "["),
    ),
    LanguageSpec(
        name="javascript",
        language_ids=("javascript", "javascriptreact", "jsx"),
        extensions=(".js", ".mjs", ".cjs", ".jsx"),
        comment_prefix="//",
        block_comment=("/*", "*/"),
        strings=(("`", True), ('"', False), ("'", False)),
        module="tree_sitter_javascript",
        block_openers=("{", "=>", "(", "["),
    ),
    LanguageSpec(
        name="typescript",
        language_ids=("typescript",),
        extensions=(".ts", ".mts", ".cts"),
        comment_prefix="//",
        block_comment=("/*", "*/"),
        strings=(("`", True), ('"', False), ("'", False)),
        module="tree_sitter_typescript",
        function="language_typescript",
        block_openers=("{", "=>", "(", "["),
    ),
    LanguageSpec(
        name="tsx",
        language_ids=("typescriptreact", "tsx"),
        extensions=(".tsx",),
        comment_prefix="//",
        block_comment=("/*", "*/"),
        strings=(("`", True), ('"', False), ("'", False)),
        module="tree_sitter_typescript",
        function="language_tsx",
        block_openers=("{", "=>", "(", "["),
    ),
    LanguageSpec(
        name="go",
        language_ids=("go",),
        extensions=(".go",),
        comment_prefix="//",
        block_comment=("/*", "*/"),
        strings=(("`", True), ('"', False)),
        char_literal=_C_CHAR,
        module="tree_sitter_go",
        block_openers=("{", "(", "["),
    ),
    LanguageSpec(
        name="rust",
        language_ids=("rust",),
        extensions=(".rs",),
        comment_prefix="//",
        block_comment=("/*", "*/"),
        strings=(('"', True),),
        char_literal=_RUST_CHAR,
        module="tree_sitter_rust",
        block_openers=("{", "=>", "(", "["),
    ),
    LanguageSpec(
        name="c",
        language_ids=("c",),
        extensions=(".c", ".h"),
        comment_prefix="//",
        block_comment=("/*", "*/"),
        strings=(('"', False),),
        char_literal=_C_CHAR,
        module="tree_sitter_c",
        block_openers=("{", "(", "["),
    ),
    LanguageSpec(
        name="cpp",
        language_ids=("cpp", "c++", "cuda-cpp"),
        extensions=(".cc", ".cpp", ".cxx", ".c++", ".hpp", ".hh", ".hxx", ".h++", ".ipp", ".inl"),
        comment_prefix="//",
        block_comment=("/*", "*/"),
        strings=(('"', False),),
        char_literal=_C_CHAR,
        module="tree_sitter_cpp",
        block_openers=("{", "(", "["),
    ),
    LanguageSpec(
        name="java",
        language_ids=("java",),
        extensions=(".java",),
        comment_prefix="//",
        block_comment=("/*", "*/"),
        strings=(('"""', True), ('"', False)),
        char_literal=_C_CHAR,
        module="tree_sitter_java",
        block_openers=("{", "->", "(", "["),
    ),
)

_BY_NAME = {spec.name: spec for spec in LANGUAGES}
_BY_LANGUAGE_ID = {language_id: spec for spec in LANGUAGES for language_id in spec.language_ids}
_BY_EXTENSION = {ext: spec for spec in LANGUAGES for ext in spec.extensions}


def resolve(language_id: str | None, path: str | None = None) -> LanguageSpec | None:
    """The language of a document from its LSP languageId, else its file extension; None if unknown.

    ``language_id`` may also be a registry name (``"tsx"``, ``"cpp"``).
    """
    if language_id:
        key = language_id.strip().lower()
        spec = _BY_LANGUAGE_ID.get(key) or _BY_NAME.get(key)
        if spec is not None:
            return spec
    if path:
        return _BY_EXTENSION.get(PurePath(path).suffix.lower())
    return None


def comment_prefix(language_id: str | None, path: str | None = None) -> str | None:
    """Line comment marker of a document's language, or None when the language is unknown."""
    spec = resolve(language_id, path)
    return spec.comment_prefix if spec else None


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
