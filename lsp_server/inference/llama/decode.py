"""The token loops after the prompt: plain decoding (greedy or sampled) and prompt-lookup speculation.

Per generated token the Python work is one ``llama_decode`` call, an argmax and a log-sum-exp on a zero-copy numpy
view of the logits, and a dictionary lookup for the token's bytes (about 0.1-0.25 ms, 1-2 % of a decode step).

Prompt lookup verifies a draft in one batch and keeps the tokens the model itself chose, so greedy output never
changes (given a verification batch no larger than ``calibrate.exact_batch`` measured).
"""

from __future__ import annotations

import math
import time
from typing import Any

import llama_cpp as llama
import numpy as np

from lsp_server.inference.llama.context import Context, StopFlag
from lsp_server.inference.llama.output import Output
from lsp_server.inference.lookup import DraftPolicy, PromptLookup
from lsp_server.inference.types import GenerationRequest, StopReason
from lsp_server.settings import EngineSettings

LOGPROB_WINDOW = 16.0


def make_sampler(request: GenerationRequest) -> Any:
    """llama.cpp's native top-k/top-p/temperature chain for a sampled request (free it with ``free_sampler``)."""
    chain = llama.llama_sampler_chain_init(llama.llama_sampler_chain_default_params())
    if request.top_k > 0:
        llama.llama_sampler_chain_add(chain, llama.llama_sampler_init_top_k(request.top_k))
    if 0.0 < request.top_p < 1.0:
        llama.llama_sampler_chain_add(chain, llama.llama_sampler_init_top_p(request.top_p, 1))
    llama.llama_sampler_chain_add(chain, llama.llama_sampler_init_temp(request.temperature))
    llama.llama_sampler_chain_add(chain, llama.llama_sampler_init_dist(request.seed & 0xFFFFFFFF))
    return chain


def free_sampler(sampler: Any) -> None:
    llama.llama_sampler_free(sampler)


def sample(context: Context, sampler: Any, index: int) -> int:
    return int(llama.llama_sampler_sample(sampler, context.ctx, index))


def logprob(row: np.ndarray, token: int, is_max: bool) -> float:
    """log softmax(row)[token]; ``is_max`` when ``token`` is the argmax (saves a pass).

    Only logits within ``LOGPROB_WINDOW`` of the maximum enter the normaliser: numpy's float32
    exp costs ~4 ns an element here (0.6 ms over a 152k vocabulary, per token), and a logit 16
    below the maximum weighs 1e-7 of it, so the result is off by ~1e-3 nats at most in practice.
    """
    top = float(row[token] if is_max else row.max())
    near = row[row > top - LOGPROB_WINDOW]
    np.subtract(near, top, out=near)
    np.exp(near, out=near)
    return float(row[token]) - top - math.log(float(near.sum()))


def decode_plain(
    context: Context, sampler: Any, token: int, out: Output, flag: StopFlag, deadline: float
) -> StopReason | None:
    """Decode one token at a time from ``token`` (already pushed to ``out``) until ``out`` or the flag stops."""
    kv = context.kv_tokens
    ctx, batch = context.ctx, context.batch
    batch_tokens, batch_pos, batch_logits = context.batch_tokens, context.batch_pos, context.batch_logits
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
            context.decode_failed(rc, 1)
        kv.append(token)
        row = context.last_row()
        token = int(row.argmax()) if greedy else sample(context, sampler, -1)
        reason = out.push(token, logprob(row, token, greedy))
        if reason is not None:
            return reason


def decode_lookup(
    context: Context,
    settings: EngineSettings,
    policy: DraftPolicy,
    verify_max: int,
    request: GenerationRequest,
    prompt: list[int],
    token: int,
    out: Output,
    flag: StopFlag,
    deadline: float,
) -> tuple[StopReason | None, int, int]:
    """Greedy decoding with drafts from ``PromptLookup``; returns (why it stopped, drafted, accepted)."""
    lookup = PromptLookup(prompt, settings.lookup_ngram_min, settings.lookup_ngram_max, settings.lookup_draft_max)
    lookup.extend([token])
    kv = context.kv_tokens
    batch_tokens, batch_pos, batch_logits = context.batch_tokens, context.batch_pos, context.batch_logits
    arange = context.arange
    n_ctx, max_tokens = context.n_ctx, request.max_tokens
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
        context.decode(k + 1)
        policy.observe_cost(k + 1, perf_counter() - began)
        kv.append(token)
        if k:
            rows = context.logits(k + 1)
            best = rows.argmax(axis=1).tolist()
            n_ok = 0
            while n_ok < k and best[n_ok] == draft[n_ok]:
                n_ok += 1
            kv.extend(draft[:n_ok])
            if n_ok < k:
                llama.llama_memory_seq_rm(context.memory, 0, len(kv), -1)
            new = best[: n_ok + 1]
            drafted += k
            accepted += n_ok
            policy.observe_draft(k, n_ok, anchored)
            logprobs = [logprob(rows[j], t, True) for j, t in enumerate(new)]
        else:
            row = context.last_row()
            n_ok = 0
            new = [int(row.argmax())]
            logprobs = [logprob(row, new[0], True)]
        lookup.extend(new)
        lookup.feedback(k, n_ok, new[-1])
        for t, lp in zip(new, logprobs, strict=True):
            reason = out.push(t, lp)
            if reason is not None:
                return reason, drafted, accepted
        token = new[-1]
