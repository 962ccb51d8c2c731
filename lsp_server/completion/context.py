"""What the model is shown and what the stop rules need to know, for one cursor position.

:func:`build_context` turns a document and a cursor offset into a
:class:`CompletionContext`: the prefix and suffix windows sized in model
tokens, the cursor line split at the cursor, whether a multi-line suggestion
makes sense there, the enclosing scope, and the lexical state the
post-processing rules start from (open brackets, whether the cursor is inside
a string, how many of the open brackets the suffix closes).

Everything is bounded by the windows, never by the document: the token counter
sees at most ``budget × 8`` characters per probe, tree-sitter parses the
windows widened to the nearest top-level lines (at most ``PARSE_SLACK_CHARS``
each side), and the bracket look-ahead reads at most
``BRACKET_LOOKAHEAD_CHARS`` past the cursor. A keystroke in a 5 MB file costs
the same as one in a 5 KB file.
"""

from __future__ import annotations

import bisect
import re
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from functools import cached_property
from itertools import islice

from lsp_server.completion import languages
from lsp_server.completion.languages import LanguageSpec

EST_CHARS_PER_TOKEN = 3.5
"""First guess of characters per token before the counter has been asked (code averages 3–4)."""

MAX_CHARS_PER_TOKEN = 8
"""Windows never reach further than ``budget × this`` characters from the cursor, whatever the tokenizer."""

PARSE_SLACK_CHARS = 6000
"""How far the parsed window may be widened past the prompt windows to start and end on top-level lines."""

BRACKET_LOOKAHEAD_CHARS = 32_768
"""How far past the cursor the suffix is scanned to learn which open brackets it closes."""

RECENT_LINES = 3
"""Non-blank lines before the cursor line kept for the repeat filter."""

NEXT_LINES = 2
"""Non-blank lines after the cursor line kept for the suffix-duplicate rule."""

LINE_CHARS = 4096
"""``line_before`` / ``line_after`` keep at most this many characters each side of the cursor."""

_INDENT = re.compile(r"[ \t]*")

OPENERS = "([{"
CLOSERS = ")]}"
MATCHING = {")": "(", "]": "[", "}": "{"}

# Lexer modes.
CODE, LINE_COMMENT, BLOCK_COMMENT, STRING = range(4)

STRING_CLOSED = "q"
"""Lexer event: a string that was open where the scan started was closed here."""

STRING_ABANDONED = "u"
"""Lexer event: a single-line string open where the scan started ended unterminated at a newline."""

_SCOPE_TYPES = frozenset(
    {
        # Python
        "function_definition",
        "class_definition",
        # JavaScript / TypeScript
        "function_declaration",
        "function_expression",
        "arrow_function",
        "method_definition",
        "class_declaration",
        "class",
        "generator_function_declaration",
        "generator_function",
        "interface_declaration",
        "enum_declaration",
        "abstract_class_declaration",
        "internal_module",
        # Go
        "method_declaration",
        "func_literal",
        "type_declaration",
        # Rust
        "function_item",
        "impl_item",
        "trait_item",
        "mod_item",
        "closure_expression",
        "struct_item",
        "enum_item",
        # C / C++
        "struct_specifier",
        "class_specifier",
        "namespace_definition",
        "enum_specifier",
        "union_specifier",
        "lambda_expression",
        # Java
        "constructor_declaration",
        "record_declaration",
    }
)

_PY_BLOCK_HEADERS = frozenset(
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
)
_PY_HEADER_LINE = re.compile(
    r"^\s*(?:async\s+)?(?:def|class|if|elif|else|for|while|with|try|except|finally|match|case)\b"
)
_STRING_NODE_TYPES = frozenset({"char_literal", "rune_literal", "text_block", "character_literal"})


# --------------------------------------------------------------------------------------------------
# Lexer: brackets outside strings and comments


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


# --------------------------------------------------------------------------------------------------
# Context


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


