"""KV per document, shifted windows and pre-empted prompts, counted in evaluated tokens through the real engine.

SmolLM2-135M, one thread, q8_0 KV cache (as ``test_engine``): there a re-evaluated tail gives the cold logits
bit for bit, so "the same output as a cold evaluation" is asserted exactly where no position shift is involved.
"""

from __future__ import annotations

import asyncio
import threading
import time
from pathlib import Path

import pytest

from lsp_server.inference.llama.engine import LlamaEngine
from lsp_server.inference.types import CancelToken, GenerationRequest
from lsp_server.settings import EngineSettings

SETTINGS = EngineSettings(n_ctx=2048, n_threads=1, kv_cache_type_k="q8_0", kv_cache_type_v="q8_0")

pytestmark = pytest.mark.model


def source(name: str, n: int, start: int = 0) -> list[str]:
    """Lines of a made-up module: functions that differ, so no run of tokens repeats across the file."""
    return [
        f"def {name}_{i}(request, limit={i}):\n    value = request.get('{name}_{i}', {i * 7})\n"
        f"    return min(value * {i + 3}, limit)\n\n"
        for i in range(start, start + n)
    ]


def prompt_of(lines: list[str]) -> str:
    return "".join(lines) + "def "


def request(prompt: str, document: str | None, max_tokens: int = 12) -> GenerationRequest:
    return GenerationRequest(prompt=prompt, max_tokens=max_tokens, prompt_lookup=False, affinity_key=document)


def evaluated(result) -> int:
    return result.n_prompt_tokens - result.n_reused_tokens


@pytest.fixture
def engine(smollm_path: Path):
    engine = LlamaEngine(smollm_path, SETTINGS, name="smollm2-135m")
    yield engine
    engine.close()


def cold(smollm_path: Path, prompt: str, max_tokens: int = 12):
    fresh = LlamaEngine(smollm_path, SETTINGS, name="cold")
    try:
        return fresh.generate_blocking(request(prompt, None, max_tokens))
    finally:
        fresh.close()


def test_going_back_to_a_recent_document_evaluates_only_what_changed(engine: LlamaEngine, smollm_path: Path):
    a, b, c = (prompt_of(source(name, 12)) for name in ("alpha", "beta", "gamma"))
    first = engine.generate_blocking(request(a, "file:///a.py"))
    assert evaluated(first) == first.n_prompt_tokens
    engine.generate_blocking(request(b, "file:///b.py"))
    engine.generate_blocking(request(c, "file:///c.py"))
    assert engine.stats()["saved_documents"] == 2  # a and b saved while c is in the context

    back = engine.generate_blocking(request(a, "file:///a.py"))
    assert evaluated(back) == 1  # the last prompt token, for its logits
    assert back.text == first.text

    edited = a + "alpha_edited("  # typed at the end of a
    engine.generate_blocking(request(b, "file:///b.py"))
    again = engine.generate_blocking(request(edited, "file:///a.py"))
    changed = again.n_prompt_tokens - back.n_prompt_tokens
    assert evaluated(again) <= changed + 1
    reference = cold(smollm_path, edited)
    assert again.text == reference.text
    assert again.token_logprobs == reference.token_logprobs


def test_saved_documents_stay_within_the_memory_budget(smollm_path: Path):
    engine = LlamaEngine(smollm_path, SETTINGS.model_copy(update={"document_kv_mib": 8}), name="small-budget")
    try:
        sizes = []
        for i in range(6):
            engine.generate_blocking(request(prompt_of(source(f"f{i}", 6)), f"file:///{i}.py", max_tokens=2))
            sizes.append(engine.stats()["saved_document_bytes"])
        stats = engine.stats()
        assert 0 < stats["saved_document_bytes"] <= 8 * 2**20
        assert max(sizes) <= 8 * 2**20
        assert stats["saved_documents"] < 5  # the oldest were dropped to stay within 8 MiB
        # The newest saved one (document 4) comes back; the oldest (document 0) was dropped and is evaluated.
        recent = engine.generate_blocking(request(prompt_of(source("f4", 6)), "file:///4.py", max_tokens=2))
        oldest = engine.generate_blocking(request(prompt_of(source("f0", 6)), "file:///0.py", max_tokens=2))
        assert evaluated(recent) == 1
        assert oldest.n_reused_tokens <= engine.count_tokens("def f0_")  # only what it shares with document 4
    finally:
        engine.close()


