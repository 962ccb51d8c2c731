"""Rules that removed right answers in benchmarks/quality.py (HumanEval, one masked line), before and after.

Each case is a real masked line: the document with that line emptied (cursor █ where the line goes), what the
model wrote there (the canonical line, which the raw 0.5B model also wrote), what the pipeline showed before the
fix, and what it shows now.
"""

from __future__ import annotations

import re

import pytest

from lsp_server.completion.context import build_context
from lsp_server.completion.postprocess import make_stop_checker, postprocess

CURSOR = "█"
_TOKEN = re.compile(r"\w+|[^\w\s]|\s+")


def count_tokens(text: str) -> int:
    return len(_TOKEN.findall(text))


def context(source: str):
    offset = source.index(CURSOR)
    return build_context(
        source.replace(CURSOR, "", 1), offset, "python", count_tokens=count_tokens, prefix_tokens=1024,
        suffix_tokens=128, max_lines=8, path=None,
    )


def shown(source: str, raw: str) -> str | None:
    return postprocess(raw, context(source), max_lines=8)


# HumanEval/31, line 4 (before the fix: None, "repeats_recent").
IS_PRIME = '''
def is_prime(n):
    """Return true if a given number is prime, and false otherwise."""
    if n < 2:
        return False
    for k in range(2, n - 1):
        if n % k == 0:
            █
    return True
'''

# HumanEval/92, line 3 (before the fix: None, "suffix_duplicate"): the next line is the same text one block out.
ANY_INT = """
def any_int(x, y, z):
    '''True if one of the numbers is the sum of the other two, and all are integers.'''
    if isinstance(x,int) and isinstance(y,int) and isinstance(z,int):
        if (x+y==z) or (x+z==y) or (y+z==x):
            return True
        █
    return False
"""

# HumanEval/1, line 9 (before the fix: None, "repeats_recent"): the same call two lines up is in the `if` block.
SEPARATE_PAREN_GROUPS = """
def separate_paren_groups(paren_string):
    result = []
    current_string = []
    current_depth = 0

    for c in paren_string:
        if c == '(':
            current_depth += 1
            current_string.append(c)
        elif c == ')':
            current_depth -= 1
            █

            if current_depth == 0:
                result.append(''.join(current_string))
                current_string.clear()

    return result
"""


@pytest.mark.parametrize(
    "source, raw",
    [
        pytest.param(IS_PRIME, "return False", id="HumanEval/31-return-in-a-new-block-is-not-a-repeat"),
        pytest.param(SEPARATE_PAREN_GROUPS, "current_string.append(c)", id="HumanEval/1-same-call-in-another-branch"),
        pytest.param(ANY_INT, "return False", id="HumanEval/92-next-line-one-block-out-is-not-a-duplicate"),
    ],
)
def test_a_line_repeated_in_another_block_is_shown(source, raw):
    assert shown(source, raw) == raw


def test_a_duplicate_of_the_next_line_in_another_block_does_not_stop_generation():
    checker = make_stop_checker(context(ANY_INT), 8)
    assert checker("return False") is None
    assert checker("return False\n") is None  # before: 0, the whole line cut


@pytest.mark.parametrize(
    "source, raw",
    [
        # The line just above, in the same block: still a copy.
        pytest.param("def f(values):\n    total = sum(values)\n    █\n", "total = sum(values)", id="copy-of-line-above"),
        # A sibling two lines up (same depth, nothing less deep between): still a copy.
        pytest.param("def f():\n    a = compute(1)\n    b = compute(2)\n    █\n", "a = compute(1)", id="copy-of-sibling"),
    ],
)
def test_a_copy_of_a_line_in_the_same_block_is_still_dropped(source, raw):
    assert shown(source, raw) is None


def test_a_duplicate_of_the_next_line_at_its_depth_is_still_cut():
    source = "def f(values):█\n    return total\n"
    assert shown(source, "\n    total = sum(values)\n    return total") == "\n    total = sum(values)"


