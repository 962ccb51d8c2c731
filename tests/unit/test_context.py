"""Completion context: token-sized windows, multi-line decision, scope, lexical state at the cursor."""

from __future__ import annotations

import re

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from lsp_server.completion.context import BRACKET_LOOKAHEAD_CHARS, build_context
from lsp_server.completion.window import MAX_CHARS_PER_TOKEN
from lsp_server.syntax.facts import PARSE_SLACK_CHARS

CURSOR = "█"
_TOKEN = re.compile(r"\w+|[^\w\s]|\s+")


def count_tokens(text: str) -> int:
    """A stand-in tokenizer: words, punctuation and whitespace runs are one token each."""
    return len(_TOKEN.findall(text))


def make(
    source: str, language: str | None, *, prefix_tokens=1024, suffix_tokens=256, path=None, counter=None
):
    offset = source.index(CURSOR)
    text = source.replace(CURSOR, "", 1)
    return build_context(
        text,
        offset,
        language,
        count_tokens=counter or count_tokens,
        prefix_tokens=prefix_tokens,
        suffix_tokens=suffix_tokens,
        max_lines=8,
        path=path,
    )


# --------------------------------------------------------------------------------------------------
# Cursor line, windows


def test_cursor_line_split_and_indent():
    ctx = make("def f():\n    return a█ + b\n", "python")
    assert ctx.line_before == "    return a"
    assert ctx.line_after == " + b"
    assert ctx.indent == "    "
    assert ctx.prefix == "def f():\n    return a"
    assert ctx.suffix == " + b\n"


def test_crlf_line_after_has_no_carriage_return():
    ctx = make("x = 1\r\ny = █2\r\nz = 3\r\n", "python")
    assert ctx.line_after == "2"
    assert ctx.next_lines == ("z = 3",)


@pytest.mark.parametrize(
    ("source", "prefix", "suffix"),
    [
        pytest.param("█abc\n", "", "abc\n", id="start-of-document"),
        pytest.param("abc\n█", "abc\n", "", id="end-of-document"),
        pytest.param("█", "", "", id="empty-document"),
    ],
)
def test_document_edges(source, prefix, suffix):
    ctx = make(source, "python")
    assert (ctx.prefix, ctx.suffix) == (prefix, suffix)


def test_offset_out_of_range_is_clamped():
    ctx = build_context(
        "abc",
        99,
        "python",
        count_tokens=count_tokens,
        prefix_tokens=10,
        suffix_tokens=10,
        max_lines=8,
        path=None,
    )
    assert ctx.offset == 3 and ctx.prefix == "abc"


def _long_python(lines: int) -> str:
    body = "".join(
        f"    value_{i} = compute(alpha, beta[{i}], gamma.delta)  # step {i}\n" for i in range(lines)
    )
    return "def big():\n" + body


def test_windows_fit_the_budgets_and_cut_on_lines():
    text = _long_python(2000)
    offset = text.index("value_1000")
    ctx = build_context(
        text,
        offset,
        "python",
        count_tokens=count_tokens,
        prefix_tokens=300,
        suffix_tokens=100,
        max_lines=8,
        path=None,
    )
    assert count_tokens(ctx.prefix) <= 300
    assert count_tokens(ctx.suffix) <= 100
    assert count_tokens(ctx.prefix) >= 300 * 0.7, "the window uses most of the budget"
    assert count_tokens(ctx.suffix) >= 100 * 0.7
    assert text[ctx.prefix_start - 1] == "\n", "prefix starts on a line"
    assert ctx.suffix.endswith("\n"), "suffix ends after a line"
    assert text[ctx.prefix_start : ctx.offset] == ctx.prefix
    assert text[ctx.offset : ctx.suffix_end] == ctx.suffix


def test_token_counter_only_sees_window_sized_text_a_few_times():
    text = _long_python(60_000)  # about 4 MB
    assert len(text) > 3_000_000
    seen: list[int] = []

    def counter(chunk: str) -> int:
        seen.append(len(chunk))
        return count_tokens(chunk)

    ctx = make(text[:2_000_000] + CURSOR + text[2_000_000:], "python", counter=counter)
    assert max(seen) <= 1024 * MAX_CHARS_PER_TOKEN
    assert len(seen) <= 16
    assert count_tokens(ctx.prefix) <= 1024
    assert len(ctx.parse_prefix) <= len(ctx.prefix) + PARSE_SLACK_CHARS
    assert len(ctx.parse_suffix) <= len(ctx.suffix) + PARSE_SLACK_CHARS + 200