def test_no_budget_keeps_no_document(smollm_path: Path):
    engine = LlamaEngine(smollm_path, SETTINGS.model_copy(update={"document_kv_mib": 0}), name="no-budget")
    try:
        a, b = prompt_of(source("alpha", 6)), prompt_of(source("beta", 6))
        engine.generate_blocking(request(a, "file:///a.py", max_tokens=2))
        engine.generate_blocking(request(b, "file:///b.py", max_tokens=2))
        back = engine.generate_blocking(request(a, "file:///a.py", max_tokens=2))
        assert engine.stats()["saved_documents"] == 0
        assert back.n_reused_tokens <= engine.count_tokens("def ")  # only what it shares with b
    finally:
        engine.close()


def test_a_shifted_window_evaluates_only_the_new_tokens(engine: LlamaEngine):
    lines = source("shift", 40)
    header = "# module: shifting.py\n"
    before = engine.generate_blocking(request(header + prompt_of(lines[:30]), "file:///s.py"))
    assert before.n_reused_tokens == 0
    # The window's start moved down five functions and five new ones came in at its end.
    after_prompt = header + prompt_of(lines[5:35])
    after = engine.generate_blocking(request(after_prompt, "file:///s.py"))
    new_tokens = engine.count_tokens("".join(lines[30:35]) + "def ")
    stats = engine.stats()
    assert stats["shifted_tokens"] > 0
    assert evaluated(after) <= new_tokens + 2
    assert evaluated(after) < after.n_prompt_tokens // 4


def test_shifting_off_evaluates_the_moved_window_again(smollm_path: Path):
    engine = LlamaEngine(smollm_path, SETTINGS.model_copy(update={"shift_reuse_min_tokens": 0}), name="no-shift")
    try:
        lines = source("shift", 40)
        engine.generate_blocking(request(prompt_of(lines[:30]), "file:///s.py", max_tokens=2))
        after = engine.generate_blocking(request(prompt_of(lines[5:35]), "file:///s.py", max_tokens=2))
        assert engine.stats()["shifted_tokens"] == 0
        assert after.n_reused_tokens <= engine.count_tokens("def shift_")  # the common start only
    finally:
        engine.close()


async def test_a_request_preempts_a_prewarm_within_one_batch_and_the_prewarmed_part_is_reused(engine: LlamaEngine):
    long_prompt = prompt_of(source("warm", 36))  # ~1,500 tokens: many prewarm batches
    total = engine.count_tokens(long_prompt)
    chunk = engine._background_chunk
    assert total > 8 * chunk
    engine.generate_blocking(request("x = 1\n", "file:///other.py", max_tokens=1))
    context = engine._context
    finished: list[bool] = []
    prewarm = threading.Thread(
        target=lambda: finished.append(engine.prewarm_blocking(long_prompt, None, "file:///warm.py")))
    prewarm.start()
    while context.document != "file:///warm.py" or len(context.kv_tokens) < 2 * chunk:
        await asyncio.sleep(0.001)
    stream = engine.stream(request("y = 2\n", "file:///other.py", max_tokens=1))
    progress_at_request = len(context.kv_tokens)  # the request is queued: the prewarm stops at its next batch
    await stream.result()
    prewarm.join()
    assert finished == [False]  # it gave way: nobody may be told the prompt is warm
    # The prewarm stopped at the batch boundary after the request was queued, and its tokens were saved.
    stats = engine.stats()
    assert stats["saved_documents"] >= 1
    warmed = engine.generate_blocking(request(long_prompt, "file:///warm.py", max_tokens=2))
    assert progress_at_request <= warmed.n_reused_tokens <= progress_at_request + chunk
    assert warmed.n_reused_tokens < total - 1  # it really was cut short


