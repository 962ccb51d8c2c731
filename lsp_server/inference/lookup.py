"""Draft tokens for prompt-lookup speculative decoding.

Code edits copy most of their answer from the prompt: a rewritten function
repeats the original line by line, a completion repeats a pattern from a few
lines above.  ``PromptLookup`` finds the newest n-gram of the token history
(prompt + generated) earlier in that history and proposes the tokens that
followed it there.  The engine verifies the proposal in one batch and keeps
the tokens the model itself would have chosen, so the output never changes;
only the number of forward passes does.

Two things keep a wrong guess cheap:

* Once a draft is accepted the source position is followed ("anchored"), so
  copying a long span needs no search at all; after a mismatch the search
  prefers the first occurrence after where copying stopped, which is where an
  edited line usually resumes (otherwise the newest occurrence).
* The draft length adapts: it doubles after a fully accepted draft, falls to
  what was accepted plus one after a partial one, and after repeated misses
  only long (``ngram_max``) matches may draft, so free-form text pays almost
  nothing for the feature.
"""

from __future__ import annotations

from bisect import bisect_left


class PromptLookup:
    """N-gram index over one request's token history, with an adaptive draft length."""

    __slots__ = (
        "_tokens",
        "_index",
        "_ngram_min",
        "_ngram_max",
        "_draft_max",
        "_draft_len",
        "_anchor",
        "_hint",
        "_source",
        "_misses",
        "_anchored",
    )

    MISSES_BEFORE_STRICT = 2
    """Consecutive drafts rejected at their first token after which only ``ngram_max`` matches draft."""

    def __init__(self, tokens: list[int], ngram_min: int = 2, ngram_max: int = 4, draft_max: int = 8) -> None:
        if not 0 < ngram_min <= ngram_max:
            raise ValueError(f"need 0 < ngram_min <= ngram_max, got {ngram_min} and {ngram_max}")
        self._ngram_min = ngram_min
        self._ngram_max = ngram_max
        self._draft_max = max(1, draft_max)
        self._draft_len = self._draft_max
        self._tokens: list[int] = []
        # (n-gram tuple) -> increasing end positions (index just after the n-gram) in the history.
        self._index: dict[tuple[int, ...], list[int]] = {}
        self._anchor: int | None = None  # history position whose token is expected next while copying
        self._hint: int | None = None  # where copying last stopped: occurrences after it are preferred
        self._source: int | None = None  # start of the last draft's source span
        self._misses = 0
        self._anchored = False
        self.extend(tokens)

    @property
    def tokens(self) -> list[int]:
        return self._tokens

    def extend(self, tokens: list[int]) -> None:
        """Append tokens to the history and index the n-grams that end at each of them."""
        history = self._tokens
        index = self._index
        lo, hi = self._ngram_min, self._ngram_max
        for token in tokens:
            history.append(token)
            end = len(history)
            for n in range(lo, min(hi, end) + 1):
                key = tuple(history[end - n : end])
                positions = index.get(key)
                if positions is None:
                    index[key] = [end]
                else:
                    positions.append(end)

    def draft(self, limit: int) -> list[int]:
        """Up to ``limit`` tokens predicted to follow the history; empty when there is no good match."""
        limit = min(limit, self._draft_len)
        if limit <= 0:
            return []
        history = self._tokens
        end = len(history)
        anchor = self._anchor
        self._anchored = False
        if anchor is not None and anchor < end:
            start = anchor
            self._anchored = True
        else:
            start = self._search(end)
            if start is None:
                self._source = None
                return []
        self._source = start
        return history[start : min(start + limit, end)]

    def _search(self, end: int) -> int | None:
        history = self._tokens
        strict = self._misses >= self.MISSES_BEFORE_STRICT
        lowest = self._ngram_max if strict else self._ngram_min
        for n in range(min(self._ngram_max, end - 1), lowest - 1, -1):
            positions = self._index.get(tuple(history[end - n : end]))
            if not positions:
                continue
            # The newest entry is the suffix itself (end == len); an occurrence needs a following token.
            count = len(positions) - 1 if positions[-1] == end else len(positions)
            if count == 0:
                continue
            if self._hint is not None:
                i = bisect_left(positions, self._hint, 0, count)
                if i < count:
                    return positions[i]
            return positions[count - 1]
        return None

    @property
    def anchored(self) -> bool:
        """Whether the last draft continued an accepted copy (such drafts are accepted far more often)."""
        return self._anchored

    def feedback(self, drafted: int, accepted: int, next_token: int) -> None:
        """Report how many of the last draft's tokens were verified and accepted, and the model's next token.

        ``drafted`` may be fewer than ``draft`` offered (the engine verifies what pays off), even 0.
        Call after ``extend`` with the accepted tokens and ``next_token``.
        """
        source, self._source = self._source, None
        if source is None:
            self._anchor = None
            return
        history = self._tokens
        follow = source + accepted  # source position of the token the model chose after the accepted ones
        if accepted == drafted:
            if drafted:
                self._misses = 0
                self._draft_len = min(self._draft_max, self._draft_len * 2)
            # Still aligned if the model's own next token is also the source's next token.
            aligned = follow < len(history) - 1 and history[follow] == next_token
            self._anchor = follow + 1 if aligned else None
        else:
            self._misses = self._misses + 1 if accepted == 0 else 0
            self._draft_len = max(1, accepted + 1)
            self._anchor = None
        if self._anchor is None:
            self._hint = follow


