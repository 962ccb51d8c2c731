"""The prompt window sized from the prompt speed measured on this machine (``cold_prompt_ms``) and the rung."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from lsp_server.completion.window import MIN_PREFIX_TOKENS, WINDOW_STEP_TOKENS, prompt_window, rung_window
from lsp_server.inference.guard import Rung
from lsp_server.settings import CompletionSettings


@pytest.mark.parametrize(
    "speed, expected",
    [
        pytest.param(None, (1024, 128), id="speed-unknown-full-window"),
        pytest.param(2000.0, (1024, 128), id="a-gpu-affords-the-full-window"),
        pytest.param(37.0, (192, 64), id="the-0.5b-on-two-avx2-cores"),
        pytest.param(85.0, (512, 128), id="smollm2-on-two-avx2-cores"),
        pytest.param(1.0, (96, 32), id="hopelessly-slow-still-gets-the-smallest-window"),
    ],
)
def test_window_from_prompt_speed(speed, expected):
    assert prompt_window(1024, 128, 8000, speed) == expected


def test_zero_means_always_the_full_window():
    assert prompt_window(1024, 128, 0, 37.0) == (1024, 128)


@given(
    prefix=st.integers(1, 8192),
    suffix=st.integers(0, 2048),
    cold_ms=st.integers(0, 60_000),
    speed=st.one_of(st.none(), st.floats(0.1, 100_000)),
)
def test_window_never_grows_and_moves_only_in_whole_steps(prefix, suffix, cold_ms, speed):
    got_prefix, got_suffix = prompt_window(prefix, suffix, cold_ms, speed)
    assert got_suffix <= suffix and got_prefix >= 1
    if (got_prefix, got_suffix) != (prefix, suffix):
        assert got_prefix <= prefix
        assert (got_prefix + got_suffix) % WINDOW_STEP_TOKENS == 0


@pytest.mark.parametrize(
    "context_scale, speed, expected",
    [
        pytest.param(1.0, None, (1024, 128), id="full-rung-full-window"),
        pytest.param(0.25, None, (256, 32), id="quarter-context-rung"),
        pytest.param(0.5, 37.0, (96, 32), id="scaled-after-sizing-from-speed"),
        pytest.param(0.01, None, (MIN_PREFIX_TOKENS, 1), id="prefix-never-below-the-floor"),
    ],
)
def test_rung_scales_the_window_sized_from_speed(context_scale, speed, expected):
    settings = CompletionSettings(prefix_tokens=1024, suffix_tokens=128, cold_prompt_ms=8000)
    assert rung_window(settings, Rung("m", n_threads=1, context_scale=context_scale), speed) == expected
