"""`gearshift fit`'s answer: which model fits this machine's memory and holds the tokens/s target.

Every installed catalog model (and any GGUF given with ``--model``) is sized by ``sizing`` from the file's
own metadata.  Tokens/s is either an estimate or measured.  The estimate is memory-bound
decoding: every token reads the weights it uses (all of them, except the
token-embedding table when the model has a separate output matrix) plus the
KV cache at a full context, so ``tok/s ≈ read bandwidth / bytes per token``,
with read bandwidth measured here by summing a 256 MB array on one thread.
It is an upper bound: on a few CPU cores decoding is partly compute-bound
(on a 2-vCPU VM llama.cpp reached 50-65% of it), and it knows nothing of
other processes competing for the cores.  ``--measure`` loads each model
with the llama.cpp engine, set up as it was sized, and times a greedy decode instead.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

from lsp_server.errors import EngineError, GearshiftError, ModelError
from lsp_server.evaluation.recommend import MIN_WORTHWHILE_EXACT
from lsp_server.inference.machine import MachineMemory, machine_memory, measure_read_bandwidth, rss_bytes
from lsp_server.inference.sizing import FitOptions, ModelFit, fit_model
from lsp_server.settings import EngineSettings
from lsp_server.wire import WireModel

MEASURE_PROMPTS = (
    "import os\n\n\ndef list_python_files(root):\n",
    "// Compute the greatest common divisor of two integers.\nfunction gcd(a, b) {\n",
    "Write a short story about a robot who learns to paint.\n",
)
MEASURE_TOKENS = 32


def measure_settings(options: FitOptions) -> EngineSettings:
    """Engine settings for timing a model under ``options``: the set-up it was sized for, plain decoding."""
    return EngineSettings(
        n_ctx=options.n_ctx,
        n_batch=options.n_batch,
        n_threads=options.n_threads,
        kv_cache_type_k=options.cache_type_k,  # type: ignore[arg-type]
        kv_cache_type_v=options.cache_type_v,  # type: ignore[arg-type]
        flash_attention=options.flash_attn,
        use_mmap=options.use_mmap,
        prompt_lookup=False,  # plain decoding: speculation would measure the prompt, not the model
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
    rss_before = rss_bytes()
    engine = LlamaEngine(Path(fit.path), measure_settings(options))
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


class Recommendation(WireModel):
    model: str | None
    reason: str


def mib(n: float) -> str:
    """``n`` bytes in MiB, or GiB from 1 GiB on."""
    return f"{n / (1 << 20):,.1f} MiB" if n < 1 << 30 else f"{n / (1 << 30):,.2f} GiB"


def speed(fit: ModelFit) -> str:
    """The model's tok/s and where it comes from."""
    if fit.measured_tok_s is not None:
        return f"{fit.measured_tok_s:.1f} tok/s (measured)"
    if fit.estimated_tok_s is not None:
        return f"~{fit.estimated_tok_s:.1f} tok/s (bandwidth estimate)"
    return "unknown tok/s"


def apply_eval(fits: list[ModelFit], report: dict[str, Any] | None) -> str | None:
    """Each fit's measured quality from a `gearshift eval` report of this repository; a note saying so, or None."""
    tiers = (report or {}).get("tiers")
    if not isinstance(tiers, dict):
        return None
    measured = []
    for fit in fits:
        tier = tiers.get(fit.name)
        if isinstance(tier, dict) and isinstance(tier.get("exact"), (int, float)):
            fit.eval_exact = float(tier["exact"])
            passed = tier.get("passAt1")
            fit.eval_pass_at_1 = float(passed) if isinstance(passed, (int, float)) else None
            measured.append(fit.name)
    if not measured:
        return None
    return (f"quality measured on this repository by `gearshift eval` ({report.get('date', 'undated')}):"
            f" {', '.join(measured)}; the recommendation prefers the most accurate model that fits and holds the"
            " target")


def _accuracy(fit: ModelFit) -> tuple[float, float]:
    """How a model ranks by measured quality (pass@1 first where the tests were run), unmeasured last."""
    return (fit.eval_pass_at_1 if fit.eval_pass_at_1 is not None else -1.0,
            fit.eval_exact if fit.eval_exact is not None else -1.0)


def _too_weak(fit: ModelFit) -> str:
    """A warning when this repository's eval says the model's suggestions are mostly wrong, else ""."""
    if fit.eval_exact is None or fit.eval_exact >= MIN_WORTHWHILE_EXACT:
        return ""
    return (f"; on this repository it matches only {fit.eval_exact * 100:.0f}% of lines exactly"
            f" (under {MIN_WORTHWHILE_EXACT * 100:.0f}%): its suggestions are not worth showing")


