"""What this machine does with a model, measured once at load: prompt speed and the exact verification batch.

llama.cpp's CPU kernels pick code paths by batch size, and the paths round differently (a token's logits can move
by up to ~1 between them): large batches (8+ tokens on Qwen2.5, never on SmolLM2 in our measurements) use tiled
kernels.  ``exact_batch`` finds the largest verification batch that matches one-token decoding bit for bit, so
prompt lookup drafts no more than that; the answer is remembered on disk per model file, llama.cpp build and
settings (the probe takes seconds).
"""

from __future__ import annotations

import json
import logging
import math
import os
import threading
import time
from pathlib import Path

import llama_cpp as llama
import numpy as np

from lsp_server.inference.llama.context import Context, StopFlag
from lsp_server.inference.llama.model import Model
from lsp_server.settings import EngineSettings

log = logging.getLogger(__name__)

PROBE_FORMAT = "exact-batch-v1"
"""Part of the probe cache key: a change to how the probe measures must not reuse older answers."""

SPEED_PROBE_TOKENS = 64
"""Prompt tokens timed at load to measure this machine's prompt speed (1.7 s for the 0.5B on two AVX2 cores, where
a batch of 64 already costs per token what a batch of 512 does)."""

_PROBE_TEXT = "def probe(values):\n    total = 0\n    for value in values:\n        total += value * 2\n"


def probe_cache_path() -> Path:
    """``$XDG_CACHE_HOME/gearshift/engine-probes.json`` (default ``~/.cache/gearshift/...``)."""
    cache = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(cache) / "gearshift" / "engine-probes.json"


def _never_stopped() -> StopFlag:
    return StopFlag(threading.Event())


def measure_prompt_speed(model: Model, context: Context) -> float:
    """Tokens/s evaluating one batch of ``SPEED_PROBE_TOKENS`` prompt tokens (after a small warm-up)."""
    tokens = model.tokenize((_PROBE_TEXT * 8).encode(), True, False)[: 8 + SPEED_PROBE_TOKENS]
    flag = _never_stopped()
    try:
        context.evaluate(tokens[:8], flag, math.inf, context.capacity, False)  # buffers allocated here
        started = time.perf_counter()
        context.evaluate(tokens, flag, math.inf, context.capacity, False)
        elapsed = time.perf_counter() - started
    finally:
        context.reset()
    return (len(tokens) - 8) / max(elapsed, 1e-6)


def exact_batch(model_path: Path, model: Model, context: Context, settings: EngineSettings, largest: int) -> int:
    """``probe_exact_batch``, remembered on disk per model file, llama.cpp build and settings."""
    try:
        stat = model_path.stat()
        key = "|".join(
            str(part)
            for part in (
                PROBE_FORMAT,
                model_path.resolve(),
                stat.st_size,
                stat.st_mtime_ns,
                llama.__version__,
                llama.llama_print_system_info().decode(errors="replace"),
                settings.flash_attention,
                settings.weight_repack,
                settings.kv_cache_type_k,
                settings.kv_cache_type_v,
                context.n_threads,
                largest,
            )
        )
    except OSError:
        return probe_exact_batch(model, context, largest)
    cache = probe_cache_path()
    try:
        known = json.loads(cache.read_text())
    except (OSError, ValueError):
        known = {}
    if not isinstance(known, dict):
        known = {}
    value = known.get(key)
    if isinstance(value, int) and 1 <= value <= largest:
        return value
    value = probe_exact_batch(model, context, largest)
    known[key] = value
    try:
        cache.parent.mkdir(parents=True, exist_ok=True)
        scratch = cache.with_name(f"{cache.name}.{os.getpid()}.tmp")
        scratch.write_text(json.dumps(known, indent=1))
        os.replace(scratch, cache)
    except OSError as exc:
        log.debug("could not save %s: %s", cache, exc)
    return value


def probe_exact_batch(model: Model, context: Context, largest: int) -> int:
    """Largest batch (up to ``largest``) whose logits equal one-token decoding bit for bit.

    llama.cpp's CPU kernels switch code paths with the batch size (weight repacking, tiled
    flash attention), and a different path rounds differently.  Draft verification only uses
    batches this size or smaller, so prompt lookup gives exactly the plain greedy output.
    """
    if largest <= 1:
        return 1
    started = time.perf_counter()
    tokens = model.tokenize((_PROBE_TEXT * 3).encode(), True, False)
    prefix, probe = tokens[:8], tokens[8 : 8 + largest]
    largest = len(probe)
    flag = _never_stopped()
    exact = 1
    try:
        context.evaluate(prefix, flag, math.inf, context.capacity, False)
        singles = np.empty((largest, context.n_vocab), dtype=np.float32)
        for i in range(largest):
            context.evaluate(prefix + probe[: i + 1], flag, math.inf, 1, True)
            singles[i] = context.last_row()
        for size in range(largest, 1, -1):
            context.reuse_prefix(prefix, need_logits=False)
            context.batch_tokens[:size] = probe[:size]
            np.add(context.arange[:size], len(prefix), out=context.batch_pos[:size])
            context.batch_logits[:size] = 1
            context.decode(size)
            context.kv_tokens.extend(probe[:size])
            if np.array_equal(context.logits(size), singles[:size]):
                exact = size
                break
    finally:
        context.reset()
    log.debug(
        "%s: batches up to %d decode exactly like single tokens (%.2fs probe)",
        context.name,
        exact,
        time.perf_counter() - started,
    )
    return exact
