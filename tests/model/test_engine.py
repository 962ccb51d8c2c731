"""LlamaEngine against a real model (SmolLM2-135M): stopping, cancelling, KV reuse, prompt lookup, errors.

The engine runs with one thread and a q8_0 KV cache here: with it llama.cpp computes a token's
logits bit-identically whether the token is decoded alone or verified in a
small batch (an f16 cache switches single-token decoding to a split-KV kernel
once 512 tokens are cached, with more than one thread), so "same output" can
be asserted exactly.
"""

from __future__ import annotations

import asyncio
import threading
import time
from pathlib import Path

import pytest

from lsp_server.completion.early import EarlyAnswer
from lsp_server.completion.fim import template_for
from lsp_server.errors import EngineError, ModelError
from lsp_server.inference.llama.engine import LlamaEngine
from lsp_server.inference.llama.output import Output
from lsp_server.inference.lookup import DraftPolicy, PromptLookup
from lsp_server.inference.types import CancelToken, GenerationRequest, GenerationResult
from lsp_server.settings import EngineSettings

# One thread: on a small shared machine two llama.cpp threads stall at every barrier when another
# process takes a core (decoding then drops up to 100-fold), which makes the tests crawl.
SETTINGS = EngineSettings(n_ctx=2048, n_threads=1, kv_cache_type_k="q8_0", kv_cache_type_v="q8_0")

CHAT = "<|im_start|>user\n{}<|im_end|>\n<|im_start|>assistant\n"
STORY = CHAT.format("Write a long story about a lighthouse keeper and a storm.")

SOURCE = "\n".join(
    f"def handler_{i}(request):\n    value = request.get('field_{i}', {i})\n    return value * {i + 1}\n"
    for i in range(8)
)
# Plain continuation of code that repeats: the model copies the first half.
COPY = f"{SOURCE}\n{SOURCE[: len(SOURCE) // 2]}"


@pytest.fixture(scope="module")
def engine(smollm_path: Path):
    engine = LlamaEngine(smollm_path, SETTINGS, name="smollm2-135m")
    yield engine
    engine.close()


def greedy(prompt: str, max_tokens: int = 48, **kwargs) -> GenerationRequest:
    return GenerationRequest(prompt=prompt, max_tokens=max_tokens, prompt_lookup=False, **kwargs)


# ---------------------------------------------------------------- no model needed


def test_output_buffers_utf8_split_across_tokens():
    pieces = {1: b"caf", 2: "é".encode()[:1], 3: "é".encode()[1:] + b"!"}
    out = Output(GenerationRequest(prompt="", max_tokens=10), pieces.__getitem__, lambda _t: False)
    for token in (1, 2, 3):
        assert out.push(token, 0.0) is None
    assert out.text == "café!"


def test_output_stop_string_across_tokens_and_held_back_from_the_partials():
    seen: list[str] = []
    pieces = {1: b"x = 1\n", 2: b"\n", 3: b"y"}
    request = GenerationRequest(prompt="", stop=["\n\ny"])
    out = Output(request, pieces.__getitem__, lambda _t: False, publish=lambda partial: seen.append(partial.text))
    assert out.push(1, 0.0) is None
    assert out.push(2, 0.0) is None
    assert out.push(3, 0.0) == "stop"
    assert out.text == "x = 1"
    # The consumer never saw the start of the stop string.
    assert seen == ["x = 1", "x = 1"]


def test_output_cut_keeps_the_tokens_up_to_the_cut():
    pieces = {1: b"ab", 2: b"cd", 3: b"ef"}
    out = Output(GenerationRequest(prompt="", max_tokens=10), pieces.__getitem__, lambda _t: False)
    for token in (1, 2, 3):
        out.push(token, -0.1 * token)
    out.cut(3)
    assert out.text == "abc" and out.tokens == [1, 2] and out.logprobs == [-0.1, -0.2]


def test_lookup_drafts_what_followed_the_newest_ngram_and_follows_an_accepted_copy():
    lookup = PromptLookup([1, 2, 3, 4, 5, 9, 1, 2], ngram_min=2, ngram_max=3, draft_max=4)
    assert lookup.draft(4) == [3, 4, 5, 9]
    assert not lookup.anchored
    lookup.extend([3, 4, 5, 9, 1])  # all four accepted, then the model chose 1 (the source's next token)
    lookup.feedback(4, 4, 1)
    assert lookup.draft(4) == [2, 3, 4, 5]
    assert lookup.anchored
    lookup.extend([7])  # first draft token rejected
    lookup.feedback(4, 0, 7)
    assert lookup.draft(4) == []  # (1, 7) never occurred before


