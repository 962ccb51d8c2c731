"""The data that crosses the engine's boundary: what to generate and what came back.

Kept apart from the engine so that the pipeline, the guard, benchmarks and an
HTTP engine can share it without importing llama.cpp.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Literal, Protocol

StopReason = Literal["eos", "length", "stop", "cancelled", "time_budget", "error"]


class CancelToken:
    """Set from any thread; the engine checks it between token steps."""

    def __init__(self) -> None:
        self._event = threading.Event()

    def cancel(self) -> None:
        self._event.set()

    @property
    def cancelled(self) -> bool:
        return self._event.is_set()


@dataclass(frozen=True)
class FirstAnswer:
    """What a generation had produced when its ``first_answer_s`` came (it goes on meanwhile)."""

    text: str
    token_logprobs: list[float]
    time_to_first_token_s: float
    decode_tokens_per_s: float
    """Delivered tokens/s after the first token so far (0 with fewer than two tokens)."""


@dataclass(frozen=True)
class InfillParts:
    """The pieces of a fill-in-the-middle prompt, for servers that build it themselves (llama-server ``/infill``)."""

    prefix: str
    """Text before the split point (stable while the user types, so the server's KV cache keeps it)."""

    middle: str
    """Text typed since the split point, up to the cursor."""

    suffix: str
    """Text after the cursor."""

    extra: tuple[tuple[str, str], ...] = ()
    """(file name, text) chunks of context from other files."""


@dataclass
class GenerationRequest:
    prompt: str
    """Full prompt text (a FIM prompt for completion); special tokens in it are parsed."""

    max_tokens: int = 64
    temperature: float = 0.0
    """0 means greedy (deterministic); otherwise native top-k/top-p/temperature sampling."""

    stop: list[str] = field(default_factory=list)
    """Generation ends before the first occurrence of any of these strings."""

    time_budget_s: float | None = None
    """Stop generating this many seconds after the prompt is evaluated (the prompt itself has no budget: cancel
    the request to stop it)."""

    prompt_lookup: bool | None = None
    """Prompt-lookup speculation; None means the engine's setting."""

    should_stop: Callable[[str], int | None] | None = None
    """Called with the text generated so far after each step; returns a cut index to stop there, else None."""

    first_answer_s: float | None = None
    """At the first finished line (a newline generated) after this many seconds from the call, prompt included,
    ``on_first_answer`` gets what was generated so far, once, and generation goes on; None: no early answer. A
    generation that ends without a newline answers only at its end."""

    on_first_answer: Callable[[FirstAnswer], None] | None = None
    """Called on the engine's thread (hand the answer over to your own); must not block."""

    seed: int = 0

    top_k: int = 40
    """Sampling only (temperature > 0): keep the k most likely tokens; 0 disables."""

    top_p: float = 0.95
    """Sampling only (temperature > 0): keep the smallest set of tokens with this much probability; 1 disables."""

    infill: InfillParts | None = None
    """The prompt's FIM pieces; an in-process engine uses ``prompt``, a llama-server endpoint sends these."""

    affinity_key: str | None = None
    """Requests with the same key (a document) go to the same server of a remote rung while it answers."""


@dataclass
class GenerationResult:
    text: str
    stop_reason: StopReason
    n_prompt_tokens: int
    n_reused_tokens: int
    """Prompt tokens whose KV entries were kept from the previous request (longest common prefix)."""

    n_generated_tokens: int
    token_logprobs: list[float]
    """Natural-log probability of each generated token under the model (before sampling transforms)."""

    prompt_eval_s: float
    time_to_first_token_s: float
    """From the call to the first generated token (prompt evaluation plus one step)."""

    decode_s: float
    """Time spent generating after the first token."""

    drafted_tokens: int = 0
    accepted_draft_tokens: int = 0
    model_name: str = ""

    @property
    def decode_tokens_per_s(self) -> float:
        """Delivered tokens/s after the first token (the figure the latency guard watches)."""
        if self.n_generated_tokens <= 1 or self.decode_s <= 0:
            return 0.0
        return (self.n_generated_tokens - 1) / self.decode_s


class AsyncEngine(Protocol):
    """What the rest of the server needs from an engine (llama.cpp in-process, or an HTTP server)."""

    name: str

    async def generate(
        self, request: GenerationRequest, cancel: CancelToken | None = None
    ) -> GenerationResult: ...

    async def prewarm(self, prompt: str) -> None:
        """Evaluate ``prompt`` into the KV cache so a following request that shares its prefix starts fast."""
        ...

    def count_tokens(self, text: str) -> int: ...

    def close(self) -> None: ...