@dataclass(frozen=True)
class CompletionContext:
    """Everything about one cursor position that the prompt and the post-processing rules need."""

    language: str | None
    """Registry name of the language (``"python"``, ``"tsx"``…), None for plain text."""

    path: str | None
    offset: int
    """Cursor as a character offset into the document."""

    prefix: str
    """Prompt window before the cursor (starts on a line boundary unless one line alone is over budget)."""

    suffix: str
    """Prompt window after the cursor (ends after a newline where possible)."""

    prefix_start: int
    """Document offset where ``prefix`` starts."""

    window_end: int
    """Document offset the prefix window was counted back from (the FIM split point, ``MiddleSplitter.point``):
    the text from here to the cursor is the typed middle."""

    suffix_end: int
    """Document offset where ``suffix`` ends."""

    line_before: str
    """The cursor line up to the cursor (at most LINE_CHARS characters)."""

    line_after: str
    """The cursor line after the cursor, without the line break (at most LINE_CHARS characters)."""

    indent: str
    """Leading whitespace of the cursor line."""

    multiline: bool
    """Offer several lines (blank line, block opener, empty body) rather than the rest of one line."""

    scope_kind: str | None
    """Tree-sitter type of the innermost enclosing function/class-like node, None at top level."""

    scope_indent: str
    """Leading whitespace of the line where that scope starts."""

    parsed_ok: bool
    """The parsed window (prefix+suffix, widened to top-level lines) has no syntax errors."""

    window_errors: int
    """ERROR and MISSING nodes in the parsed window."""

    in_comment: bool
    in_string: bool
    max_lines: int
    """Most lines of a multi-line suggestion (the server's setting, kept for reference)."""

    open_brackets: str = ""
    """Brackets open at the cursor within the parsed window, innermost last."""

    suffix_closes: int = 0
    """How many of the innermost ``open_brackets`` the text after the cursor closes."""

    suffix_closes_string: bool = False
    """The cursor is inside a string and the text after it closes that string."""

    lex_state: LexState = field(default_factory=LexState, compare=False)
    """Lexer state at the cursor (copied by every scan of a suggestion)."""

    block_indent: int = -1
    """Lines of a multi-line suggestion indented less than this end the block (indentation languages); -1: no rule."""

    indent_complete: bool = False
    """The cursor line is only indentation, already as deep as the code before it calls for: whitespace at the
    start of a suggestion would over-indent it (a token-boundary artefact of the model, stripped before
    post-processing)."""

    recent_lines: tuple[str, ...] = ()
    """The last non-blank lines before the cursor line, stripped, nearest first."""

    next_lines: tuple[str, ...] = ()
    """The first non-blank lines after the cursor line, stripped, nearest first."""

    recent_indents: tuple[int, ...] = ()
    """Indentation width of each of ``recent_lines``: a line repeated in another block is not a repeat."""

    next_indents: tuple[int, ...] = ()
    """Indentation width of each of ``next_lines``."""

    parse_prefix: str = field(default="", repr=False)
    """Text of the parsed window before the cursor."""

    parse_suffix: str = field(default="", repr=False)
    """Text of the parsed window after the cursor."""

    local_prefix: str = field(default="", repr=False)
    """Where the parse check judges a suggestion, the text before the cursor: the parsed window's, or where that
    has errors and the top-level construct around the cursor line has fewer (from the last top-level line at or
    before it), that construct's, so a broken line in another function (a dict still being typed above) does not
    veto it."""

    local_suffix: str = field(default="", repr=False)
    """Text after the cursor of that construct (up to the next top-level line after the cursor line)."""

    local_errors: int = 0
    """ERROR and MISSING nodes in ``local_prefix + local_suffix``: what the suggestion may leave (not add to)."""

    @property
    def spec(self) -> LanguageSpec | None:
        return languages.resolve(self.language)

    @cached_property
    def lexer(self) -> Lexer:
        return _lexer_for(self.spec)


