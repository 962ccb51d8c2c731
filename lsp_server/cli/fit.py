"""`gearshift fit`: which model fits this machine's memory and holds the tokens/s target (argparse and printing).

The figures come from ``lsp_server.inference.fit`` (``sizing`` for memory, ``machine`` for what this machine has).
"""

from __future__ import annotations

import argparse
import json

from lsp_server.errors import EngineError
from lsp_server.inference.fit import FitReport, mib, run_fit
from lsp_server.inference.sizing import CACHE_TYPES, FitOptions
from lsp_server.settings import EngineSettings, GuardSettings


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
        "--measure", action="store_true", help="load each model with llama.cpp, set up as sized, and time a decode"
    )
    parser.add_argument(
        "--document-kv-mib", type=int, default=engine_defaults.document_kv_mib,
        help="memory for saved KV states of recently used documents, per model (default %(default)s)",
    )
    parser.add_argument("--threads", type=int, help="decode threads for --measure (default: the engine's)")
    parser.add_argument("--json", action="store_true", help="print a machine-readable object")
    parser.add_argument(
        "--repo", default=".", metavar="PATH",
        help="recommend by the quality `gearshift eval` measured on this repository too (default: .)",
    )


def eval_report_for(path: str) -> dict | None:
    """The `gearshift eval` report of the repository holding ``path``, or None (not a repository, never run)."""
    from pathlib import Path

    from lsp_server.errors import GearshiftError
    from lsp_server.evaluation.repository import repository_root
    from lsp_server.evaluation.results import load_report, report_path

    try:
        return load_report(report_path(repository_root(Path(path).expanduser())))
    except GearshiftError:
        return None


def options_from_args(args: argparse.Namespace) -> FitOptions:
    if args.cache_type and (args.cache_type_k or args.cache_type_v):
        raise EngineError("use either --cache-type or --cache-type-k/--cache-type-v, not both")
    if args.ctx <= 0 or args.batch <= 0 or (args.threads is not None and args.threads <= 0):
        raise EngineError("--ctx, --batch and --threads must be positive")
    if args.document_kv_mib < 0:
        raise EngineError("--document-kv-mib must be 0 (keep none) or more")
    type_k = args.cache_type or args.cache_type_k or "f16"
    type_v = args.cache_type or args.cache_type_v or "f16"
    flash = args.flash_attn != "off"
    if type_v != "f16" and not flash:
        raise EngineError(f"a {type_v} V cache needs flash attention; drop --flash-attn off")
    return FitOptions(
        n_ctx=args.ctx, cache_type_k=type_k, cache_type_v=type_v, n_batch=args.batch, flash_attn=flash,
        target_tok_s=args.target, n_threads=args.threads, document_kv_mib=args.document_kv_mib,
    )


def print_table(report: FitReport) -> None:
    machine, settings = report.machine, report.settings
    ram = machine.ram_available_bytes
    gpus = ", ".join(f"{g.name} ({mib(g.free_bytes)} free)" for g in machine.gpus) or "none"
    print(
        f"Machine: {mib(ram) if ram is not None else 'unknown'} RAM available"
        f" of {mib(machine.ram_total_bytes or 0)}; GPU: {gpus};"
        f" memory read bandwidth {machine.read_bandwidth_bytes_per_s / 1e9:.1f} GB/s (1 thread)"
    )
    print(
        f"Settings: context {settings.n_ctx}, KV cache K {settings.cache_type_k} / V {settings.cache_type_v},"
        f" batch {settings.n_batch}, flash attention {'on' if settings.flash_attn else 'off'};"
        f" target {settings.target_tok_s:g} tok/s;"
        f" recent documents' KV {settings.document_kv_mib} MiB per model (window {settings.window_tokens} tokens)"
    )
    print()
    header = ("model", "weights", "KV cache", "compute", "recent docs", "total", "tok/s", "fits", "exact here")
    rows = [header]
    for m in report.models:
        speed = (
            "?"
            if m.tok_s is None
            else f"{m.tok_s:.1f}" + ("" if m.tok_s_source == "measured" else " est.")
        )
        fits = {True: "yes", False: "no", None: "?"}[m.fits_ram]
        if m.fits_vram is not None:
            fits += f" (VRAM {'yes' if m.fits_vram else 'no'})"
        if m.context_exceeds_trained:
            fits += f", ctx > trained {m.trained_context}"
        exact = "-" if m.eval_exact is None else f"{m.eval_exact:.0%}"
        documents = f"{mib(m.document_kv_bytes)} ({m.documents_kept} × {mib(m.document_state_bytes)})"
        rows.append(
            (m.name, mib(m.weight_bytes), mib(m.kv_bytes), mib(m.compute_bytes), documents, mib(m.total_bytes),
             speed, fits, exact)
        )
    widths = [max(len(row[i]) for row in rows) for i in range(len(header))]
    for row in rows:
        print(
            "  ".join(
                cell.ljust(widths[i]) if i == 0 else cell.rjust(widths[i]) for i, cell in enumerate(row)
            )
        )
    print()
    rec = report.recommendation
    print(f"Recommendation: {rec.model}" if rec.model else "Recommendation: none")
    for m in report.models:
        print(f"  {m.name}: {m.verdict}")
        if m.measured_rss_growth_bytes is not None:
            print(f"    measured: RSS grew {mib(m.measured_rss_growth_bytes)} while loaded and decoding")
        if m.measure_error:
            print(f"    measure failed: {m.measure_error}")
    if not rec.model:
        print(f"  {rec.reason}")
    for note in report.notes:
        print(f"Note: {note}")


def main(args: argparse.Namespace) -> int:
    options = options_from_args(args)
    report = run_fit(options, args.model, args.measure, eval_report_for(args.repo))
    if args.json:
        print(json.dumps(report.to_json(), indent=2))
    else:
        print_table(report)
    return 0
