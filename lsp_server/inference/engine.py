"""In-process llama.cpp inference: one model, one context, one worker thread.

``LlamaEngine`` drives llama.cpp through its low-level C API (the ctypes
bindings of llama-cpp-python), not through the high-level ``Llama`` class,
whose Python-side sampling delivers a fraction of the model's speed.  Per
generated token the Python work is one ``llama_decode`` call, an argmax and a
log-sum-exp on a zero-copy numpy view of the logits, and a dictionary lookup
for the token's bytes (about 0.1-0.25 ms, 1-2 % of a decode step).

Threading: every call that touches the llama context runs on the engine's
single worker thread (``generate_blocking``, ``generate``, ``prewarm``,
loading and freeing).  Tokenizing and detokenizing only read the vocabulary,
which is immutable once the model is loaded, so ``tokenize``/``count_tokens``
run on the caller's thread and never wait behind a generation (llama-server
tokenizes on its HTTP threads the same way).

KV cache reuse: the engine remembers the tokens whose keys and values are in
the cache.  A new prompt evaluates only the tokens after the longest common
prefix; the rest of the cache is dropped with ``llama_memory_seq_rm``.

Context overflow: a request whose prompt tokens plus ``max_tokens`` exceed
``n_ctx`` raises ``EngineError``; the pipeline sizes prompts, the engine never
silently drops text.

Exactness.  llama.cpp's CPU kernels pick code paths by batch size, and the
paths round differently (a token's logits can move by up to ~1 between them):

* Attention: with flash attention (on by default) one token and small batches
  share a kernel, except that an f16 K+V cache switches one-token decoding to a
  split-KV kernel once 512 tokens are cached and more than one thread runs.  A
  q8_0 K cache avoids that split, and then prompt lookup is bit-identical to
  plain greedy decoding at any context length; with f16/f16 it is only below
  512 cached tokens (or with one thread).
* Large batches (8+ tokens on Qwen2.5, never on SmolLM2 in our measurements)
  use tiled kernels; ``lookup_exact`` measures at load the largest verification
  batch that matches one-token decoding and drafts no more than that.
* KV reuse re-evaluates the few tokens after an edit as a small batch, while a
  cold run evaluates them inside a large one.  Where those kernels differ
  (Qwen2.5: yes; SmolLM2: no) the last positions get slightly different logits and a
  near-tie can break the other way.  Prompt chunks are split evenly (no tiny
  remainders) so that longer re-evaluated spans match a cold run.
"""

from __future__ import annotations

import asyncio
import codecs
import ctypes
import json
import logging
import math
import os
import threading
import time
from collections import deque
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path
from typing import Any, TypeVar

import llama_cpp as llama
import numpy as np

from lsp_server.errors import EngineError, ModelError
from lsp_server.inference.lookup import DraftPolicy, PromptLookup
from lsp_server.inference.types import (
    CancelToken,
    FirstAnswer,
    GenerationRequest,
    GenerationResult,
    StopReason,
)
from lsp_server.settings import EngineSettings

log = logging.getLogger(__name__)

T = TypeVar("T")

_GGML_TYPES = {"f16": llama.GGML_TYPE_F16, "q8_0": llama.GGML_TYPE_Q8_0, "q4_0": llama.GGML_TYPE_Q4_0}
_GGUF_MAGIC = b"GGUF"
_PROBE_FORMAT = "exact-batch-v1"
"""Part of the probe cache key: a change to how the probe measures must not reuse older answers."""
_LOGPROB_WINDOW = 16.0
_SPEED_PROBE_TOKENS = 64
"""Prompt tokens timed at load to measure this machine's prompt speed (1.7 s for the 0.5B on two AVX2 cores, where
a batch of 64 already costs per token what a batch of 512 does)."""
_CHUNK_S = 1.0
_MIN_CHUNK = 64
"""Smallest request chunk: a batch of 64 costs per token about what one of 512 does on a CPU, and smaller ones
more.  (llama.cpp rounds slightly differently with the batch size, so the chunking can move a greedy answer.)"""
_PREWARM_CHUNK = 127
"""Most tokens per decode call while prewarming: small, so a generation waiting behind it starts soon.

With equal chunks every prewarm chunk then holds 64 tokens or more, the batch sizes for which
llama.cpp's CPU kernels compute what one big prompt batch computes."""


