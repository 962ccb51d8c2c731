"""`gearshift fit`: which model fits this machine's memory and holds the tokens/s target.

For every installed catalog model (and any GGUF given with ``--model``) the
memory llama.cpp will need is computed from the file's own metadata, never
from a hand-written table:

* weights: the sum of the tensors' byte sizes (ggml block sizes), which is
  what llama.cpp maps ("CPU_Mapped model buffer size").  On x86 it also
  repacks some quantized tensors (Q4_0, Q4_K, IQ4_NL) into an anonymous
  buffer of the same size; their mapped originals are clean page cache the
  kernel can reclaim, so the working set stays about the weights, though the
  process's RSS right after loading counts both (Qwen2.5-Coder-1.5B: 597 MiB
  repacked, RSS 1.24x fit's total; the 0.5B repacks 28 MiB).
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

Tokens/s is either an estimate or measured.  The estimate is memory-bound
decoding: every token reads the weights it uses (all of them, except the
token-embedding table when the model has a separate output matrix) plus the
KV cache at a full context, so ``tok/s ≈ read bandwidth / bytes per token``,
with read bandwidth measured here by summing a 256 MB array on one thread.
It is an upper bound: on a few CPU cores decoding is partly compute-bound
(on a 2-vCPU VM llama.cpp reached 50-65% of it), and it knows nothing of
other processes competing for the cores.  ``--measure`` loads each model
with the llama.cpp engine and times a greedy decode instead.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import subprocess
import sys
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from lsp_server.errors import EngineError, GearshiftError, ModelError
from lsp_server.inference.gguf import GGML_TYPES, GgufInfo, read_gguf
from lsp_server.settings import EngineSettings, GuardSettings

CACHE_TYPES = ("f16", "q8_0", "q4_0")
CONTEXT_PADDING = 256
BANDWIDTH_BYTES = 256 << 20
MEASURE_PROMPTS = (
    "import os\n\n\ndef list_python_files(root):\n",
    "// Compute the greatest common divisor of two integers.\nfunction gcd(a, b) {\n",
    "Write a short story about a robot who learns to paint.\n",
)
MEASURE_TOKENS = 32


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


# --- the machine ------------------------------------------------------------------------------------


@dataclass
class GpuMemory:
    index: int
    name: str
    total_bytes: int
    free_bytes: int


@dataclass
class MachineMemory:
    ram_total_bytes: int | None
    ram_available_bytes: int | None
    """MemAvailable, lowered to the cgroup's remaining limit when this process runs in a smaller one."""

    gpus: list[GpuMemory] = field(default_factory=list)
    gpu_offload: bool = False
    """llama.cpp here was built with a GPU backend, so a model may live in VRAM instead of RAM."""


def _meminfo() -> dict[str, int]:
    values: dict[str, int] = {}
    try:
        with open("/proc/meminfo") as handle:
            for line in handle:
                key, _, rest = line.partition(":")
                parts = rest.split()
                if parts and parts[0].isdigit():
                    values[key] = int(parts[0]) * (1024 if parts[1:2] == ["kB"] else 1)
    except OSError:
        pass
    return values


def _cgroup_room() -> int | None:
    """Bytes this cgroup may still allocate (v2, then v1), or None without a limit."""
    for limit_file, usage_file in (
        ("/sys/fs/cgroup/memory.max", "/sys/fs/cgroup/memory.current"),
        ("/sys/fs/cgroup/memory/memory.limit_in_bytes", "/sys/fs/cgroup/memory/memory.usage_in_bytes"),
    ):
        try:
            limit_text = Path(limit_file).read_text().strip()
            usage = int(Path(usage_file).read_text().strip())
        except (OSError, ValueError):
            continue
        if limit_text == "max" or not limit_text.isdigit() or int(limit_text) >= 1 << 60:
            return None
        return max(int(limit_text) - usage, 0)
    return None


