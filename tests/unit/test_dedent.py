"""The first line's token-boundary whitespace comes off, and a block the model wrote on that wrong grid follows it."""

from __future__ import annotations

from lsp_server.completion.context import build_context
from lsp_server.completion.healing import dedent_start, tight_after_opener


def context(source: str):
    offset = source.index("█")
    return build_context(
        source.replace("█", ""), offset, "python",
        count_tokens=lambda text: len(text.split()), prefix_tokens=1024, suffix_tokens=256, max_lines=8, path=None,
    )


def test_a_block_indented_one_space_off_the_grid_moves_back_with_its_first_line():
    # Issue 11 item 3: four spaces typed in a function body, the model wrote its docstring and body at 5.
    ctx = context("def area(side):\n    █\n")
    generated = ' """Return the area of a square."""\n     return side * side'
    assert dedent_start(generated, ctx) == '"""Return the area of a square."""\n    return side * side'


def test_following_lines_already_on_the_grid_stay_where_they_are():
    # The model's " for" token carried one space; the loop body it wrote is correctly 8 deep.
    ctx = context("def f(xs):\n    █\n")
    generated = " for x in xs:\n        print(x)\n    return xs"
    assert dedent_start(generated, ctx) == "for x in xs:\n        print(x)\n    return xs"


def test_nothing_moves_where_the_indentation_is_not_typed_yet():
    ctx = context("def f(xs):\n█\n")
    assert dedent_start("    return xs\n     pass", ctx) == "    return xs\n     pass"


def test_no_space_right_after_a_typed_opening_bracket():
    # Seen in VS Code: "return sum(" got the ghost " item.price * item.quantity for item in items".
    ctx = context("def total(items):\n    return sum(█)\n")
    assert tight_after_opener(" item.price for item in items", ctx) == "item.price for item in items"
    assert tight_after_opener("  # two spaces: left alone", ctx) == "  # two spaces: left alone"
    assert tight_after_opener(" item", context("x = a +█\n")) == " item"  # not after an opener