class _LlamaLog:
    """Routes llama.cpp and ggml log lines to Python logging at DEBUG, never to stdout or stderr.

    The first error lines of each thread are kept so that a failed
    load can say why ("tensor data is not within the file bounds", ...).
    llama.cpp's logger is process-wide, hence one instance for the process.
    """

    # enum ggml_log_level: NONE 0, DEBUG 1, INFO 2, WARN 3, ERROR 4, CONT 5 (continues the previous line).
    _LEVEL_ERROR = 4
    _LEVEL_CONT = 5

    def __init__(self) -> None:
        self._logger = logging.getLogger("lsp_server.inference.llama_cpp")
        self._local = threading.local()
        self._lock = threading.Lock()
        self._backend_ready = False
        # Kept on the instance: llama.cpp holds only the function pointer.
        self._callback = llama.llama_log_callback(self._on_log)

    def install(self) -> None:
        with self._lock:
            # llama_cpp's import installs a callback that prints to stderr; take it over every time.
            llama.llama_log_set(self._callback, ctypes.c_void_p(0))
            if not self._backend_ready:
                llama.llama_backend_init()
                self._backend_ready = True

    def _recent(self) -> deque[str]:
        recent = getattr(self._local, "recent", None)
        if recent is None:
            recent = self._local.recent = deque(maxlen=6)
        return recent

    def _on_log(self, level: int, text: bytes | None, _user_data: Any) -> None:
        try:
            message = text.decode("utf-8", "replace") if text else ""
            if level == self._LEVEL_CONT:
                level = getattr(self._local, "level", 0)
            self._local.level = level
            if level == self._LEVEL_ERROR and message.strip():
                recent = self._recent()
                if len(recent) < 6:  # the first errors carry the cause
                    recent.append(message.strip())
            if self._logger.isEnabledFor(logging.DEBUG):
                self._logger.debug("%s", message.rstrip("\n"))
        except Exception:  # an exception must never cross back into C
            pass

    def clear_recent(self) -> None:
        self._recent().clear()

    def recent_errors(self) -> str:
        """The first error llama.cpp logged on this thread since ``clear_recent`` (the root cause)."""
        recent = self._recent()
        return recent[0] if recent else ""


_LLAMA_LOG = _LlamaLog()


def _bind(name: str, argtypes: list[Any], restype: Any) -> Any:
    """A private ctypes binding of a llama.cpp function (the shared one's restype is not changed)."""
    function = llama.llama_cpp._lib[name]
    function.argtypes = argtypes
    function.restype = restype
    return function


# Raw addresses instead of POINTER(c_float): the numpy view for an address is cached and reused.
_get_logits_ith_addr = _bind(
    "llama_get_logits_ith", [llama.llama_context_p_ctypes, ctypes.c_int32], ctypes.c_void_p
)
_get_logits_addr = _bind("llama_get_logits", [llama.llama_context_p_ctypes], ctypes.c_void_p)