def nvidia_gpus() -> list[GpuMemory]:
    """Memory of each NVIDIA GPU from nvidia-smi; empty when there is none (or no driver)."""
    exe = shutil.which("nvidia-smi")
    if exe is None:
        return []
    try:
        out = subprocess.run(
            [exe, "--query-gpu=index,name,memory.total,memory.free", "--format=csv,noheader,nounits"],
            capture_output=True,
            text=True,
            timeout=10,
            check=True,
        ).stdout
    except (OSError, subprocess.SubprocessError):
        return []
    return parse_nvidia_smi(out)


def parse_nvidia_smi(out: str) -> list[GpuMemory]:
    """Rows of ``index, name, memory.total, memory.free`` (MiB, csv, noheader, nounits); bad rows skipped."""
    gpus = []
    for line in out.splitlines():
        fields = [f.strip() for f in line.rsplit(",", 2)]
        head = fields[0].split(",", 1) if fields else []
        if len(fields) != 3 or len(head) != 2:
            continue
        try:
            gpus.append(GpuMemory(int(head[0]), head[1].strip(), int(fields[1]) << 20, int(fields[2]) << 20))
        except ValueError:
            continue
    return gpus


def machine_memory() -> MachineMemory:
    info = _meminfo()
    available = info.get("MemAvailable")
    room = _cgroup_room()
    if room is not None:
        available = room if available is None else min(available, room)
    gpus = nvidia_gpus()
    return MachineMemory(info.get("MemTotal"), available, gpus, bool(gpus) and _llama_gpu_offload())


def _llama_gpu_offload() -> bool:
    try:
        import llama_cpp
    except Exception:  # no llama.cpp, or one that fails to load: then it cannot use the GPU either
        return False
    return bool(llama_cpp.llama_supports_gpu_offload())


def measure_read_bandwidth(n_bytes: int = BANDWIDTH_BYTES, repeats: int = 5) -> float:
    """Memory read bandwidth in bytes/s: the best of ``repeats`` sums over an array of ``n_bytes`` (one thread)."""
    import numpy as np

    array = np.ones(
        n_bytes // 8, dtype=np.float64
    )  # ones, not empty: the pages must be resident before timing
    best = float("inf")
    for _ in range(repeats):
        started = time.perf_counter()
        array.sum()
        best = min(best, time.perf_counter() - started)
    return array.nbytes / best


def rss_bytes() -> int:
    """Resident set size of this process now (file-backed pages of memory-mapped weights included)."""
    try:
        with open("/proc/self/statm") as handle:
            return int(handle.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")
    except (OSError, ValueError, IndexError):
        return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024


# --- per-model figures ------------------------------------------------------------------------------


@dataclass
class FitOptions:
    n_ctx: int = 4096
    cache_type_k: str = "f16"
    cache_type_v: str = "f16"
    n_batch: int = 512
    flash_attn: bool = False
    target_tok_s: float = 40.0
    n_threads: int | None = None
    """Decode threads for --measure; None means the engine's default (the CPUs this process may use)."""


@dataclass
class ModelFit:
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
    total_bytes: int
    bytes_per_token: int
    context_exceeds_trained: bool
    fits_ram: bool | None
    fits_vram: bool | None
    estimated_tok_s: float | None = None
    measured_tok_s: float | None = None
    measured_rss_growth_bytes: int | None = None
    measure_error: str | None = None
    verdict: str = ""
    """Why this model was or was not recommended."""

    @property
    def kv_bytes(self) -> int:
        return self.kv_k_bytes + self.kv_v_bytes

    @property
    def tok_s(self) -> float | None:
        return self.measured_tok_s if self.measured_tok_s is not None else self.estimated_tok_s

    def to_json(self) -> dict[str, Any]:
        data = asdict(self)
        data["kv_bytes"] = self.kv_bytes
        data["tok_s"] = self.tok_s
        data["tok_s_source"] = "measured" if self.measured_tok_s is not None else "estimate"
        return data


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
    total = weights + kv_k + kv_v + compute
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
        total_bytes=total,
        bytes_per_token=per_token,
        context_exceeds_trained=options.n_ctx > trained,
        fits_ram=None if memory.ram_available_bytes is None else total <= memory.ram_available_bytes,
        fits_vram=fits_vram,
        estimated_tok_s=bandwidth / per_token if bandwidth else None,
    )


