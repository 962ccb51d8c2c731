"""Typed settings for every part of Gearshift.

One pydantic model per section, each field with a default and a docstring.
Editors send camelCase (``initializationOptions`` and
``workspace/didChangeConfiguration``); Python code uses snake_case.  Settings
are parsed once per change and passed down: no module reads globals.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    SecretStr,
    ValidationError,
    ValidationInfo,
    field_validator,
    model_validator,
)
from pydantic.alias_generators import to_camel

KvCacheType = Literal["f16", "q8_0", "q4_0"]
FimFamily = Literal["qwen", "starcoder", "codellama", "deepseek", "codestral", "plain"]


class _Section(BaseModel):
    model_config = ConfigDict(
        alias_generator=to_camel,
        populate_by_name=True,
        extra="forbid",
        use_attribute_docstrings=True,
        validate_assignment=True,
    )


class ModelSettings(_Section):
    default_model: str = "qwen2.5-coder-0.5b"
    """Catalog name of the model used for inline completion at the top of the ladder."""

    model_path: Path | None = None
    """A local GGUF file to use instead of the catalog model (any FIM-capable code model)."""

    fim_template: FimFamily | None = None
    """Override the fill-in-the-middle template; by default it is chosen from GGUF metadata."""

    ladder: list[str] = Field(default_factory=lambda: ["qwen2.5-coder-1.5b", "qwen2.5-coder-0.5b", "smollm2-135m"])
    """Models from largest to smallest the latency guard may shift between; those not installed are skipped."""


class EngineSettings(_Section):
    n_ctx: int = Field(default=4096, gt=0)
    """Context length in tokens; must not exceed what the model was trained for."""

    n_threads: int | None = Field(default=None, gt=0)
    """Decode threads; by default the number of physical cores available to this process."""

    n_batch: int = Field(default=512, gt=0)
    """Tokens evaluated per llama_decode call while processing a prompt."""

    kv_cache_type_k: KvCacheType = "f16"
    """Element type of the K cache (q8_0 halves its memory with little quality loss)."""

    kv_cache_type_v: KvCacheType = "f16"
    """Element type of the V cache (q4_0 quarters it; quantized V needs flash attention, turned on for it)."""

    flash_attention: bool = True
    """Use llama.cpp's flash-attention kernel (forced on for a quantized V cache); it also makes a token's
    logits independent of the batch it was evaluated in, which keeps KV reuse and prompt lookup exact."""

    use_mmap: bool = False
    """Memory-map the weights instead of reading them into memory.  Mapped pages are page cache the kernel
    may reclaim while the editor idles; the next request then stalls for seconds re-reading them."""

    weight_repack: bool = False
    """Let llama.cpp repack Q4_0/Q4_K weights for its AVX2 kernels: a little faster on those models, but
    batches of 4+ tokens then round differently from single tokens, so exact prompt lookup drafts less."""

    prompt_lookup: bool = True
    """Speculate with drafts copied from n-grams of the prompt, verified in one batch (same output, greedy)."""

    lookup_ngram_max: int = Field(default=4, gt=0)
    """Longest n-gram matched against the prompt when looking up a draft."""

    lookup_ngram_min: int = Field(default=2, gt=0)
    """Shortest n-gram that may produce a draft."""

    lookup_draft_max: int = Field(default=8, gt=0)
    """Most draft tokens verified in one batch."""

    lookup_exact: bool = True
    """Verify drafts only in batch sizes llama.cpp computes bit-identically to one-token decoding
    (measured when the model loads), so prompt lookup never changes the output."""

    document_kv_mib: int = Field(default=256, ge=0)
    """Host memory (MiB) for the evaluated prompts of recently used documents, kept per model so that going
    back to a file evaluates only what changed; least recently used dropped first; 0 keeps none.  A document
    costs about its prompt tokens × the KV bytes per token (`gearshift fit` shows how many fit)."""

    shift_reuse_min_tokens: int = Field(default=64, ge=0)
    """When the prompt window's start moves, cached runs of at least this many tokens keep their KV through a
    position shift instead of being evaluated again (llama-server's ``--cache-reuse``); 0 evaluates them again.
    A shifted answer is close to a cold evaluation's, not bit-identical."""

    @model_validator(mode="after")
    def _ngram_range(self) -> EngineSettings:
        if self.lookup_ngram_min > self.lookup_ngram_max:
            raise ValueError(
                f"lookupNgramMin ({self.lookup_ngram_min}) must not exceed lookupNgramMax ({self.lookup_ngram_max})"
            )
        return self


class CompletionSettings(_Section):
    enabled: bool = True
    """Offer inline completions at all."""

    max_tokens: int = Field(default=64, gt=0)
    """Most tokens generated for one suggestion."""

    max_lines: int = Field(default=8, gt=0)
    """Most lines in a multi-line suggestion."""

    prefix_tokens: int = Field(default=1024, gt=0)
    """Tokens of text before the cursor put in the prompt."""

    suffix_tokens: int = Field(default=128, ge=0)
    """Tokens of text after the cursor put in the prompt.  Typing re-uses their KV cache (see ``middle_chars``);
    they are evaluated again when the cursor moves elsewhere, so they cost latency there."""

    cold_prompt_ms: int = Field(default=1000, ge=0)
    """About the longest a prompt that shares nothing with the KV cache (a file just opened, a jump elsewhere) may
    take to evaluate: such a request gets a window sized from the model's prompt speed measured on this machine
    (128 tokens at least), while the full window (``prefix_tokens`` + ``suffix_tokens``) is evaluated in the
    background and used by the keystrokes after it once the engine holds it.  0: always the full window."""

    middle_chars: int = Field(default=1024, ge=0)
    """Most characters typed since a stable split point that go after the FIM middle marker, so that typing only
    appends to the prompt and each keystroke re-uses the KV cache of the suffix (0: the classic layout, where a
    keystroke re-evaluates the whole suffix)."""

    time_budget_ms: int = Field(default=2000, gt=0)
    """Generation stops this long after the prompt is evaluated and returns what it has (cut to a clean line);
    a prompt that takes long is not cut short (the next keystroke cancels the request instead)."""

    first_answer_ms: int = Field(default=400, gt=0)
    """A suggestion still being generated after this long is shown as far as it got (post-processed like any
    other); generation goes on up to ``time_budget_ms`` and the whole suggestion lands in the typed-ahead cache,
    so typing or accepting its start shows the rest at once.  At or above ``time_budget_ms``: never early."""

    min_confidence: float = Field(default=0.25, ge=0.0, le=1.0)
    """Suggestions whose confidence (from token probabilities) is below this are hidden."""

    cache_size: int = Field(default=256, gt=0)
    """Suggestions kept for typed-ahead hits."""

    cache_ttl_s: float = Field(default=120.0, gt=0)
    """How long a kept suggestion may be served from the cache."""

    prewarm: bool = True
    """Evaluate the document prefix on didOpen and when idle so the next keystroke is fast."""

    speculate_next: bool = True
    """After a suggestion is shown and the model is idle, compute the one that follows its acceptance, so that
    accepting shows the next suggestion at once (pre-empted by any keystroke; in-process models only)."""

    cross_file_tokens: int = Field(default=0, ge=0)
    """Tokens of context from other recently used files (their signatures, files this one imports first) placed
    before the file in the prompt; 0 turns it off. Never from ``cloud.neverSend`` files."""


class GuardSettings(_Section):
    enabled: bool = True
    """Shift to cheaper decoding or a smaller model when delivered speed drops, and back when it returns."""

    inline_target_tok_s: float = Field(default=40.0, gt=0)
    """Delivered tokens/s inline completion must hold."""

    chat_target_tok_s: float = Field(default=15.0, gt=0)
    """Delivered tokens/s explain and refactor must hold."""

    window: int = Field(default=4, gt=0)
    """Requests in the rolling measurement of each tier."""

    slow_requests_to_downshift: int = Field(default=3, gt=0)
    """Consecutive requests under target that trigger a downshift."""

    upshift_headroom: float = Field(default=1.3, gt=1.0)
    """Speed must exceed target times this (on the lower tier, scaled) before probing upward."""

    min_dwell_s: float = Field(default=5.0, ge=0)
    """Least time between two shifts, so the guard does not oscillate."""

    probe_interval_s: float = Field(default=3.0, gt=0)
    """How often a downshifted guard measures whether the upper tier would hold the target again."""

    watch_cpu: bool = True
    """Read how many cores other processes leave free (Linux ``/proc/stat``): rungs needing more threads than
    that are not tried, and cores coming free again is what starts probing upward from a fewer-threads rung."""

    keep_next_tier_loaded: bool = True
    """Keep the next smaller tier loaded when memory allows, so a downshift has no cold start."""

    quality_floor: float = Field(default=0.75, ge=0.0, le=1.0)
    """Least measured suggestion quality a rung may have, as a share of the configured model's, for the guard to
    shift to it: a faster wrong or empty suggestion is no win.  Scores come from this repository's
    ``gearshift eval`` report, else the shipped HumanEval table; unmeasured rungs are not judged.  0: no floor."""

    single_line_target_ms: int = Field(default=1000, ge=0)
    """A single-line suggestion whose line is finished within this long of the request counts as fast enough,
    whatever its tokens/s: there the person waits for the line, not for a rate.  0: judge by tokens/s only."""


class CloudSettings(_Section):
    enabled: bool = True
    """Allow escalation to the cloud model at all (critical tasks and explicit escalation)."""

    local_only: bool = False
    """Nothing ever leaves the machine; critical tasks are answered locally and labelled so."""

    model: str = "claude-sonnet-4-6"
    """Anthropic model used for critical tasks and escalation."""

    api_key: SecretStr | None = None
    """Anthropic API key; by default ANTHROPIC_API_KEY from the environment."""

    base_url: str | None = None
    """Anthropic API base URL (a proxy or a test server); by default the SDK's."""

    timeout_s: float = Field(default=60.0, gt=0)
    """Timeout of one cloud request."""

    max_retries: int = Field(default=2, ge=0)
    """Retries with backoff on 429 and 5xx responses."""

    max_tokens: int = Field(default=1024, gt=0)
    """Most tokens in a cloud answer."""

    critical_globs: list[str] = Field(default_factory=list)
    """Files matching these globs always go to the cloud for code actions."""

    never_send: list[str] = Field(
        default_factory=lambda: [
            "**/.env", "**/.env.*", "**/*.pem", "**/*.key", "**/id_rsa*", "**/id_ed25519*",
            "**/*credentials*", "**/*secret*", "**/.netrc", "**/.npmrc", "**/.pypirc",
            "**/*.p12", "**/*.pfx", "**/*.jks", "**/*.keystore", "**/.htpasswd",
            "**/secrets/**", "**/.secrets/**", "**/credentials/**", "**/private/**", "**/keys/**",
            "**/private_keys/**", "**/.ssh/**", "**/.aws/**", "**/.gnupg/**", "**/.kube/**",
            "**/.docker/config.json",
        ]
    )
    """Files matching these globs are never sent, whatever else says so.

    Case-insensitive.  A glob that matches a folder covers every file in it, at any depth (as in
    ``.gitignore``): ``**/*secret*`` keeps ``secrets/settings.py`` local, ``config/*`` and ``config/``
    keep ``config/prod/db.yaml`` local.  Setting this replaces the defaults: copy the ones to keep.
    """

    input_cost_per_mtok: float = Field(default=3.0, ge=0)
    """US dollars per million input tokens, for the session cost meter."""

    output_cost_per_mtok: float = Field(default=15.0, ge=0)
    """US dollars per million output tokens, for the session cost meter."""


EndpointApi = Literal["llama-server", "openai"]


class EndpointSettings(_Section):
    """A shared inference server used as a rung of the ladder (name it in ``models.ladder``)."""

    name: str = Field(min_length=1, pattern=r"^[A-Za-z0-9][A-Za-z0-9_.-]*$")
    """How ``models.ladder`` refers to this endpoint, e.g. ``team``; must not be a catalog model name."""

    urls: list[str] = Field(min_length=1)
    """Base URLs of the servers behind this rung (``http://gpu-box:8080``). Requests for one document stick to one
    URL while it answers (its KV cache holds that document); the next URL takes over when it fails."""

    api: EndpointApi = "llama-server"
    """``llama-server``: llama.cpp's ``/infill`` (FIM built by the server from the model's own tokens).
    ``openai``: any OpenAI-compatible ``/v1/completions`` (vLLM, Ollama, gateways), the FIM prompt sent as text."""

    model: str | None = None
    """Model name sent to an OpenAI-compatible server (vLLM needs it); llama-server serves its one model."""

    fim_template: FimFamily | None = None
    """FIM template of the served model for ``api: openai``; by default guessed from the model's name."""

    api_key: SecretStr | None = None
    """Bearer token for the endpoint; prefer ``api_key_env``. Never logged."""

    api_key_env: str | None = None
    """Name of an environment variable holding the bearer token."""

    allow_when_local_only: bool = False
    """Use this endpoint even with ``cloud.localOnly``: only for a server you control (loopback, your LAN)."""

    connect_timeout_s: float = Field(default=2.0, gt=0)
    """Seconds to open a connection; past it the endpoint counts as down and the next rung answers."""

    read_timeout_s: float = Field(default=10.0, gt=0)
    """Seconds to wait for the next streamed piece of an answer."""


class ActionSettings(_Section):
    max_tokens: int = Field(default=384, gt=0)
    """Most tokens in a local explain or refactor answer."""

    max_selection_tokens: int = Field(default=2048, gt=0)
    """Selections longer than this are refused with a message, never silently truncated."""


class GearshiftSettings(_Section):
    models: ModelSettings = Field(default_factory=ModelSettings)
    """Which models to run."""

    engine: EngineSettings = Field(default_factory=EngineSettings)
    """How llama.cpp runs them."""

    completion: CompletionSettings = Field(default_factory=CompletionSettings)
    """Inline completion behaviour."""

    guard: GuardSettings = Field(default_factory=GuardSettings)
    """Latency guard."""

    cloud: CloudSettings = Field(default_factory=CloudSettings)
    """Cloud escalation and privacy."""

    actions: ActionSettings = Field(default_factory=ActionSettings)
    """Explain and refactor code actions."""

    endpoints: list[EndpointSettings] = Field(default_factory=list)
    """Shared inference servers (team engines); each is a ladder rung once ``models.ladder`` names it."""

    @field_validator("*", mode="before")
    @classmethod
    def _none_is_default(cls, value: Any, info: ValidationInfo) -> Any:
        # Editors send null for a section the user left empty.
        if value is None:
            return [] if info.field_name == "endpoints" else {}
        return value


class SettingsError(ValueError):
    """Settings that failed validation; the message names every bad field."""


def parse_settings(raw: Any, base: GearshiftSettings | None = None) -> GearshiftSettings:
    """Parse settings sent by an editor, merged over ``base``.

    ``raw`` may be the whole object or wrapped in ``{"gearshift": {...}}`` as
    VS Code sends it.  Raises SettingsError with one readable message.
    """
    if raw is None:
        return base or GearshiftSettings()
    if not isinstance(raw, dict):
        raise SettingsError(f"Gearshift settings must be an object, got {type(raw).__name__}")
    if "gearshift" in raw and isinstance(raw["gearshift"], dict):
        raw = raw["gearshift"]
    merged: dict[str, Any] = base.model_dump(by_alias=True) if base else {}
    for key, value in raw.items():
        if isinstance(value, dict) and isinstance(merged.get(key), dict):
            merged[key] = {**merged[key], **value}
        else:
            merged[key] = value
    try:
        return GearshiftSettings.model_validate(merged)
    except ValidationError as exc:
        problems = "; ".join(
            f"{'.'.join(str(p) for p in err['loc'])}: {err['msg']}" for err in exc.errors()
        )
        raise SettingsError(f"Invalid Gearshift settings ({problems}); keeping the previous settings") from None