def recommend(fits: list[ModelFit], options: FitOptions, memory: MachineMemory) -> Recommendation:
    """The largest model that fits in memory and holds the target (the most accurate one instead, when this
    repository's eval measured them); sets every fit's verdict."""
    eligible: list[ModelFit] = []
    for fit in fits:
        if fit.context_exceeds_trained:
            fit.verdict = (
                f"context {options.n_ctx} exceeds the {fit.trained_context} tokens it was trained for;"
                " lower --ctx (or use RoPE scaling at a quality cost)"
            )
        elif fit.fits_ram is False and not (memory.gpu_offload and fit.fits_vram):
            have = mib(memory.ram_available_bytes or 0)
            fit.verdict = f"does not fit: needs {mib(fit.total_bytes)}, {have} RAM available"
        elif fit.tok_s is None:
            fit.verdict = "speed unknown" + (f" ({fit.measure_error})" if fit.measure_error else "")
        elif fit.tok_s < options.target_tok_s:
            fit.verdict = f"too slow: {speed(fit)} is below the {options.target_tok_s:g} tok/s target"
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
            return Recommendation(model=None, reason="no model can run here at these settings (see each model's reason)")
        fastest = max(usable, key=lambda f: f.tok_s or 0.0)
        return Recommendation(
            model=None,
            reason=f"no model holds {options.target_tok_s:g} tok/s here; the fastest that fits is {fastest.name}"
            f" at {speed(fastest)}" + _too_weak(fastest),
        )
    if any(f.eval_exact is not None for f in eligible):
        chosen = max(eligible, key=lambda f: (_accuracy(f), f.weight_bytes))
        chosen.verdict = (
            f"recommended: the most accurate model on this repository ({chosen.eval_exact or 0:.0%} exact"
            + (f", pass@1 {chosen.eval_pass_at_1:.0%}" if chosen.eval_pass_at_1 is not None else "")
            + f") that fits ({mib(chosen.total_bytes)}) and holds {options.target_tok_s:g} tok/s: {speed(chosen)}"
        )
    else:
        chosen = max(eligible, key=lambda f: f.weight_bytes)
        chosen.verdict = (
            f"recommended: the largest model that fits ({mib(chosen.total_bytes)}) and holds"
            f" {options.target_tok_s:g} tok/s: {speed(chosen)}"
        )
    chosen.verdict += _too_weak(chosen)
    if chosen.measured_tok_s is None:
        chosen.verdict += "; the speed is an upper-bound estimate: confirm with --measure"
    for fit in eligible:
        if fit is not chosen:
            better = "more accurate here" if chosen.eval_exact is not None else "larger"
            fit.verdict = f"fits and holds the target, but {chosen.name} is {better}" + _too_weak(fit)
    return Recommendation(model=chosen.name, reason=chosen.verdict)


# --- the whole report -------------------------------------------------------------------------------


class MachineReport(MachineMemory):
    read_bandwidth_bytes_per_s: float


class FitReport(WireModel):
    """Everything `gearshift fit` reports (``--json`` prints it)."""

    machine: MachineReport
    settings: FitOptions
    models: list[ModelFit]
    recommendation: Recommendation
    notes: list[str]


def notes(options: FitOptions) -> list[str]:
    """What the figures do not say by themselves."""
    loading = (
        "weights are memory-mapped (engine.useMmap): they count once read, and the kernel may drop them while idle"
        if options.use_mmap
        else "weights are read into memory when the model loads (engine.useMmap is off), so they count in full"
    )
    return [
        "tok/s estimates are an upper bound from memory bandwidth (read bandwidth / bytes per token at a full"
        " context); on few CPU cores real decoding is often 35-50% slower: --measure times it",
        f"{loading}; the KV cache and compute buffer are allocated by llama.cpp",
        f"recent docs: the evaluated prompts of recently used documents are kept in host memory, up to"
        f" {options.document_kv_mib} MiB per loaded model (engine.documentKvMiB), so going back to a file evaluates"
        f" only what changed; the count is documents at the full {options.window_tokens}-token window",
    ]


def _candidates(extra_paths: list[str]) -> list[tuple[str, Path]]:
    from lsp_server.inference.assembly import ensure_model
    from lsp_server.inference.catalog import CATALOG
    from lsp_server.inference.installed import installed_models, model_status, resolve_model

    extra = [resolve_model(raw) for raw in extra_paths]  # a bad path fails before any slow work
    found: list[tuple[str, Path]] = []
    for name in installed_models():
        if not model_status(name).verified:
            print(f"gearshift: verifying {name} ({mib(CATALOG[name].size)}) once…", file=sys.stderr)
        try:
            found.append((name, ensure_model(name)))
        except ModelError as exc:  # one broken tier must not hide the figures of the others
            print(f"gearshift: skipping {name}: {exc}", file=sys.stderr)
    seen = {path.resolve() for _, path in found}
    found.extend((path.name, path) for path in extra if path.resolve() not in seen)
    return found


def run_fit(
    options: FitOptions, extra_paths: list[str], measure: bool, eval_report: dict[str, Any] | None = None
) -> FitReport:
    """Size (and with ``measure`` time) every installed model and the ``extra_paths``; recommend one, by measured
    quality too where ``eval_report`` (this repository's `gearshift eval`) has it."""
    candidates = _candidates(extra_paths)
    if not candidates:
        from lsp_server.inference.catalog import CATALOG

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
    quality_note = apply_eval(fits, eval_report)
    recommendation = recommend(fits, options, memory)
    return FitReport(
        machine=MachineReport(**dict(memory), read_bandwidth_bytes_per_s=bandwidth),
        settings=options, models=fits, recommendation=recommendation,
        notes=notes(options) + ([quality_note] if quality_note else []),
    )