def test_minified_line_is_cut_inside_the_line():
    text = "var a=1;" * 100_000
    ctx = build_context(
        text,
        len(text) // 2,
        "javascript",
        count_tokens=count_tokens,
        prefix_tokens=200,
        suffix_tokens=50,
        max_lines=8,
        path=None,
    )
    assert 150 <= count_tokens(ctx.prefix) <= 200
    assert 35 <= count_tokens(ctx.suffix) <= 50


def test_zero_suffix_budget_still_knows_the_cursor_line():
    ctx = make("x = foo(█)\ny = 2\n", "python", suffix_tokens=0)
    assert ctx.suffix == ""
    assert ctx.line_after == ")"
    assert ctx.suffix_closes == 1


def test_prefix_window_start_is_stable_while_typing():
    """Typing at the cursor keeps the window start (and so the engine's KV cache) for many keystrokes."""
    text = _long_python(3000)
    offset = text.index("value_1500")
    starts = set()
    for typed in range(60):
        typed_text = text[:offset] + "x" * typed + text[offset:]
        ctx = build_context(
            typed_text,
            offset + typed,
            "python",
            count_tokens=count_tokens,
            prefix_tokens=400,
            suffix_tokens=50,
            max_lines=8,
            path=None,
        )
        assert count_tokens(ctx.prefix) <= 400
        starts.add(ctx.prefix_start)
    assert len(starts) <= 2


@settings(max_examples=60, deadline=None)
@given(
    lines=st.lists(st.text(alphabet="ab (){}\t:=", max_size=30), max_size=40),
    position=st.floats(0, 1),
    prefix_tokens=st.integers(1, 60),
    suffix_tokens=st.integers(0, 30),
)
def test_windows_are_slices_within_budget(lines, position, prefix_tokens, suffix_tokens):
    text = "\n".join(lines)
    offset = int(len(text) * position)
    ctx = build_context(
        text,
        offset,
        "javascript",
        count_tokens=count_tokens,
        prefix_tokens=prefix_tokens,
        suffix_tokens=suffix_tokens,
        max_lines=8,
        path=None,
    )
    assert ctx.prefix == text[ctx.prefix_start : offset]
    assert ctx.suffix == text[offset : ctx.suffix_end]
    assert count_tokens(ctx.prefix) <= prefix_tokens
    assert count_tokens(ctx.suffix) <= suffix_tokens
    assert ctx.parse_prefix.endswith(ctx.prefix) and ctx.parse_suffix.startswith(ctx.suffix)


# --------------------------------------------------------------------------------------------------
# Multi-line decision


