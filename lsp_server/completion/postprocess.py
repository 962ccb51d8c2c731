"""Turn raw model output into a suggestion worth showing, and stop generation as soon as the rest would be cut.

The same line rules run in two places:

* :func:`make_stop_checker` gives the pipeline a stop rule for each partial output. It keeps
  the lexer state at the start of the current line, so each call only re-reads the line being
  written (tens of characters), and returns a cut index as soon as a rule fires.
* :func:`postprocess` applies them to the final text, then the rules that need the whole
  suggestion: overlap with the rest of the cursor line, unbalanced openers, repeats of the
  previous lines, and the tree-sitter parse check.

Line rules, in order, for line *i* of the suggestion (line 0 is the rest of the cursor line):

1. Single-line mode keeps line 0 only; multi-line mode keeps at most ``max_lines`` lines
   (a blank line 0, the newline after a block opener, is not counted).
2. Scope end by indentation (Python): outside brackets and strings, a line indented less
   than the cursor's block (``ctx.block_indent``) ends the suggestion before it.
3. Scope end by brackets (all languages): a closer that closes a bracket opened before the
   cursor is cut when the text after the cursor already closes that bracket (the suffix
   provides it: never emit it twice); otherwise it is kept and, in multi-line mode, the
   suggestion ends with that line (the enclosing block is finished). A mismatched closer is
   cut. A quote closing a string the cursor is in is cut when the suffix closes it.
4. Suffix duplicate: a line equal to the next non-blank line after the cursor line ends the
   suggestion before it (for a trivial line such as ``}``, the next two lines must match); in
   Python it must also be as deep (``return False`` before a dedented ``return False`` is new).
5. Degenerate repetition: a line equal to the line before it ends the suggestion.

Whole-suggestion rules (:func:`postprocess` only; they live in ``cleanup.py``), after trailing whitespace is stripped (and,
for a generation cut short by the time budget or the token limit, its unfinished last line: any
prefix of a line may mean something else than the line):

6. Rest of the cursor line: the suggestion is cut where it starts repeating the text after the
   cursor, or that text's beginning is stripped off its end.
7. Unbalanced openers: cut back so a multi-line suggestion closes what it opens, and a one-line
   suggestion opens nothing a closer after the cursor would bind to.
8. Repeats: dropped when every meaningful line is one of the three lines above the cursor, in
   its own block and as deep (a line less deep between them starts another block).
9. Parse check, in the suggestion's place: the parsed window, or where that has errors and the
   top-level construct around the cursor has fewer, that construct. If it had no errors,
   prefix+suggestion+suffix must have none; otherwise it may not have more error nodes. Failing
   suggestions are cut back line by line to the longest passing prefix, or dropped.

Each rule has a name (``trace`` of :func:`postprocess`, :attr:`StopChecker.rule`), which the
service reports as the reason a suggestion is hidden and ``benchmarks/quality.py`` counts.

Limitations: the lexer does not know regex literals, raw strings with custom delimiters or
template interpolation; the indentation rule is Python's only (brace languages end scopes by
brackets); error *counts* cannot see garbage that tree-sitter folds into an existing ERROR node.
"""

from __future__ import annotations

from lsp_server.completion.cleanup import (
    before_unfinished_comment,
    cut_unbalanced,
    parse_check,
    repeats_recent_lines,
    significant,
    strip_line_after_overlap,
    strip_trailing_whitespace,
)
from lsp_server.completion.context import CompletionContext
from lsp_server.syntax.lexer import (
    CLOSERS,
    CODE,
    MATCHING,
    OPENERS,
    STRING,
    STRING_CLOSED,
    indent_width,
)