def test_draft_policy_verifies_only_what_pays_off():
    cheap, linear = DraftPolicy(9), DraftPolicy(9)
    for n in range(1, 10):
        cheap.observe_cost(n, 0.050 * (1 + 0.15 * (n - 1)))
        linear.observe_cost(n, 0.015 * n)
    assert cheap.choose(8, anchored=True) == 3  # prior acceptance 0.7
    for _ in range(20):
        cheap.observe_draft(8, 8, anchored=True)
    assert cheap.choose(8, anchored=True) == 8
    assert linear.choose(8, anchored=True) == 0  # a batch of k costs k single steps: nothing to gain
    for _ in range(20):
        cheap.observe_draft(4, 0, anchored=False)
    assert cheap.choose(8, anchored=False) == 0  # fresh matches keep failing


# ---------------------------------------------------------------- real model


@pytest.mark.model
def test_metadata_tokenize_and_counts(engine: LlamaEngine):
    assert engine.metadata["general.architecture"] == "llama"
    assert engine.n_ctx_train == 8192
    tokens = engine.tokenize("def add(a, b):\n    return a + b\n")
    assert engine.detokenize(tokens) == "def add(a, b):\n    return a + b\n"
    assert engine.count_tokens("<|im_start|>") == 1  # special tokens are parsed


@pytest.mark.model
def test_fim_facts_come_from_llama_cpp(engine: LlamaEngine):
    # SmolLM2-135M-Instruct has no FIM tokens: llama.cpp names no prefix token, and the template is plain.
    assert "pre" not in engine.vocabulary.fim_tokens
    assert engine.vocabulary.has_token("<|im_start|>") and not engine.vocabulary.has_token("<fim_prefix>")
    assert template_for(engine.metadata, vocabulary=engine.vocabulary).family == "plain"


@pytest.mark.model
def test_max_tokens_and_logprobs(engine: LlamaEngine):
    result = engine.generate_blocking(greedy(STORY, max_tokens=5))
    assert result.stop_reason == "length"
    assert result.n_generated_tokens == 5
    assert len(result.token_logprobs) == 5
    assert all(lp <= 0.0 for lp in result.token_logprobs)
    assert result.text
    assert engine.stats()["n_generated_tokens"] == 5


@pytest.mark.model
def test_stop_strings_and_the_consumers_cut(engine: LlamaEngine):
    full = engine.generate_blocking(greedy(STORY, max_tokens=40)).text
    assert len(full) > 20
    marker = full[12:16]  # may span tokens
    expected = full[: full.index(marker)]

    stopped = engine.generate_blocking(greedy(STORY, max_tokens=40, stop=[marker]))
    assert stopped.stop_reason == "stop"
    assert stopped.text == expected

    async def cut_at_5_after_8() -> GenerationResult:
        stream = engine.stream(greedy(STORY, max_tokens=40))
        async for partial in stream:
            if len(partial.text) >= 8:
                stream.stop(5)
        return await stream.result()

    cut = asyncio.run(cut_at_5_after_8())
    assert cut.stop_reason == "stop"
    assert cut.text == full[:5]


@pytest.mark.model
def test_time_budget_stops_generation(engine: LlamaEngine):
    result = engine.generate_blocking(greedy(STORY, max_tokens=1000, time_budget_s=0.4))
    assert result.stop_reason == "time_budget"
    assert 0 < result.n_generated_tokens < 1000
    assert result.time_to_first_token_s + result.decode_s >= 0.4  # it ran until the budget, not before