@pytest.mark.parametrize(
    ("language", "source", "multiline"),
    [
        # Python
        pytest.param("python", "def f(x):█\n", True, id="py-after-def-colon"),
        pytest.param("python", "def f(x):\n    █\n", True, id="py-empty-body-line"),
        pytest.param("python", "if x:\n    y = 1\n    █\n", True, id="py-blank-line-in-block"),
        pytest.param("python", "for i in range(3):█", True, id="py-after-for-colon"),
        pytest.param("python", "class A:█\n", True, id="py-after-class-colon"),
        pytest.param("python", "x = foo(█)\n", False, id="py-inside-call-parens"),
        pytest.param("python", "x = compute(a, b) + █\n", False, id="py-mid-expression-eol"),
        pytest.param("python", "x = {1:█", False, id="py-colon-in-dict"),
        pytest.param("python", "f = lambda x:█", False, id="py-colon-in-lambda"),
        pytest.param("python", "y = x[1:█]\n", False, id="py-slice"),
        pytest.param("python", "return a█ + b\n", False, id="py-text-after-cursor"),
        pytest.param("python", "# a comment█\n", False, id="py-in-comment"),
        pytest.param("python", 'x = "abc█"\n', False, id="py-in-string"),
        pytest.param("python", "items = [█", True, id="py-open-bracket-eol"),
        # JavaScript / TypeScript
        pytest.param("javascript", "function f() {█}\n", True, id="js-between-braces"),
        pytest.param("javascript", "function f() {█\n", True, id="js-after-brace"),
        pytest.param("javascript", "function f() {\n  █\n}\n", True, id="js-empty-body"),
        pytest.param("javascript", "const f = (x) =>█", True, id="js-after-arrow"),
        pytest.param("javascript", "const x = foo(█);\n", False, id="js-inside-call"),
        pytest.param("javascript", "const x = a.█b;\n", False, id="js-mid-line"),
        pytest.param("typescript", "interface A {█}\n", True, id="ts-interface-braces"),
        pytest.param("typescript", "let x: number = █;\n", False, id="ts-before-semicolon"),
        pytest.param("tsx", "const A = () => {\n  █\n};\n", True, id="tsx-arrow-body"),
        pytest.param("javascript", "// todo█\n", False, id="js-in-comment"),
        # Go
        pytest.param("go", "func main() {█\n}\n", True, id="go-after-brace"),
        pytest.param("go", "func main() {\n\t█\n}\n", True, id="go-empty-body"),
        pytest.param("go", "x := fmt.Sprintf(█)\n", False, id="go-inside-call"),
        # Rust
        pytest.param("rust", "fn main() {█}\n", True, id="rust-between-braces"),
        pytest.param("rust", "match x {\n    1 =>█\n}\n", True, id="rust-match-arrow"),
        pytest.param("rust", "let x = vec![1, █];\n", False, id="rust-in-macro-args"),
        # C / C++
        pytest.param("c", "int main(void) {█\n", True, id="c-after-brace"),
        pytest.param("c", "int main(void) {\n  /* note█ */\n}\n", False, id="c-in-block-comment"),
        pytest.param("c", "int x = f(█);\n", False, id="c-inside-call"),
        pytest.param("cpp", "class A {\npublic:\n  █\n};\n", True, id="cpp-class-body"),
        pytest.param("cpp", 'auto s = "a█";\n', False, id="cpp-in-string"),
        # Java
        pytest.param("java", "class A {\n  void f() {█}\n}\n", True, id="java-between-braces"),
        pytest.param("java", "class A {\n  void f() {\n    █\n  }\n}\n", True, id="java-empty-body"),
        pytest.param("java", "class A { int x = g(█); }\n", False, id="java-inside-call"),
        # Plain text
        pytest.param(None, "some notes\n█", True, id="plain-blank-line"),
        pytest.param(None, "some no█tes\n", False, id="plain-mid-line"),
    ],
)
def test_multiline_decision(language, source, multiline):
    assert make(source, language).multiline is multiline


@pytest.mark.parametrize(
    ("language", "source", "in_string", "in_comment"),
    [
        pytest.param("python", 'x = "ab█c"\n', True, False, id="py-string"),
        pytest.param("python", 'x = "abc"█\n', False, False, id="py-after-string"),
        pytest.param("python", "# note█\n", False, True, id="py-line-comment-end"),
        pytest.param("python", 'x = """doc█\n', True, False, id="py-unterminated-triple"),
        pytest.param("javascript", "const s = `a█`;\n", True, False, id="js-template"),
        pytest.param("c", "/* a */█\n", False, False, id="c-after-block-comment"),
        pytest.param("c", "/* a█ */\n", False, True, id="c-inside-block-comment"),
        pytest.param("rust", "let c = 'a'; // x█\n", False, True, id="rust-comment-after-char"),
        pytest.param("go", "s := `raw█`\n", True, False, id="go-raw-string"),
        pytest.param("java", 'String s = "a█";\n', True, False, id="java-string"),
    ],
)
def test_string_and_comment_detection(language, source, in_string, in_comment):
    ctx = make(source, language)
    assert (ctx.in_string, ctx.in_comment) == (in_string, in_comment)


# --------------------------------------------------------------------------------------------------
# Scope and parse state


