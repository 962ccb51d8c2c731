"""The shape of one language's entry in the registry (``lsp_server.syntax.languages``)."""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass(frozen=True)
class LanguageSpec:
    """One supported language: its grammar, how editors name it, and the lexical and tree facts the rules use."""

    name: str
    """Registry key, e.g. ``"python"``, ``"tsx"``, ``"cpp"``."""

    title: str
    """How people call it, in messages (``"C++"``); languages sharing a grammar family may share a title."""

    language_ids: tuple[str, ...]
    """LSP ``languageId`` values that select this language (also Neovim's filetypes: the plugin attaches to these)."""

    extensions: tuple[str, ...]
    """File extensions (with the dot, lower case) that select it when no languageId is known."""

    module: str
    """Python module of the tree-sitter grammar (its distribution, in pyproject.toml, is ``package``)."""

    strings: tuple[tuple[str, bool], ...]
    """String delimiters, longest first, each with whether the string may span lines."""

    scope_types: frozenset[str]
    """Tree-sitter node types of function- and class-like scopes (``CompletionContext.scope_kind``)."""

    comment_prefix: str = "//"
    """Line comment marker, used for the ``<comment> Path: …`` header in prompts."""

    block_comment: tuple[str, str] | None = ("/*", "*/")
    """Block comment delimiters, if the language has them."""

    function: str = "language"
    """Function of ``module`` returning the grammar's language pointer."""

    char_literal: str | None = None
    """Regex of a character literal that must be skipped as a unit (Rust's ``'a'`` but not the lifetime ``'a``)."""

    string_types: frozenset[str] = frozenset()
    """Node types that are string-like although their name lacks ``string`` (char and rune literals, text blocks)."""

    indent_blocks: bool = False
    """Blocks are delimited by indentation (Python), not by braces."""

    block_openers: tuple[str, ...] = field(default=("{",))
    """Line endings after which the cursor starts a new block (multi-line completion)."""

    block_header_types: frozenset[str] = frozenset()
    """Node types whose ``:`` opens an indented block (Python's ``def``, ``if``…), as opposed to a dict or slice."""

    block_header_line: str | None = None
    """Regex of a line that opens a block with ``:``, for when the tree cannot tell (the line does not parse yet)."""

    @property
    def package(self) -> str:
        """The grammar's distribution name, as pyproject.toml lists it."""
        return self.module.replace("_", "-")