def measure_model(fit: ModelFit, options: FitOptions) -> None:
    """Load ``fit``'s model with the llama.cpp engine and time a greedy decode; fills the measured fields."""
    try:
        from lsp_server.inference.llama.engine import LlamaEngine
        from lsp_server.inference.types import GenerationRequest
    except ImportError as exc:
        raise EngineError(
            f"--measure needs the llama.cpp engine, which cannot be imported here: {exc}"
        ) from None
    settings = EngineSettings(
        n_ctx=options.n_ctx,
        n_batch=options.n_batch,
        n_threads=options.n_threads,
        kv_cache_type_k=options.cache_type_k,  # type: ignore[arg-type]
        kv_cache_type_v=options.cache_type_v,  # type: ignore[arg-type]
        prompt_lookup=False,  # plain decoding: speculation would measure the prompt, not the model
    )
    rss_before = rss_bytes()
    engine = LlamaEngine(Path(fit.path), settings)
    try:
        engine.generate_blocking(GenerationRequest(prompt="def add(a, b):\n", max_tokens=4))  # warm-up
        best = 0.0
        for prompt in MEASURE_PROMPTS:
            result = engine.generate_blocking(GenerationRequest(prompt=prompt, max_tokens=MEASURE_TOKENS))
            best = max(best, result.decode_tokens_per_s)
            if result.n_generated_tokens >= MEASURE_TOKENS // 2:
                break  # long enough to be a fair figure; a prompt that hit EOS early gets another try
        fit.measured_tok_s = best
        fit.measured_rss_growth_bytes = rss_bytes() - rss_before
    finally:
        engine.close()


# --- the recommendation -----------------------------------------------------------------------------


@dataclass
class Recommendation:
    model: str | None
    reason: str


def _mib(n: float) -> str:
    return f"{n / (1 << 20):,.1f} MiB" if n < 1 << 30 else f"{n / (1 << 30):,.2f} GiB"


def _speed(fit: ModelFit) -> str:
    if fit.measured_tok_s is not None:
        return f"{fit.measured_tok_s:.1f} tok/s (measured)"
    if fit.estimated_tok_s is not None:
        return f"~{fit.estimated_tok_s:.1f} tok/s (bandwidth estimate)"
    return "unknown tok/s"


def recommend(fits: list[ModelFit], options: FitOptions, memory: MachineMemory) -> Recommendation:
    """The largest model that fits in memory and holds the target; sets every fit's verdict."""
    eligible: list[ModelFit] = []
    for fit in fits:
        if fit.context_exceeds_trained:
            fit.verdict = (
                f"context {options.n_ctx} exceeds the {fit.trained_context} tokens it was trained for;"
                " lower --ctx (or use RoPE scaling at a quality cost)"
            )
        elif fit.fits_ram is False and not (memory.gpu_offload and fit.fits_vram):
            have = _mib(memory.ram_available_bytes or 0)
            fit.verdict = f"does not fit: needs {_mib(fit.total_bytes)}, {have} RAM available"
        elif fit.tok_s is None:
            fit.verdict = "speed unknown" + (f" ({fit.measure_error})" if fit.measure_error else "")
        elif fit.tok_s < options.target_tok_s:
            fit.verdict = f"too slow: {_speed(fit)} is below the {options.target_tok_s:g} tok/s target"
        else:
            eligible.append(fit)
    if not eligible:
        usable = [
            f
            for f in fits
            if not f.context_exceeds_trained
            and (f.fits_ram is not False or (memory.gpu_offload and f.fits_vram))
            and f.tok_s
        ]
        if not usable:
            return Recommendation(None, "no model can run here at these settings (see each model's reason)")
        fastest = max(usable, key=lambda f: f.tok_s or 0.0)
        return Recommendation(
            None,
            f"no model holds {options.target_tok_s:g} tok/s here; the fastest that fits is {fastest.name}"
            f" at {_speed(fastest)}",
        )
    chosen = max(eligible, key=lambda f: f.weight_bytes)
    chosen.verdict = (
        f"recommended: the largest model that fits ({_mib(chosen.total_bytes)}) and holds"
        f" {options.target_tok_s:g} tok/s: {_speed(chosen)}"
    )
    if chosen.measured_tok_s is None:
        chosen.verdict += "; the speed is an upper-bound estimate: confirm with --measure"
    for fit in eligible:
        if fit is not chosen:
            fit.verdict = f"fits and holds the target, but {chosen.name} is larger"
    return Recommendation(chosen.name, chosen.verdict)


