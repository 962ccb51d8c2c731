"""The memory a model needs under llama.cpp, computed from the GGUF file's own metadata (never a hand table).

* weights: the sum of the tensors' byte sizes (ggml block sizes), the model buffer llama.cpp allocates.  The
  engine reads them into that buffer when the model loads (``engine.useMmap`` is off by default: mapped pages
  are page cache the kernel may reclaim while the editor idles), so they are resident in full from the start;
  llama.cpp then reports a "CPU model buffer", or with ``useMmap`` a "CPU_Mapped" one that counts once read.
  With ``engine.weightRepack`` (off by default) llama.cpp on x86 also repacks some quantized tensors (Q4_0,
  Q4_K, IQ4_NL) into a buffer of their size (Qwen2.5-Coder-1.5B: 597 MiB; the 0.5B: 28 MiB).
* KV cache: ``layers × kv_heads × n_ctx × (key_length × bytes(K) + value_length × bytes(V))``,
  i.e. 2 × layers × kv_heads × head_dim × n_ctx × bytes when K and V agree,
  with n_ctx rounded up to a multiple of 256 as llama.cpp does.  Bytes per
  element: f16 = 2, q8_0 = 34/32, q4_0 = 18/32.  Sliding-window layers
  (Gemma) would need less: this is an upper bound for them.
* compute buffer: llama.cpp reserves the worst-case graph of one ubatch
  (the engine sets n_ubatch = n_batch), and its allocator reuses memory, so
  the buffer is the larger of two phases, in f32:

  - logits phase: ``4 × n_ubatch × (n_vocab + 3 × n_embd)`` (``2 × n_embd`` with flash attention);
  - attention phase without flash attention (the KQ matrix and its mask):
    ``4 × n_ubatch × (n_ctx × (n_head + 1) + n_ff)``; with flash attention
    only the f16 mask, ``2 × n_ubatch × n_ctx``, plus ``4 × n_ubatch × n_ff``;

  plus the logits output buffer, ``4 × n_vocab``.  Checked against what
  llama.cpp (llama-cpp-python 0.3.36) reports for SmolLM2-135M and
  Qwen2.5-Coder 0.5B/1.5B at 4k-32k context, with and without flash
  attention (within 1%).  llama.cpp's default flash-attention mode, auto,
  turns it on for the CPU backend, so ``--flash-attn auto`` counts it on.

``gearshift fit`` prints these figures per model; ``TierManager.fits_alongside`` asks the same question before it
keeps a second tier loaded.
"""

from __future__ import annotations

from pathlib import Path

from pydantic import computed_field

from lsp_server.errors import EngineError, ModelError
from lsp_server.inference.gguf import read_gguf
from lsp_server.inference.gguf_info import GGML_TYPES, GgufInfo
from lsp_server.inference.machine import MachineMemory
from lsp_server.settings import CompletionSettings, EngineSettings
from lsp_server.wire import WireModel

CACHE_TYPES = ("f16", "q8_0", "q4_0")
CONTEXT_PADDING = 256


def cache_bytes_per_element(cache_type: str) -> float:
    """Bytes per element of a KV cache type, from the ggml block size (f16 = 2, q8_0 = 34/32, q4_0 = 18/32)."""
    for name, block_elements, block_bytes in GGML_TYPES.values():
        if name.lower() == cache_type.lower():
            return block_bytes / block_elements
    raise EngineError(f"unknown KV cache type {cache_type!r}; use one of {', '.join(CACHE_TYPES)}")