_LEXERS: dict[str, Lexer] = {}


def _lexer_for(spec: LanguageSpec | None) -> Lexer:
    key = spec.name if spec else ""
    lexer = _LEXERS.get(key)
    if lexer is None:
        lexer = _LEXERS[key] = Lexer(spec)
    return lexer


def build_context(
    text: str,
    offset: int,
    language: str | None,
    *,
    count_tokens: Callable[[str], int],
    prefix_tokens: int,
    suffix_tokens: int,
    max_lines: int,
    path: str | None,
    window_end: int | None = None,
) -> CompletionContext:
    """Describe the cursor at ``offset`` (a character index into ``text``) for the prompt and the stop rules.

    ``window_end``: where the ``prefix_tokens`` window is counted back from (default: the cursor); the
    text from there to the cursor comes on top (the typed middle, see ``MiddleSplitter.point``).

    ``language`` is the LSP languageId (the file extension of ``path`` is used when it is unknown).
    ``count_tokens`` is the model's tokenizer; it is called a handful of times on window-sized strings.
    """
    offset = max(0, min(offset, len(text)))
    spec = languages.resolve(language, path)

    line_start = text.rfind("\n", 0, offset) + 1
    line_end = text.find("\n", offset)
    if line_end < 0:
        line_end = len(text)
    # A minified file can be one multi-megabyte line: keep only what the rules can use of it.
    line_before = text[max(line_start, offset - LINE_CHARS) : offset]
    line_after = text[offset : min(line_end, offset + LINE_CHARS)].rstrip("\r")
    indent_match = _INDENT.match(text, line_start, line_end)
    indent = indent_match.group() if indent_match else ""

    window_end = offset if window_end is None else max(0, min(window_end, offset))
    prefix_start = _prefix_start(text, window_end, prefix_tokens, count_tokens)
    suffix_end = _suffix_end(text, offset, suffix_tokens, count_tokens)

    lexer = _lexer_for(spec)
    # The parsed window reaches at least past the cursor line, even with a zero suffix budget.
    parse_from = suffix_end if suffix_end > offset else min(len(text), line_end + 1)
    parse_start, parse_end = (
        _parse_bounds(text, prefix_start, parse_from) if spec is not None else (prefix_start, parse_from)
    )
    stack, state = open_brackets(lexer, text, parse_start, offset)
    lookahead_end = min(len(text), max(parse_end, offset + BRACKET_LOOKAHEAD_CHARS))
    closes, closes_string = suffix_closure(lexer, text, offset, lookahead_end, stack, state)

    parse_prefix = text[parse_start:offset]
    parse_suffix = text[offset:parse_end]
    local_start, local_end = _local_bounds(text, parse_start, parse_end, line_start, line_end)
    stripped_before = line_before.rstrip()
    if not stripped_before:
        column = indent_width(line_before)
    elif stripped_before.endswith(":"):
        column = indent_width(indent) + 1
    else:
        column = indent_width(indent)
    tree_facts = _TreeFacts()
    if spec is not None:
        tree_facts = _analyse_tree(spec, parse_prefix, parse_suffix, line_before, column)

    # A window with errors is judged where the cursor is, if that parses better (a broken line elsewhere); a clean
    # one as a whole (a column-0 line need not start a construct: C++'s `public:`, a label).
    local_errors = tree_facts.errors
    if spec is not None and tree_facts.errors and (local_start, local_end) != (parse_start, parse_end):
        local_errors = languages.count_errors(languages.parse(spec, text[local_start:local_end]).root_node)
    if local_errors >= tree_facts.errors:
        local_start, local_end, local_errors = parse_start, parse_end, tree_facts.errors

    lexer_in_string = state.mode == STRING
    lexer_in_comment = state.mode in (LINE_COMMENT, BLOCK_COMMENT)
    if tree_facts.parsed_ok:
        in_string, in_comment = tree_facts.in_string, tree_facts.in_comment
    else:
        in_string = tree_facts.in_string or lexer_in_string
        in_comment = tree_facts.in_comment or lexer_in_comment

    multiline = _decide_multiline(spec, line_before, line_after, in_string or in_comment, tree_facts)
    indent_only = bool(line_before) and not line_before.strip() and not line_after.strip()
    next_code = next(_code_lines_after(text, line_end, parse_end), None)
    if multiline and indent_only and next_code is not None:
        # An indented blank line with code after it at the same depth or deeper: the gap is one statement
        # (or the header of the block that follows), not the place to write several lines.
        multiline = indent_width(next_code) < indent_width(line_before)
    indent_complete = indent_only and indent_width(line_before) >= _expected_indent(text, line_start, parse_start, spec)

    block_indent = column if multiline and spec is not None and spec.indent_blocks else -1
    recent = list(islice(_code_lines_before(text, line_start, parse_start), RECENT_LINES))
    following = list(islice(_code_lines_after(text, line_end, parse_end), NEXT_LINES))

    return CompletionContext(
        language=spec.name if spec else None,
        path=path,
        offset=offset,
        prefix=text[prefix_start:offset],
        suffix=text[offset:suffix_end],
        prefix_start=prefix_start,
        window_end=window_end,
        suffix_end=suffix_end,
        line_before=line_before,
        line_after=line_after,
        indent=indent,
        multiline=multiline,
        scope_kind=tree_facts.scope_kind,
        scope_indent=tree_facts.scope_indent,
        parsed_ok=tree_facts.parsed_ok,
        window_errors=tree_facts.errors,
        in_comment=in_comment,
        in_string=in_string,
        max_lines=max_lines,
        open_brackets="".join(stack),
        suffix_closes=closes,
        suffix_closes_string=closes_string,
        lex_state=state,
        block_indent=block_indent,
        recent_lines=tuple(line.strip() for line in recent),
        next_lines=tuple(line.strip() for line in following),
        recent_indents=tuple(indent_width(line) for line in recent),
        next_indents=tuple(indent_width(line) for line in following),
        indent_complete=indent_complete,
        parse_prefix=parse_prefix,
        parse_suffix=parse_suffix,
        local_prefix=text[local_start:offset],
        local_suffix=text[offset:local_end],
        local_errors=local_errors,
    )


