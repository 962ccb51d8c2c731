"""In-process llama.cpp inference: one model, one context, one worker thread.

``LlamaEngine`` drives llama.cpp through its low-level C API (the ctypes bindings of llama-cpp-python and their
``_internals`` wrappers), not through the high-level ``Llama`` class, whose Python-side sampling delivers a fraction
of the model's speed.

Threading: every call that touches the llama context runs on the engine's single worker thread (``generate``,
``generate_blocking``, ``prewarm``, loading and freeing).  Tokenizing only reads the vocabulary, so ``tokenize`` and
``count_tokens`` run on the caller's thread and never wait behind a generation.

Context overflow: a request whose prompt tokens plus ``max_tokens`` exceed ``n_ctx`` raises ``EngineError``; the
pipeline sizes prompts, the engine never silently drops text.

Exactness.  llama.cpp's CPU kernels pick code paths by batch size, and the paths round differently:

* Attention: with flash attention (on by default) one token and small batches share a kernel, except that an f16
  K+V cache switches one-token decoding to a split-KV kernel once 512 tokens are cached and more than one thread
  runs.  A q8_0 K cache avoids that split, and then prompt lookup is bit-identical to plain greedy decoding at any
  context length; with f16/f16 it is only below 512 cached tokens (or with one thread).
* Large batches: see ``calibrate`` (the exact verification batch, measured at load).
* KV reuse re-evaluates the few tokens after an edit as a small batch, while a cold run evaluates them inside a
  large one.  Where those kernels differ (Qwen2.5: yes; SmolLM2: no) the last positions get slightly different
  logits and a near-tie can break the other way (``context`` splits chunks evenly to keep that rare).
* Background work (prewarm, a speculation's prompt) evaluates in batches of about ``_BACKGROUND_CHUNK_S`` of work,
  which can be under 64 tokens: on Qwen2.5 its KV then rounds like KV reuse's, not like a cold prompt's.
"""

from __future__ import annotations

import asyncio
import logging
import math
import threading
import time
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path
from typing import Any, TypeVar

from lsp_server.errors import EngineError
from lsp_server.inference.llama import calibrate, decode
from lsp_server.inference.llama.context import Context, StopFlag, common_prefix
from lsp_server.inference.llama.documents import DocumentStates
from lsp_server.inference.llama.log import LLAMA_LOG
from lsp_server.inference.llama.model import Model
from lsp_server.inference.llama.output import Output
from lsp_server.inference.llama.threads import default_n_threads
from lsp_server.inference.lookup import DraftPolicy
from lsp_server.inference.stream import GenerationStream
from lsp_server.inference.types import CancelToken, GenerationRequest, GenerationResult, Priority, Vocabulary
from lsp_server.settings import EngineSettings, FimFamily

log = logging.getLogger(__name__)

T = TypeVar("T")

_CHUNK_S = 1.0
_MIN_CHUNK = 64
"""Smallest request chunk: a batch of 64 costs per token about what one of 512 does on a CPU, and smaller ones
more.  (llama.cpp rounds slightly differently with the batch size, so the chunking can move a greedy answer.)"""
_BACKGROUND_CHUNK_S = 0.1
"""About how long one decode call of background work (a prewarm, a speculation's prompt) takes: a keystroke that
arrives meanwhile waits at most this long for the engine.  Smaller batches cost throughput (the 0.5B on a
2-vCPU AVX-512 Xeon: 16 tokens 146 tok/s, 127 tokens 209 tok/s) and round slightly differently from one big prompt
batch (see the module docstring), which background work can afford and a keystroke's wait cannot."""
_BACKGROUND_CHUNK_MIN, _BACKGROUND_CHUNK_MAX = 8, 127


