"""`gearshift fit` figures, checked against the GGUF metadata and against llama.cpp itself.

The ``model`` tests load real models with llama.cpp in a subprocess (so the
process's memory is not shared with whatever else the test session loaded),
read what llama.cpp reports about its own buffers and hyper-parameters, and
measure the resident set size before and after loading and decoding.

About that RSS: llama.cpp memory-maps the weights, so they only count once
touched; the probe evaluates a full ``n_batch`` prompt and 16 more tokens,
which reads every weight.  On x86 llama.cpp also repacks some quantized
tensors into an anonymous buffer, whose originals were read (hence resident)
while repacking: RSS can then exceed the working set fit reports by that
buffer.  Compute-buffer pages are only resident where the graph wrote them.
Hence a 0.5x-2x band rather than an exact match.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from lsp_server.cli import main as cli_main
from lsp_server.inference.assembly import ensure_model
from lsp_server.inference.catalog import CATALOG
from lsp_server.inference.fit import apply_eval, recommend
from lsp_server.inference.gguf import read_gguf
from lsp_server.inference.installed import model_status
from lsp_server.inference.machine import MachineMemory, parse_nvidia_smi
from lsp_server.inference.sizing import (
    FitOptions,
    cache_bytes_per_element,
    compute_buffer_bytes,
    fit_model,
    kv_cache_bytes,
    padded_context,
)

MIB = 1 << 20
N_BATCH = 128
"""Prompt batch of the llama.cpp probe: the compute buffer scales with it; small keeps the probe quick."""
PLENTY = MachineMemory(ram_total_bytes=64 << 30, ram_available_bytes=60 << 30)


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("models")


@pytest.fixture(scope="module")
def qwen_path(model_dir: Path) -> Path:
    if not model_status("qwen2.5-coder-0.5b").installed:
        pytest.skip(f"qwen2.5-coder-0.5b is not installed: {CATALOG['qwen2.5-coder-0.5b'].install_hint}")
    return ensure_model("qwen2.5-coder-0.5b", model_dir)


# --- formulas against the metadata -------------------------------------------------------------------


def test_bytes_per_element() -> None:
    assert cache_bytes_per_element("f16") == 2
    assert cache_bytes_per_element("q8_0") == 34 / 32
    assert cache_bytes_per_element("q4_0") == 18 / 32


@pytest.mark.parametrize(("n_ctx", "cells"), [(1, 256), (256, 256), (4000, 4096), (4096, 4096), (4097, 4352)])
def test_context_is_padded_like_llama_cpp(n_ctx: int, cells: int) -> None:
    assert padded_context(n_ctx) == cells


def test_kv_bytes_from_metadata(smollm_path: Path) -> None:
    info = read_gguf(smollm_path)
    meta = info.metadata
    layers = meta["llama.block_count"]
    kv_heads = meta["llama.attention.head_count_kv"]
    head_dim = meta["llama.embedding_length"] // meta["llama.attention.head_count"]
    assert (layers, kv_heads, head_dim) == (30, 3, 64)
    f16 = 2 * layers * kv_heads * head_dim * 4096 * 2
    assert sum(kv_cache_bytes(info, 4096)) == f16 == 90 * MIB  # llama.cpp: "KV buffer size = 90.00 MiB"
    k, v = kv_cache_bytes(info, 4096, "q8_0", "q4_0")
    assert (k, v) == (f16 / 2 * 34 / 64, f16 / 2 * 18 / 64)


def test_compute_buffer_formula_matches_llama_cpp_reports(qwen_path: Path, smollm_path: Path) -> None:
    # CPU compute buffer + output buffer that llama.cpp (llama-cpp-python 0.3.36) printed for these files.
    reported = {
        (qwen_path, 4096, False): 302.00 + 0.58,
        (qwen_path, 4096, True): 300.25 + 0.58,
        (qwen_path, 16384, False): 489.26 + 0.58,
        (qwen_path, 32768, False): 969.26 + 0.58,
        (qwen_path, 32768, True): 300.25 + 0.58,
        (smollm_path, 4096, False): 99.38 + 0.19,
        (smollm_path, 4096, True): 98.25 + 0.19,
    }
    for (path, n_ctx, flash), mib in reported.items():
        estimate = compute_buffer_bytes(read_gguf(path), n_ctx, 512, flash) / MIB
        assert estimate == pytest.approx(mib, rel=0.01), (path.name, n_ctx, flash)


def test_fit_figures_and_context_beyond_training(smollm_path: Path) -> None:
    info = read_gguf(smollm_path)
    fit = fit_model("smollm2-135m", smollm_path, FitOptions(n_ctx=4096), PLENTY, bandwidth=10e9, info=info)
    assert fit.weight_bytes == info.file_size - info.data_offset
    assert fit.total_bytes == fit.weight_bytes + fit.kv_bytes + fit.compute_bytes + fit.document_kv_bytes
    assert fit.document_kv_bytes == FitOptions().document_kv_mib << 20
    assert fit.documents_kept == fit.document_kv_bytes // fit.document_state_bytes
    assert fit.fits_ram is True and fit.fits_vram is None and not fit.context_exceeds_trained
    assert fit.estimated_tok_s == pytest.approx(10e9 / fit.bytes_per_token)

    options = FitOptions(n_ctx=16384)
    too_long = fit_model("smollm2-135m", smollm_path, options, PLENTY, bandwidth=10e9, info=info)
    assert too_long.context_exceeds_trained and too_long.trained_context == 8192
    recommendation = recommend([too_long], options, PLENTY)
    assert recommendation.model is None
    assert "exceeds the 8192 tokens it was trained for" in too_long.verdict


def test_recommends_the_largest_that_holds_the_target(qwen_path: Path, smollm_path: Path) -> None:
    options = FitOptions(n_ctx=2048, target_tok_s=40)
    small = fit_model("small", smollm_path, options, PLENTY, bandwidth=None)
    large = fit_model("large", qwen_path, options, PLENTY, bandwidth=None)
    small.measured_tok_s, large.measured_tok_s = 120.0, 45.0
    assert recommend([small, large], options, PLENTY).model == "large"
    assert "large is larger" in small.verdict
    large.measured_tok_s = 30.0
    assert recommend([small, large], options, PLENTY).model == "small"
    assert "below the 40 tok/s target" in large.verdict
    tight = MachineMemory(ram_total_bytes=1 << 30, ram_available_bytes=small.total_bytes + MIB)
    large.measured_tok_s = 45.0
    large = fit_model("large", qwen_path, options, tight, bandwidth=None)
    large.measured_tok_s = 45.0
    small = fit_model("small", smollm_path, options, tight, bandwidth=None)
    small.measured_tok_s = 120.0
    assert recommend([small, large], options, tight).model == "small"
    assert large.verdict.startswith("does not fit: needs")


def test_recommends_by_quality_measured_on_this_repository(qwen_path: Path, smollm_path: Path) -> None:
    options = FitOptions(n_ctx=2048, target_tok_s=40)
    small = fit_model("smollm2-135m", smollm_path, options, PLENTY, bandwidth=None)
    large = fit_model("qwen2.5-coder-0.5b", qwen_path, options, PLENTY, bandwidth=None)
    small.measured_tok_s, large.measured_tok_s = 120.0, 45.0
    report = {"date": "2026-12-02", "tiers": {"smollm2-135m": {"exact": 0.30}, "qwen2.5-coder-0.5b": {"exact": 0.20}}}
    note = apply_eval([small, large], report)
    assert note and "gearshift eval" in note and "2026-12-02" in note
    # Here the small model is the more accurate one: it wins although the large one fits and holds the target.
    assert recommend([small, large], options, PLENTY).model == "smollm2-135m"
    assert "most accurate model on this repository (30% exact" in small.verdict
    assert "smollm2-135m is more accurate here" in large.verdict
    # pass@1 from the repository's tests ranks before exact match.
    report["tiers"]["qwen2.5-coder-0.5b"]["passAt1"] = 0.5
    report["tiers"]["smollm2-135m"]["passAt1"] = 0.4
    apply_eval([small, large], report)
    assert recommend([small, large], options, PLENTY).model == "qwen2.5-coder-0.5b"
    assert "pass@1 50%" in large.verdict


def test_says_when_the_measured_quality_is_too_low_to_be_worth_showing(qwen_path: Path, smollm_path: Path) -> None:
    options = FitOptions(n_ctx=2048, target_tok_s=40)
    small = fit_model("smollm2-135m", smollm_path, options, PLENTY, bandwidth=None)
    large = fit_model("qwen2.5-coder-0.5b", qwen_path, options, PLENTY, bandwidth=None)
    small.measured_tok_s, large.measured_tok_s = 120.0, 20.0  # only the small one holds the target
    apply_eval([small, large], {"tiers": {"smollm2-135m": {"exact": 0.04}, "qwen2.5-coder-0.5b": {"exact": 0.3}}})
    assert recommend([small, large], options, PLENTY).model == "smollm2-135m"
    assert "matches only 4% of lines exactly" in small.verdict and "not worth showing" in small.verdict
    small.measured_tok_s = 10.0  # none holds it: the fastest is named, with the same warning if it is weak
    large.measured_tok_s = 5.0
    assert "not worth showing" in recommend([small, large], options, PLENTY).reason


def test_without_an_eval_report_fit_recommends_as_before(qwen_path: Path, smollm_path: Path) -> None:
    options = FitOptions(n_ctx=2048, target_tok_s=40)
    small = fit_model("small", smollm_path, options, PLENTY, bandwidth=None)
    assert apply_eval([small], None) is None and apply_eval([small], {"tiers": {"other": {"exact": 1}}}) is None
    assert small.eval_exact is None


def test_nvidia_smi_rows() -> None:
    # Captured from `nvidia-smi --query-gpu=index,name,memory.total,memory.free --format=csv,noheader,nounits`
    # on an H100; the second row is a name with a comma, the third a GPU the driver cannot read.
    out = "0, NVIDIA H100 80GB HBM3, 81559, 81079\n1, Acme, Inc GPU, 24564, 23000\n2, [N/A], [N/A], [N/A]\n"
    gpus = parse_nvidia_smi(out)
    assert [(g.index, g.name, g.total_bytes >> 20, g.free_bytes >> 20) for g in gpus] == [
        (0, "NVIDIA H100 80GB HBM3", 81559, 81079),
        (1, "Acme, Inc GPU", 24564, 23000),
    ]


def test_cli_fit_json(
    model_dir: Path, qwen_path: Path, smollm_path: Path, monkeypatch: pytest.MonkeyPatch, capsys
) -> None:
    monkeypatch.setenv("GEARSHIFT_MODEL_DIR", str(model_dir))
    custom = model_dir / "custom.gguf"
    if not custom.exists():
        try:
            os.link(smollm_path, custom)  # a second name for the same bytes, without copying 98 MB
        except OSError:
            shutil.copyfile(smollm_path, custom)
    argv = ["fit", "--json", "--ctx", "8192", "--cache-type-k", "q8_0", "--cache-type-v", "q4_0"]
    # A catalog model given again by path is sized once.
    assert cli_main([*argv, "--model", str(custom), "--model", str(smollm_path)]) == 0
    report = json.loads(capsys.readouterr().out)
    names = [m["name"] for m in report["models"]]
    assert names[:2] == ["qwen2.5-coder-0.5b", "smollm2-135m"] and names[-1] == "custom.gguf"
    assert len(names) == len(set(names))
    assert report["settings"]["cacheTypeK"] == "q8_0" and report["settings"]["flashAttn"] is True
    assert report["machine"]["readBandwidthBytesPerS"] > 1e8
    for model in report["models"]:
        assert model["totalBytes"] == (model["weightBytes"] + model["kvBytes"] + model["computeBytes"]
                                       + model["documentKvBytes"])
        assert model["tokSSource"] == "estimate" and model["verdict"]
    assert report["recommendation"]["reason"]


def test_cli_fit_flags_long_context_without_crashing(
    model_dir: Path, monkeypatch: pytest.MonkeyPatch, capsys
):
    monkeypatch.setenv("GEARSHIFT_MODEL_DIR", str(model_dir))
    assert cli_main(["fit", "--ctx", "65536"]) == 0
    out = capsys.readouterr().out
    assert "ctx > trained" in out and "exceeds the" in out


def test_cli_fit_rejects_conflicting_cache_flags(capsys) -> None:
    assert cli_main(["fit", "--cache-type", "q8_0", "--cache-type-v", "q4_0"]) == 2
    assert capsys.readouterr().err.startswith("gearshift: use either --cache-type or")


# --- against llama.cpp ---------------------------------------------------------------------------------

_PROBE = r"""
import ctypes, json, os, re, sys
import numpy as np
import llama_cpp as ll