# --------------------------------------------------------------------------------------------------
# Windows sized in tokens


def _largest_fitting(
    candidates: Sequence[int], tokens_of: Callable[[int], int], size_of: Callable[[int], int], budget: int
) -> tuple[int, int]:
    """Index of the largest candidate window within ``budget`` tokens and its token count, or (-1, 0).

    Window sizes (and token counts) grow with the index. The first probes are placed by a
    characters-per-token estimate refined from each count (secant steps), then bisection.
    """
    good, bad = -1, len(candidates)
    good_tokens = 0
    ratio = EST_CHARS_PER_TOKEN
    probes = 0
    while bad - good > 1:
        if probes < 6:
            # Place the probe where the last measured ratio says the budget runs out.
            index = bisect.bisect_right(candidates, budget * ratio, key=size_of) - 1
            index = min(max(index, good + 1), bad - 1)
        else:
            index = (good + bad) // 2
        probes += 1
        position = candidates[index]
        tokens = tokens_of(position)
        if tokens <= budget:
            good, good_tokens = index, tokens
        else:
            bad = index
        if tokens > 0:
            ratio = size_of(position) / tokens
    return good, good_tokens


def _prefix_start(text: str, offset: int, budget: int, count_tokens: Callable[[str], int]) -> int:
    """Start of the longest prefix window within ``budget`` tokens, on a line start where possible."""
    if budget <= 0 or offset == 0:
        return offset
    floor = max(0, offset - budget * MAX_CHARS_PER_TOKEN)
    starts: list[int] = []
    position = offset
    while True:
        newline = text.rfind("\n", floor, position)
        if newline < 0:
            break
        if newline + 1 < offset:
            starts.append(newline + 1)
        position = newline
    if floor == 0 and (not starts or starts[-1] != 0):
        starts.append(0)

    def tokens_of(start: int) -> int:
        return count_tokens(text[start:offset])

    def size_of(start: int) -> int:
        return offset - start

    best, used = _largest_fitting(starts, tokens_of, size_of, budget)
    if best >= 0:
        start = starts[best]
        more_text = best + 1 < len(starts) or start > floor
        if not more_text or used * 2 >= budget:
            return _anchor(text, start, offset)
        lower = starts[best + 1] if best + 1 < len(starts) else floor
        upper = start - 1
    else:
        lower = starts[0] if starts else floor
        upper = offset - 1
    # One line longer than half the budget (minified code): cut inside it.
    positions = range(upper, lower - 1, -1)
    inner, _ = _largest_fitting(positions, tokens_of, size_of, budget)
    if inner >= 0:
        return positions[inner]
    return starts[best] if best >= 0 else offset