@pytest.mark.parametrize(
    ("language", "source", "kind", "indent"),
    [
        pytest.param("python", "def f():█\n", "function_definition", "", id="py-header"),
        pytest.param(
            "python",
            "class A:\n    def f(self):\n        x = 1\n        █\n",
            "function_definition",
            "    ",
            id="py-method-body",
        ),
        pytest.param(
            "python",
            "class A:\n    def f(self):\n        x = 1\n    █\n",
            "class_definition",
            "",
            id="py-dedent",
        ),
        pytest.param("python", "def f():\n    x = 1\n█", None, "", id="py-top-level"),
        pytest.param(
            "javascript", "class A {\n  m() {\n    █\n  }\n}\n", "method_definition", "  ", id="js-method"
        ),
        pytest.param("typescript", "const f = () => {\n  █\n};\n", "arrow_function", "", id="ts-arrow"),
        pytest.param("go", "func main() {\n\t█\n}\n", "function_declaration", "", id="go-func"),
        pytest.param(
            "rust",
            "impl A {\n    fn f(&self) {\n        █\n    }\n}\n",
            "function_item",
            "    ",
            id="rust-fn",
        ),
        pytest.param("c", "int main(void) {\n  █\n}\n", "function_definition", "", id="c-function"),
        pytest.param("cpp", "namespace n {\nclass A {\n  █\n};\n}\n", "class_specifier", "", id="cpp-class"),
        pytest.param(
            "java", "class A {\n  void f() {\n    █\n  }\n}\n", "method_declaration", "  ", id="java-method"
        ),
        pytest.param(None, "text █\n", None, "", id="plain"),
    ],
)
def test_enclosing_scope(language, source, kind, indent):
    ctx = make(source, language)
    assert (ctx.scope_kind, ctx.scope_indent) == (kind, indent)


@pytest.mark.parametrize(
    ("language", "source", "parsed_ok"),
    [
        pytest.param("python", "def f():\n    █\n", True, id="py-ok"),
        pytest.param("python", "x = █\n", False, id="py-incomplete-assignment"),
        pytest.param("javascript", "function f() {\n  █\n}\n", True, id="js-ok"),
        pytest.param("javascript", "function f() {\n  █\n", False, id="js-missing-brace"),
        pytest.param("rust", "fn main() {\n    let x = █;\n}\n", False, id="rust-missing-expr"),
        pytest.param("go", "package main\n\nfunc main() {\n\t█\n}\n", True, id="go-ok"),
    ],
)
def test_parsed_ok(language, source, parsed_ok):
    ctx = make(source, language)
    assert ctx.parsed_ok is parsed_ok
    assert (ctx.window_errors == 0) is parsed_ok


