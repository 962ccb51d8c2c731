"""The data that crosses the engine's boundary: what to generate, what comes back, and what an engine offers.

Kept apart from the engine so that the pipeline, the guard, benchmarks and an
HTTP engine can share it without importing llama.cpp.
"""

from __future__ import annotations

import threading
from collections.abc import Mapping
from dataclasses import dataclass, field
from enum import IntEnum
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal, Protocol

from lsp_server.settings import FimFamily

if TYPE_CHECKING:
    from lsp_server.inference.stream import GenerationStream

StopReason = Literal["eos", "length", "stop", "cancelled", "time_budget", "error"]


class Priority(IntEnum):
    """How urgent a generation is: background work (pre-evaluation, speculation) yields to a request."""

    BACKGROUND = 0
    REQUEST = 1


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
class Partial:
    """What a generation still running has produced so far (one item of a ``GenerationStream``)."""

    text: str
    """The text so far, without an end that could still become a stop string."""

    token_logprobs: list[float]
    n_tokens: int
    elapsed_s: float
    """Since the call, prompt included."""

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

    priority: Priority = Priority.REQUEST
    """Background work (a speculated suggestion) stops as soon as a request is waiting for the engine."""

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
    failover: str | None = None
    """A remote rung whose first server failed: which failed, why, and which answered (None: no failover)."""

    @property
    def decode_tokens_per_s(self) -> float:
        """Delivered tokens/s after the first token (the figure the latency guard watches)."""
        if self.n_generated_tokens <= 1 or self.decode_s <= 0:
            return 0.0
        return (self.n_generated_tokens - 1) / self.decode_s


class Vocabulary(Protocol):
    """What a loaded model tells about its vocabulary, for the prompt template."""

    @property
    def fim_tokens(self) -> Mapping[str, str]:
        """Text of the FIM tokens llama.cpp recognised, by role (``pre``, ``suf``, ``mid``, ``pad``, ``rep``,
        ``sep``)."""
        ...

    def has_token(self, text: str) -> bool:
        """Whether ``text`` is one special token of the vocabulary."""
        ...


class AsyncEngine(Protocol):
    """What the rest of the server needs from an engine (llama.cpp in-process, or an HTTP server)."""

    # Read-only members (properties here, plain attributes in the engines).
    @property
    def name(self) -> str: ...

    @property
    def label(self) -> str:
        """What the status line calls this engine."""
        ...

    @property
    def model_path(self) -> Path | None:
        """The GGUF file of an in-process engine; None for a server."""
        ...

    @property
    def metadata(self) -> Mapping[str, str]: ...

    @property
    def fim_family(self) -> FimFamily | None:
        """The engine's own FIM template setting (a team endpoint's ``fimTemplate``); None: from the vocabulary."""
        ...

    @property
    def vocabulary(self) -> Vocabulary | None:
        """The model's vocabulary where it is at hand (in-process); None for a server."""
        ...

    @property
    def prompt_tokens_per_s(self) -> float | None:
        """Prompt evaluation speed measured at load; None where unknown."""
        ...

    def stream(self, request: GenerationRequest, cancel: CancelToken | None = None) -> GenerationStream:
        """Start generating: partial outputs as they come, ``cancel()``/``stop(cut)``, then ``await result()``."""
        ...

    async def generate(
        self, request: GenerationRequest, cancel: CancelToken | None = None
    ) -> GenerationResult:
        """``stream(request, cancel)`` to its end."""
        ...

    async def prewarm(self, request: GenerationRequest) -> bool:
        """Evaluate the request's prompt into the KV cache so a following request that shares its prefix starts
        fast (nothing is generated); returns whether all of it is evaluated now (False: it gave way to a
        request, or nothing could be sent)."""
        ...

    def count_tokens(self, text: str) -> int: ...

    def set_n_threads(self, n: int) -> None:
        """Threads for the next request (the guard's knob; a server decides its own)."""
        ...

    def stats(self) -> dict[str, Any]: ...

    def close(self) -> None: ...