class _Walker:
    """Applies the line rules to a growing suggestion; shared by the stop checker and postprocess."""

    def __init__(self, ctx: CompletionContext, max_lines: int) -> None:
        self.ctx = ctx
        self.lexer = ctx.lexer
        self.max_lines = max(1, max_lines)
        self.prefix_brackets = ctx.open_brackets
        spec = ctx.spec
        self.char_literals = spec is not None and spec.char_literal is not None
        self.by_indent = spec is not None and spec.indent_blocks
        self.reset()

    def reset(self) -> None:
        self.line_index = 0
        self.line_start = 0
        self.state = self.ctx.lex_state.copy()
        self.state.carried = self.state.mode == STRING
        self.own: list[str] = []
        """Brackets the suggestion opened and has not closed yet."""
        self.closed = 0
        """Brackets open before the cursor that the suggestion closed."""
        self.first_line_blank = False
        self.previous_line: str | None = None
        self.pending: tuple[int, int] | None = None
        """(line index, cut) of a trivial line equal to the suffix's next line, confirmed by the following line."""
        self.done: int | None = None
        self.rule: str | None = None
        """Name of the rule that made the cut (see RULES)."""

    def feed(self, text: str, final: bool) -> int | None:
        """Cut index for ``text`` (the whole suggestion so far), or None to keep all of it."""
        if self.line_start > len(text) or (self.line_start and text[self.line_start - 1] != "\n"):
            self.reset()  # not a continuation of what was seen: start over
        if self.done is not None:
            return self.done if self.done <= len(text) else None
        while True:
            newline = text.find("\n", self.line_start)
            if newline < 0:
                break
            cut = self._line(text, self.line_start, newline, complete=True, commit=True)
            if cut is None:
                if not self.ctx.multiline:
                    cut, self.rule = newline, "single_line"
                else:
                    lines_so_far = self.line_index + 2 - (1 if self.first_line_blank else 0)
                    if lines_so_far > self.max_lines:
                        cut, self.rule = newline, "max_lines"  # the line starting here would be one too many
            if cut is not None:
                self.done = cut
                return cut
            self.line_start = newline + 1
            self.line_index += 1
        cut = self._line(text, self.line_start, len(text), complete=final, commit=final)
        if cut is not None:
            self.done = cut
        return cut

    def _line(self, text: str, start: int, end: int, *, complete: bool, commit: bool) -> int | None:
        ctx = self.ctx
        index = self.line_index
        state = self.state if commit else self.state.copy()
        own = self.own if commit else list(self.own)
        closed = self.closed
        whole_line = start - 1 if index > 0 else 0  # cut that removes this line and the newline before it
        line = text[start:end]
        stripped = line.strip()

        inside_brackets = bool(own) or closed < len(self.prefix_brackets)
        if (
            ctx.multiline
            and ctx.block_indent >= 0
            and index > 0
            and stripped
            and state.mode == CODE
            and not inside_brackets
            and indent_width(line) < ctx.block_indent
        ):
            return self._ruled("indent_scope", whole_line)

        stop_after_line = False
        # The newline goes through the lexer too: it ends line comments and one-line strings.
        scan_end = end + 1 if end < len(text) else end
        for position, char in self.lexer.scan(text, state, start, scan_end):
            if char in OPENERS:
                own.append(char)
                continue
            if not complete and self.char_literals and position >= end - 2:
                # `'}` may yet become the char literal `'}'`: wait for the next token.
                if "'" in text[max(start, position - 2) : position]:
                    return None
            if char not in CLOSERS:
                if char == STRING_CLOSED and ctx.suffix_closes_string:
                    return self._ruled("string_scope", self._cut_at(text, start, position, whole_line))
                continue
            if own:
                if own[-1] == MATCHING[char]:
                    own.pop()
                    continue
                return self._ruled("bracket_mismatch", self._cut_at(text, start, position, whole_line))
            if closed >= len(self.prefix_brackets) or self.prefix_brackets[-1 - closed] != MATCHING[char]:
                return self._ruled("bracket_mismatch", self._cut_at(text, start, position, whole_line))
            if closed < ctx.suffix_closes:
                return self._ruled("bracket_scope", self._cut_at(text, start, position, whole_line))
            closed += 1
            if ctx.multiline:
                stop_after_line = True

        if not complete:
            return None

        full = (ctx.line_before + line).strip() if index == 0 else stripped
        width = indent_width(ctx.line_before + line) if index == 0 else indent_width(line)
        pending, self.pending = self.pending, None
        if pending is not None and pending[0] == index - 1:
            if len(ctx.next_lines) > 1 and full == ctx.next_lines[1] and significant(full) and self._at(1, width):
                return self._ruled("suffix_duplicate", pending[1])
        if ctx.next_lines and full == ctx.next_lines[0] and self._at(0, width):
            if significant(full):
                return self._ruled("suffix_duplicate", whole_line)
            if commit:
                self.pending = (index, whole_line)
        if index > 0 and significant(stripped) and stripped == self.previous_line:
            return self._ruled("repetition", whole_line)
        if stop_after_line:
            return self._ruled("block_closed", end)
        if commit:
            self.closed = closed
            if index == 0:
                self.first_line_blank = not stripped
            if stripped:
                self.previous_line = stripped
        return None

    def _at(self, k: int, width: int) -> bool:
        """Whether a line ``width`` deep sits where the suffix's ``k``-th next line does (Python: the same text in
        another block, ``return False`` before a dedented ``return False``, is not a duplicate)."""
        return not self.by_indent or len(self.ctx.next_indents) <= k or self.ctx.next_indents[k] == width

    def _ruled(self, rule: str, cut: int) -> int:
        self.rule = rule
        return cut

    @staticmethod
    def _cut_at(text: str, line_start: int, position: int, whole_line: int) -> int:
        # A closer that starts its line takes the whole line (and its indentation) with it.
        return whole_line if not text[line_start:position].strip() and line_start > 0 else position


