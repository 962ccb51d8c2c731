"""A small bracket lexer: which brackets are open outside strings and comments, and which the suffix closes.

Also the indentation helpers every rule that compares indentation shares (a tab counts as 8 columns).
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Sequence
from dataclasses import dataclass

from lsp_server.syntax.spec import LanguageSpec

OPENERS = "([{"
CLOSERS = ")]}"
MATCHING = {")": "(", "]": "[", "}": "{"}

# Lexer modes.
CODE, LINE_COMMENT, BLOCK_COMMENT, STRING = range(4)

STRING_CLOSED = "q"
"""Lexer event: a string that was open where the scan started was closed here."""

STRING_ABANDONED = "u"
"""Lexer event: a single-line string open where the scan started ended unterminated at a newline."""


@dataclass
class LexState:
    """Where a scan is: in code, a comment or a string (which delimiter), and whether that began earlier."""

    mode: int = CODE
    delim: str = ""
    multiline: bool = False
    carried: bool = False
    """The string was already open where this scan started (the cursor was inside it)."""

    def copy(self) -> LexState:
        return LexState(self.mode, self.delim, self.multiline, self.carried)


class Lexer:
    """A small regex lexer that reports brackets in code and skips strings, comments and char literals.

    Good enough for bracket balance; it does not know regex literals, raw strings or
    template interpolation. ``spec=None`` (plain text) reports every bracket.
    """

    def __init__(self, spec: LanguageSpec | None) -> None:
        self.spec = spec
        parts: list[str] = []
        self._strings: dict[str, bool] = {}
        self._line_comment = ""
        self._block_start = self._block_end = ""
        if spec is not None:
            self._line_comment = spec.comment_prefix
            parts.append(re.escape(spec.comment_prefix))
            if spec.block_comment:
                self._block_start, self._block_end = spec.block_comment
                parts.append(re.escape(self._block_start))
            if spec.char_literal:
                parts.append(spec.char_literal)
            for delim, multiline in spec.strings:
                self._strings[delim] = multiline
                parts.append(re.escape(delim))
        parts.append(r"[()\[\]{}]")
        self._code = re.compile("|".join(parts))
        self._in_string = {
            delim: re.compile(r"\\.|" + re.escape(delim) + ("" if multiline else r"|\n"), re.S)
            for delim, multiline in self._strings.items()
        }

    def scan(
        self, text: str, state: LexState, start: int = 0, end: int | None = None
    ) -> Iterator[tuple[int, str]]:
        """Yield ``(index, char)`` for brackets in code within ``text[start:end]``, updating ``state``.

        Also yields ``(index, STRING_CLOSED)`` when a string open at the start of the scan
        (``state.carried``) is closed, and ``(index, STRING_ABANDONED)`` when it ends unterminated.
        """
        pos = start
        stop = len(text) if end is None else end
        code = self._code
        while pos < stop:
            mode = state.mode
            if mode == CODE:
                match = code.search(text, pos, stop)
                if match is None:
                    return
                token = match.group()
                at = match.start()
                pos = match.end()
                if len(token) == 1 and token in "()[]{}":
                    yield at, token
                elif token == self._line_comment:
                    state.mode = LINE_COMMENT
                elif token == self._block_start:
                    state.mode = BLOCK_COMMENT
                elif token in self._strings:
                    state.mode, state.delim = STRING, token
                    state.multiline, state.carried = self._strings[token], False
                # anything else is a char literal: skipped whole
            elif mode == LINE_COMMENT:
                newline = text.find("\n", pos, stop)
                if newline < 0:
                    return
                state.mode = CODE
                pos = newline + 1
            elif mode == BLOCK_COMMENT:
                close = text.find(self._block_end, pos, stop)
                if close < 0:
                    return
                state.mode = CODE
                pos = close + len(self._block_end)
            else:
                pattern = self._in_string.get(state.delim)
                if pattern is None:  # a state from another lexer: give up on the string
                    state.mode = CODE
                    continue
                match = pattern.search(text, pos, stop)
                if match is None:
                    return
                token = match.group()
                pos = match.end()
                if token[0] == "\\" and len(token) == 2:
                    continue
                carried = state.carried
                state.mode, state.delim, state.carried = CODE, "", False
                if carried:
                    yield match.start(), STRING_ABANDONED if token == "\n" else STRING_CLOSED


def open_brackets(lexer: Lexer, text: str, start: int, end: int) -> tuple[list[str], LexState]:
    """Brackets left open in ``text[start:end]`` (innermost last) and the lexer state at ``end``."""
    state = LexState()
    stack: list[str] = []
    for _, char in lexer.scan(text, state, start, end):
        if char in OPENERS:
            stack.append(char)
        elif char in CLOSERS:
            opener = MATCHING[char]
            if stack and stack[-1] == opener:
                stack.pop()
            elif opener in stack:  # recover from a stray opener: close up to the matching one
                del stack[len(stack) - 1 - stack[::-1].index(opener) :]
            # a closer with no opener: the window began inside that block; ignore it
    return stack, state


def suffix_closure(
    lexer: Lexer, text: str, start: int, end: int, stack: Sequence[str], state: LexState, depth: int = 8
) -> tuple[int, bool]:
    """How many of ``stack``'s innermost brackets ``text[start:end]`` closes, and whether it closes an open string.

    Scanning stops as soon as ``depth`` brackets are accounted for (and the open string, if any, is settled),
    or at the first closer that does not match.
    """
    scan_state = state.copy()
    scan_state.carried = scan_state.mode == STRING
    string_pending = scan_state.carried
    target = min(len(stack), depth)
    if target == 0 and not string_pending:
        return 0, False
    closes = 0
    closes_string = False
    own: list[str] = []
    for _, char in lexer.scan(text, scan_state, start, end):
        if char == STRING_CLOSED or char == STRING_ABANDONED:
            closes_string = char == STRING_CLOSED
            string_pending = False
        elif char in OPENERS:
            own.append(char)
        elif own:
            if own[-1] == MATCHING[char]:
                own.pop()
            else:
                break
        elif closes < len(stack) and stack[-1 - closes] == MATCHING[char]:
            closes += 1
        else:
            break
        if closes >= target and not string_pending:
            break
    return closes, closes_string


_LEXERS: dict[str, Lexer] = {}


def lexer_for(spec: LanguageSpec | None) -> Lexer:
    """The lexer of ``spec`` (plain text for None), built once per language."""
    key = spec.name if spec else ""
    lexer = _LEXERS.get(key)
    if lexer is None:
        lexer = _LEXERS[key] = Lexer(spec)
    return lexer


# --------------------------------------------------------------------------------------------------
# Indentation


def indent_width(line: str) -> int:
    """Width of the leading whitespace of ``line`` (a tab counts as 8, as Python's tokenizer does)."""
    width = 0
    for char in line:
        if char == " ":
            width += 1
        elif char == "\t":
            width += 8 - width % 8
        else:
            break
    return width


def leading_whitespace(line: str) -> str:
    return line[: len(line) - len(line.lstrip(" \t"))]

