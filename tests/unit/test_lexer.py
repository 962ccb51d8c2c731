"""The bracket lexer: state carried across scans, recovery from stray brackets."""

from __future__ import annotations

from lsp_server.syntax import languages
from lsp_server.syntax.lexer import STRING, Lexer, LexState, open_brackets


def test_lexer_state_is_resumable_across_lines():
    lexer = Lexer(languages.resolve("python"))
    text = 'x = """a (\nb ) """ + (\n'
    state = LexState()
    first_line_end = text.index("\n") + 1
    events = list(lexer.scan(text, state, 0, first_line_end))
    assert events == [] and state.mode == STRING
    events = list(lexer.scan(text, state, first_line_end))
    assert [char for _, char in events] == ["("]


def test_open_brackets_recovers_from_stray_openers():
    lexer = Lexer(languages.resolve("c"))
    stack, _ = open_brackets(lexer, "int f() { g(a; }\n{ x[", 0, len("int f() { g(a; }\n{ x["))
    assert stack == ["{", "["]