def test_parse_window_widens_to_top_level_lines():
    functions = "".join(
        f"function f{i}(a) {{\n" + "  a += 1;\n" * 30 + "  return a;\n}\n\n" for i in range(40)
    )
    offset = functions.index("a += 1;", len(functions) // 2)
    ctx = build_context(
        functions,
        offset,
        "javascript",
        count_tokens=count_tokens,
        prefix_tokens=60,
        suffix_tokens=30,
        max_lines=8,
        path=None,
    )
    assert not ctx.prefix.startswith("function"), "the prompt window starts mid-function"
    assert ctx.parse_prefix.startswith("function"), "the parsed window starts at its header"
    assert ctx.parsed_ok


@pytest.mark.parametrize(
    ("language", "source", "open_", "closes", "closes_string"),
    [
        pytest.param("python", "x = foo(█)\n", "(", 1, False, id="py-call-closed-by-suffix"),
        pytest.param("python", "x = foo(█\n", "(", 0, False, id="py-call-not-closed"),
        pytest.param("python", 'x = foo("(", █)\n', "(", 1, False, id="py-paren-in-string-ignored"),
        pytest.param("python", "x = [a, # (\n  █]\n", "[", 1, False, id="py-paren-in-comment-ignored"),
        pytest.param("python", 'print("ab█")\n', "(", 1, True, id="py-in-string-closed"),
        pytest.param("python", 'print("ab█\n', "(", 0, False, id="py-in-string-unterminated"),
        pytest.param(
            "javascript", "function f() {\n  if (x) {\n    █\n  }\n}\n", "{{", 2, False, id="js-nested"
        ),
        pytest.param("javascript", "const s = `${a}`; f({█\n", "({", 0, False, id="js-template-then-open"),
        pytest.param(
            "rust",
            "fn f<'a>(x: &'a str) {\n    let c = '}';\n    █\n}\n",
            "{",
            1,
            False,
            id="rust-lifetime-char",
        ),
        pytest.param("c", "int f() {\n  char c = '{';\n  █\n}\n", "{", 1, False, id="c-char-literal"),
        pytest.param("c", "int f() {\n  /* { */ █\n}\n", "{", 1, False, id="c-brace-in-comment"),
        pytest.param(
            "go", "func f() {\n\ts := `{\n(`\n\t█\n}\n", "{", 1, False, id="go-raw-string-multiline"
        ),
        pytest.param(
            "java", 'class A {\n  String s = """\n  {\n  """;\n  █\n}\n', "{", 1, False, id="java-text-block"
        ),
        pytest.param(None, "f(█)", "(", 1, False, id="plain-brackets-only"),
    ],
)
def test_bracket_state_at_cursor(language, source, open_, closes, closes_string):
    ctx = make(source, language)
    assert ctx.open_brackets == open_
    assert ctx.suffix_closes == closes
    assert ctx.suffix_closes_string is closes_string


def test_bracket_lookahead_is_bounded():
    body = "  x += 1;\n" * (BRACKET_LOOKAHEAD_CHARS // 10 + 500)
    ctx = make("function f() {\n█" + body + "}\n", "javascript")
    assert ctx.open_brackets == "{"
    assert ctx.suffix_closes == 0, "the closing brace lies beyond the look-ahead"


@pytest.mark.parametrize(
    ("language", "source", "block_indent"),
    [
        pytest.param("python", "def f():█\n", 1, id="after-header"),
        pytest.param("python", "def f():\n    █\n", 4, id="blank-line-col-4"),
        pytest.param("python", "def f():\n\t█\n", 8, id="tab"),
        pytest.param("python", "x = foo(█)\n", -1, id="single-line"),
        pytest.param("javascript", "function f() {\n  █\n}\n", -1, id="brace-language"),
    ],
)
def test_block_indent(language, source, block_indent):
    assert make(source, language).block_indent == block_indent


def test_recent_and_next_lines():
    ctx = make("a = 1\n\nb = 2\nc = 3\nd = █\n\ne = 5\nf = 6\ng = 7\n", "python")
    assert ctx.recent_lines == ("c = 3", "b = 2", "a = 1")
    assert ctx.next_lines == ("e = 5", "f = 6")


@pytest.mark.parametrize(
    "source, multiline",
    [
        pytest.param("def f(xs):\n    total = 0\n    █\n    return total\n", False, id="gap-before-a-sibling"),
        pytest.param("def f(xs):\n    █\n        print(x)\n", False, id="gap-before-a-deeper-body"),
        pytest.param("def f(xs):\n    total = 0\n    █\n\ndef g():\n    pass\n", True, id="end-of-block"),
        pytest.param("def f(xs):\n    total = 0\n    █", True, id="end-of-file"),
        pytest.param("import os\n█\ndef g():\n    pass\n", True, id="top-level-between-definitions"),
    ],
)
def test_blank_line_between_statements_gets_one_line(source, multiline):
    assert make(source, "python").multiline is multiline


@pytest.mark.parametrize(
    "source, complete",
    [
        pytest.param("def f(xs):\n    █\n", True, id="body-indented"),
        pytest.param("def f(xs):\n  █\n", True, id="any-deeper-indent-counts"),
        pytest.param("def f(xs):\n█\n", False, id="not-indented"),
        pytest.param("def f(xs):\n    total = 0\n  █\n", False, id="shallower-than-the-code-before"),
        pytest.param("def f(xs):\n    total = 0\n    x█\n", False, id="code-on-the-line"),
    ],
)
def test_indent_complete(source, complete):
    assert make(source, "python").indent_complete is complete


def test_a_small_prompt_window_deep_in_a_long_class_parses_like_the_full_one():
    # shlex.shlex is longer than the parse slack: a window of a few hundred tokens in its sourcehook() started the
    # parsed region inside read_token()'s nested blocks, so a right line looked like it added errors and
    # parse_check removed it (`if ne` -> `wfile is None:`, with a slow CPU's cold-start window, in replay.py).
    import shlex
    from pathlib import Path

    from lsp_server.completion.cleanup import parse_check

    text = Path(shlex.__file__).read_text()
    body = text.index("if newfile[0] == '\"':")  # the body is retyped: all of it is gone but what was typed
    source = text[:body] + "if ne" + CURSOR + text[text.index("\n\n", body):]
    assert body - text.index("class shlex") > PARSE_SLACK_CHARS + 3000
    small = make(source, "python", prefix_tokens=288, suffix_tokens=96, counter=lambda t: len(t) // 3)
    full = make(source, "python", prefix_tokens=1024, suffix_tokens=128, counter=lambda t: len(t) // 3)
    assert parse_check("wfile is None:", full) == "wfile is None:"
    assert parse_check("wfile is None:", small) == "wfile is None:"