class LlamaEngine:
    """A GGUF model served by llama.cpp in this process; implements ``AsyncEngine``."""

    fim_family: FimFamily | None = None
    """No setting of its own: the template comes from ``vocabulary`` (or ``models.fimTemplate``)."""

    def __init__(self, model_path: Path, settings: EngineSettings, name: str = "") -> None:
        self.model_path = Path(model_path)
        self.name = name or self.model_path.stem
        self._settings = settings
        self._n_threads_wanted = settings.n_threads or default_n_threads()
        self._lock = threading.Lock()
        self._closed = False
        self._closing = threading.Event()
        self._waiting = 0  # generations queued or running: prewarm gives way to them
        self._give_way = _RequestWaiting(self)
        self._last: GenerationResult | None = None
        self._model: Model | None = None
        self._context: Context | None = None
        self._documents = DocumentStates(settings.document_kv_mib * 2**20)
        """Saved KV states of recently used documents other than the one the context holds."""
        self._worker_thread: threading.Thread | None = None
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix=f"llama-{self.name}")
        try:
            self._executor.submit(self._load).result()
        except BaseException:
            self._executor.shutdown(wait=False)
            raise

    # ------------------------------------------------------------------ loading (worker thread)

    def _load(self) -> None:
        self._worker_thread = threading.current_thread()
        settings = self._settings
        LLAMA_LOG.install()
        model = Model(self.model_path, settings)
        try:
            self.n_ctx_train = model.n_ctx_train
            if settings.n_ctx > self.n_ctx_train > 0:
                raise EngineError(
                    f"engine.nCtx {settings.n_ctx} exceeds the {self.n_ctx_train} tokens "
                    f"{self.name} was trained for; set engine.nCtx to {self.n_ctx_train} or less"
                )
            self.metadata = model.metadata
            self.vocabulary: Vocabulary | None = model
            """FIM tokens and special-token lookup, for the prompt template (the loaded model: read it, not a file)."""
            self.n_vocab = model.n_vocab
            context = Context(model, settings, self._n_threads_wanted, self.name)
        except BaseException:
            model.close()
            raise
        self._model, self._context = model, context
        self.n_ctx = context.n_ctx
        try:
            self._calibrate(settings)
        except BaseException:
            self._free()
            raise
        log.info(
            "loaded %s: n_ctx=%d (trained %d) threads=%d kv=%s/%s exact verify batch=%d prompt %.0f tok/s",
            self.name,
            self.n_ctx,
            self.n_ctx_train,
            context.n_threads,
            settings.kv_cache_type_k,
            settings.kv_cache_type_v,
            self._verify_max,
            self.prompt_tokens_per_s,
        )

    def _calibrate(self, settings: EngineSettings) -> None:
        model, context = self._require()
        self._verify_max = settings.lookup_draft_max + 1
        if settings.lookup_exact:
            self._verify_max = calibrate.exact_batch(self.model_path, model, context, settings, self._verify_max)
        self._draft_policy = DraftPolicy(self._verify_max)
        self.prompt_tokens_per_s = calibrate.measure_prompt_speed(model, context)
        """Prompt evaluation speed measured at load: what a prompt that shares nothing with the KV cache costs
        (completion sizes its prompt window from it, so a file just opened answers within seconds)."""
        self._request_chunk = max(_MIN_CHUNK, min(context.capacity, int(self.prompt_tokens_per_s * _CHUNK_S)))
        """Prompt tokens per decode call for a request: about ``_CHUNK_S`` of work, so a cancel waits no longer."""
        self._background_chunk = max(_BACKGROUND_CHUNK_MIN, min(
            _BACKGROUND_CHUNK_MAX, context.capacity, int(self.prompt_tokens_per_s * _BACKGROUND_CHUNK_S)))
        """Prompt tokens per decode call for background work: about ``_BACKGROUND_CHUNK_S`` of it."""

    # ------------------------------------------------------------------ public API

    def tokenize(self, text: str, special: bool = True, add_special: bool = False) -> list[int]:
        """Token ids of ``text``; ``special`` parses control tokens, ``add_special`` adds BOS if the model wants it."""
        model, _ = self._require()
        return model.tokenize(text.encode("utf-8"), add_special, special)

    def detokenize(self, tokens: list[int], special: bool = False) -> str:
        """Text of ``tokens``; ``special`` renders control tokens instead of dropping them."""
        model, _ = self._require()
        return model.detokenize(tokens, special)

    def count_tokens(self, text: str) -> int:
        return len(self.tokenize(text, special=True))

    def set_n_threads(self, n: int) -> None:
        """Threads for the next request (the latency guard's knob); applied on the worker, never blocks."""
        if n <= 0:
            raise EngineError(f"thread count must be positive, got {n}")
        self._n_threads_wanted = n

    @property
    def n_threads(self) -> int:
        return self._n_threads_wanted

    @property
    def label(self) -> str:
        return self.name

    def stats(self) -> dict[str, Any]:
        """Figures of the last request and the engine's state, for logs, status bars and benchmarks."""
        context = self._context
        stats: dict[str, Any] = {
            "model": self.name,
            "n_ctx": self.n_ctx,
            "n_threads": context.n_threads if context is not None else self._n_threads_wanted,
            "kv_tokens": len(context.kv_tokens) if context is not None else 0,
            "shifted_tokens": context.shifted_tokens if context is not None else 0,
            "saved_documents": len(self._documents),
            "saved_document_bytes": self._documents.bytes_used,
        }
        last = self._last
        if last is not None:
            stats.update(
                stop_reason=last.stop_reason,
                n_prompt_tokens=last.n_prompt_tokens,
                n_reused_tokens=last.n_reused_tokens,
                n_generated_tokens=last.n_generated_tokens,
                prompt_eval_s=last.prompt_eval_s,
                time_to_first_token_s=last.time_to_first_token_s,
                decode_s=last.decode_s,
                decode_tokens_per_s=last.decode_tokens_per_s,
                drafted_tokens=last.drafted_tokens,
                accepted_draft_tokens=last.accepted_draft_tokens,
                draft_acceptance=(last.accepted_draft_tokens / last.drafted_tokens)
                if last.drafted_tokens
                else 0.0,
            )
        return stats

    def generate_blocking(
        self, request: GenerationRequest, cancel: CancelToken | None = None
    ) -> GenerationResult:
        """Generate on the worker thread and wait for it (CLI, benchmarks, tests)."""
        started = time.perf_counter()
        flag = StopFlag(self._closing, cancel)
        if threading.current_thread() is self._worker_thread:
            return self._generate(request, flag, started, None)
        return self._submit(self._generate, request, flag, started, None, generation=True).result()

    def stream(self, request: GenerationRequest, cancel: CancelToken | None = None) -> GenerationStream:
        """Generate on the worker thread; partial outputs come on the event loop without ever blocking it."""
        started = time.perf_counter()
        stream = GenerationStream(cancel)
        # Background work (a speculated suggestion) stops as soon as a request is waiting, and does not make
        # prewarms give way to it.
        background = request.priority == Priority.BACKGROUND
        flag = StopFlag(self._closing, stream, self._give_way if background else None)
        future = self._submit(self._generate, request, flag, started, stream, generation=not background)
        return stream.run(asyncio.wrap_future(future))

    async def generate(
        self, request: GenerationRequest, cancel: CancelToken | None = None
    ) -> GenerationResult:
        """``stream`` to its end; cancelling the awaiting task stops the generation."""
        return await self.stream(request, cancel).result()

    async def prewarm(self, request: GenerationRequest) -> bool:
        """Evaluate ``request.prompt`` into the KV cache; gives way as soon as a generation is waiting (then
        returns False; what it evaluated stays for the request)."""
        own = CancelToken()
        future = self._submit(self._prewarm, request.prompt, request.affinity_key, StopFlag(self._closing, own))
        try:
            return await asyncio.wrap_future(future)
        except asyncio.CancelledError:
            own.cancel()
            raise

    def prewarm_blocking(self, prompt: str, cancel: CancelToken | None = None, document: str | None = None) -> bool:
        return self._submit(self._prewarm, prompt, document, StopFlag(self._closing, cancel)).result()

    def held_tokens(self, prompt: str, document: str) -> tuple[int, int]:
        """(how many leading tokens of ``prompt`` the engine holds evaluated for ``document``, in its context or a
        saved state; the prompt's length in tokens).  Called on the event loop while the worker may be running:
        a glance that decides a prompt window, not a promise."""
        model, context = self._model, self._context
        if model is None or context is None:
            return 0, 0
        tokens = model.tokenize(prompt.encode("utf-8"), True, True)
        held = common_prefix(list(context.kv_tokens), tokens) if context.document == document else 0
        saved = self._documents.peek(document)
        if saved is not None:
            held = max(held, common_prefix(saved.tokens, tokens))
        return held, len(tokens)

    def reset_cache(self, documents: bool = True) -> None:
        """Empty the KV cache and, with ``documents``, the saved document states (benchmarks measure cold
        evaluation with it; without ``documents`` the states saved so far come back as before)."""

        def reset() -> None:
            self._require()[1].reset()
            if documents:
                self._documents.clear()

        self._submit(reset).result()

    def close(self) -> None:
        """Stop any running request, free the context and model, and end the worker thread (idempotent)."""
        with self._lock:
            if self._closed:
                return
            self._closed = True
        self._closing.set()
        if threading.current_thread() is self._worker_thread:
            self._free()
            self._executor.shutdown(wait=False)
            return
        try:
            self._executor.submit(self._free)
        except RuntimeError:  # executor already shut down
            pass
        self._executor.shutdown(wait=True)

    # ------------------------------------------------------------------ requests (worker thread)

    def _prewarm(self, prompt: str, document: str | None, flag: StopFlag) -> bool:
        """Whether the whole prompt is now in the cache (False: it gave way to a request, or was cancelled)."""
        if self._closing.is_set():
            return False
        model, context = self._require()
        context.set_n_threads(self._n_threads_wanted)
        tokens = model.tokenize(prompt.encode("utf-8"), True, True)[: self.n_ctx - 1]
        started = time.perf_counter()
        own = self._switch_document(context, document, tokens)
        reused = context.reuse_prefix(tokens, need_logits=False, shift=own)
        if reused == len(tokens):
            return True
        reason = context.evaluate(tokens, flag, math.inf, self._background_chunk, False,
                                  give_way=lambda: self._waiting > 0)
        log.debug(
            "prewarm %s: %d tokens (%d reused) in %.3fs%s",
            self.name,
            len(tokens),
            reused,
            time.perf_counter() - started,
            " (gave way)" if reason else "",
        )
        return reason is None

    def _generate(
        self, request: GenerationRequest, flag: StopFlag, called: float, stream: GenerationStream | None
    ) -> GenerationResult:
        if self._closing.is_set():
            raise EngineError(f"the {self.name} engine is closed")
        result = self._run(request, flag, called, stream)
        self._last = result
        log.debug(
            "generate %s: prompt=%d reused=%d gen=%d stop=%s ttft=%.3fs tok/s=%.1f draft=%d/%d",
            self.name,
            result.n_prompt_tokens,
            result.n_reused_tokens,
            result.n_generated_tokens,
            result.stop_reason,
            result.time_to_first_token_s,
            result.decode_tokens_per_s,
            result.accepted_draft_tokens,
            result.drafted_tokens,
        )
        return result

    def _run(
        self, request: GenerationRequest, flag: StopFlag, called: float, stream: GenerationStream | None
    ) -> GenerationResult:
        started = time.perf_counter()
        model, context = self._require()
        context.set_n_threads(self._n_threads_wanted)
        if request.max_tokens <= 0:
            raise EngineError(f"max_tokens must be positive, got {request.max_tokens}")
        prompt = model.tokenize(request.prompt.encode("utf-8"), True, True)
        if not prompt:
            raise EngineError("the prompt is empty")
        if len(prompt) + request.max_tokens > self.n_ctx:
            raise EngineError(
                f"prompt of {len(prompt)} tokens plus max_tokens={request.max_tokens} exceeds the context of "
                f"{self.n_ctx} tokens of {self.name}; shorten the prompt or raise engine.nCtx"
            )
        greedy = request.temperature <= 0
        lookup_on = self._settings.prompt_lookup if request.prompt_lookup is None else request.prompt_lookup
        out = Output(request, model.piece, model.is_eog, called, stream.publish if stream is not None else None)

        own = self._switch_document(context, request.affinity_key, prompt)
        reused = context.reuse_prefix(prompt, need_logits=True, shift=own)
        # The prompt has no time budget (a request stuck behind a long one is cancelled by the next keystroke
        # instead); its chunks are kept to about a second so that cancelling takes effect soon.
        # Background work checks for a waiting request after every small chunk, as a prewarm does.
        chunk = self._background_chunk if request.priority == Priority.BACKGROUND else self._request_chunk
        reason = context.evaluate(prompt, flag, math.inf, chunk, True)
        prompt_done = time.perf_counter()
        drafted = accepted = 0
        first_token_at = prompt_done
        deadline = prompt_done + request.time_budget_s if request.time_budget_s is not None else math.inf
        if reason is None:
            sampler = None if greedy else decode.make_sampler(request)
            try:
                row = context.last_row()
                token = decode.sample(context, sampler, -1) if sampler is not None else int(row.argmax())
                logprob = decode.logprob(row, token, greedy)
                first_token_at = time.perf_counter()
                reason = out.push(token, logprob)
                if reason is None:
                    if greedy and lookup_on:
                        reason, drafted, accepted = decode.decode_lookup(
                            context, self._settings, self._draft_policy, self._verify_max,
                            request, prompt, token, out, flag, deadline,
                        )
                    else:
                        reason = decode.decode_plain(context, sampler, token, out, flag, deadline)
            finally:
                if sampler is not None:
                    decode.free_sampler(sampler)
        finished = time.perf_counter()
        if stream is not None and stream.cut is not None:  # the consumer's stop: its text ends there
            reason = "stop"
            finished = out.cut(stream.cut) or finished
        return GenerationResult(
            text=out.text,
            stop_reason=reason or "length",
            n_prompt_tokens=len(prompt),
            n_reused_tokens=reused,
            n_generated_tokens=len(out.tokens),
            token_logprobs=out.logprobs,
            prompt_eval_s=prompt_done - started,
            time_to_first_token_s=(first_token_at - called) if out.tokens else 0.0,
            decode_s=(finished - first_token_at) if out.tokens else 0.0,
            drafted_tokens=drafted,
            accepted_draft_tokens=accepted,
            model_name=self.name,
        )

    def _switch_document(self, context: Context, document: str | None, prompt: list[int]) -> bool:
        """Before ``document``'s prompt: save the other document the cache holds, bring back ``document``'s own.

        The saved state comes back only when it shares more with ``prompt`` than the cache does now (two
        documents may share a header or a file's copy).  Requests without a document key use the cache as is.
        Returns whether the cache now holds this document's own earlier prompt: only then may cached runs be
        shifted into the new one (another prompt's runs were computed in another context, and a model reading
        them where they do not belong can lose its way).
        """
        if document is None:
            return False
        if document == context.document:
            return True
        saved = self._documents.take(document)
        if context.document is not None and context.kv_tokens:
            self._documents.put(context.document, context.save_state())
        context.document = document
        if saved is not None and common_prefix(saved.tokens, prompt) > common_prefix(context.kv_tokens, prompt):
            return context.load_state(saved)
        return False

    # ------------------------------------------------------------------ plumbing

    def _require(self) -> tuple[Model, Context]:
        if self._closed or self._model is None or self._context is None:
            raise EngineError(f"the {self.name} engine is closed")
        return self._model, self._context

    def _submit(self, fn: Callable[..., T], *args: Any, generation: bool = False) -> Future[T]:
        if self._closed:
            raise EngineError(f"the {self.name} engine is closed")
        if generation:
            with self._lock:
                self._waiting += 1
        try:
            future = self._executor.submit(fn, *args)
        except RuntimeError:
            if generation:
                self._generation_done(None)
            raise EngineError(f"the {self.name} engine is closed") from None
        if generation:
            future.add_done_callback(self._generation_done)
        return future

    def _generation_done(self, _future: Future[Any] | None) -> None:
        with self._lock:
            self._waiting -= 1

    def _free(self) -> None:
        if self._context is not None:
            self._context.close()
            self._context = None
        if self._model is not None:
            self._model.close()
            self._model = None


class _RequestWaiting:
    """A stop flag's token that is set while a request is queued or running: background generations yield."""

    __slots__ = ("_engine",)

    def __init__(self, engine: LlamaEngine) -> None:
        self._engine = engine

    @property
    def cancelled(self) -> bool:
        return self._engine._waiting > 0