# --- CLI --------------------------------------------------------------------------------------------


def add_arguments(parser: argparse.ArgumentParser) -> None:
    engine_defaults = EngineSettings()
    parser.add_argument(
        "--ctx",
        type=int,
        default=engine_defaults.n_ctx,
        help="context length in tokens (default %(default)s)",
    )
    parser.add_argument("--cache-type", choices=CACHE_TYPES, help="KV cache type for both K and V")
    parser.add_argument("--cache-type-k", choices=CACHE_TYPES, help="K cache type (default f16)")
    parser.add_argument("--cache-type-v", choices=CACHE_TYPES, help="V cache type (default f16)")
    parser.add_argument(
        "--batch", type=int, default=engine_defaults.n_batch, help="prompt batch size (default %(default)s)"
    )
    parser.add_argument(
        "--flash-attn",
        choices=("auto", "on", "off"),
        default="auto",
        help="flash attention; auto (llama.cpp's default) turns it on for the CPU and most GPUs",
    )
    parser.add_argument(
        "--target",
        type=float,
        default=GuardSettings().inline_target_tok_s,
        help="tokens/s a model must hold (default %(default)s)",
    )
    parser.add_argument(
        "--model", action="append", default=[], metavar="PATH", help="also size this GGUF file (repeatable)"
    )
    parser.add_argument(
        "--measure", action="store_true", help="load each model with llama.cpp and time a real decode"
    )
    parser.add_argument("--threads", type=int, help="decode threads for --measure (default: the engine's)")
    parser.add_argument("--json", action="store_true", help="print a machine-readable object")


def options_from_args(args: argparse.Namespace) -> FitOptions:
    if args.cache_type and (args.cache_type_k or args.cache_type_v):
        raise EngineError("use either --cache-type or --cache-type-k/--cache-type-v, not both")
    if args.ctx <= 0 or args.batch <= 0 or (args.threads is not None and args.threads <= 0):
        raise EngineError("--ctx, --batch and --threads must be positive")
    type_k = args.cache_type or args.cache_type_k or "f16"
    type_v = args.cache_type or args.cache_type_v or "f16"
    flash = args.flash_attn != "off"
    if type_v != "f16" and not flash:
        raise EngineError(f"a {type_v} V cache needs flash attention; drop --flash-attn off")
    return FitOptions(args.ctx, type_k, type_v, args.batch, flash, args.target, args.threads)


def _candidates(extra_paths: list[str]) -> list[tuple[str, Path]]:
    from lsp_server.inference.models import (
        CATALOG,
        ensure_model,
        installed_models,
        model_status,
        resolve_model,
    )

    extra = [resolve_model(raw) for raw in extra_paths]  # a bad path fails before any slow work
    found: list[tuple[str, Path]] = []
    for name in installed_models():
        if not model_status(name).verified:
            print(f"gearshift: verifying {name} ({_mib(CATALOG[name].size)}) once…", file=sys.stderr)
        try:
            found.append((name, ensure_model(name)))
        except ModelError as exc:  # one broken tier must not hide the figures of the others
            print(f"gearshift: skipping {name}: {exc}", file=sys.stderr)
    seen = {path.resolve() for _, path in found}
    found.extend((path.name, path) for path in extra if path.resolve() not in seen)
    return found


