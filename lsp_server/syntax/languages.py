"""The languages Gearshift parses: one :class:`LanguageSpec` each, and how a document finds its own.

Adding a language is one entry in ``LANGUAGES`` plus its grammar in pyproject.toml; the editors' lists
(``editors/nvim/lua/gearshift/languages.lua``) are generated from here (``python -m lsp_server.syntax.languages``)
and a test keeps them equal. Unknown languages resolve to ``None`` and get plain-text treatment.
"""

from __future__ import annotations

import sys
from dataclasses import replace
from pathlib import PurePath

from lsp_server.syntax.spec import LanguageSpec

_C_CHAR = r"'(?:\\.|[^'\\\n])*'"
_RUST_CHAR = r"'(?:\\(?:x[0-9a-fA-F]{2}|u\{[0-9a-fA-F]{1,6}\}|.)|[^'\\\n])'"

_PYTHON = LanguageSpec(
    name="python",
    title="Python",
    language_ids=("python",),
    extensions=(".py", ".pyi", ".pyw"),
    module="tree_sitter_python",
    comment_prefix="#",
    block_comment=None,
    strings=(('"""', True), ("'''", True), ('"', False), ("'", False)),
    scope_types=frozenset({"function_definition", "class_definition"}),
    indent_blocks=True,
    block_openers=(":", "{", "(", "["),
    block_header_types=frozenset(
        {
            "function_definition",
            "class_definition",
            "if_statement",
            "elif_clause",
            "else_clause",
            "for_statement",
            "while_statement",
            "with_statement",
            "try_statement",
            "except_clause",
            "except_group_clause",
            "finally_clause",
            "match_statement",
            "case_clause",
            "decorated_definition",
        }
    ),
    block_header_line=r"^\s*(?:async\s+)?(?:def|class|if|elif|else|for|while|with|try|except|finally|match|case)\b",
)

_JAVASCRIPT = LanguageSpec(
    name="javascript",
    title="JavaScript",
    language_ids=("javascript", "javascriptreact", "jsx"),
    extensions=(".js", ".mjs", ".cjs", ".jsx"),
    module="tree_sitter_javascript",
    strings=(("`", True), ('"', False), ("'", False)),
    scope_types=frozenset(
        {
            "function_declaration",
            "function_expression",
            "arrow_function",
            "method_definition",
            "class_declaration",
            "class",
            "generator_function_declaration",
            "generator_function",
        }
    ),
    block_openers=("{", "=>", "(", "["),
)

_TYPESCRIPT = replace(
    _JAVASCRIPT,
    name="typescript",
    title="TypeScript",
    language_ids=("typescript",),
    extensions=(".ts", ".mts", ".cts"),
    module="tree_sitter_typescript",
    function="language_typescript",
    scope_types=_JAVASCRIPT.scope_types
    | {"interface_declaration", "enum_declaration", "abstract_class_declaration", "internal_module"},
)

_C = LanguageSpec(
    name="c",
    title="C",
    language_ids=("c",),
    extensions=(".c", ".h"),
    module="tree_sitter_c",
    strings=(('"', False),),
    scope_types=frozenset({"function_definition", "struct_specifier", "enum_specifier", "union_specifier"}),
    char_literal=_C_CHAR,
    string_types=frozenset({"char_literal"}),
    block_openers=("{", "(", "["),
)

LANGUAGES: tuple[LanguageSpec, ...] = (
    _PYTHON,
    _JAVASCRIPT,
    _TYPESCRIPT,
    replace(
        _TYPESCRIPT,
        name="tsx",
        language_ids=("typescriptreact", "tsx"),
        extensions=(".tsx",),
        function="language_tsx",
    ),
    LanguageSpec(
        name="go",
        title="Go",
        language_ids=("go",),
        extensions=(".go",),
        module="tree_sitter_go",
        strings=(("`", True), ('"', False)),
        scope_types=frozenset({"function_declaration", "method_declaration", "func_literal", "type_declaration"}),
        char_literal=_C_CHAR,
        string_types=frozenset({"rune_literal"}),
        block_openers=("{", "(", "["),
    ),
    LanguageSpec(
        name="rust",
        title="Rust",
        language_ids=("rust",),
        extensions=(".rs",),
        module="tree_sitter_rust",
        strings=(('"', True),),
        scope_types=frozenset(
            {"function_item", "impl_item", "trait_item", "mod_item", "closure_expression", "struct_item", "enum_item"}
        ),
        char_literal=_RUST_CHAR,
        string_types=frozenset({"char_literal"}),
        block_openers=("{", "=>", "(", "["),
    ),
    _C,
    replace(
        _C,
        name="cpp",
        title="C++",
        language_ids=("cpp", "c++", "cuda-cpp"),
        extensions=(".cc", ".cpp", ".cxx", ".c++", ".hpp", ".hh", ".hxx", ".h++", ".ipp", ".inl"),
        module="tree_sitter_cpp",
        scope_types=_C.scope_types | {"class_specifier", "namespace_definition", "lambda_expression"},
    ),
    LanguageSpec(
        name="java",
        title="Java",
        language_ids=("java",),
        extensions=(".java",),
        module="tree_sitter_java",
        strings=(('"""', True), ('"', False)),
        scope_types=frozenset(
            {
                "class_declaration",
                "interface_declaration",
                "enum_declaration",
                "record_declaration",
                "method_declaration",
                "constructor_declaration",
                "lambda_expression",
            }
        ),
        char_literal=_C_CHAR,
        string_types=frozenset({"character_literal"}),
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


def language_ids() -> tuple[str, ...]:
    """Every languageId Gearshift parses, in registry order: what the editors attach to by default."""
    return tuple(language_id for spec in LANGUAGES for language_id in spec.language_ids)


def titles() -> str:
    """The languages by their titles, for messages: ``"Python, JavaScript, …"``."""
    return ", ".join(dict.fromkeys(spec.title for spec in LANGUAGES))


def neovim_languages_lua() -> str:
    """``editors/nvim/lua/gearshift/languages.lua``, generated from ``LANGUAGES``."""
    filetypes = "".join(f"    '{language_id}',\n" for language_id in language_ids())
    return (
        "-- Generated from lsp_server/syntax/languages.py by `python -m lsp_server.syntax.languages`; do not edit.\n"
        "-- The languageIds (Neovim filetypes) the server parses: the plugin's default `filetypes`.\n"
        f"return {{\n  filetypes = {{\n{filetypes}  }},\n}}\n"
    )


if __name__ == "__main__":
    sys.stdout.write(neovim_languages_lua())
