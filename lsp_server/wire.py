"""The one base for everything Gearshift puts on the wire or prints with ``--json``: camelCase keys.

Python code uses snake_case field names; the editors (and scripts reading ``--json``) see camelCase, the LSP
convention.  A model built on ``WireModel`` gets its keys from the field names, so no key is spelled by hand.
The ``gearshift/status`` shape of a finished completion lives here too: the server, the VS Code extension and the
Neovim plugin all read it (docs/protocol.md).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Literal

from pydantic import BaseModel, ConfigDict, Field
from pydantic.alias_generators import to_camel

if TYPE_CHECKING:  # the service loads the pipeline; the wire shapes must not
    from lsp_server.completion.service import CompletionOutcome


class WireModel(BaseModel):
    """snake_case in Python, camelCase when dumped; built from either spelling."""

    model_config = ConfigDict(
        alias_generator=to_camel, populate_by_name=True, serialize_by_alias=True, use_attribute_docstrings=True
    )

    def to_json(self) -> dict[str, Any]:
        """The JSON-ready dict, camelCase keys (an optional key marked ``omit_when_none`` left out when None)."""
        return self.model_dump(mode="json")


def omit_when_none(**kwargs: Any) -> Any:
    """A field whose key is left out of the wire while it is None (a key that only some messages carry)."""
    return Field(default=None, exclude_if=lambda value: value is None, **kwargs)


class CompletionFigures(WireModel):
    """One completion's tier and speed figures, as both the status notification and `gearshift complete` say them."""

    tier: str
    confidence: float | None
    tokens_per_second: float | None
    time_to_first_token_ms: float | None
    latency_ms: float
    """Rounded to 0.1 ms."""
    generated_tokens: int


def _figures(outcome: CompletionOutcome) -> dict[str, Any]:
    """``CompletionFigures``' fields from an outcome."""
    return {
        "tier": outcome.tier, "confidence": outcome.confidence, "tokens_per_second": outcome.tokens_per_s,
        "time_to_first_token_ms": outcome.time_to_first_token_ms, "latency_ms": round(outcome.latency_ms, 1),
        "generated_tokens": outcome.generated_tokens,
    }


class PipelineFacts(WireModel):
    """What the pipeline says about one completion besides its figures; each key is sent only when it applies."""

    prompt_tokens: int | None = omit_when_none()
    """Tokens of the request's prompt (none for a cache hit or a request that never reached the engine)."""
    reused_tokens: int | None = omit_when_none()
    """Of those, how many were in the KV cache already: what cursor hints and prewarm are meant to raise."""
    bounded_window: Literal[True] | None = omit_when_none()
    """The request made do with the window ``completion.coldPromptMs`` bounds (the engine held too little of the
    full one); the full window is evaluated in the next pause."""
    context_chunks: int | None = omit_when_none()
    """Other files' outlines the prompt carried (``completion.crossFileTokens``)."""
    remote_error: str | None = omit_when_none()
    """Why the team endpoint of the request's rung failed; the request was answered by the rung below."""
    remote_failover: str | None = omit_when_none()
    """A server of the team rung failed and another of its servers answered: which, why, and which answered."""
    stopped_by: str | None = omit_when_none()
    """The stop rule that ended the generation while it streamed (for debugging)."""
    rules: list[str] | None = omit_when_none()
    """The post-processing rules that changed the answer, in order (for debugging)."""
    uri: str | None = omit_when_none()
    """A background status (``background``): the document it is for."""
    version: int | None = omit_when_none()
    """A background status: the document version it is for (an editor still at it asks again, from the cache)."""


class CompletionStatus(CompletionFigures, PipelineFacts):
    """``gearshift/status`` after a completion (a foreground request, or the rest of one answered early)."""

    state: Literal["ready"] = "ready"
    cache_hit: bool
    stop_reason: str | None
    hidden: str | None = omit_when_none()
    """Why nothing is shown although the model answered."""
    background: Literal[True] | None = omit_when_none()
    """The whole generation of a request answered early (``completion.firstAnswerMs``), finished after its answer."""

    @classmethod
    def of(cls, outcome: CompletionOutcome) -> CompletionStatus:
        return cls(
            **_figures(outcome), **dict(outcome.facts), cache_hit=outcome.cache_hit, stop_reason=outcome.stop_reason,
            hidden=outcome.hidden_reason or None, background=True if outcome.background else None,
        )


class CompletionResult(CompletionFigures):
    """`gearshift complete --json`: the suggestion and its figures."""

    suggestion: str | None
    hidden_reason: str | None

    @classmethod
    def of(cls, outcome: CompletionOutcome) -> CompletionResult:
        return cls(**_figures(outcome), suggestion=outcome.suggestion, hidden_reason=outcome.hidden_reason)