def _anchor(text: str, start: int, offset: int) -> int:
    """Move a window start forward to a coarse grid so it stays put while the user types.

    The engine re-uses the KV cache of the longest common prompt prefix; a window start that
    moved by one line on every keystroke would make it re-evaluate the whole prompt. The start
    only moves when the minimal start crosses a multiple of ``window/8`` characters (rounded to
    a power of two), at the cost of at most that much context.
    """
    size = offset - start
    grain = 64
    while grain * 2 <= size // 8:
        grain *= 2
    aligned = -(-start // grain) * grain
    if aligned <= start:
        return start
    newline = text.find("\n", aligned - 1, offset)
    if newline < 0:
        return start
    cursor_line = text.rfind("\n", 0, offset) + 1
    return newline + 1 if newline + 1 <= cursor_line else start


def _suffix_end(text: str, offset: int, budget: int, count_tokens: Callable[[str], int]) -> int:
    """End of the longest suffix window within ``budget`` tokens, after a newline where possible."""
    if budget <= 0 or offset >= len(text):
        return offset
    ceiling = min(len(text), offset + budget * MAX_CHARS_PER_TOKEN)
    ends: list[int] = []
    position = offset
    while True:
        newline = text.find("\n", position, ceiling)
        if newline < 0:
            break
        ends.append(newline + 1)
        position = newline + 1
    if ceiling == len(text) and (not ends or ends[-1] != len(text)):
        ends.append(len(text))

    def tokens_of(end: int) -> int:
        return count_tokens(text[offset:end])

    def size_of(end: int) -> int:
        return end - offset

    best, used = _largest_fitting(ends, tokens_of, size_of, budget)
    if best >= 0:
        end = ends[best]
        more_text = best + 1 < len(ends) or end < ceiling
        if not more_text or used * 2 >= budget:
            return end
        lower = end + 1
        upper = ends[best + 1] if best + 1 < len(ends) else ceiling
    else:
        lower = offset + 1
        upper = ends[0] if ends else ceiling
    positions = range(lower, upper + 1)
    inner, _ = _largest_fitting(positions, tokens_of, size_of, budget)
    if inner >= 0:
        return positions[inner]
    return ends[best] if best >= 0 else offset


def _is_top_level_line(text: str, start: int) -> bool:
    return start < len(text) and text[start] not in " \t\r\n)]}"


def _local_bounds(text: str, parse_start: int, parse_end: int, line_start: int, line_end: int) -> tuple[int, int]:
    """The top-level construct around the cursor line, within the parsed window: from the last top-level line at
    or before the cursor line to the first one after it (the window's ends where there is none)."""
    start = max(line_start, parse_start)
    while start > parse_start and not _is_top_level_line(text, start):
        start = max(parse_start, text.rfind("\n", parse_start, start - 1) + 1)
    end = min(line_end + 1, parse_end)
    while end < parse_end and not _is_top_level_line(text, end):
        newline = text.find("\n", end, parse_end)
        end = parse_end if newline < 0 else newline + 1
    return start, min(end, parse_end)


def _parse_bounds(text: str, prefix_start: int, suffix_end: int) -> tuple[int, int]:
    """Widen the prompt windows to the nearest top-level lines (within PARSE_SLACK_CHARS) for parsing.

    A window cut in the middle of a function leaves stray or missing braces that tree-sitter
    reports as errors; starting and ending on column-0 lines makes "parses cleanly" meaningful. A window
    that starts or ends inside a line is first widened to that whole line (half a line never parses).
    """
    start = prefix_start
    floor = max(0, prefix_start - PARSE_SLACK_CHARS)
    if prefix_start > 0 and text[prefix_start - 1] != "\n":
        # A window that starts inside a line (one line over budget): parse from its start, never half a line.
        newline = text.rfind("\n", floor, prefix_start)
        if newline >= 0 or floor == 0:
            start = prefix_start = newline + 1
    if prefix_start > 0 and text[prefix_start - 1] == "\n":
        candidate = prefix_start
        while True:
            if candidate == 0 or _is_top_level_line(text, candidate):
                start = candidate
                break
            if candidate <= floor:
                break
            newline = text.rfind("\n", floor, candidate - 1)
            if newline < 0 and floor > 0:
                break
            candidate = newline + 1
    end = suffix_end
    ceiling = min(len(text), suffix_end + PARSE_SLACK_CHARS)
    if 0 < suffix_end < len(text) and text[suffix_end - 1] != "\n":
        # A window that ends inside a line (a small suffix budget): parse to its end.
        newline = text.find("\n", suffix_end, ceiling)
        if newline >= 0 or ceiling == len(text):
            end = suffix_end = newline + 1 if newline >= 0 else len(text)
    if 0 < suffix_end < len(text) and text[suffix_end - 1] == "\n":
        candidate = suffix_end
        while True:
            if candidate >= len(text) or _is_top_level_line(text, candidate):
                end = min(candidate, len(text))
                break
            newline = text.find("\n", candidate, ceiling)
            if newline < 0:
                if ceiling == len(text):
                    end = len(text)
                break
            candidate = newline + 1
    return start, end


def _expected_indent(text: str, line_start: int, floor: int, spec: LanguageSpec | None) -> int:
    """Least indentation the cursor line needs: the previous code line's, deeper after a block opener."""
    line = next(_code_lines_before(text, line_start, floor), None)
    if line is None:
        return 0
    stripped = line.rstrip()
    opens = spec is not None and any(stripped.endswith(opener) for opener in spec.block_openers)
    return indent_width(line) + (1 if opens else 0)


def _code_lines_before(text: str, line_start: int, floor: int) -> Iterator[str]:
    """Non-blank lines before the cursor line as written, nearest first; none cut off by ``floor``."""
    end = line_start - 1  # the newline ending the previous line
    while end >= floor:
        start = text.rfind("\n", floor, end) + 1
        if start == 0 and floor > 0:
            break
        line = text[start:end]
        if line.strip():
            yield line
        end = start - 1


def _code_lines_after(text: str, line_end: int, ceiling: int) -> Iterator[str]:
    """Non-blank lines after the cursor line as written, nearest first, up to ``ceiling``."""
    start = line_end + 1
    while start < ceiling:
        end = text.find("\n", start, ceiling)
        if end < 0:
            end = ceiling
        line = text[start:end]
        if line.strip():
            yield line
        start = end + 1


# --------------------------------------------------------------------------------------------------
# Syntax tree facts


@dataclass
class _TreeFacts:
    parsed_ok: bool = False
    errors: int = 0
    in_string: bool = False
    in_comment: bool = False
    scope_kind: str | None = None
    scope_indent: str = ""
    block_header: bool | None = None
    """The cursor line ends with ``:`` that opens a block (Python); None when unknown."""


def _analyse_tree(
    spec: LanguageSpec, parse_prefix: str, parse_suffix: str, line_before: str, column: int
) -> _TreeFacts:
    """Parse the window once and read what the cursor is in; ``column`` is the cursor's block indentation."""
    source = (parse_prefix + parse_suffix).encode("utf-8", "surrogatepass")
    tree = languages.parser(spec).parse(source)
    root = tree.root_node
    facts = _TreeFacts(parsed_ok=not root.has_error, errors=languages.count_errors(root))
    cursor = len(parse_prefix.encode("utf-8", "surrogatepass"))

    if cursor > 0:
        node = root.descendant_for_byte_range(cursor - 1, cursor)
        while node is not None:
            kind = node.type
            if "comment" in kind and node.start_byte < cursor:
                closed_block = source[node.start_byte : node.end_byte].endswith(b"*/")
                if cursor < node.end_byte or (cursor == node.end_byte and not closed_block):
                    facts.in_comment = True
                    break
            if ("string" in kind or kind in _STRING_NODE_TYPES) and node.start_byte < cursor < node.end_byte:
                facts.in_string = True
                break
            node = node.parent

    if spec.indent_blocks:
        # Python blocks end at their last statement, so a cursor on a blank line after it lies
        # outside every node: start from the last code before the cursor and accept a scope
        # only if its header is indented less than the cursor's block.
        anchor = len(parse_prefix.rstrip().encode("utf-8", "surrogatepass"))
        node = root.descendant_for_byte_range(max(anchor - 1, 0), anchor) if anchor else None
    else:
        node = root.descendant_for_byte_range(cursor, cursor)
    while node is not None:
        if node.type in _SCOPE_TYPES:
            line_start = source.rfind(b"\n", 0, node.start_byte) + 1
            line = source[line_start : node.start_byte].decode("utf-8", "replace")
            if not spec.indent_blocks or indent_width(line) < column:
                facts.scope_kind = node.type
                facts.scope_indent = leading_whitespace(line)
                break
        node = node.parent

    stripped = line_before.rstrip()
    if spec.indent_blocks and stripped.endswith(":"):
        colon = cursor - len(line_before[len(stripped) :].encode("utf-8", "surrogatepass")) - 1
        facts.block_header = _python_colon_opens_block(root, colon, stripped)
    return facts


def _python_colon_opens_block(root, colon: int, line: str) -> bool:
    node = root.descendant_for_byte_range(colon, colon + 1)
    if node is not None and node.type == ":" and node.parent is not None:
        parent = node.parent
        if parent.type in _PY_BLOCK_HEADERS:
            return True
        if parent.type != "ERROR":
            return False  # a dict, a slice, a lambda, an annotation
    return bool(_PY_HEADER_LINE.match(line))


def _decide_multiline(
    spec: LanguageSpec | None, line_before: str, line_after: str, in_text: bool, facts: _TreeFacts
) -> bool:
    """Several lines on a blank line, after a block opener or inside an empty ``{}``; one line otherwise."""
    if in_text:
        return False  # inside a comment or a string: finish that line
    before = line_before.rstrip()
    after = line_after.strip()
    if after:
        # `{|}`: the cursor between a brace and its auto-inserted closer opens an empty body
        return spec is not None and not spec.indent_blocks and before.endswith("{") and after.startswith("}")
    if not before.strip():
        return True
    if spec is None:
        return False
    for opener in spec.block_openers:
        if before.endswith(opener):
            if opener == ":":
                return (
                    bool(facts.block_header)
                    if facts.block_header is not None
                    else bool(_PY_HEADER_LINE.match(before))
                )
            return True
    return False
