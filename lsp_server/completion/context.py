"""What the model is shown and what the stop rules need to know, for one cursor position.

:func:`build_context` turns a document and a cursor offset into a
:class:`CompletionContext`: the prefix and suffix windows (sized by
``completion.window``), the cursor line split at the cursor, whether a
multi-line suggestion makes sense there, the enclosing scope, and the lexical
state the post-processing rules start from (open brackets, whether the cursor
is inside a string, how many of the open brackets the suffix closes).

Everything is bounded by the windows, never by the document: tree-sitter parses
the windows widened to the nearest top-level lines (``syntax.facts``), and the
bracket look-ahead reads at most ``BRACKET_LOOKAHEAD_CHARS`` past the cursor.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from functools import cached_property
from itertools import islice

from lsp_server.completion import window
from lsp_server.syntax import grammar, languages
from lsp_server.syntax.facts import (
    TreeFacts,
    analyse_tree,
    header_line_opens_block,
    local_bounds,
    parse_bounds,
)
from lsp_server.syntax.lexer import (
    BLOCK_COMMENT,
    LINE_COMMENT,
    STRING,
    Lexer,
    LexState,
    indent_width,
    lexer_for,
    open_brackets,
    suffix_closure,
)
from lsp_server.syntax.spec import LanguageSpec

BRACKET_LOOKAHEAD_CHARS = 32_768
"""How far past the cursor the suffix is scanned to learn which open brackets it closes."""

RECENT_LINES = 3
"""Non-blank lines before the cursor line kept for the repeat filter."""

NEXT_LINES = 2
"""Non-blank lines after the cursor line kept for the suffix-duplicate rule."""

LINE_CHARS = 4096
"""``line_before`` / ``line_after`` keep at most this many characters each side of the cursor."""

_INDENT = re.compile(r"[ \t]*")


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
        return lexer_for(self.spec)


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
    prefix_start = window.prefix_start(text, window_end, prefix_tokens, count_tokens)
    suffix_end = window.suffix_end(text, offset, suffix_tokens, count_tokens)

    lexer = lexer_for(spec)
    # The parsed window reaches at least past the cursor line, even with a zero suffix budget.
    parse_from = suffix_end if suffix_end > offset else min(len(text), line_end + 1)
    parse_start, parse_end = (
        parse_bounds(text, prefix_start, parse_from, offset) if spec is not None else (prefix_start, parse_from)
    )
    stack, state = open_brackets(lexer, text, parse_start, offset)
    lookahead_end = min(len(text), max(parse_end, offset + BRACKET_LOOKAHEAD_CHARS))
    closes, closes_string = suffix_closure(lexer, text, offset, lookahead_end, stack, state)

    parse_prefix = text[parse_start:offset]
    parse_suffix = text[offset:parse_end]
    local_start, local_end = local_bounds(text, parse_start, parse_end, line_start, line_end)
    stripped_before = line_before.rstrip()
    if not stripped_before:
        column = indent_width(line_before)
    elif stripped_before.endswith(":"):
        column = indent_width(indent) + 1
    else:
        column = indent_width(indent)
    tree_facts = TreeFacts()
    if spec is not None:
        tree_facts = analyse_tree(spec, parse_prefix, parse_suffix, line_before, column)

    # A window with errors is judged where the cursor is, if that parses better (a broken line elsewhere); a clean
    # one as a whole (a column-0 line need not start a construct: C++'s `public:`, a label).
    local_errors = tree_facts.errors
    if spec is not None and tree_facts.errors and (local_start, local_end) != (parse_start, parse_end):
        local_errors = grammar.count_errors(grammar.parse(spec, text[local_start:local_end]).root_node)
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


def _decide_multiline(
    spec: LanguageSpec | None, line_before: str, line_after: str, in_text: bool, facts: TreeFacts
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
                    else header_line_opens_block(spec, before)
                )
            return True
    return False