def padded_context(n_ctx: int) -> int:
    """The KV cache size llama.cpp allocates for ``n_ctx``: rounded up to a multiple of 256."""
    return -(-n_ctx // CONTEXT_PADDING) * CONTEXT_PADDING


def kv_cache_bytes(info: GgufInfo, n_ctx: int, type_k: str = "f16", type_v: str = "f16") -> tuple[int, int]:
    """Bytes of the K cache and of the V cache for ``n_ctx`` tokens (padded as llama.cpp pads it)."""
    cells = padded_context(n_ctx)
    kv_heads = sum(info.head_count_kv_per_layer())  # summed over layers
    k = kv_heads * info.key_length * cells * cache_bytes_per_element(type_k)
    v = kv_heads * info.value_length * cells * cache_bytes_per_element(type_v)
    return round(k), round(v)


def compute_buffer_bytes(info: GgufInfo, n_ctx: int, n_batch: int = 512, flash_attn: bool = False) -> int:
    """llama.cpp's CPU compute buffer plus logits output buffer (formula in the module docstring)."""
    ubatch = n_batch
    cells = padded_context(n_ctx)
    n_vocab = info.vocab_size or 0
    n_embd = info.embedding_length
    n_ff = info.feed_forward_length
    if flash_attn:
        logits_phase = 4 * ubatch * (n_vocab + 2 * n_embd)
        attention_phase = 2 * ubatch * cells + 4 * ubatch * n_ff
    else:
        logits_phase = 4 * ubatch * (n_vocab + 3 * n_embd)
        attention_phase = 4 * ubatch * (cells * (info.head_count + 1) + n_ff)
    return max(logits_phase, attention_phase) + 4 * n_vocab


def bytes_read_per_token(info: GgufInfo) -> int:
    """Weight bytes one decode step reads: all, except the embedding table when the output matrix is separate."""
    total = info.weight_bytes
    embedding = info.tensor("token_embd.weight")
    if info.tensor("output.weight") is not None and embedding is not None and embedding.n_bytes:
        total -= embedding.n_bytes  # only one row of it is read per token
    return total


class FitOptions(WireModel):
    """The set-up a model is sized (and, with ``--measure``, timed) under."""

    n_ctx: int = 4096
    cache_type_k: str = "f16"
    cache_type_v: str = "f16"
    n_batch: int = 512
    flash_attn: bool = False
    target_tok_s: float = 40.0
    n_threads: int | None = None
    """Decode threads for --measure; None means the engine's default (the CPUs this process may use)."""
    use_mmap: bool = EngineSettings().use_mmap
    """Whether the engine memory-maps the weights (``engine.useMmap``) or reads them into memory."""
    document_kv_mib: int = EngineSettings().document_kv_mib
    """Host memory for saved KV states of recently used documents (``engine.documentKvMiB``), per model."""
    window_tokens: int = CompletionSettings().prefix_tokens + CompletionSettings().suffix_tokens
    """Prompt tokens one document's saved state holds at most (``completion.prefixTokens`` + ``suffixTokens``)."""

    @classmethod
    def for_engine(cls, engine: EngineSettings) -> FitOptions:
        """The set-up the engine runs with these settings."""
        return cls(
            n_ctx=engine.n_ctx, cache_type_k=engine.kv_cache_type_k, cache_type_v=engine.kv_cache_type_v,
            n_batch=engine.n_batch, n_threads=engine.n_threads, use_mmap=engine.use_mmap,
            # as the engine decides it: llama.cpp reads a quantized V cache only inside the flash-attention kernel
            flash_attn=engine.flash_attention or engine.kv_cache_type_v != "f16",
            document_kv_mib=engine.document_kv_mib,
        )


class ModelFit(WireModel):
    """One model's memory and speed figures, and the verdict `gearshift fit` gives it."""

    name: str
    path: str
    architecture: str
    layers: int
    kv_heads: int
    head_dim_k: int
    head_dim_v: int
    n_embd: int
    n_vocab: int
    trained_context: int
    context_cells: int
    """KV cells llama.cpp allocates for the requested context (rounded up to 256)."""

    weight_bytes: int
    kv_k_bytes: int
    kv_v_bytes: int
    compute_bytes: int
    document_kv_bytes: int = 0
    """The budget for saved KV states of recently used documents (``engine.documentKvMiB``); in the total."""
    document_state_bytes: int = 0
    """One document's saved KV state at the full prompt window."""
    documents_kept: int = 0
    """How many documents' states at the full window the budget holds."""
    total_bytes: int
    bytes_per_token: int
    context_exceeds_trained: bool
    fits_ram: bool | None
    fits_vram: bool | None
    estimated_tok_s: float | None = None
    measured_tok_s: float | None = None
    measured_rss_growth_bytes: int | None = None
    measure_error: str | None = None
    eval_exact: float | None = None
    """Exact match of this model's suggestions on this repository (its `gearshift eval` report); None: not run."""

    eval_pass_at_1: float | None = None
    """pass@1 by the repository's own tests (`gearshift eval --tests`); None: not run."""

    verdict: str = ""
    """Why this model was or was not recommended."""

    @computed_field  # type: ignore[prop-decorator]  # pydantic's documented form
    @property
    def kv_bytes(self) -> int:
        return self.kv_k_bytes + self.kv_v_bytes

    @computed_field  # type: ignore[prop-decorator]  # pydantic's documented form
    @property
    def tok_s(self) -> float | None:
        return self.measured_tok_s if self.measured_tok_s is not None else self.estimated_tok_s

    @computed_field  # type: ignore[prop-decorator]  # pydantic's documented form
    @property
    def tok_s_source(self) -> str:
        return "measured" if self.measured_tok_s is not None else "estimate"


def fit_model(
    name: str,
    path: Path,
    options: FitOptions,
    memory: MachineMemory,
    bandwidth: float | None,
    info: GgufInfo | None = None,
) -> ModelFit:
    """Memory and speed figures for one GGUF file under ``options``."""
    info = info or read_gguf(path)
    try:
        kv_k, kv_v = kv_cache_bytes(info, options.n_ctx, options.cache_type_k, options.cache_type_v)
        compute = compute_buffer_bytes(info, options.n_ctx, options.n_batch, options.flash_attn)
        layers, trained = info.block_count, info.context_length
        kv_heads, head_k, head_v = info.head_count_kv, info.key_length, info.value_length
        n_embd = info.embedding_length
    except ModelError as exc:
        raise ModelError(f"{name}: cannot size this model ({exc})") from None
    weights = info.weight_bytes
    # A saved state holds the window's cells only: the per-cell share of the allocated cache, times the window.
    state = (kv_k + kv_v) * min(options.window_tokens, options.n_ctx) // padded_context(options.n_ctx)
    document_budget = options.document_kv_mib << 20
    total = weights + kv_k + kv_v + compute + document_budget
    per_token = bytes_read_per_token(info) + kv_k + kv_v
    fits_vram = None
    if memory.gpus:
        fits_vram = any(total <= gpu.free_bytes for gpu in memory.gpus)
    return ModelFit(
        name=name,
        path=str(path),
        architecture=info.architecture,
        layers=layers,
        kv_heads=kv_heads,
        head_dim_k=head_k,
        head_dim_v=head_v,
        n_embd=n_embd,
        n_vocab=info.vocab_size or 0,
        trained_context=trained,
        context_cells=padded_context(options.n_ctx),
        weight_bytes=weights,
        kv_k_bytes=kv_k,
        kv_v_bytes=kv_v,
        compute_bytes=compute,
        document_kv_bytes=document_budget,
        document_state_bytes=state,
        documents_kept=document_budget // state if state else 0,
        total_bytes=total,
        bytes_per_token=per_token,
        context_exceeds_trained=options.n_ctx > trained,
        fits_ram=None if memory.ram_available_bytes is None else total <= memory.ram_available_bytes,
        fits_vram=fits_vram,
        estimated_tok_s=bandwidth / per_token if bandwidth else None,
    )


def fits_in_ram(path: Path, engine: EngineSettings, available_bytes: int | None) -> bool:
    """Whether the model at ``path``, run with ``engine``, needs no more than ``available_bytes`` (False unknown)."""
    if available_bytes is None:
        return False
    memory = MachineMemory(ram_total_bytes=None, ram_available_bytes=available_bytes)
    fit = fit_model(path.name, path, FitOptions.for_engine(engine), memory, bandwidth=None)
    return bool(fit.fits_ram)
