"""A generation followed while it streams: the request's stop rules, and the moment for an early answer.

Early answer (``completion.firstAnswerMs``): at the first finished line (a newline generated) after that time from
the call, prompt included, the request is answered with what was generated so far, once, and generation goes on;
its rest lands in the typed-ahead cache.  A generation that ends without a newline answers only at its end.

Stop rules (``postprocess.StopChecker``) read each partial output; where one ends the suggestion the stream is
stopped there (``stream.stop(cut)``), so the engine knows nothing of them.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable

from lsp_server.inference.stream import GenerationStream
from lsp_server.inference.types import GenerationResult, Partial


class EarlyAnswer:
    """When a request is answered before its generation ends (once at most)."""

    def __init__(self, after_s: float | None) -> None:
        self.after_s = after_s
        """Seconds from the call after which the first finished line answers; None: never early."""
        self.fired = False

    def due(self, partial: Partial) -> bool:
        """Whether ``partial`` is the early answer (True once: the first finished line after ``after_s``)."""
        if self.fired or self.after_s is None or partial.elapsed_s < self.after_s or "\n" not in partial.text:
            return False
        self.fired = True  # a finished line at least: what is shown early must not change meaning
        return True


def finished_lines(text: str) -> int | None:
    """Where an early answer's ``text`` is cut: after its last finished line; None when no line is finished.

    The unfinished last line is left out whole: any prefix of it can mean something else than the line will
    (``return`` where the model goes on to write a condition, ``total = sum`` for ``total = sum(values)``,
    ``x = f(a)`` for ``x = f(a) + 1``), and one that happens to parse says nothing about where the model stops.
    A single-line position is therefore never answered early: its answer comes when its line ends.
    """
    cut = text.rfind("\n") + 1
    return cut if text[:cut].strip() else None


class FollowedGeneration:
    """A generation's stream with the request's stop rules applied to each partial as it comes."""

    def __init__(self, stream: GenerationStream, stop_rule: Callable[[str], int | None] | None) -> None:
        self.stream = stream
        self._stop_rule = stop_rule
        self._cut: int | None = None

    async def early(self, answer: EarlyAnswer) -> Partial | None:
        """The partial at which ``answer`` is due while the generation still runs; None once it has ended."""
        async for partial in self.stream:
            if self._follow(partial):
                continue  # stopped: wait for the end
            if answer.due(partial) and not self.stream.done:
                return partial
        return None

    async def result(self) -> GenerationResult:
        """The generation's result, with the stop rules applied to all of its text."""
        async for partial in self.stream:
            self._follow(partial)
        result = await self.stream.result()
        if self._cut is None and result.stop_reason == "length":
            self._follow_text(result.text)  # the last token is no partial: the rules read it here
        if self._cut is not None and len(result.text) > self._cut:
            # The rule cut after the engine had finished (or in the final text): the text ends there all the same.
            result = dataclasses.replace(result, text=result.text[: self._cut], stop_reason="stop")
        return result

    def _follow(self, partial: Partial) -> bool:
        """Apply the stop rules to ``partial``; True once they have stopped the generation."""
        if self._cut is None:
            self._follow_text(partial.text)
        return self._cut is not None

    def _follow_text(self, text: str) -> None:
        if self._stop_rule is None:
            return
        cut = self._stop_rule(text)
        if cut is not None:
            self._cut = max(0, min(cut, len(text)))
            self.stream.stop(self._cut)