class DraftPolicy:
    """How many offered draft tokens to verify: the count with the most expected tokens per second.

    Verifying ``k`` drafts costs one decode of ``k + 1`` tokens and yields ``1 + p + ... + p^k``
    tokens on average, with ``p`` the chance that a draft token is accepted once the ones before it
    were.  Batch costs are measured (a moving average per batch size, kept for the engine's life)
    because they differ a lot between models: on a 135M model a batch of two already costs almost
    twice one token, on a 0.5B model four cost about one and a half.  Acceptance is tracked apart
    for anchored drafts (continuing an accepted copy) and fresh n-gram matches.
    """

    __slots__ = ("_cost", "_accept")

    ALPHA = 0.25
    PRIOR_ACCEPT = 0.7
    OPTIMISTIC_SLOPE = 0.15
    """Assumed extra cost per token of a batch size not measured yet, so that it gets tried."""

    def __init__(self, max_batch: int) -> None:
        self._cost = [0.0] * (max_batch + 1)  # seconds per decode of b tokens; 0 = not measured
        self._accept = [self.PRIOR_ACCEPT, self.PRIOR_ACCEPT]  # [fresh match, anchored]

    def observe_cost(self, n_tokens: int, seconds: float) -> None:
        if n_tokens < len(self._cost):
            old = self._cost[n_tokens]
            self._cost[n_tokens] = seconds if old == 0.0 else old + self.ALPHA * (seconds - old)

    def observe_draft(self, drafted: int, accepted: int, anchored: bool) -> None:
        # Positions tried: the accepted ones plus the first rejected one.
        p = self._accept[anchored]
        for i in range(min(drafted, accepted + 1)):
            p += self.ALPHA * ((1.0 if i < accepted else 0.0) - p)
        self._accept[anchored] = p

    def choose(self, offered: int, anchored: bool) -> int:
        single = self._cost[1]
        if single <= 0.0:
            return min(offered, len(self._cost) - 2)
        p = self._accept[anchored]
        best, best_rate = 0, 1.0 / single
        expected, p_k = 1.0, 1.0
        for k in range(1, min(offered, len(self._cost) - 2) + 1):
            p_k *= p
            expected += p_k
            cost = self._cost[k + 1] or single * (1.0 + self.OPTIMISTIC_SLOPE * k)
            rate = expected / cost
            if rate > best_rate:
                best, best_rate = k, rate
        return best
