"""The language registry: each spec resolves, its grammar loads and parses, and the editors' lists follow it."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from lsp_server.syntax import grammar, languages
from lsp_server.syntax.languages import LANGUAGES

ROOT = Path(__file__).resolve().parents[2]
NEOVIM_LANGUAGES = ROOT / "editors" / "nvim" / "lua" / "gearshift" / "languages.lua"



@pytest.mark.parametrize(
    ("language_id", "path", "expected"),
    [
        pytest.param("python", None, "python", id="python-id"),
        pytest.param("javascript", None, "javascript", id="javascript-id"),
        pytest.param("javascriptreact", None, "javascript", id="jsx-id"),
        pytest.param("typescript", None, "typescript", id="typescript-id"),
        pytest.param("typescriptreact", None, "tsx", id="tsx-id"),
        pytest.param("go", None, "go", id="go-id"),
        pytest.param("rust", None, "rust", id="rust-id"),
        pytest.param("c", None, "c", id="c-id"),
        pytest.param("cpp", None, "cpp", id="cpp-id"),
        pytest.param("java", None, "java", id="java-id"),
        pytest.param("Python", None, "python", id="id-case-insensitive"),
        pytest.param(None, "src/app.py", "python", id="ext-py"),
        pytest.param(None, "a/b.PYI", "python", id="ext-pyi-upper"),
        pytest.param(None, "web/x.mjs", "javascript", id="ext-mjs"),
        pytest.param(None, "web/x.ts", "typescript", id="ext-ts"),
        pytest.param(None, "web/x.tsx", "tsx", id="ext-tsx"),
        pytest.param(None, "main.go", "go", id="ext-go"),
        pytest.param(None, "lib.rs", "rust", id="ext-rs"),
        pytest.param(None, "x.h", "c", id="ext-h"),
        pytest.param(None, "x.hpp", "cpp", id="ext-hpp"),
        pytest.param(None, "x.cc", "cpp", id="ext-cc"),
        pytest.param(None, "A.java", "java", id="ext-java"),
        pytest.param("plaintext", "notes.md", None, id="unknown-id-unknown-ext"),
        pytest.param("lua", "x.lua", None, id="unsupported-language"),
        pytest.param("unknown", "x.py", "python", id="unknown-id-falls-back-to-ext"),
        pytest.param(None, None, None, id="nothing-known"),
    ],
)
def test_resolve_language(language_id, path, expected):
    spec = languages.resolve(language_id, path)
    assert (spec.name if spec else None) == expected


@pytest.mark.parametrize(
    ("language_id", "expected"),
    [
        pytest.param("python", "#", id="python"),
        pytest.param("go", "//", id="go"),
        pytest.param("rust", "//", id="rust"),
        pytest.param("java", "//", id="java"),
        pytest.param("markdown", None, id="unknown"),
    ],
)
def test_comment_prefix(language_id, expected):
    assert languages.comment_prefix(language_id) == expected


SAMPLES = {
    "python": "def f(x):\n    return x\n",
    "javascript": "function f(x) { return x; }\n",
    "typescript": "function f(x: number): number { return x; }\n",
    "tsx": "const A = () => <div>{1}</div>;\n",
    "go": "package main\n\nfunc f(x int) int { return x }\n",
    "rust": "fn f(x: i32) -> i32 { x }\n",
    "c": "int f(int x) { return x; }\n",
    "cpp": "template <class T> T f(T x) { return x; }\n",
    "java": "class A { int f(int x) { return x; } }\n",
}
"""A clean snippet with a call or a parameter list per language: a spec without one fails below."""

SPECS = [pytest.param(spec, id=spec.name) for spec in LANGUAGES]


@pytest.mark.parametrize("spec", SPECS)
def test_every_grammar_loads_and_parses(spec):
    assert spec.name in SAMPLES, f"add a sample of {spec.title} to SAMPLES"
    source = SAMPLES[spec.name]
    assert languages.resolve(spec.name) is spec
    assert grammar.parser(spec) is grammar.parser(spec), "parsers are cached"
    tree = grammar.parse(spec, source)
    assert not tree.root_node.has_error
    assert grammar.count_errors(tree.root_node) == 0
    broken = grammar.parse(spec, source.replace("(", ")", 1))
    assert grammar.count_errors(broken.root_node) >= 1


@pytest.mark.parametrize("spec", SPECS)
def test_every_language_id_and_extension_resolves_to_its_spec(spec):
    assert all(languages.resolve(language_id) is spec for language_id in spec.language_ids)
    assert all(languages.resolve(None, "x" + extension) is spec for extension in spec.extensions)


OLDER_GRAMMAR_TYPES = frozenset({"except_group_clause"})
"""Node types that only grammar releases pyproject.toml still admits have (tree-sitter-python < 0.25)."""


@pytest.mark.parametrize("spec", SPECS)
def test_node_types_named_by_a_spec_exist_in_its_grammar(spec):
    language = grammar.grammar(spec)
    named = OLDER_GRAMMAR_TYPES | {
        language.node_kind_for_id(kind)
        for kind in range(language.node_kind_count)
        if language.node_kind_is_named(kind)
    }
    for field in ("scope_types", "string_types", "block_header_types"):
        assert getattr(spec, field) <= named, f"{spec.name}.{field}: {sorted(getattr(spec, field) - named)}"
    assert spec.scope_types, "a language without scopes would never end a suggestion at its scope"


def test_registry_keys_are_unique():
    ids = languages.language_ids()
    assert len(ids) == len(set(ids))
    extensions = [extension for spec in LANGUAGES for extension in spec.extensions]
    assert len(extensions) == len(set(extensions))
    assert all(extension == extension.lower() and extension.startswith(".") for extension in extensions)


def test_pyproject_depends_on_every_grammar():
    tomllib = pytest.importorskip("tomllib")  # Python 3.11+
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    names = {re.split(r"[\s<>=!~;\[]", requirement, maxsplit=1)[0].lower() for requirement in project["dependencies"]}
    missing = sorted({spec.package for spec in LANGUAGES} - names)
    assert not missing, f"pyproject.toml lacks the grammar of {missing}"


def test_neovim_filetypes_are_generated_from_the_registry():
    assert NEOVIM_LANGUAGES.read_text() == languages.neovim_languages_lua(), (
        "regenerate it: python -m lsp_server.syntax.languages > editors/nvim/lua/gearshift/languages.lua"
    )
    init = (ROOT / "editors" / "nvim" / "lua" / "gearshift" / "init.lua").read_text()
    assert "M.default_filetypes = require('gearshift.languages').filetypes" in init


def test_refusal_names_every_language_once():
    assert languages.titles() == "Python, JavaScript, TypeScript, Go, Rust, C, C++, Java"