def test_a_cancelled_request_keeps_the_prompt_it_evaluated(engine: LlamaEngine, monkeypatch):
    monkeypatch.setattr(engine, "_request_chunk", 64)  # small prompt batches, so the cancel lands mid-prompt
    long_prompt = prompt_of(source("cut", 40))
    cancel = CancelToken()
    context = engine._context

    def canceller() -> None:
        while len(context.kv_tokens) < 256 or context.document != "file:///cut.py":
            time.sleep(0.0005)
        cancel.cancel()

    thread = threading.Thread(target=canceller)
    thread.start()
    result = engine.generate_blocking(request(long_prompt, "file:///cut.py"), cancel)
    thread.join()
    assert result.stop_reason == "cancelled"
    kept = len(context.kv_tokens)
    assert 256 <= kept < result.n_prompt_tokens - 1
    again = engine.generate_blocking(request(long_prompt, "file:///cut.py"))
    assert again.n_reused_tokens == kept


def test_fit_sizes_a_saved_document_as_the_engine_saves_it(engine: LlamaEngine, smollm_path: Path):
    """`gearshift fit`'s per-document figure is the size of a state the engine really keeps."""
    from lsp_server.inference.machine import MachineMemory
    from lsp_server.inference.sizing import FitOptions, fit_model

    lines = source("sized", 25)
    prompt = prompt_of(lines)
    window = engine.count_tokens(prompt)
    engine.generate_blocking(request(prompt, "file:///sized.py", max_tokens=1))
    engine.generate_blocking(request("x = 1\n", "file:///other.py", max_tokens=1))  # saves sized.py's state
    saved = engine.stats()["saved_document_bytes"]
    options = FitOptions.for_engine(SETTINGS).model_copy(update={"window_tokens": window + 1})
    memory = MachineMemory(ram_total_bytes=64 << 30, ram_available_bytes=60 << 30)
    fit = fit_model("smollm2-135m", smollm_path, options, memory, bandwidth=None)
    assert fit.document_state_bytes == pytest.approx(saved, rel=0.05)
    assert fit.documents_kept == fit.document_kv_bytes // fit.document_state_bytes


async def test_a_background_generation_yields_to_a_request_within_one_step(engine: LlamaEngine):
    from lsp_server.inference.types import Priority

    prompt = prompt_of(source("spec", 12))
    background = request(prompt, "file:///spec.py", max_tokens=400)
    background.priority = Priority.BACKGROUND
    context = engine._context
    stream = engine.stream(background)
    n_prompt = engine.count_tokens(prompt)
    while len(context.kv_tokens) < n_prompt + 4:  # decoding has begun
        await asyncio.sleep(0.001)
    real = engine.stream(request(prompt + "spec_0", "file:///spec.py", max_tokens=2))
    at_request = len(context.kv_tokens)
    yielded = await stream.result()
    answered = await real.result()
    assert yielded.stop_reason == "cancelled"
    assert yielded.n_generated_tokens < 400
    # It stopped at the next step after the request was queued (prompt lookup may verify a few drafts at once).
    assert n_prompt + yielded.n_generated_tokens <= at_request + SETTINGS.lookup_draft_max + 1
    assert answered.n_generated_tokens >= 1
    # The request reused the prompt the background generation evaluated.
    assert answered.n_reused_tokens >= n_prompt - 1


def test_held_tokens_counts_what_the_context_or_a_saved_state_holds(engine: LlamaEngine):
    a, b = prompt_of(source("alpha", 6)), prompt_of(source("beta", 6))
    assert engine.held_tokens(a, "file:///a.py")[0] == 0
    first = engine.generate_blocking(request(a, "file:///a.py", max_tokens=2))
    held, total = engine.held_tokens(a, "file:///a.py")
    assert total == first.n_prompt_tokens and held == total
    assert engine.held_tokens(a, "file:///b.py")[0] == 0  # another document's key holds nothing of it
    engine.generate_blocking(request(b, "file:///b.py", max_tokens=2))
    assert engine.held_tokens(a, "file:///a.py")[0] == total  # from a's saved state
    assert engine.held_tokens(a + "alpha_more", "file:///a.py")[0] >= total - 1  # the last token may merge