path, n_ctx, n_batch, flash = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), sys.argv[4] == "1"
lines = []

@ll.llama_log_callback
def on_log(level, text, user_data):
    lines.append((text or b"").decode("utf-8", "replace"))

ll.llama_log_set(on_log, ctypes.c_void_p(0))
ll.llama_backend_init()

def rss():
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")

before = rss()
model = ll.llama_model_load_from_file(path.encode(), ll.llama_model_default_params())
params = ll.llama_context_default_params()
params.n_ctx, params.n_batch, params.n_ubatch = n_ctx, n_batch, n_batch
params.n_threads = params.n_threads_batch = 1  # llama.cpp defaults to 4; one thread is robust on a busy machine
params.flash_attn_type = ll.LLAMA_FLASH_ATTN_TYPE_ENABLED if flash else ll.LLAMA_FLASH_ATTN_TYPE_DISABLED
ctx = ll.llama_init_from_model(model, params)
vocab = ll.llama_model_get_vocab(model)
n_vocab = ll.llama_vocab_n_tokens(vocab)

text = b"def fibonacci(n):\n    return n if n < 2 else fibonacci(n - 1) + fibonacci(n - 2)\n" * 64
buf = (ll.llama_token * 4096)()
n = ll.llama_tokenize(vocab, text, len(text), buf, 4096, False, False)
prompt = (ll.llama_token * n_batch)(*buf[:n_batch])
assert ll.llama_decode(ctx, ll.llama_batch_get_one(prompt, n_batch)) == 0
one = (ll.llama_token * 1)()
for _ in range(16):
    logits = np.ctypeslib.as_array(ll.llama_get_logits_ith(ctx, -1), shape=(n_vocab,))
    one[0] = int(logits.argmax())
    assert ll.llama_decode(ctx, ll.llama_batch_get_one(one, 1)) == 0
