"""The rules that judge a whole suggestion: ``postprocess``'s rules 6-9 and the unfinished last line.

Each takes the text so far and the cursor's facts and returns what is left of it; ``postprocess`` runs them in
order and names each one that changed something.
"""

from __future__ import annotations

from lsp_server.completion.context import CompletionContext
from lsp_server.syntax import grammar
from lsp_server.syntax.lexer import (
    CLOSERS,
    CODE,
    MATCHING,
    OPENERS,
    STRING,
    LexState,
    indent_width,
)


def significant(line: str) -> bool:
    """A line that says something: at least three characters, one of them a letter or digit."""
    return len(line) >= 3 and any(char.isalnum() for char in line)


def before_unfinished_comment(text: str, ctx: CompletionContext) -> str | None:
    """``text`` without the line comment its unfinished last line ends in, when code comes before the comment
    (``result = []  # List to store the gr`` gives ``result = []``); None when the line has no such comment.

    Only code outside strings counts: ``"#"`` in a string is not a comment.  A bracket the code leaves open is
    left to the bracket rule, which runs next.
    """
    if ctx.in_string or ctx.in_comment or ctx.spec is None:
        return None
    lexer, marker = ctx.lexer, ctx.spec.comment_prefix
    line_start = text.rfind("\n") + 1
    state = LexState()
    for _ in lexer.scan(text, state, 0, line_start):
        pass
    if state.mode != CODE:
        return None
    at = text.find(marker, line_start)
    while at >= 0:
        probe = state.copy()
        for _ in lexer.scan(text, probe, line_start, at):
            pass
        if probe.mode == CODE:
            code = text[line_start:at].rstrip()
            return text[:line_start] + code if code.strip() else None
        at = text.find(marker, at + 1)
    return None


def strip_trailing_whitespace(text: str) -> str:
    if "\n" not in text:
        return text.rstrip()
    return "\n".join(line.rstrip() for line in text.split("\n")).rstrip()


def strip_line_after_overlap(text: str, ctx: CompletionContext) -> str:
    """Do not repeat the rest of the cursor line: cut where it starts, or strip the start of it off the end.

    ``compute(█, flag=True)`` with ``data, flag=True`` gives ``data``; ``if x█:`` with `` > 0:`` gives
    `` > 0``. A piece holding a closer is left to the bracket rule (which knows whether the suggestion
    opened that bracket itself), and a short word is not taken for an overlap.
    """
    after = ctx.line_after.strip()
    if not after or not text or "\n" in text:
        return text
    if significant(after):
        found = text.find(after)
        if found >= 0:
            return text[:found].rstrip()
    for size in range(min(len(after), len(text)), 0, -1):
        piece = after[:size]
        if not text.endswith(piece) or any(char in CLOSERS for char in piece):
            continue
        if significant(piece) or not any(char.isalnum() for char in piece):
            return text[: -len(piece)].rstrip()
    return text


def cut_unbalanced(text: str, ctx: CompletionContext) -> str:
    """Cut brackets the suggestion opens and leaves open where they would do harm.

    Multi-line: back to the last line before the first unclosed opener (a block cut short by
    ``max_lines`` or the time budget is dropped); if that opener is on the first line, nothing is
    left. Single-line: back to before the first unclosed opener when the text after the cursor
    closes brackets (it would close the suggestion's instead); a line that ends by opening a
    bracket with nothing after the cursor (``if (x) {``, ``items = [``) is kept.
    """
    state = ctx.lex_state.copy()
    state.carried = state.mode == STRING
    own: list[tuple[str, int]] = []
    balanced_line_end = -1  # the last newline at which everything the suggestion opened was closed
    start = 0
    while start <= len(text):
        newline = text.find("\n", start)
        end = len(text) if newline < 0 else newline
        for position, char in ctx.lexer.scan(text, state, start, end if newline < 0 else newline + 1):
            if char in OPENERS:
                own.append((char, position))
            elif char in CLOSERS and own and own[-1][0] == MATCHING[char]:
                own.pop()
        if newline < 0:
            break
        if not own:
            balanced_line_end = newline
        start = newline + 1
    if not own:
        return text
    if ctx.multiline:
        if balanced_line_end <= 0 or not text[:balanced_line_end].strip():
            return ""
        return text[:balanced_line_end]
    if ctx.suffix_closes > 0:
        return text[: own[0][1]]
    return text


REPEAT_MIN_CHARS = 6
"""Shorter lines (``pass``, ``i++;``, ``break``) legitimately recur and never count as repeats."""


def repeats_recent_lines(text: str, ctx: CompletionContext) -> bool:
    """The model copied what is just above the cursor: every meaningful line is one of the last lines.

    A line counts as copied only from a recent line in the same block, as deep as it goes: ``return False`` in
    a second ``if`` after the first ``if``'s ``return False`` is a new statement (a line less deep lies between).
    """
    if not ctx.recent_lines:
        return False
    lines = text.split("\n")
    if lines[0].strip():
        lines[0] = ctx.line_before + lines[0]
    meaningful = [(line.strip(), indent_width(line)) for line in lines if significant(line.strip())]
    return (
        bool(meaningful)
        and any(len(line) >= REPEAT_MIN_CHARS for line, _ in meaningful)
        and all(_copied(line, width, ctx) for line, width in meaningful)
    )


def _copied(line: str, width: int, ctx: CompletionContext) -> bool:
    """``line``, ``width`` deep, is one of the recent lines in its block."""
    indents = ctx.recent_indents
    for k, recent in enumerate(ctx.recent_lines):
        if len(indents) <= k:
            return line in ctx.recent_lines[k:]  # no indentation known: by text alone
        if indents[k] < width:
            return False  # a line less deep: the block the line goes in starts below it
        if recent == line and indents[k] == width:
            return True
    return False


def parse_check(text: str, ctx: CompletionContext) -> str | None:
    """Keep the longest line prefix of the suggestion that does not make its place parse worse.

    Its place is the top-level construct around the cursor (``ctx.local_prefix``/``local_suffix``): errors in
    other functions are not the suggestion's. Where that construct parsed cleanly, it must still; otherwise (a
    line still being typed, a broken line elsewhere in the function) the suggestion may not add error nodes.
    Each check parses the construct (a few milliseconds at most).
    """
    spec = ctx.spec
    if spec is None:
        return text
    allowed = ctx.local_errors

    def acceptable(candidate: str) -> bool:
        tree = grammar.parse(spec, ctx.local_prefix + candidate + ctx.local_suffix)
        return grammar.count_errors(tree.root_node, limit=allowed + 1) <= allowed

    if acceptable(text):
        return text
    lines = text.split("\n")
    tried = {text}
    for keep in range(len(lines) - 1, 0, -1):
        # A shorter suggestion must still close what it opens.
        candidate = strip_trailing_whitespace(cut_unbalanced("\n".join(lines[:keep]), ctx))
        if not candidate.strip():
            continue
        if candidate not in tried and acceptable(candidate):
            return candidate
        tried.add(candidate)
    return None