# HumanEval/13, line 0, with a dict still being typed above the function (before the fix: None, "parse_check" --
# the unclosed `{` made the whole window an error, and the right line changed its error count). 415 of the 1033
# canonical lines were vetoed like this.
GCD_BELOW_A_BROKEN_LINE = '''import os
CONFIG = {'a': 1,

def greatest_common_divisor(a: int, b: int) -> int:
    """ Return a greatest common divisor of two integers a and b
    >>> greatest_common_divisor(3, 5)
    1
    """
    █
        a, b = b, a % b
    return a
'''


def test_a_broken_line_in_another_construct_does_not_veto_a_suggestion():
    ctx = context(GCD_BELOW_A_BROKEN_LINE)
    assert not ctx.parsed_ok
    assert postprocess("while b:", ctx, max_lines=8) == "while b:"


def test_a_suggestion_that_breaks_its_own_construct_is_still_dropped_there():
    assert postprocess("while b +* :", context(GCD_BELOW_A_BROKEN_LINE), max_lines=8) is None


def test_a_suggestion_after_a_line_still_being_typed_above_in_its_function():
    """The broken line is in the suggestion's own function: it may not add errors, and a right line adds none."""
    source = GCD_BELOW_A_BROKEN_LINE.replace("import os\nCONFIG = {'a': 1,\n\n", "").replace(
        '    """\n    █', '    """\n    a = abs(a\n    █'
    )
    ctx = context(source)
    assert not ctx.parsed_ok
    assert postprocess("while b:", ctx, max_lines=8) == "while b:"


# HumanEval/20, line 6 ``distance = abs(elem - elem2)``: a generation stopped by the time budget after
# ``distance = abs`` (before the fix: shown, it parses, and binds the function; now nothing).
CLOSEST = """
def find_closest_elements(numbers):
    closest_pair = None
    distance = None
    for idx, elem in enumerate(numbers):
        for idx2, elem2 in enumerate(numbers):
            if idx != idx2:
                if distance is None:
                    █
                    closest_pair = tuple(sorted([elem, elem2]))
    return closest_pair
"""


def test_a_line_cut_short_by_the_time_budget_is_not_shown():
    ctx = context(CLOSEST)
    assert postprocess("distance = abs", ctx, max_lines=8, truncated=True) is None
    assert postprocess("distance = abs(elem - elem2)", ctx, max_lines=8) == "distance = abs(elem - elem2)"


def test_lines_a_rule_ended_are_finished_even_when_generation_ran_out():
    """The indentation rule ended the suggestion before the budget did: its last line is whole."""
    source = "def f(values):\n    for v in values:\n        █\n    return total\n"
    raw = "total += v\n        count += 1\n    return total\n\ndef g("
    # Before: "total += v" (the whole line `count += 1` dropped as if unfinished).
    assert postprocess(raw, context(source), max_lines=8, truncated=True) == "total += v\n        count += 1"


# HumanEval/118, line 4, in the small window of a lower guard rung: the suffix window ended inside the next line
# (`if (word[i+1] `), so the parsed window ended in half a line and the right line was vetoed (before: None,
# "parse_check"; 4 of the 1033 canonical lines at a 32/6-token window).
CLOSEST_VOWEL = '''
def get_closest_vowel(word):
    """The closest vowel between two consonants from the right of the word."""
    if len(word) < 3:
        return ""

    vowels = {"a", "e", "i", "o", "u", "A", "E", 'O', 'U', 'I'}
    for i in range(len(word)-2, 0, -1):
        █
            if (word[i+1] not in vowels) and (word[i-1] not in vowels):
                return word[i]
    return ""
'''


def test_a_small_suffix_window_is_parsed_to_the_end_of_its_last_line():
    offset = CLOSEST_VOWEL.index(CURSOR)
    text = CLOSEST_VOWEL.replace(CURSOR, "", 1)
    ctx = build_context(text, offset, "python", count_tokens=count_tokens, prefix_tokens=64, suffix_tokens=8,
                        max_lines=8, path=None)
    assert not ctx.suffix.endswith("\n")  # the prompt's suffix window ends inside a line
    assert postprocess("if word[i] in vowels:", ctx, max_lines=8) == "if word[i] in vowels:"
    assert ctx.parse_suffix.split("\n")[1].endswith("(word[i-1] not in vowels):")