def default_n_threads() -> int:
    """Physical cores among the CPUs this process may run on (hyperthreads do not speed up decoding)."""
    try:
        cpus = sorted(os.sched_getaffinity(0))
    except AttributeError:  # not Linux
        return max(1, (os.cpu_count() or 2) // 2)
    cores = set()
    for cpu in cpus:
        topology = Path(f"/sys/devices/system/cpu/cpu{cpu}/topology")
        try:
            cores.add(((topology / "physical_package_id").read_text(), (topology / "core_id").read_text()))
        except OSError:
            return max(1, len(cpus))
    return max(1, len(cores))


def _probe_cache_path() -> Path:
    """``$XDG_CACHE_HOME/gearshift/engine-probes.json`` (default ``~/.cache/gearshift/...``)."""
    cache = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(cache) / "gearshift" / "engine-probes.json"


def check_model_file(path: Path) -> None:
    """Raise ModelError unless ``path`` is a readable file that starts like a GGUF model."""
    if not path.exists():
        raise ModelError(f"Model file not found: {path}")
    if not path.is_file():
        raise ModelError(f"Model path is not a file: {path}")
    try:
        with path.open("rb") as file:
            head = file.read(8)
    except OSError as exc:
        raise ModelError(f"Cannot read model file {path}: {exc.strerror or exc}") from None
    if head[:4] != _GGUF_MAGIC:
        raise ModelError(
            f"{path} is not a GGUF model file (it starts with {head[:4]!r}, expected b'GGUF'); "
            "use a .gguf model such as one from the Gearshift catalog"
        )
    version = int.from_bytes(head[4:8], "little")
    if version not in (2, 3):
        raise ModelError(
            f"{path} is GGUF version {version}, which this llama.cpp cannot read (2 or 3 expected)"
        )


def _check_settings(settings: EngineSettings) -> None:
    for field in ("n_ctx", "n_batch", "lookup_ngram_max", "lookup_ngram_min", "lookup_draft_max"):
        if getattr(settings, field) <= 0:
            raise EngineError(f"engine.{field} must be positive, got {getattr(settings, field)}")
    if settings.n_threads is not None and settings.n_threads <= 0:
        raise EngineError(f"engine.n_threads must be positive, got {settings.n_threads}")
    if settings.lookup_ngram_min > settings.lookup_ngram_max:
        raise EngineError(
            f"engine.lookup_ngram_min ({settings.lookup_ngram_min}) must not exceed "
            f"engine.lookup_ngram_max ({settings.lookup_ngram_max})"
        )


def _common_prefix(a: list[int], b: list[int]) -> int:
    n = min(len(a), len(b))
    i = 0
    step = 256
    while i + step <= n and a[i : i + step] == b[i : i + step]:
        i += step
    while i < n and a[i] == b[i]:
        i += 1
    return i


class _StopFlag:
    """What a running request checks between decode steps: the caller's token, its own, engine close."""

    __slots__ = ("_caller", "_own", "_closing")

    def __init__(self, caller: CancelToken | None, closing: threading.Event) -> None:
        self._caller = caller
        self._own = threading.Event()
        self._closing = closing

    def set(self) -> None:
        self._own.set()

    @property
    def cancelled(self) -> bool:
        caller = self._caller
        return self._own.is_set() or self._closing.is_set() or (caller is not None and caller.cancelled)


class _Output:
    """Turns generated tokens into text and decides when to stop (EOG, stop strings, callback, length)."""

    __slots__ = (
        "text",
        "tokens",
        "logprobs",
        "_decoder",
        "_stops",
        "_stop_max",
        "_should_stop",
        "_max_tokens",
        "_piece",
        "_is_eog",
        "_called",
        "_first_token_at",
        "_first_answer_at",
        "_on_first_answer",
    )

    def __init__(
        self,
        request: GenerationRequest,
        piece: Callable[[int], bytes],
        is_eog: Callable[[int], bool],
        called: float = 0.0,
    ) -> None:
        self.text = ""
        self.tokens: list[int] = []
        self.logprobs: list[float] = []
        # Holds the bytes of a UTF-8 character split across tokens until it is complete.
        self._decoder = codecs.getincrementaldecoder("utf-8")("replace")
        self._stops = [stop for stop in request.stop if stop]
        self._stop_max = max((len(stop) for stop in self._stops), default=0)
        self._should_stop = request.should_stop
        self._max_tokens = request.max_tokens
        self._piece = piece
        self._is_eog = is_eog
        self._called = called
        self._first_token_at = 0.0
        self._on_first_answer = request.on_first_answer
        self._first_answer_at = (
            called + request.first_answer_s
            if request.on_first_answer is not None and request.first_answer_s is not None
            else math.inf
        )

    def push(self, token: int, logprob: float) -> StopReason | None:
        """Add one generated token; returns why generation must stop, or None to go on."""
        if self._is_eog(token):
            return "eos"
        self.tokens.append(token)
        self.logprobs.append(logprob)
        piece = self._piece(token)
        chunk = self._decoder.decode(piece) if piece else ""
        if chunk:
            previous = len(self.text)
            text = self.text + chunk
            if self._stops:
                begin = max(0, previous - self._stop_max + 1)
                cut = -1
                for stop in self._stops:
                    at = text.find(stop, begin)
                    if at >= 0 and (cut < 0 or at < cut):
                        cut = at
                if cut >= 0:
                    self.text = text[:cut]
                    return "stop"
            self.text = text
            if self._should_stop is not None:
                visible = self._visible(text)
                cut_at = self._should_stop(visible)
                if cut_at is not None:
                    self.text = text[: max(0, min(cut_at, len(visible)))]
                    return "stop"
        if len(self.tokens) >= self._max_tokens:
            return "length"
        if len(self.tokens) == 1:
            self._first_token_at = time.perf_counter()
        if self._first_answer_at != math.inf and time.perf_counter() >= self._first_answer_at and "\n" in self.text:
            self._answer_first()  # a finished line at least: what is shown early must not change meaning
        return None

    def _answer_first(self) -> None:
        """Hand what was generated so far to ``on_first_answer`` (once): the caller shows it while we go on."""
        self._first_answer_at = math.inf
        now = time.perf_counter()
        visible = self._visible(self.text)
        n = len(self.tokens)
        answer = FirstAnswer(
            text=visible,
            token_logprobs=list(self.logprobs),
            time_to_first_token_s=self._first_token_at - self._called,
            decode_tokens_per_s=(n - 1) / (now - self._first_token_at) if n > 1 and now > self._first_token_at else 0.0,
        )
        try:
            self._on_first_answer(answer)  # type: ignore[misc]
        except Exception:  # the caller's bug must not end the generation
            log.exception("on_first_answer failed")

    def _visible(self, text: str) -> str:
        """``text`` without an end that could still become a stop string."""
        return text[: len(text) - self._held_back(text)] if self._stops else text

    def _held_back(self, text: str) -> int:
        """Length of the end of ``text`` that could be the start of a stop string (not shown yet)."""
        held = 0
        for stop in self._stops:
            for k in range(min(len(stop) - 1, len(text)), held, -1):
                if text.endswith(stop[:k]):
                    held = k
                    break
        return held


class LlamaEngine:
    """A GGUF model served by llama.cpp in this process; implements ``AsyncEngine``."""

    def __init__(self, model_path: Path, settings: EngineSettings, name: str = "") -> None:
        self.model_path = Path(model_path)
        self.name = name or self.model_path.stem
        self._settings = settings
        _check_settings(settings)
        check_model_file(self.model_path)

        self._n_threads = settings.n_threads or default_n_threads()
        self._n_threads_wanted = self._n_threads
        self._lock = threading.Lock()
        self._closed = False
        self._closing = threading.Event()
        self._waiting = 0  # generations queued or running: prewarm gives way to them
        self._last: GenerationResult | None = None
        self._kv_tokens: list[int] = []  # token at each position of the KV cache, in order

        self._model: Any = None
        self._ctx: Any = None
        self._batch: Any = None
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
        _LLAMA_LOG.install()
        _LLAMA_LOG.clear_recent()
        model_params = llama.llama_model_default_params()
        # Repacked weights use a different kernel from 4 tokens a batch on, which would cap exact
        # draft verification at 3 tokens; see EngineSettings.weight_repack.
        model_params.use_extra_bufts = settings.weight_repack
        model_params.load_mode = (
            llama.LLAMA_LOAD_MODE_MMAP if settings.use_mmap else llama.LLAMA_LOAD_MODE_NONE
        )
        model = llama.llama_model_load_from_file(str(self.model_path).encode(), model_params)
        if not model:
            reason = _LLAMA_LOG.recent_errors() or "llama.cpp could not read it"
            raise ModelError(
                f"Cannot load model {self.model_path}: {reason}. "
                "The file is truncated or corrupt; re-install or re-download the model"
            )
        try:
            self.n_ctx_train = int(llama.llama_model_n_ctx_train(model))
            if settings.n_ctx > self.n_ctx_train > 0:
                raise EngineError(
                    f"engine.nCtx {settings.n_ctx} exceeds the {self.n_ctx_train} tokens "
                    f"{self.name} was trained for; set engine.nCtx to {self.n_ctx_train} or less"
                )
            self.metadata = self._read_metadata(model)
            ctx = self._create_context(model, settings)
        except BaseException:
            llama.llama_model_free(model)
            raise
        self._model = model
        self._ctx = ctx
        try:
            self._prepare(settings)
        except BaseException:
            self._free()
            raise
        log.info(
            "loaded %s: n_ctx=%d (trained %d) threads=%d kv=%s/%s exact verify batch=%d prompt %.0f tok/s",
            self.name,
            self.n_ctx,
            self.n_ctx_train,
            self._n_threads,
            settings.kv_cache_type_k,
            settings.kv_cache_type_v,
            self._verify_max,
            self.prompt_tokens_per_s,
        )

    def _prepare(self, settings: EngineSettings) -> None:
        ctx = self._ctx
        self._vocab = llama.llama_model_get_vocab(self._model)
        self.n_vocab = int(llama.llama_vocab_n_tokens(self._vocab))
        self.n_ctx = int(llama.llama_n_ctx(ctx))
        self._memory = llama.llama_get_memory(ctx)

        self._capacity = max(settings.n_batch, settings.lookup_draft_max + 1)
        self._batch = llama.llama_batch_init(self._capacity, 0, 1)
        cap = self._capacity
        self._batch_tokens = np.ctypeslib.as_array(self._batch.token, shape=(cap,))
        self._batch_pos = np.ctypeslib.as_array(self._batch.pos, shape=(cap,))
        self._batch_logits = np.ctypeslib.as_array(self._batch.logits, shape=(cap,))
        n_seq_id = np.ctypeslib.as_array(self._batch.n_seq_id, shape=(cap,))
        n_seq_id[:] = 1
        for i in range(cap):
            self._batch.seq_id[i][0] = 0
        self._arange = np.arange(cap, dtype=np.int32)

        self._views: dict[tuple[int, int], np.ndarray] = {}
        self._pieces: dict[int, bytes] = {}
        self._piece_buf = ctypes.create_string_buffer(256)
        self._eog: dict[int, bool] = {}
        self._verify_max = settings.lookup_draft_max + 1
        if settings.lookup_exact:
            self._verify_max = self._exact_batch(self._verify_max)
        self._draft_policy = DraftPolicy(self._verify_max)
        self.prompt_tokens_per_s = self._measure_prompt_speed()
        """Prompt evaluation speed measured at load: what a prompt that shares nothing with the KV cache costs
        (completion sizes its prompt window from it, so a file just opened answers within seconds)."""
        self._request_chunk = max(_MIN_CHUNK, min(self._capacity, int(self.prompt_tokens_per_s * _CHUNK_S)))
        """Prompt tokens per decode call for a request: about ``_CHUNK_S`` of work, so a cancel waits no longer."""

    def _measure_prompt_speed(self) -> float:
        """Tokens/s evaluating one batch of ``_SPEED_PROBE_TOKENS`` prompt tokens (after a small warm-up)."""
        text = "def probe(values):\n    total = 0\n    for value in values:\n        total += value * 2\n" * 8
        tokens = self._tokenize(text.encode(), True, False)[: 8 + _SPEED_PROBE_TOKENS]
        flag = _StopFlag(None, self._closing)
        try:
            self._evaluate(tokens[:8], flag, math.inf, self._capacity, False, False)  # buffers allocated here
            started = time.perf_counter()
            self._evaluate(tokens, flag, math.inf, self._capacity, False, False)
            elapsed = time.perf_counter() - started
        finally:
            self._reset_cache()
        return (len(tokens) - 8) / max(elapsed, 1e-6)

    def _exact_batch(self, largest: int) -> int:
        """``_probe_exact_batch``, remembered on disk per model file, llama.cpp build and settings."""
        settings = self._settings
        try:
            stat = self.model_path.stat()
            key = "|".join(
                str(part)
                for part in (
                    _PROBE_FORMAT,
                    self.model_path.resolve(),
                    stat.st_size,
                    stat.st_mtime_ns,
                    llama.__version__,
                    llama.llama_print_system_info().decode(errors="replace"),
                    settings.flash_attention,
                    settings.weight_repack,
                    settings.kv_cache_type_k,
                    settings.kv_cache_type_v,
                    self._n_threads,
                    largest,
                )
            )
        except OSError:
            return self._probe_exact_batch(largest)
        cache = _probe_cache_path()
        try:
            known = json.loads(cache.read_text())
        except (OSError, ValueError):
            known = {}
        if not isinstance(known, dict):
            known = {}
        value = known.get(key)
        if isinstance(value, int) and 1 <= value <= largest:
            return value
        value = self._probe_exact_batch(largest)
        known[key] = value
        try:
            cache.parent.mkdir(parents=True, exist_ok=True)
            scratch = cache.with_name(f"{cache.name}.{os.getpid()}.tmp")
            scratch.write_text(json.dumps(known, indent=1))
            os.replace(scratch, cache)
        except OSError as exc:
            log.debug("could not save %s: %s", cache, exc)
        return value

    def _probe_exact_batch(self, largest: int) -> int:
        """Largest batch (up to ``largest``) whose logits equal one-token decoding bit for bit.

        llama.cpp's CPU kernels switch code paths with the batch size (weight repacking, tiled
        flash attention), and a different path rounds differently.  Draft verification only uses
        batches this size or smaller, so prompt lookup gives exactly the plain greedy output.
        """
        if largest <= 1:
            return 1
        started = time.perf_counter()
        text = "def probe(values):\n    total = 0\n    for value in values:\n        total += value * 2\n" * 3
        tokens = self._tokenize(text.encode(), True, False)
        prefix, probe = tokens[:8], tokens[8 : 8 + largest]
        largest = len(probe)
        flag = _StopFlag(None, self._closing)
        exact = 1
        try:
            self._evaluate(prefix, flag, math.inf, self._capacity, False, False)
            singles = np.empty((largest, self.n_vocab), dtype=np.float32)
            for i in range(largest):
                self._evaluate(prefix + probe[: i + 1], flag, math.inf, 1, False, True)
                singles[i] = self._last_row()
            for size in range(largest, 1, -1):
                self._reuse_prefix(prefix, need_logits=False)
                self._batch_tokens[:size] = probe[:size]
                np.add(self._arange[:size], len(prefix), out=self._batch_pos[:size])
                self._batch_logits[:size] = 1
                self._decode(size)
                self._kv_tokens.extend(probe[:size])
                if np.array_equal(self._logits(size), singles[:size]):
                    exact = size
                    break
        finally:
            self._reset_cache()
        log.debug(
            "%s: batches up to %d decode exactly like single tokens (%.2fs probe)",
            self.name,
            exact,
            time.perf_counter() - started,
        )
        return exact

    def _create_context(self, model: Any, settings: EngineSettings) -> Any:
        params = llama.llama_context_default_params()
        params.n_ctx = settings.n_ctx
        params.n_batch = max(settings.n_batch, settings.lookup_draft_max + 1)
        params.n_ubatch = params.n_batch
        params.n_seq_max = 1
        params.n_threads = self._n_threads
        params.n_threads_batch = self._n_threads
        params.type_k = _GGML_TYPES[settings.kv_cache_type_k]
        params.type_v = _GGML_TYPES[settings.kv_cache_type_v]
        # Flash attention makes attention results independent of how many tokens share a batch
        # (without it, a token's logits differ by up to ~0.7 between batch sizes), and llama.cpp
        # can only read a quantized V cache inside the flash-attention kernel.
        flash = settings.flash_attention or settings.kv_cache_type_v != "f16"
        params.flash_attn_type = (
            llama.LLAMA_FLASH_ATTN_TYPE_ENABLED if flash else llama.LLAMA_FLASH_ATTN_TYPE_DISABLED
        )
        params.no_perf = True
        _LLAMA_LOG.clear_recent()
        ctx = llama.llama_init_from_model(model, params)
        if not ctx:
            reason = _LLAMA_LOG.recent_errors() or "out of memory?"
            raise EngineError(
                f"llama.cpp could not create a context for {self.name} (n_ctx={settings.n_ctx}, "
                f"kv={settings.kv_cache_type_k}/{settings.kv_cache_type_v}): {reason}"
            )
        return ctx

    @staticmethod
    def _read_metadata(model: Any) -> dict[str, str]:
        metadata: dict[str, str] = {}
        size = 1024
        buf = ctypes.create_string_buffer(size)

        def read(getter: Any, i: int) -> str | None:
            nonlocal buf, size
            n = getter(model, i, buf, size)
            if n < 0:
                return None
            if n >= size:
                size = n + 1
                buf = ctypes.create_string_buffer(size)
                n = getter(model, i, buf, size)
            return buf.raw[:n].decode("utf-8", "replace")

        for i in range(llama.llama_model_meta_count(model)):
            key = read(llama.llama_model_meta_key_by_index, i)
            value = read(llama.llama_model_meta_val_str_by_index, i)
            if key is not None and value is not None:
                metadata[key] = value
        return metadata

    # ------------------------------------------------------------------ public API

    def tokenize(self, text: str, special: bool = True, add_special: bool = False) -> list[int]:
        """Token ids of ``text``; ``special`` parses control tokens, ``add_special`` adds BOS if the model wants it."""
        self._check_open()
        return self._tokenize(text.encode("utf-8"), add_special, special)

    def detokenize(self, tokens: list[int], special: bool = False) -> str:
        """Text of ``tokens``; ``special`` renders control tokens instead of dropping them."""
        self._check_open()
        if not tokens:
            return ""
        array = (llama.llama_token * len(tokens))(*tokens)
        size = max(64, 8 * len(tokens))
        for _ in range(2):
            buf = ctypes.create_string_buffer(size)
            n = llama.llama_detokenize(self._vocab, array, len(tokens), buf, size, False, special)
            if n >= 0:
                return buf.raw[:n].decode("utf-8", "replace")
            size = -n + 1
        raise EngineError("detokenize failed")

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

    def stats(self) -> dict[str, Any]:
        """Figures of the last request and the engine's state, for logs, status bars and benchmarks."""
        stats: dict[str, Any] = {
            "model": self.name,
            "n_ctx": self.n_ctx,
            "n_threads": self._n_threads,
            "kv_tokens": len(self._kv_tokens),
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
        flag = _StopFlag(cancel, self._closing)
        if threading.current_thread() is self._worker_thread:
            return self._generate(request, flag, started)
        return self._submit(self._generate, request, flag, started, generation=True).result()

    async def generate(
        self, request: GenerationRequest, cancel: CancelToken | None = None
    ) -> GenerationResult:
        """Generate on the worker thread without blocking the event loop; cancelling the task stops it."""
        started = time.perf_counter()
        flag = _StopFlag(cancel, self._closing)
        future = self._submit(self._generate, request, flag, started, generation=True)
        try:
            return await asyncio.wrap_future(future)
        except asyncio.CancelledError:
            flag.set()
            raise

    async def prewarm(self, prompt: str, cancel: CancelToken | None = None) -> None:
        """Evaluate ``prompt`` into the KV cache; gives way as soon as a generation is waiting."""
        flag = _StopFlag(cancel, self._closing)
        future = self._submit(self._prewarm, prompt, flag)
        try:
            await asyncio.wrap_future(future)
        except asyncio.CancelledError:
            flag.set()
            raise

    def prewarm_blocking(self, prompt: str, cancel: CancelToken | None = None) -> None:
        self._submit(self._prewarm, prompt, _StopFlag(cancel, self._closing)).result()

    def reset_cache(self) -> None:
        """Empty the KV cache (benchmarks measure cold prompt evaluation with it)."""
        self._submit(self._reset_cache).result()

    def _reset_cache(self) -> None:
        llama.llama_memory_clear(self._memory, True)
        self._kv_tokens.clear()

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

    # ------------------------------------------------------------------ plumbing

    def _check_open(self) -> None:
        if self._closed:
            raise EngineError(f"the {self.name} engine is closed")

    def _submit(self, fn: Callable[..., T], *args: Any, generation: bool = False) -> Future[T]:
        self._check_open()
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
        if self._batch is not None:
            llama.llama_batch_free(self._batch)
            self._batch = None
        if self._ctx is not None:
            llama.llama_free(self._ctx)
            self._ctx = None
        if self._model is not None:
            llama.llama_model_free(self._model)
            self._model = None
        self._kv_tokens.clear()

    def _tokenize(self, data: bytes, add_special: bool, parse_special: bool) -> list[int]:
        capacity = len(data) + 8
        for _ in range(2):
            buf = (llama.llama_token * capacity)()
            n = llama.llama_tokenize(self._vocab, data, len(data), buf, capacity, add_special, parse_special)
            if n >= 0:
                return buf[:n]
            capacity = -n
        raise EngineError("tokenization failed")

    def _piece(self, token: int) -> bytes:
        piece = self._pieces.get(token)
        if piece is None:
            buf = self._piece_buf
            n = llama.llama_token_to_piece(self._vocab, token, buf, len(buf), 0, False)
            if n < 0:
                buf = ctypes.create_string_buffer(-n)
                n = llama.llama_token_to_piece(self._vocab, token, buf, len(buf), 0, False)
            piece = self._pieces[token] = buf.raw[:n]
        return piece

    def _is_eog(self, token: int) -> bool:
        eog = self._eog.get(token)
        if eog is None:
            eog = self._eog[token] = bool(llama.llama_vocab_is_eog(self._vocab, token))
        return eog

    def _logits(self, rows: int) -> np.ndarray:
        """Logits of the last decode's outputs as a (rows, n_vocab) zero-copy view."""
        address = _get_logits_addr(self._ctx)
        if not address:
            raise EngineError("llama.cpp returned no logits")
        key = (address, rows)
        view = self._views.get(key)
        if view is None:
            if len(self._views) > 64:
                self._views.clear()
            array = (ctypes.c_float * (rows * self.n_vocab)).from_address(address)
            view = self._views[key] = np.ctypeslib.as_array(array).reshape(rows, self.n_vocab)
        return view

    def _last_row(self) -> np.ndarray:
        address = _get_logits_ith_addr(self._ctx, -1)
        if not address:
            raise EngineError("llama.cpp returned no logits")
        key = (address, 0)
        view = self._views.get(key)
        if view is None:
            view = self._views[key] = np.ctypeslib.as_array(
                (ctypes.c_float * self.n_vocab).from_address(address)
            )
        return view

    def _decode(self, n_tokens: int) -> None:
        self._batch.n_tokens = n_tokens
        rc = llama.llama_decode(self._ctx, self._batch)
        if rc != 0:
            self._decode_failed(rc, n_tokens)

    def _decode_failed(self, rc: int, n_tokens: int) -> None:
        # A failed decode may leave part of the batch in the cache: start clean.
        llama.llama_memory_clear(self._memory, True)
        self._kv_tokens.clear()
        raise EngineError(f"llama_decode failed with status {rc} ({self.name}, batch of {n_tokens})")

    def _apply_threads(self) -> None:
        wanted = self._n_threads_wanted
        if wanted != self._n_threads:
            llama.llama_set_n_threads(self._ctx, wanted, wanted)
            self._n_threads = wanted

    def _reuse_prefix(self, tokens: list[int], need_logits: bool) -> int:
        """Drop cache entries after the longest common prefix with ``tokens``; returns the prefix length."""
        kv = self._kv_tokens
        keep = _common_prefix(kv, tokens)
        if need_logits and keep == len(tokens):
            keep -= 1  # the last prompt token is evaluated again for its logits
        if keep < len(kv):
            if not llama.llama_memory_seq_rm(self._memory, 0, keep, -1):
                llama.llama_memory_clear(self._memory, True)
                keep = 0
            del kv[keep:]
        return keep

    def _evaluate(
        self,
        tokens: list[int],
        flag: _StopFlag,
        deadline: float,
        chunk: int,
        preempt: bool,
        need_logits: bool,
    ) -> StopReason | None:
        """Evaluate ``tokens`` after what the cache holds, in chunks; returns why it stopped early, if it did."""
        kv = self._kv_tokens
        pos = len(kv)
        end = len(tokens)
        batch_tokens, batch_pos, batch_logits = self._batch_tokens, self._batch_pos, self._batch_logits
        # Equal chunks rather than full ones plus a small remainder: llama.cpp's CPU kernels round
        # differently for small batches, and a position should get the same numbers whether it is
        # evaluated cold or re-evaluated after an edit.
        n_chunks = -(-(end - pos) // chunk)
        size = -(-(end - pos) // n_chunks) if n_chunks else chunk
        while pos < end:
            if flag.cancelled or (preempt and self._waiting > 0):
                return "cancelled"
            if time.perf_counter() >= deadline:
                return "time_budget"
            n = min(size, end - pos)
            batch_tokens[:n] = tokens[pos : pos + n]
            np.add(self._arange[:n], pos, out=batch_pos[:n])
            batch_logits[:n] = 0
            if need_logits and pos + n == end:
                batch_logits[n - 1] = 1
            self._decode(n)
            kv.extend(tokens[pos : pos + n])
            pos += n
        return None

    # ------------------------------------------------------------------ requests (worker thread)

    def _prewarm(self, prompt: str, flag: _StopFlag) -> None:
        if self._closing.is_set():
            return
        self._apply_threads()
        tokens = self._tokenize(prompt.encode("utf-8"), True, True)[: self.n_ctx - 1]
        started = time.perf_counter()
        reused = self._reuse_prefix(tokens, need_logits=False)
        if reused == len(tokens):
            return
        reason = self._evaluate(tokens, flag, math.inf, min(_PREWARM_CHUNK, self._capacity), True, False)
        log.debug(
            "prewarm %s: %d tokens (%d reused) in %.3fs%s",
            self.name,
            len(tokens),
            reused,
            time.perf_counter() - started,
            " (gave way)" if reason else "",
        )

    def _generate(self, request: GenerationRequest, flag: _StopFlag, called: float) -> GenerationResult:
        if self._closing.is_set():
            raise EngineError(f"the {self.name} engine is closed")
        result = self._run(request, flag, called)
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

    def _run(self, request: GenerationRequest, flag: _StopFlag, called: float) -> GenerationResult:
        started = time.perf_counter()
        self._apply_threads()
        if request.max_tokens <= 0:
            raise EngineError(f"max_tokens must be positive, got {request.max_tokens}")
        prompt = self._tokenize(request.prompt.encode("utf-8"), True, True)
        if not prompt:
            raise EngineError("the prompt is empty")
        if len(prompt) + request.max_tokens > self.n_ctx:
            raise EngineError(
                f"prompt of {len(prompt)} tokens plus max_tokens={request.max_tokens} exceeds the context of "
                f"{self.n_ctx} tokens of {self.name}; shorten the prompt or raise engine.nCtx"
            )
        greedy = request.temperature <= 0
        lookup_on = self._settings.prompt_lookup if request.prompt_lookup is None else request.prompt_lookup
        out = _Output(request, self._piece, self._is_eog, called)

        reused = self._reuse_prefix(prompt, need_logits=True)
        # The prompt has no time budget (a request stuck behind a long one is cancelled by the next keystroke
        # instead); its chunks are kept to about a second so that cancelling takes effect soon.
        reason = self._evaluate(prompt, flag, math.inf, self._request_chunk, False, True)
        prompt_done = time.perf_counter()
        drafted = accepted = 0
        first_token_at = prompt_done
        deadline = prompt_done + request.time_budget_s if request.time_budget_s is not None else math.inf
        if reason is None:
            sampler = None if greedy else self._make_sampler(request)
            try:
                row = self._last_row()
                token = self._sample(sampler, -1) if sampler is not None else int(row.argmax())
                logprob = self._logprob(row, token, greedy)
                first_token_at = time.perf_counter()
                reason = out.push(token, logprob)
                if reason is None:
                    if greedy and lookup_on:
                        reason, drafted, accepted = self._decode_lookup(
                            request, prompt, token, out, flag, deadline
                        )
                    else:
                        reason = self._decode_plain(sampler, token, out, flag, deadline)
            finally:
                if sampler is not None:
                    llama.llama_sampler_free(sampler)
        finished = time.perf_counter()
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

    def _make_sampler(self, request: GenerationRequest) -> Any:
        chain = llama.llama_sampler_chain_init(llama.llama_sampler_chain_default_params())
        if request.top_k > 0:
            llama.llama_sampler_chain_add(chain, llama.llama_sampler_init_top_k(request.top_k))
        if 0.0 < request.top_p < 1.0:
            llama.llama_sampler_chain_add(chain, llama.llama_sampler_init_top_p(request.top_p, 1))
        llama.llama_sampler_chain_add(chain, llama.llama_sampler_init_temp(request.temperature))
        llama.llama_sampler_chain_add(chain, llama.llama_sampler_init_dist(request.seed & 0xFFFFFFFF))
        return chain

    def _sample(self, sampler: Any, index: int) -> int:
        return int(llama.llama_sampler_sample(sampler, self._ctx, index))

    def _logprob(self, row: np.ndarray, token: int, is_max: bool) -> float:
        """log softmax(row)[token]; ``is_max`` when ``token`` is the argmax (saves a pass).

        Only logits within ``_LOGPROB_WINDOW`` of the maximum enter the normaliser: numpy's float32
        exp costs ~4 ns an element here (0.6 ms over a 152k vocabulary, per token), and a logit 16
        below the maximum weighs 1e-7 of it, so the result is off by ~1e-3 nats at most in practice.
        """
        top = float(row[token] if is_max else row.max())
        near = row[row > top - _LOGPROB_WINDOW]
        np.subtract(near, top, out=near)
        np.exp(near, out=near)
        return float(row[token]) - top - math.log(float(near.sum()))

    def _decode_plain(
        self, sampler: Any, token: int, out: _Output, flag: _StopFlag, deadline: float
    ) -> StopReason | None:
        kv = self._kv_tokens
        ctx, batch = self._ctx, self._batch
        batch_tokens, batch_pos, batch_logits = self._batch_tokens, self._batch_pos, self._batch_logits
        decode = llama.llama_decode
        perf_counter = time.perf_counter
        greedy = sampler is None
        batch.n_tokens = 1
        batch_logits[0] = 1
        while True:
            if flag.cancelled:
                return "cancelled"
            if perf_counter() >= deadline:
                return "time_budget"
            batch_tokens[0] = token
            batch_pos[0] = len(kv)
            rc = decode(ctx, batch)
            if rc != 0:
                self._decode_failed(rc, 1)
            kv.append(token)
            row = self._last_row()
            token = int(row.argmax()) if greedy else self._sample(sampler, -1)
            reason = out.push(token, self._logprob(row, token, greedy))
            if reason is not None:
                return reason

    def _decode_lookup(
        self,
        request: GenerationRequest,
        prompt: list[int],
        token: int,
        out: _Output,
        flag: _StopFlag,
        deadline: float,
    ) -> tuple[StopReason | None, int, int]:
        settings = self._settings
        lookup = PromptLookup(
            prompt, settings.lookup_ngram_min, settings.lookup_ngram_max, settings.lookup_draft_max
        )
        lookup.extend([token])
        kv = self._kv_tokens
        batch_tokens, batch_pos, batch_logits = self._batch_tokens, self._batch_pos, self._batch_logits
        arange = self._arange
        n_ctx, verify_max, max_tokens = self.n_ctx, self._verify_max, request.max_tokens
        policy = self._draft_policy
        perf_counter = time.perf_counter
        drafted = accepted = 0
        while True:
            if flag.cancelled:
                return "cancelled", drafted, accepted
            if perf_counter() >= deadline:
                return "time_budget", drafted, accepted
            n_past = len(kv)
            limit = min(max_tokens - len(out.tokens) - 1, n_ctx - n_past - 1, verify_max - 1)
            draft = lookup.draft(limit) if limit > 0 else []
            anchored = lookup.anchored
            if draft:
                draft = draft[: policy.choose(len(draft), anchored)]
            k = len(draft)
            batch_tokens[0] = token
            if k:
                batch_tokens[1 : k + 1] = draft
            np.add(arange[: k + 1], n_past, out=batch_pos[: k + 1])
            batch_logits[: k + 1] = 1
            began = perf_counter()
            self._decode(k + 1)
            policy.observe_cost(k + 1, perf_counter() - began)
            kv.append(token)
            if k:
                rows = self._logits(k + 1)
                best = rows.argmax(axis=1).tolist()
                n_ok = 0
                while n_ok < k and best[n_ok] == draft[n_ok]:
                    n_ok += 1
                kv.extend(draft[:n_ok])
                if n_ok < k:
                    llama.llama_memory_seq_rm(self._memory, 0, len(kv), -1)
                new = best[: n_ok + 1]
                drafted += k
                accepted += n_ok
                policy.observe_draft(k, n_ok, anchored)
                logprobs = [self._logprob(rows[j], t, True) for j, t in enumerate(new)]
            else:
                row = self._last_row()
                n_ok = 0
                new = [int(row.argmax())]
                logprobs = [self._logprob(row, new[0], True)]
            lookup.extend(new)
            lookup.feedback(k, n_ok, new[-1])
            for t, lp in zip(new, logprobs, strict=True):
                reason = out.push(t, lp)
                if reason is not None:
                    return reason, drafted, accepted
            token = new[-1]
