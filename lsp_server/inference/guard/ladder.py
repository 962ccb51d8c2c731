"""The rungs of the latency guard's ladder: a model plus a way of decoding it, from the best quality to the cheapest.

``build_ladder`` orders them: each installed model at full speed, then the same model decoded more cheaply
(prompt-lookup speculation if the engine has it off, fewer threads: with another process busy, llama.cpp's threads
wait on each other, so fewer threads can be faster), then the next smaller model.  The smallest model shortens the
prompt window to a quarter before it drops threads, and to an eighth on fewer threads: a tiny model spends much of
each decode step on attention over the context (SmolLM2-135M on one thread: 34 tok/s with a 576-token window, 47
with 144).  Whether a rung is good enough to be used at all is ``quality.py``'s question.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal

from lsp_server.errors import EngineError
from lsp_server.inference.guard.status import ShiftRecord, ShiftStatus


def _default_rung_name(model: str, n_threads: int | None, max_tokens_scale: float, context_scale: float) -> str:
    parts = [model]
    if n_threads is not None:
        parts.append(f"{n_threads}-thread")
    if context_scale != 1.0:
        parts.append(f"{context_scale:g}x-context")
    if max_tokens_scale != 1.0:
        parts.append(f"{max_tokens_scale:g}x-tokens")
    return "/".join(parts)


@dataclass(frozen=True)
class Rung:
    """One way of serving a request: a model and its decoding knobs."""

    model: str
    """Catalog name of the model (what ``TierManager.get`` loads)."""

    n_threads: int | None = None
    """Decode threads for this rung; None leaves the engine's count as it is (``build_ladder`` always sets it)."""

    prompt_lookup: bool = True
    """Prompt-lookup speculation for this rung (passed as ``GenerationRequest.prompt_lookup``)."""

    max_tokens_scale: float = 1.0
    """Multiplies the configured ``max_tokens`` (0.5: half-length suggestions)."""

    context_scale: float = 1.0
    """Multiplies the configured prompt window (``prefix_tokens``, ``suffix_tokens``): less attention per token."""

    name: str = ""
    """Shown in the status and logs, e.g. ``qwen2.5-coder-0.5b/1-thread``; derived from the knobs when empty."""

    remote: bool = False
    """Served by a team endpoint: this machine's busy cores neither slow it nor block probing it."""

    def __post_init__(self) -> None:
        if not self.model:
            raise EngineError("A latency guard rung needs a model name")
        if self.n_threads is not None and self.n_threads < 1:
            raise EngineError(f"Rung {self.model}: thread count must be positive, got {self.n_threads}")
        if not 0 < self.max_tokens_scale <= 1:
            raise EngineError(
                f"Rung {self.model}: max_tokens_scale must be in (0, 1], got {self.max_tokens_scale}"
            )
        if not 0 < self.context_scale <= 1:
            raise EngineError(f"Rung {self.model}: context_scale must be in (0, 1], got {self.context_scale}")
        if not self.name:
            object.__setattr__(
                self,
                "name",
                _default_rung_name(self.model, self.n_threads, self.max_tokens_scale, self.context_scale),
            )


@dataclass(frozen=True)
class Shift:
    """One decision of the guard, kept for the status and logged at INFO."""

    t_s: float
    """Seconds since the guard was created."""

    from_rung: str
    to_rung: str
    reason: str
    """Figures only (tokens/s, counts): never document text."""

    direction: Literal["up", "down"]

    def to_status(self) -> dict[str, Any]:
        """The fields a completion's ``gearshift/status`` carries when it made this shift."""
        return ShiftStatus(
            reason=self.reason, shift_from=self.from_rung, shift_to=self.to_rung, shift_direction=self.direction
        ).to_json()

    def record(self) -> ShiftRecord:
        return ShiftRecord(
            t_s=round(self.t_s, 2), from_rung=self.from_rung, to_rung=self.to_rung, reason=self.reason,
            direction=self.direction,
        )

    def to_json(self) -> dict[str, Any]:
        return self.record().to_json()


def build_ladder(
    installed_models: list[str],
    ladder: list[str],
    n_threads: int,
    *,
    prompt_lookup: bool = True,
    bottom_context_scale: float | None = 0.25,
    remote: frozenset[str] | set[str] = frozenset(),
) -> list[Rung]:
    """Rungs from the best quality to the cheapest for the installed models.

    ``ladder`` orders the models from largest to smallest; installed models
    missing from it (a custom ``modelPath``) go after the ladder's.  For each
    model: its full-speed rung (``n_threads`` threads, ``prompt_lookup`` as the
    engine is configured), then prompt lookup turned on if the engine has it
    off, then half the threads when ``n_threads > 1``.  The smallest model gets
    a rung whose prompt window is ``bottom_context_scale`` of the configured one
    before its fewer-threads rung (whose window is half that again); None: no such
    rung.  Less context makes suggestions worse, so only the smallest model,
    where nothing faster is left, trades it.  ``remote`` names team endpoints: one rung each, no knobs.
    """
    if n_threads < 1:
        raise EngineError(f"The latency guard needs a positive thread count, got {n_threads}")
    models = [model for model in dict.fromkeys(ladder) if model in installed_models]
    models += [model for model in dict.fromkeys(installed_models) if model not in models]
    if not models:
        raise EngineError(
            "No model of the ladder is installed "
            f"(ladder: {', '.join(ladder) or 'empty'}); "
            "run `make install` or `gearshift models list` to see what is missing"
        )
    rungs: list[Rung] = []
    local_models = [model for model in models if model not in remote]
    shorten = bottom_context_scale is not None and bottom_context_scale < 1
    for model in models:
        if model in remote:
            # A server's threads and window are its own business: one rung, measured like any other.
            rungs.append(Rung(model, n_threads=None, prompt_lookup=False, name=model, remote=True))
            continue
        position = local_models.index(model)
        rungs.append(Rung(model, n_threads=n_threads, prompt_lookup=prompt_lookup, name=model))
        tags: list[str] = []
        if not prompt_lookup:
            tags.append("lookup")
            rungs.append(Rung(model, n_threads=n_threads, prompt_lookup=True, name="/".join([model, *tags])))
        scale = 1.0
        if shorten and position == len(local_models) - 1:
            # The smallest model: a shorter window before fewer threads, because on one thread a tiny model's
            # full window is slower than the short one on all threads, and the short window on all threads is
            # where it goes back up to when a load leaves.
            scale = bottom_context_scale or 1.0
            tags.append(f"{scale:g}x-context")
            rungs.append(
                Rung(model, n_threads=n_threads, prompt_lookup=True, context_scale=scale, name="/".join([model, *tags]))
            )
        if n_threads > 1:
            fewer = n_threads // 2
            if scale < 1:
                # Halved again: on fewer threads the short window alone still hovers at the target (SmolLM2 on
                # one thread: 38-43 tok/s with a quarter window, 45-47 with an eighth).
                scale /= 2
                tags[-1] = f"{scale:g}x-context"
            tags.append(f"{fewer}-thread")
            rungs.append(
                Rung(model, n_threads=fewer, prompt_lookup=True, context_scale=scale, name="/".join([model, *tags]))
            )
    return rungs
