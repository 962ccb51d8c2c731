"""MiddleSplitter: the FIM prompt only grows at its end while the user types, so the KV cache is re-used."""

from __future__ import annotations

from itertools import pairwise

import pytest

from lsp_server.completion.context import build_context
from lsp_server.completion.fim import TEMPLATES
from lsp_server.completion.window import MiddleSplitter, split_middle

HEAD = "import os\n\n\ndef walk(root):\n"
TAIL = "\n\n\ndef other():\n    return 1\n"


def context(text: str, offset: int, window_end: int | None = None, prefix_tokens: int = 512, suffix_tokens: int = 64):
    return build_context(
        text, offset, "python", count_tokens=lambda s: len(s) // 3 + 1, prefix_tokens=prefix_tokens,
        suffix_tokens=suffix_tokens, max_lines=8, path=None, window_end=window_end,
    )


def split(splitter: MiddleSplitter, text: str, offset: int, middle_chars: int, **window):
    """As the service does it: the window counted back from the split point, then split there."""
    ctx = context(text, offset, splitter.point("file:///a.py", text, offset, middle_chars), **window)
    prefix, middle = split_middle(ctx)
    assert prefix + middle == ctx.prefix
    return ctx, prefix, middle


def keystrokes(body: str) -> list[int]:
    """Lengths of ``body`` typed after each keystroke; an editor inserts a line break and its indentation at once."""
    ends, i = [], 0
    while i < len(body):
        i += 1
        if body[i - 1] in "\n" or i == 1:
            while i < len(body) and body[i] == " ":
                i += 1
        ends.append(i)
    return ends


def prompt_while_typing(body: str, middle_chars: int = 1024) -> list[str]:
    splitter = MiddleSplitter()
    prompts = []
    for typed in keystrokes(body):
        text = HEAD + body[:typed] + TAIL
        ctx, prefix, middle = split(splitter, text, len(HEAD) + typed, middle_chars)
        prompts.append(TEMPLATES["qwen"].build(prefix, ctx.suffix, middle=middle))
    return prompts


def test_typing_only_appends_to_the_prompt():
    prompts = prompt_while_typing("    for name in os.listdir(root):\n        print(name)\n    return None")
    for before, after in zip(prompts, prompts[1:], strict=False):
        assert after.startswith(before)  # the engine re-evaluates only the new characters


LONG_HEAD = "import os\n\n" + "".join(f"def helper_{i}(value):\n    return value + {i}\n\n\n" for i in range(60))


@pytest.mark.parametrize("anchored", [True, False])
def test_a_window_shorter_than_the_file_stays_put_while_typing(anchored):
    """The prefix window is counted back from the split point, not the cursor: its start does not move per line."""
    body = "def walk(root):\n" + "".join(f"    total_{i} = len(os.listdir(root)) + {i}\n" for i in range(12))
    splitter = MiddleSplitter()
    starts, prompts = [], []
    for typed in keystrokes(body):
        text = LONG_HEAD + body[:typed] + TAIL
        offset = len(LONG_HEAD) + typed
        if anchored:
            ctx, prefix, middle = split(splitter, text, offset, 1024, prefix_tokens=96, suffix_tokens=16)
        else:
            ctx = context(text, offset, prefix_tokens=96, suffix_tokens=16)
            prefix, middle = split_middle(ctx)
        starts.append(ctx.prefix_start)
        prompts.append(TEMPLATES["qwen"].build(prefix, ctx.suffix, middle=middle))
    moves = sum(1 for a, b in pairwise(starts) if a != b)
    if anchored:
        assert moves == 0
        assert all(after.startswith(before) for before, after in pairwise(prompts))
    else:
        assert moves >= 3  # counted back from the cursor, a short window slides as lines are typed


def test_without_middle_every_keystroke_changes_the_prompt_before_the_suffix():
    prompts = prompt_while_typing("    return 1", middle_chars=0)
    assert not prompts[1].startswith(prompts[0])
    assert prompts[0].endswith("<|fim_middle|>")


def test_split_point_moves_to_the_cursor_line_when_the_middle_grows_too_long():
    body = "".join(f"    x{i} = {i}\n" for i in range(20))
    splitter = MiddleSplitter()
    middles = []
    for typed in range(1, len(body) + 1):
        text = HEAD + body[:typed] + TAIL
        middles.append(split(splitter, text, len(HEAD) + typed, 100)[2])
    assert max(len(m) for m in middles) <= 100
    code_starts = [i + 4 for i in [0] + [i + 1 for i, c in enumerate(body) if c == "\n"]]
    assert all(m == "" or any(body.startswith(m, i) for i in code_starts) for m in middles)  # after indentation
    resets = sum(1 for a, b in zip(middles, middles[1:], strict=False) if len(b) < len(a))
    assert 2 <= resets <= len(body) // 60  # the point moves rarely, not on every line


def test_cursor_moving_above_the_split_point_resets_it():
    splitter = MiddleSplitter()
    text = HEAD + "    a = 1\n    b = 2\n" + TAIL
    split(splitter, text, len(HEAD) + 20, 1024)
    early, prefix, middle = split(splitter, text, len(HEAD) + 5, 1024)
    assert middle == "a"
    assert prefix == early.prefix[: -len("a")]


def test_every_family_keeps_the_middle_last():
    for family, template in TEMPLATES.items():
        prompt = template.build("def f():\n", "\nx = 1\n", middle="    ret")
        assert prompt.endswith("    ret"), family


def test_a_space_typed_last_is_held_back_from_the_prompt_and_taken_off_the_answer():
    from lsp_server.completion.healing import heal, unspaced

    assert unspaced("return ") == "return"
    assert unspaced("x = 1\n    ") == "x = 1\n    "  # indentation stays
    ctx = context(HEAD + "    return " + TAIL, len(HEAD) + len("    return "))
    assert heal(" a - b", ctx) == "a - b"  # the model's own space, not a second one
    assert heal("a - b", ctx) == "a - b"
    indented = context(HEAD + "    " + TAIL, len(HEAD) + 4)
    assert heal("    return", indented) == "    return"  # nothing held back on an indentation-only line
