"""Generated tokens to text: UTF-8 assembled across tokens, stop strings, text held back while it could still
become one, and the request's other ends (end of generation, ``max_tokens``, the caller's cut, the early answer)."""

from __future__ import annotations

import codecs
import logging
import math
import time
from collections.abc import Callable

from lsp_server.inference.types import FirstAnswer, GenerationRequest, StopReason

log = logging.getLogger(__name__)


class Output:
    """Turns generated tokens into text and decides when to stop (EOG, stop strings, callback, length)."""

    __slots__ = (
        "text",
        "tokens",
        "logprobs",
        "_decoder",
        "_stops",
        "_stop_max",
        "_should_stop",
        "_max_tokens",
        "_piece",
        "_is_eog",
        "_called",
        "_first_token_at",
        "_first_answer_at",
        "_on_first_answer",
    )

    def __init__(
        self,
        request: GenerationRequest,
        piece: Callable[[int], bytes],
        is_eog: Callable[[int], bool],
        called: float = 0.0,
    ) -> None:
        self.text = ""
        self.tokens: list[int] = []
        self.logprobs: list[float] = []
        # Holds the bytes of a UTF-8 character split across tokens until it is complete.
        self._decoder = codecs.getincrementaldecoder("utf-8")("replace")
        self._stops = [stop for stop in request.stop if stop]
        self._stop_max = max((len(stop) for stop in self._stops), default=0)
        self._should_stop = request.should_stop
        self._max_tokens = request.max_tokens
        self._piece = piece
        self._is_eog = is_eog
        self._called = called
        self._first_token_at = 0.0
        self._on_first_answer = request.on_first_answer
        self._first_answer_at = (
            called + request.first_answer_s
            if request.on_first_answer is not None and request.first_answer_s is not None
            else math.inf
        )

    def push(self, token: int, logprob: float) -> StopReason | None:
        """Add one generated token; returns why generation must stop, or None to go on."""
        if self._is_eog(token):
            return "eos"
        self.tokens.append(token)
        self.logprobs.append(logprob)
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
                    return "stop"
            self.text = text
            if self._should_stop is not None:
                visible = self.visible(text)
                cut_at = self._should_stop(visible)
                if cut_at is not None:
                    self.text = text[: max(0, min(cut_at, len(visible)))]
                    return "stop"
        if len(self.tokens) >= self._max_tokens:
            return "length"
        if len(self.tokens) == 1:
            self._first_token_at = time.perf_counter()
        if self._first_answer_at != math.inf and time.perf_counter() >= self._first_answer_at and "\n" in self.text:
            self._answer_first()  # a finished line at least: what is shown early must not change meaning
        return None

    def _answer_first(self) -> None:
        """Hand what was generated so far to ``on_first_answer`` (once): the caller shows it while we go on."""
        self._first_answer_at = math.inf
        now = time.perf_counter()
        visible = self.visible(self.text)
        n = len(self.tokens)
        answer = FirstAnswer(
            text=visible,
            token_logprobs=list(self.logprobs),
            time_to_first_token_s=self._first_token_at - self._called,
            decode_tokens_per_s=(n - 1) / (now - self._first_token_at) if n > 1 and now > self._first_token_at else 0.0,
        )
        try:
            self._on_first_answer(answer)  # type: ignore[misc]
        except Exception:  # the caller's bug must not end the generation
            log.exception("on_first_answer failed")

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