def run_fit(options: FitOptions, extra_paths: list[str], measure: bool) -> dict[str, Any]:
    """Everything `gearshift fit` reports, as a JSON-ready dict."""
    candidates = _candidates(extra_paths)
    if not candidates:
        from lsp_server.inference.models import CATALOG

        raise ModelError(
            f"no model to size: none installed; fix: {CATALOG['qwen2.5-coder-0.5b'].install_hint}"
        )
    memory = machine_memory()
    bandwidth = measure_read_bandwidth()
    fits = [fit_model(name, path, options, memory, bandwidth) for name, path in candidates]
    if measure:
        for fit in fits:
            if fit.context_exceeds_trained or fit.fits_ram is False:
                continue
            try:
                measure_model(fit, options)
            except GearshiftError as exc:
                fit.measure_error = str(exc)
    recommendation = recommend(fits, options, memory)
    return {
        "machine": {
            "ram_total_bytes": memory.ram_total_bytes,
            "ram_available_bytes": memory.ram_available_bytes,
            "gpus": [asdict(gpu) for gpu in memory.gpus],
            "gpu_offload": memory.gpu_offload,
            "read_bandwidth_bytes_per_s": bandwidth,
        },
        "settings": asdict(options),
        "models": [fit.to_json() for fit in fits],
        "recommendation": asdict(recommendation),
        "notes": [
            "tok/s estimates are an upper bound from memory bandwidth (read bandwidth / bytes per token at a full"
            " context); on few CPU cores real decoding is often 35-50% slower: --measure times it",
            "weights are memory-mapped; the KV cache and compute buffer are allocated by llama.cpp",
        ],
    }


def _print_table(report: dict[str, Any]) -> None:
    machine, settings = report["machine"], report["settings"]
    ram = machine["ram_available_bytes"]
    gpus = ", ".join(f"{g['name']} ({_mib(g['free_bytes'])} free)" for g in machine["gpus"]) or "none"
    print(
        f"Machine: {_mib(ram) if ram is not None else 'unknown'} RAM available"
        f" of {_mib(machine['ram_total_bytes'] or 0)}; GPU: {gpus};"
        f" memory read bandwidth {machine['read_bandwidth_bytes_per_s'] / 1e9:.1f} GB/s (1 thread)"
    )
    print(
        f"Settings: context {settings['n_ctx']}, KV cache K {settings['cache_type_k']} / V {settings['cache_type_v']},"
        f" batch {settings['n_batch']}, flash attention {'on' if settings['flash_attn'] else 'off'};"
        f" target {settings['target_tok_s']:g} tok/s"
    )
    print()
    header = ("model", "weights", "KV cache", "compute", "total", "tok/s", "fits")
    rows = [header]
    for m in report["models"]:
        speed = (
            "?"
            if m["tok_s"] is None
            else f"{m['tok_s']:.1f}" + ("" if m["tok_s_source"] == "measured" else " est.")
        )
        fits = {True: "yes", False: "no", None: "?"}[m["fits_ram"]]
        if m["fits_vram"] is not None:
            fits += f" (VRAM {'yes' if m['fits_vram'] else 'no'})"
        if m["context_exceeds_trained"]:
            fits += f", ctx > trained {m['trained_context']}"
        rows.append(
            (
                m["name"],
                _mib(m["weight_bytes"]),
                _mib(m["kv_bytes"]),
                _mib(m["compute_bytes"]),
                _mib(m["total_bytes"]),
                speed,
                fits,
            )
        )
    widths = [max(len(row[i]) for row in rows) for i in range(len(header))]
    for row in rows:
        print(
            "  ".join(
                cell.ljust(widths[i]) if i == 0 else cell.rjust(widths[i]) for i, cell in enumerate(row)
            )
        )
    print()
    rec = report["recommendation"]
    print(f"Recommendation: {rec['model']}" if rec["model"] else "Recommendation: none")
    for m in report["models"]:
        print(f"  {m['name']}: {m['verdict']}")
        if m["measured_rss_growth_bytes"] is not None:
            print(f"    measured: RSS grew {_mib(m['measured_rss_growth_bytes'])} while loaded and decoding")
        if m["measure_error"]:
            print(f"    measure failed: {m['measure_error']}")
    if not rec["model"]:
        print(f"  {rec['reason']}")
    for note in report["notes"]:
        print(f"Note: {note}")


def main(args: argparse.Namespace) -> int:
    options = options_from_args(args)
    report = run_fit(options, args.model, args.measure)
    if args.json:
        print(json.dumps(report, indent=2))
    else:
        _print_table(report)
    return 0