class StopChecker:
    """A stop rule for a streamed generation: the cut index once the line rules end the suggestion.

    Call it with the whole text generated so far after each partial output. It is incremental: each call
    re-reads only the current line. It never cuts anything :func:`postprocess` would keep.
    ``rule`` names the rule that stopped generation (None while none has).
    """

    def __init__(self, ctx: CompletionContext, max_lines: int) -> None:
        self._walker = _Walker(ctx, max_lines)

    def __call__(self, text: str) -> int | None:
        return self._walker.feed(text, final=False)

    @property
    def rule(self) -> str | None:
        return self._walker.rule if self._walker.done is not None else None


def make_stop_checker(ctx: CompletionContext, max_lines: int) -> StopChecker:
    """The streaming stop checker for ``ctx`` (see :class:`StopChecker`)."""
    return StopChecker(ctx, max_lines)


def postprocess(
    raw: str, ctx: CompletionContext, *, max_lines: int, truncated: bool = False, trace: list[str] | None = None
) -> str | None:
    """The part of ``raw`` worth showing at the cursor, or None when nothing is.

    ``truncated``: generation stopped on the token limit or the time budget, so the last line is unfinished
    and is dropped (unless a rule ended the suggestion before it): ``return x`` of ``return x + 1`` parses but
    says something else, and a one-line suggestion cut short shows nothing.
    ``trace``: when given, the name of each rule that changed the text is appended to it, in order.
    """
    if not raw:
        return None
    notes: list[str] = [] if trace is None else trace

    def step(rule: str, before: str, after: str | None) -> str | None:
        if after != before and (after is None or after.strip() != before.strip()):
            notes.append(rule)
        return after

    text = raw.replace("\r\n", "\n")
    walker = _Walker(ctx, max_lines)
    cut = walker.feed(text, final=True)
    if cut is not None:
        text = step(walker.rule or "line_rules", text, text[:cut])
    elif truncated:
        # Stopped in the middle of a line: any prefix of it may mean something else than the line would have,
        # unless the model had moved on to a trailing comment: then the code before it was finished.
        code = before_unfinished_comment(text, ctx)
        if code is not None:
            text = step("unfinished_comment", text, code)
        else:
            text = step("unfinished_line", text, text[: max(0, text.rfind("\n"))])
    text = strip_trailing_whitespace(text)
    text = step("line_overlap", text, strip_line_after_overlap(text, ctx))
    text = step("unbalanced", text, strip_trailing_whitespace(cut_unbalanced(text, ctx)))
    if not text.strip():
        return None
    if repeats_recent_lines(text, ctx):
        notes.append("repeats_recent")
        return None
    return step("parse_check", text, parse_check(text, ctx))