@pytest.mark.model
async def test_cancel_from_another_thread_stops_within_a_step(engine: LlamaEngine):
    cancel = CancelToken()
    at_cancel: dict[str, float] = {}
    stream = engine.stream(greedy(STORY, max_tokens=400), cancel)

    def steps() -> int:  # tokens generated so far, as the engine thread published them
        return stream.latest.n_tokens if stream.latest is not None else 0

    def canceller() -> None:
        while steps() < 5:
            time.sleep(0.001)
        at_cancel.update(steps=steps(), time=time.perf_counter())
        cancel.cancel()

    thread = threading.Thread(target=canceller)
    thread.start()
    result = await stream.result()
    thread.join()
    assert result.stop_reason == "cancelled"
    assert result.n_generated_tokens - at_cancel["steps"] <= 2  # stopped within one token step of the cancel


@pytest.mark.model
def test_kv_reuse_gives_the_cold_output(engine: LlamaEngine, smollm_path: Path):
    prompt_a = CHAT.format(f"Explain what this code does:\n\n```python\n{SOURCE}```\n") + "handler_1"
    prompt_b = prompt_a[:-1] + "2"  # one character edited at the end
    engine.reset_cache()
    engine.generate_blocking(greedy(prompt_a, max_tokens=8))
    warm = engine.generate_blocking(greedy(prompt_b, max_tokens=32))
    assert warm.n_reused_tokens > warm.n_prompt_tokens - 4  # only the edited tail was evaluated again

    fresh = LlamaEngine(smollm_path, SETTINGS, name="fresh")
    try:
        cold = fresh.generate_blocking(greedy(prompt_b, max_tokens=32))
    finally:
        fresh.close()
    assert cold.n_reused_tokens == 0
    assert warm.text == cold.text
    assert warm.token_logprobs == cold.token_logprobs


@pytest.mark.model
def test_prompt_lookup_gives_the_plain_greedy_output(engine: LlamaEngine, monkeypatch):
    plain = engine.generate_blocking(greedy(COPY, max_tokens=64))
    assert "handler_5" in plain.text  # the model does copy: the lookup below has something to find

    # Verify every draft offered, whatever the measured batch costs say, so verification really runs.
    class VerifyAll(DraftPolicy):
        def choose(self, offered: int, anchored: bool) -> int:
            return offered

    monkeypatch.setattr(engine, "_draft_policy", VerifyAll(engine._verify_max))
    lookup = engine.generate_blocking(GenerationRequest(prompt=COPY, max_tokens=64, prompt_lookup=True))
    assert lookup.drafted_tokens > 0
    assert lookup.accepted_draft_tokens > 0
    assert lookup.text == plain.text
    assert lookup.token_logprobs == pytest.approx(plain.token_logprobs, abs=1e-5)
    assert lookup.n_generated_tokens == plain.n_generated_tokens


@pytest.mark.model
def test_prewarm_fills_the_cache(engine: LlamaEngine):
    engine.reset_cache()
    prompt = CHAT.format("Name three rivers.")
    engine.prewarm_blocking(prompt)
    result = engine.generate_blocking(greedy(prompt, max_tokens=4))
    assert result.n_reused_tokens == result.n_prompt_tokens - 1


@pytest.mark.model
async def test_async_generate_does_not_block_the_event_loop(engine: LlamaEngine):
    ticks: list[float] = []

    async def ticker() -> None:
        while True:
            ticks.append(time.perf_counter())
            await asyncio.sleep(0.005)

    task = asyncio.create_task(ticker())
    await asyncio.sleep(0.01)
    started = time.perf_counter()
    result = await engine.generate(greedy(STORY, max_tokens=48))
    finished = time.perf_counter()
    task.cancel()
    during = [t for t in ticks if started <= t <= finished]
    assert result.n_generated_tokens > 0
    assert len(during) >= 10
    gaps = [b - a for a, b in zip([started, *during], [*during, finished], strict=True)]
    assert max(gaps) < 0.5


@pytest.mark.model
async def test_cancelling_the_task_stops_the_generation(engine: LlamaEngine):
    stream = engine.stream(greedy(STORY, max_tokens=1000))
    task = asyncio.create_task(stream.result())

    def steps() -> int:
        return stream.latest.n_tokens if stream.latest is not None else 0

    while steps() < 3:
        await asyncio.sleep(0.01)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    # The worker is free again: the next request runs (it would queue behind 1,000 tokens otherwise).
    result = await engine.generate(greedy(STORY, max_tokens=2))
    assert result.n_generated_tokens == 2
    assert steps() < 20  # the cancelled generation stopped soon after the cancel


