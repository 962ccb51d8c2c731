"""Prompt rules around the model's token boundaries: what the prompt leaves out, and how the answer is mended.

A space typed last stays out of the prompt (``unspaced``): tokenizers attach it to the next word (" b"), so a
prompt ending in a bare space makes the model add another one; ``heal`` takes the model's back off.  The other
rules take off token-boundary whitespace the model writes where the cursor line's indentation or an opening bracket
is already typed.  They run before post-processing, which only cuts.
"""

from __future__ import annotations

from lsp_server.completion.context import CompletionContext
from lsp_server.syntax.lexer import indent_width


def continuation(generated: str, ctx: CompletionContext) -> str:
    """``generated`` as it continues the document at ``ctx``'s cursor: every rule below, in order."""
    return tight_after_opener(heal(dedent_start(generated, ctx), ctx), ctx)


def unspaced(middle: str) -> str:
    """``middle`` without the spaces typed last after code on the cursor line (indentation stays)."""
    stripped = middle.rstrip(" ")
    last_line = stripped[stripped.rfind("\n") + 1 :]
    return stripped if last_line.strip() else middle


def dedent_start(generated: str, ctx: CompletionContext) -> str:
    """``generated`` without whitespace first where the cursor line's indentation is already typed.

    There it would over-indent the line: a token-boundary artefact (the model's " for" after a four-space
    token), taken off before post-processing, which only cuts.
    """
    if not ctx.indent_complete:
        return generated
    first_line, newline, rest = generated.partition("\n")
    if not first_line.strip():
        return generated
    stripped = generated.lstrip(" \t")
    extra = len(generated) - len(stripped)
    if not rest or not extra or generated[:extra].strip(" "):
        return stripped
    return stripped.partition("\n")[0] + newline + _shift_off_grid(rest, extra, indent_width(ctx.line_before))


def _shift_off_grid(lines: str, extra: int, typed: int) -> str:
    """Following lines ``extra`` spaces to the left when the model indented them all ``extra`` off the grid.

    A model that wrote the first line ``extra`` spaces deep sometimes keeps the whole block on that wrong grid
    (5 and 9 spaces in a 4-space file); lines already on the grid (a token artefact on the first line only) stay.
    """
    unit = next((u for u in (4, 2) if typed % u == 0), 0) if typed else 0
    body = [line for line in lines.split("\n") if line.strip()]
    if not unit or not body:
        return lines
    widths = [len(line) - len(line.lstrip(" ")) for line in body]
    if not all(w >= typed + extra and w % unit and (w - extra) % unit == 0 for w in widths):
        return lines
    return "\n".join(line[extra:] if line.strip() else line for line in lines.split("\n"))


def tight_after_opener(generated: str, ctx: CompletionContext) -> str:
    """No space between a just-typed ``(`` or ``[`` and the suggestion (``sum( item`` → ``sum(item``).

    The models' word tokens carry their leading space (" item"), so right after an opener they often start with
    one; no style guide of the languages served puts it there (``{`` is left alone: Prettier spaces braces).
    """
    if ctx.line_before.endswith(("(", "[")) and generated.startswith(" ") and generated[1:2].strip():
        return generated[1:]
    return generated


def heal(generated: str, ctx: CompletionContext) -> str:
    """The generated text as it continues the document, after the prompt held back trailing spaces (``unspaced``)."""
    held_back = len(ctx.line_before) - len(ctx.line_before.rstrip(" "))
    if not held_back or not ctx.line_before.strip():
        return generated
    return generated[held_back:] if generated.startswith(" " * held_back) else generated.lstrip(" ")
