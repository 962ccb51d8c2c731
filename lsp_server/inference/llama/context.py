"""The llama context: created from the settings, its one batch, the KV cache's tokens with prefix reuse, logits.

KV cache reuse: the context remembers the tokens whose keys and values are in the cache.  A new prompt evaluates
only the tokens after the longest common prefix; the rest of the cache is dropped with ``llama_memory_seq_rm``.
Shifted windows: when the prompt's window start moved (lines dropped at its top), the cached tokens that follow
in the prompt keep their keys and values through a position shift (``llama_memory_seq_add``, what llama-server's
``--cache-reuse`` does) instead of being evaluated again; the shifted entries attended to the dropped lines when
they were computed, so an answer after a shift is close to, not bit-identical with, a cold evaluation's.
Prompt chunks are split evenly (no tiny remainders): llama.cpp's CPU kernels round differently for small batches,
and a position should get the same numbers whether it is evaluated cold or re-evaluated after an edit.
"""

from __future__ import annotations

import ctypes
import threading
import time
from collections.abc import Callable
from typing import Any, Protocol

import llama_cpp as llama
import numpy as np
from llama_cpp._internals import LlamaBatch, LlamaContext

from lsp_server.errors import EngineError
from lsp_server.inference.llama.documents import SavedState
from lsp_server.inference.llama.log import LLAMA_LOG
from lsp_server.inference.llama.model import Model
from lsp_server.inference.types import StopReason
from lsp_server.settings import EngineSettings

_GGML_TYPES = {"f16": llama.GGML_TYPE_F16, "q8_0": llama.GGML_TYPE_Q8_0, "q4_0": llama.GGML_TYPE_Q4_0}


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


def common_prefix(a: list[int], b: list[int]) -> int:
    n = min(len(a), len(b))
    i = 0
    step = 256
    while i + step <= n and a[i : i + step] == b[i : i + step]:
        i += step
    while i < n and a[i] == b[i]:
        i += 1
    return i


class Cancellable(Protocol):
    """Anything a running request can ask whether to stop: a cancel token, a stream, a give-way condition."""

    @property
    def cancelled(self) -> bool: ...


class StopFlag:
    """What a running request checks between decode steps: any of its cancel tokens, or the engine closing."""

    __slots__ = ("_tokens", "_closing")

    def __init__(self, closing: threading.Event, *tokens: Cancellable | None) -> None:
        self._tokens = tuple(token for token in tokens if token is not None)
        self._closing = closing

    @property
    def cancelled(self) -> bool:
        return self._closing.is_set() or any(token.cancelled for token in self._tokens)