after = rss()

def mib(pattern):
    found = [float(m.group(1)) for line in lines for m in [re.search(pattern, line)] if m]
    return sum(found) if found else None

print(json.dumps({
    "rss_growth": after - before,
    "n_layer": ll.llama_model_n_layer(model),
    "n_head": ll.llama_model_n_head(model),
    "n_head_kv": ll.llama_model_n_head_kv(model),
    "n_embd": ll.llama_model_n_embd(model),
    "n_ctx_train": ll.llama_model_n_ctx_train(model),
    "n_ctx": ll.llama_n_ctx(ctx),
    "n_vocab": n_vocab,
    "mapped_mib": mib(r"CPU_Mapped model buffer size =\s*([\d.]+) MiB"),
    "repack_mib": mib(r"CPU_REPACK model buffer size =\s*([\d.]+) MiB"),
    "kv_mib": mib(r"KV buffer size =\s*([\d.]+) MiB"),
    "compute_mib": mib(r"sched_reserve:\s+CPU compute buffer size =\s*([\d.]+) MiB"),
    "output_mib": mib(r"output buffer size =\s*([\d.]+) MiB"),
}))
ll.llama_free(ctx)
ll.llama_model_free(model)
"""


def _probe(path: Path, n_ctx: int, n_batch: int, flash: bool) -> dict:
    pytest.importorskip("llama_cpp")
    done = subprocess.run(
        [sys.executable, "-c", _PROBE, str(path), str(n_ctx), str(n_batch), "1" if flash else "0"],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    return json.loads(done.stdout.strip().splitlines()[-1])


@pytest.mark.model
@pytest.mark.parametrize(
    ("which", "n_ctx", "flash"),
    [
        pytest.param("qwen_path", 4096, True, id="qwen0.5b-4k-fa"),
        pytest.param("smollm_path", 2048, False, id="smollm-2k"),
    ],
)
def test_fit_matches_llama_cpp(request: pytest.FixtureRequest, which: str, n_ctx: int, flash: bool) -> None:
    path: Path = request.getfixturevalue(which)
    options = FitOptions(n_ctx=n_ctx, n_batch=N_BATCH, flash_attn=flash, document_kv_mib=0)  # no documents saved
    fit = fit_model(path.name, path, options, PLENTY, bandwidth=None)
    llama = _probe(path, n_ctx, N_BATCH, flash)

    # KV bytes computed here from llama.cpp's own hyper-parameters, independently of the GGUF reader.
    head_dim = llama["n_embd"] // llama["n_head"]
    kv = 2 * llama["n_layer"] * llama["n_head_kv"] * head_dim * llama["n_ctx"] * 2
    assert fit.kv_bytes == kv
    assert (fit.layers, fit.kv_heads, fit.trained_context, fit.n_vocab) == (
        llama["n_layer"],
        llama["n_head_kv"],
        llama["n_ctx_train"],
        llama["n_vocab"],
    )
    # ... and against the buffers llama.cpp says it allocated.
    assert fit.kv_bytes / MIB == pytest.approx(llama["kv_mib"], abs=0.01)
    assert fit.weight_bytes / MIB == pytest.approx(llama["mapped_mib"], rel=0.01)
    assert fit.compute_bytes / MIB == pytest.approx(llama["compute_mib"] + llama["output_mib"], rel=0.02)

    growth = llama["rss_growth"]
    ratio = growth / fit.total_bytes
    print(
        f"{path.name}: RSS grew {growth / MIB:.0f} MiB, fit total {fit.total_bytes / MIB:.0f} MiB ({ratio:.2f}x)"
    )
    assert 0.5 <= ratio <= 2.0
    # The weights dominate and are all read while decoding, so RSS must at least hold them.
    assert growth >= 0.9 * fit.weight_bytes


@pytest.mark.model
def test_measure_with_the_engine(qwen_path: Path, smollm_path: Path) -> None:
    pytest.importorskip("llama_cpp")
    engine = pytest.importorskip("lsp_server.inference.llama.engine")
    assert hasattr(engine, "LlamaEngine")
    from lsp_server.inference.fit import measure_model

    # One thread: robust on a busy 2-CPU machine; no document states: the measure saves none.
    options = FitOptions(n_ctx=1024, n_threads=1, document_kv_mib=0)
    fit = fit_model("smollm2-135m", smollm_path, options, PLENTY, bandwidth=None)
    measure_model(fit, options)
    assert fit.measured_tok_s is not None and fit.measured_tok_s > 0
    assert fit.measured_rss_growth_bytes is not None
    assert 0.3 <= fit.measured_rss_growth_bytes / fit.total_bytes <= 3.0