@pytest.mark.model
async def test_a_slow_consumer_never_holds_up_decoding(engine: LlamaEngine):
    stream = engine.stream(greedy(STORY, max_tokens=48))
    seen = []
    async for partial in stream:
        seen.append(partial)
        await asyncio.sleep(0.2)  # far slower than a token step: partials are coalesced, decoding goes on
    result = await stream.result()
    assert result.n_generated_tokens == 48 and len(seen) < 48
    assert all(result.text.startswith(partial.text) for partial in seen)
    assert [p.n_tokens for p in seen] == sorted({p.n_tokens for p in seen})  # newer each time, never repeated


@pytest.mark.model
def test_context_overflow_is_an_engine_error(engine: LlamaEngine):
    with pytest.raises(EngineError, match="exceeds the context"):
        engine.generate_blocking(greedy("word " * 2100, max_tokens=8))


# ---------------------------------------------------------------- bad input


@pytest.mark.model
def test_missing_file(tmp_path: Path):
    with pytest.raises(ModelError, match="not found"):
        LlamaEngine(tmp_path / "nope.gguf", SETTINGS)


@pytest.mark.model
def test_not_a_gguf_file(tmp_path: Path):
    path = tmp_path / "model.gguf"
    path.write_text("this is not a model\n" * 100)
    with pytest.raises(ModelError, match="not a GGUF model file"):
        LlamaEngine(path, SETTINGS)


@pytest.mark.model
def test_truncated_gguf(tmp_path: Path, smollm_path: Path):
    path = tmp_path / "truncated.gguf"
    with smollm_path.open("rb") as source:
        path.write_bytes(source.read(1 << 20))
    with pytest.raises(ModelError, match="truncated or corrupt"):
        LlamaEngine(path, SETTINGS)


@pytest.mark.model
def test_context_beyond_training(smollm_path: Path):
    with pytest.raises(EngineError, match="trained for"):
        LlamaEngine(smollm_path, EngineSettings(n_ctx=65536))


@pytest.mark.model
def test_closed_engine_refuses_work(smollm_path: Path):
    engine = LlamaEngine(smollm_path, SETTINGS)
    engine.close()
    engine.close()  # idempotent
    with pytest.raises(EngineError, match="closed"):
        engine.generate_blocking(greedy(STORY))


async def answered_early(engine: LlamaEngine, request: GenerationRequest, after_s: float):
    """(early answers, result) of ``request`` followed as the completion pipeline does."""
    stream = engine.stream(request)
    answer = EarlyAnswer(after_s)
    answers = [partial async for partial in stream if answer.due(partial)]
    return answers, await stream.result()


def test_first_answer_hands_over_the_text_so_far_once_and_generation_goes_on(engine: LlamaEngine):
    answers, result = asyncio.run(answered_early(engine, greedy(COPY, max_tokens=40), 0.0))
    assert len(answers) == 1
    first = answers[0]
    assert "\n" in first.text and result.text.startswith(first.text)  # at the first finished line
    assert len(first.token_logprobs) < result.n_generated_tokens  # it went on after the early answer
    assert first.token_logprobs == result.token_logprobs[: len(first.token_logprobs)]
    assert first.time_to_first_token_s > 0
    plain = engine.generate_blocking(greedy(COPY, max_tokens=40))
    assert plain.text == result.text  # answering early changes nothing in what is generated


def test_a_generation_done_before_its_first_answer_time_never_answers_early(engine: LlamaEngine):
    answers, _result = asyncio.run(answered_early(engine, greedy(STORY, max_tokens=4), 60.0))
    assert answers == []


@pytest.mark.model
def test_a_failed_decode_is_an_engine_error_and_the_next_request_works(engine: LlamaEngine, monkeypatch):
    # llama_decode can fail (no KV slot, a backend error): one clear error, the cache is reset, the engine serves on.
    from lsp_server.inference.llama import context as context_module

    with monkeypatch.context() as patched:
        patched.setattr(context_module.llama, "llama_decode", lambda _ctx, _batch: 1)
        with pytest.raises(EngineError, match="llama_decode failed with status 1"):
            engine.generate_blocking(greedy(STORY + " One", max_tokens=4))
    result = engine.generate_blocking(greedy(STORY, max_tokens=4))
    assert result.n_generated_tokens == 4