class Context:
    """One llama context (one sequence) and what the decode loops need of it; used on the worker thread only."""

    def __init__(self, model: Model, settings: EngineSettings, n_threads: int, name: str) -> None:
        self.name = name
        self.capacity = max(settings.n_batch, settings.lookup_draft_max + 1)
        params = LlamaContext.default_params()
        params.n_ctx = settings.n_ctx
        params.n_batch = self.capacity
        params.n_ubatch = params.n_batch
        params.n_seq_max = 1
        params.n_threads = n_threads
        params.n_threads_batch = n_threads
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
        LLAMA_LOG.clear_recent()
        try:
            self.llama = LlamaContext(model=model.llama, params=params, verbose=True)
        except ValueError:
            reason = LLAMA_LOG.recent_errors() or "out of memory?"
            raise EngineError(
                f"llama.cpp could not create a context for {name} (n_ctx={settings.n_ctx}, "
                f"kv={settings.kv_cache_type_k}/{settings.kv_cache_type_v}): {reason}"
            ) from None
        self.ctx = self.llama.ctx
        self.memory = self.llama.memory
        self.n_ctx = int(self.llama.n_ctx())
        self.n_vocab = model.n_vocab
        self.n_threads = n_threads
        self.kv_tokens: list[int] = []
        """The token at each position of the KV cache, in order."""
        self.document: str | None = None
        """The document (request affinity key) whose prompt the cache holds; None: unknown or empty."""
        self.shift_min_tokens = settings.shift_reuse_min_tokens if llama.llama_memory_can_shift(self.memory) else 0
        """Shortest run of cached tokens moved to a new position instead of evaluated again; 0: no shifting."""
        self.shifted_tokens = 0
        """Tokens the last ``reuse_prefix`` kept through a position shift (counted for tests and stats)."""

        cap = self.capacity
        self._batch = LlamaBatch(n_tokens=cap, embd=0, n_seq_max=1, verbose=True)
        self.batch = self._batch.batch
        self.batch_tokens = np.ctypeslib.as_array(self.batch.token, shape=(cap,))
        self.batch_pos = np.ctypeslib.as_array(self.batch.pos, shape=(cap,))
        self.batch_logits = np.ctypeslib.as_array(self.batch.logits, shape=(cap,))
        np.ctypeslib.as_array(self.batch.n_seq_id, shape=(cap,))[:] = 1
        for i in range(cap):
            self.batch.seq_id[i][0] = 0
        self.arange = np.arange(cap, dtype=np.int32)
        self._views: dict[tuple[int, int], np.ndarray] = {}

    def set_n_threads(self, n: int) -> None:
        if n != self.n_threads:
            llama.llama_set_n_threads(self.ctx, n, n)
            self.n_threads = n

    def decode(self, n_tokens: int) -> None:
        self.batch.n_tokens = n_tokens
        rc = llama.llama_decode(self.ctx, self.batch)
        if rc != 0:
            self.decode_failed(rc, n_tokens)

    def decode_failed(self, rc: int, n_tokens: int) -> None:
        # A failed decode may leave part of the batch in the cache: start clean.
        self.reset()
        raise EngineError(f"llama_decode failed with status {rc} ({self.name}, batch of {n_tokens})")

    def logits(self, rows: int) -> np.ndarray:
        """Logits of the last decode's outputs as a (rows, n_vocab) zero-copy view."""
        address = _get_logits_addr(self.ctx)
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

    def last_row(self) -> np.ndarray:
        address = _get_logits_ith_addr(self.ctx, -1)
        if not address:
            raise EngineError("llama.cpp returned no logits")
        key = (address, 0)
        view = self._views.get(key)
        if view is None:
            view = self._views[key] = np.ctypeslib.as_array(
                (ctypes.c_float * self.n_vocab).from_address(address)
            )
        return view

    def reuse_prefix(self, tokens: list[int], need_logits: bool, shift: bool = False) -> int:
        """Keep what the cache holds of ``tokens`` and drop the rest; returns how many tokens need no evaluation.

        The longest common prefix is kept in place; after it, with ``shift`` (the cache holds an earlier prompt
        of the same document), runs of cached tokens that come next in ``tokens`` are shifted into place (see the
        module docstring).
        """
        kv = self.kv_tokens
        limit = len(tokens) - 1 if need_logits else len(tokens)  # the last token is evaluated for its logits
        keep = min(common_prefix(kv, tokens), limit)
        self.shifted_tokens = 0
        if shift and self.shift_min_tokens and keep < len(kv):
            keep = self._shift_runs(tokens, keep, limit)
        if keep < len(kv):
            if not llama.llama_memory_seq_rm(self.memory, 0, keep, -1):
                llama.llama_memory_clear(self.memory, True)
                keep = 0
            del kv[keep:]
        return keep

    def _shift_runs(self, tokens: list[int], n_past: int, limit: int) -> int:
        """Move cached runs of at least ``shift_min_tokens`` that continue ``tokens[:n_past]`` down into place.

        As llama-server's cache reuse: the cache is scanned forward for a run that starts with the next prompt
        token; cells skipped over are removed, the run's positions are shifted down, and the scan goes on after
        it.  The prompt side never skips a token, so the cache stays a prefix of the prompt.
        """
        kv = self.kv_tokens
        head_c = head_p = n_past
        while head_c < len(kv) and head_p < limit:
            n = 0
            while head_c + n < len(kv) and head_p + n < limit and kv[head_c + n] == tokens[head_p + n]:
                n += 1
            if n < self.shift_min_tokens:
                head_c += 1
                continue
            if head_c > head_p:
                llama.llama_memory_seq_rm(self.memory, 0, head_p, head_c)
                llama.llama_memory_seq_add(self.memory, 0, head_c, head_c + n, head_p - head_c)
                kv[head_p : head_p + n] = kv[head_c : head_c + n]
                self.shifted_tokens += n
            head_c += n
            head_p += n
        # Cells after the kept runs still carry their old positions: drop them along with the rest.
        llama.llama_memory_seq_rm(self.memory, 0, head_p, -1)
        del kv[head_p:]
        return head_p

    def save_state(self) -> SavedState:
        """A copy of the cache's sequence (tokens, positions, keys, values) in host memory."""
        size = llama.llama_state_seq_get_size(self.ctx, 0)
        data = (ctypes.c_uint8 * size)()
        written = llama.llama_state_seq_get_data(self.ctx, data, size, 0)
        if written != size:
            raise EngineError(f"llama.cpp saved {written} of {size} bytes of the KV state ({self.name})")
        return SavedState(tokens=list(self.kv_tokens), data=data)

    def load_state(self, state: SavedState) -> bool:
        """Replace the cache's sequence with a saved one; False (and an empty cache) if llama.cpp refused it."""
        llama.llama_memory_seq_rm(self.memory, 0, -1, -1)
        self.kv_tokens.clear()
        if llama.llama_state_seq_set_data(self.ctx, state.data, state.size, 0) == 0:
            self.reset()
            return False
        self.kv_tokens.extend(state.tokens)
        return True

    def evaluate(
        self,
        tokens: list[int],
        flag: StopFlag,
        deadline: float,
        chunk: int,
        need_logits: bool,
        give_way: Callable[[], bool] | None = None,
    ) -> StopReason | None:
        """Evaluate ``tokens`` after what the cache holds, in chunks; returns why it stopped early, if it did.

        ``give_way``: checked before each chunk; True stops here (a prewarm yields to a waiting generation).
        """
        kv = self.kv_tokens
        pos = len(kv)
        end = len(tokens)
        batch_tokens, batch_pos, batch_logits = self.batch_tokens, self.batch_pos, self.batch_logits
        n_chunks = -(-(end - pos) // chunk)
        size = -(-(end - pos) // n_chunks) if n_chunks else chunk
        while pos < end:
            if flag.cancelled or (give_way is not None and give_way()):
                return "cancelled"
            if time.perf_counter() >= deadline:
                return "time_budget"
            n = min(size, end - pos)
            batch_tokens[:n] = tokens[pos : pos + n]
            np.add(self.arange[:n], pos, out=batch_pos[:n])
            batch_logits[:n] = 0
            if need_logits and pos + n == end:
                batch_logits[n - 1] = 1
            self.decode(n)
            kv.extend(tokens[pos : pos + n])
            pos += n
        return None

    def reset(self) -> None:
        """Empty the KV cache."""
        llama.llama_memory_clear(self.memory, True)
        self.kv_tokens.clear()
        self.document = None

    def close(self) -> None:
        self._batch.close()
        self.llama.close()
        self.kv_tokens.clear()
