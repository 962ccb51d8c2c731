"""Generated tokens to text: UTF-8 assembled across tokens, stop strings, text held back while it could still
become one, ``max_tokens``, the partial outputs a stream shows, and the consumer's cut."""

from __future__ import annotations

import codecs
import time
from collections.abc import Callable

from lsp_server.inference.types import GenerationRequest, Partial, StopReason


class Output:
    """Turns generated tokens into text and decides when to stop (EOG, stop strings, length)."""

    __slots__ = (
        "text",
        "tokens",
        "logprobs",
        "_ends",
        "_times",
        "_decoder",
        "_stops",
        "_stop_max",
        "_max_tokens",
        "_piece",
        "_is_eog",
        "_called",
        "_publish",
    )

    def __init__(
        self,
        request: GenerationRequest,
        piece: Callable[[int], bytes],
        is_eog: Callable[[int], bool],
        called: float = 0.0,
        publish: Callable[[Partial], None] | None = None,
    ) -> None:
        self.text = ""
        self.tokens: list[int] = []
        self.logprobs: list[float] = []
        self._ends: list[int] = []  # len(text) after each token
        self._times: list[float] = []  # when each token came
        # Holds the bytes of a UTF-8 character split across tokens until it is complete.
        self._decoder = codecs.getincrementaldecoder("utf-8")("replace")
        self._stops = [stop for stop in request.stop if stop]
        self._stop_max = max((len(stop) for stop in self._stops), default=0)
        self._max_tokens = request.max_tokens
        self._piece = piece
        self._is_eog = is_eog
        self._called = called
        self._publish = publish

    def push(self, token: int, logprob: float) -> StopReason | None:
        """Add one generated token; returns why generation must stop, or None to go on (and publishes a partial)."""
        if self._is_eog(token):
            return "eos"
        self.tokens.append(token)
        self.logprobs.append(logprob)
        self._times.append(time.perf_counter())
        piece = self._piece(token)
        chunk = self._decoder.decode(piece) if piece else ""
        if chunk:
            previous = len(self.text)
            text = self.text + chunk
            if self._stops:
                begin = max(0, previous - self._stop_max + 1)
                cut = -1
                for stop in self._stops:
                    at = text.find(stop, begin)
                    if at >= 0 and (cut < 0 or at < cut):
                        cut = at
                if cut >= 0:
                    self.text = text[:cut]
                    self._ends.append(cut)
                    return "stop"
            self.text = text
        self._ends.append(len(self.text))
        if len(self.tokens) >= self._max_tokens:
            return "length"
        if self._publish is not None:
            self._publish(self.partial())
        return None

    def partial(self) -> Partial:
        """What a consumer sees of the generation so far."""
        times = self._times
        n = len(times)
        now = times[-1] if times else self._called
        first = times[0] if times else now
        return Partial(
            text=self.visible(self.text),
            token_logprobs=list(self.logprobs),
            n_tokens=n,
            elapsed_s=now - self._called,
            time_to_first_token_s=first - self._called,
            decode_tokens_per_s=(n - 1) / (now - first) if n > 1 and now > first else 0.0,
        )

    def cut(self, at: int) -> float | None:
        """Cut the text at ``at`` (the consumer's stop) and drop the tokens after the one that reached it; returns
        when that token came (None without tokens)."""
        at = max(0, min(at, len(self.text)))
        self.text = self.text[:at]
        keep = next((i + 1 for i, end in enumerate(self._ends) if end >= at), len(self.tokens))
        del self.tokens[keep:], self.logprobs[keep:], self._ends[keep:], self._times[keep:]
        return self._times[-1] if self._times else None

    def visible(self, text: str) -> str:
        """``text`` without an end that could still become a stop string."""
        return text[: len(text) - self._held_back(text)] if self._stops else text

    def _held_back(self, text: str) -> int:
        """Length of the end of ``text`` that could be the start of a stop string (not shown yet)."""
        held = 0
        for stop in self._stops:
            for k in range(min(len(stop) - 1, len(text)), held, -1):
                if text.endswith(stop[:k]):
                    held = k
                    break
        return held
