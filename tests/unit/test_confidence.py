"""Confidence from token log-probabilities, and mapping the kept text back to its tokens."""

from __future__ import annotations

import math

import pytest
from hypothesis import given
from hypothesis import strategies as st

from lsp_server.completion.confidence import confidence, confidence_of_kept, kept_token_count

LOGPROB = st.floats(min_value=-30.0, max_value=0.0, allow_nan=False)


def lp(*probabilities: float) -> list[float]:
    return [math.log(p) for p in probabilities]


@pytest.mark.parametrize(
    ("logprobs", "expected"),
    [
        pytest.param([], 0.0, id="no-tokens"),
        pytest.param([0.0, 0.0, 0.0], 1.0, id="certain"),
        pytest.param(lp(0.9, 0.9, 0.9), 0.9, id="uniform-0.9"),
        pytest.param(lp(0.5), 0.5, id="one-token"),
        pytest.param([-math.inf, 0.0], 0.25 * 0 + 0.75 * 0, id="impossible-token"),
        pytest.param([math.nan, 0.0], 0.0, id="nan-counts-as-impossible"),
        pytest.param([0.3, 0.0], 1.0, id="positive-rounding-is-certainty"),
    ],
)
def test_confidence_values(logprobs, expected):
    assert confidence(logprobs) == pytest.approx(expected, abs=1e-9)


def test_one_weak_token_pulls_confidence_down():
    steady = confidence(lp(*[0.9] * 10))
    one_guess = confidence(lp(*[0.95] * 9, 0.2))
    assert one_guess < steady
    assert one_guess < 0.8


def test_length_alone_does_not_lower_confidence():
    assert confidence(lp(*[0.9] * 3)) == pytest.approx(confidence(lp(*[0.9] * 30)))


@given(st.lists(LOGPROB, min_size=1, max_size=40))
def test_confidence_is_in_unit_interval(logprobs):
    assert 0.0 <= confidence(logprobs) <= 1.0


@given(st.lists(LOGPROB, min_size=1, max_size=40), st.data())
def test_confidence_is_monotone_in_every_logprob(logprobs, data):
    index = data.draw(st.integers(0, len(logprobs) - 1))
    raised = list(logprobs)
    raised[index] = data.draw(st.floats(min_value=logprobs[index], max_value=0.0))
    assert confidence(raised) >= confidence(logprobs) - 1e-12


@given(st.lists(LOGPROB, min_size=1, max_size=40), LOGPROB)
def test_adding_a_less_likely_token_does_not_raise_confidence(logprobs, extra):
    if extra <= min(logprobs):
        assert confidence([*logprobs, extra]) <= confidence(logprobs) + 1e-12


@pytest.mark.parametrize(
    ("n_tokens", "generated", "kept", "expected"),
    [
        pytest.param(10, "abcdefghij", "abcdefghij", 10, id="all-kept"),
        pytest.param(10, "abcdefghij", "abcde", 5, id="half"),
        pytest.param(10, "abcdefghij", "abc", 3, id="prefix"),
        pytest.param(4, "abcdefghij", "abc", 2, id="token-with-last-char-counts"),
        pytest.param(6, "x = 1   \n    y = 2\n\ndef g", "x = 1\n    y = 2", 5, id="whitespace-stripped"),
        pytest.param(5, "abc", "", 0, id="nothing-kept"),
        pytest.param(0, "abc", "abc", 0, id="no-tokens"),
        pytest.param(5, "abc", "zzz", 5, id="unrelated-text-falls-back-to-share"),
    ],
)
def test_kept_token_count(n_tokens, generated, kept, expected):
    assert kept_token_count(n_tokens, generated, kept) == expected


def test_confidence_of_kept_ignores_the_cut_tail():
    logprobs = lp(0.95, 0.95, 0.95, 0.95, 0.01, 0.01, 0.01, 0.01)
    generated = "goodgoodjunkjunk"
    assert confidence_of_kept(logprobs, generated, "goodgood") == pytest.approx(0.95)
    assert confidence_of_kept(logprobs, generated, generated) < 0.1


@given(st.lists(LOGPROB, min_size=1, max_size=30), st.text(min_size=1, max_size=60), st.data())
def test_kept_count_is_monotone_in_kept_length(logprobs, generated, data):
    shorter = data.draw(st.integers(0, len(generated)))
    longer = data.draw(st.integers(shorter, len(generated)))
    n = len(logprobs)
    assert kept_token_count(n, generated, generated[:shorter]) <= kept_token_count(
        n, generated, generated[:longer]
    )
    assert 0 <= kept_token_count(n, generated, generated[:longer]) <= n
