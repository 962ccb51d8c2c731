"""What the syntax tree says around a cursor: where to parse, errors, the enclosing scope, comment or string.

The parsed window is the prompt's (reaching back ``PARSE_REACH_CHARS`` at least), widened to the nearest
top-level lines (at most ``PARSE_SLACK_CHARS`` each side), so a keystroke in a 5 MB file parses as much as one in
a 5 KB file.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from lsp_server.syntax import grammar
from lsp_server.syntax.lexer import indent_width, leading_whitespace
from lsp_server.syntax.spec import LanguageSpec

PARSE_SLACK_CHARS = 6000
"""How far the parsed window may be widened past the prompt windows to start and end on top-level lines."""

PARSE_REACH_CHARS = 6000
"""The parsed window starts this far before the cursor at least (then widened as above), whatever the prompt
window: a small one (a slow CPU's cold start) deep in a long class would start it inside a nested block."""


def _is_top_level_line(text: str, start: int) -> bool:
    return start < len(text) and text[start] not in " \t\r\n)]}"


def local_bounds(text: str, parse_start: int, parse_end: int, line_start: int, line_end: int) -> tuple[int, int]:
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


def parse_bounds(text: str, prefix_start: int, suffix_end: int, cursor: int) -> tuple[int, int]:
    """Widen the prompt windows to the nearest top-level lines (within PARSE_SLACK_CHARS) for parsing, from
    ``PARSE_REACH_CHARS`` before ``cursor`` at least.

    A window cut in the middle of a function leaves stray or missing braces that tree-sitter
    reports as errors; starting and ending on column-0 lines makes "parses cleanly" meaningful. A window
    that starts or ends inside a line is first widened to that whole line (half a line never parses).
    """
    prefix_start = min(prefix_start, max(0, cursor - PARSE_REACH_CHARS))
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


@dataclass
class TreeFacts:
    """What the parsed window says about the cursor (all False/None for plain text)."""

    parsed_ok: bool = False
    errors: int = 0
    in_string: bool = False
    in_comment: bool = False
    scope_kind: str | None = None
    scope_indent: str = ""
    block_header: bool | None = None
    """The cursor line ends with ``:`` that opens a block (Python); None when unknown."""


def analyse_tree(
    spec: LanguageSpec, parse_prefix: str, parse_suffix: str, line_before: str, column: int
) -> TreeFacts:
    """Parse the window once and read what the cursor is in; ``column`` is the cursor's block indentation."""
    source = (parse_prefix + parse_suffix).encode("utf-8", "surrogatepass")
    tree = grammar.parser(spec).parse(source)
    root = tree.root_node
    facts = TreeFacts(parsed_ok=not root.has_error, errors=grammar.count_errors(root))
    cursor = len(parse_prefix.encode("utf-8", "surrogatepass"))
    block_end = spec.block_comment[1].encode() if spec.block_comment else None

    if cursor > 0:
        node = root.descendant_for_byte_range(cursor - 1, cursor)
        while node is not None:
            kind = node.type
            if "comment" in kind and node.start_byte < cursor:
                closed_block = block_end is not None and source[node.start_byte : node.end_byte].endswith(block_end)
                if cursor < node.end_byte or (cursor == node.end_byte and not closed_block):
                    facts.in_comment = True
                    break
            if ("string" in kind or kind in spec.string_types) and node.start_byte < cursor < node.end_byte:
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
        if node.type in spec.scope_types:
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
        facts.block_header = _colon_opens_block(spec, root, colon, stripped)
    return facts


def _colon_opens_block(spec: LanguageSpec, root, colon: int, line: str) -> bool:
    node = root.descendant_for_byte_range(colon, colon + 1)
    if node is not None and node.type == ":" and node.parent is not None:
        parent = node.parent
        if parent.type in spec.block_header_types:
            return True
        if parent.type != "ERROR":
            return False  # a dict, a slice, a lambda, an annotation
    return header_line_opens_block(spec, line)


def header_line_opens_block(spec: LanguageSpec, line: str) -> bool:
    """Whether ``line`` reads as a block header by its text alone (``spec.block_header_line``)."""
    return spec.block_header_line is not None and re.match(spec.block_header_line, line) is not None
