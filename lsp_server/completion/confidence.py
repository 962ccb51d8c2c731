"""How sure the model was of a suggestion, from the log-probabilities of its tokens.

The score mixes two views of the same probabilities:

* the geometric mean of the token probabilities, ``exp(mean(logprobs))``: the typical
  per-token certainty, independent of length (a long suggestion is not penalised for being long);
* the smallest token probability: one coin-flip token (a guessed name, a wrong operator) can
  make a whole line wrong even when every other token is certain.

``confidence = 0.75 × geometric mean + 0.25 × minimum``. Both terms rise when any token's
probability rises, so the score is monotone in every log-probability, and it lies in [0, 1].
A suggestion of tokens at p=0.9 each scores 0.9; one with a single p=0.2 token among p=0.95
tokens scores well below that.

Only the tokens behind the text that is shown should count (post-processing cuts the tail).
The engine gives one log-probability per token but not the tokens' texts, so
:func:`confidence_of_kept` maps the kept text to a token count by the share of generated
characters it covers (tokens assumed of even length; the token holding the last kept character
counts). For code, where tokens are 2–5 characters, this is off by a token at most.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

GEOMETRIC_WEIGHT = 0.75
"""Weight of the geometric-mean probability; the rest goes to the least likely token."""


def confidence(token_logprobs: Sequence[float]) -> float:
    """Score in [0, 1] of tokens with these natural-log probabilities; 0.0 for no tokens.

    NaN counts as an impossible token; positive values (rounding) count as certainty.
    """
    values = [_clean(value) for value in token_logprobs]
    if not values:
        return 0.0
    geometric = math.exp(sum(values) / len(values))
    weakest = math.exp(min(values))
    score = GEOMETRIC_WEIGHT * geometric + (1.0 - GEOMETRIC_WEIGHT) * weakest
    return min(1.0, max(0.0, score))


def kept_token_count(n_tokens: int, generated: str, kept: str) -> int:
    """Approximate number of leading tokens that produced ``kept``, a post-processed part of ``generated``."""
    if n_tokens <= 0:
        return 0
    if not generated or not kept:
        return n_tokens if kept else 0
    end = _aligned_end(generated, kept)
    share = end / len(generated)
    return max(1, min(n_tokens, math.ceil(n_tokens * share - 1e-9)))


def confidence_of_kept(token_logprobs: Sequence[float], generated: str, kept: str) -> float:
    """:func:`confidence` over the tokens behind ``kept`` only (see the module docstring)."""
    count = kept_token_count(len(token_logprobs), generated, kept)
    return confidence(token_logprobs[:count]) if count else confidence(token_logprobs)


def _aligned_end(generated: str, kept: str) -> int:
    """Index in ``generated`` just past the text ``kept`` came from.

    Post-processing only cuts and strips whitespace, so the non-space characters of ``kept``
    appear in order in ``generated``; if they do not, fall back to the share of lengths.
    """
    if generated.startswith(kept):
        return len(kept)
    position = 0
    for char in kept:
        if char.isspace():
            continue
        found = generated.find(char, position)
        if found < 0:
            return min(len(generated), len(kept))
        position = found + 1
    return position


def _clean(value: float) -> float:
    if math.isnan(value):
        return -math.inf
    return min(0.0, float(value))
