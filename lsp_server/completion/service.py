"""One inline completion, start to finish, independent of any transport.

Used by the LSP features and by `gearshift complete`: typed-ahead cache →
guard picks a tier → context → FIM prompt → engine → post-process →
confidence → cache.  Everything here is awaited on the event loop; the
model itself runs on the engine's worker thread.
"""

from __future__ import annotations

import asyncio
import logging
import math
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import PurePath
from typing import TYPE_CHECKING

from cachetools import LRUCache

from lsp_server.cloud.endpoints import remote_refusal
from lsp_server.cloud.router import never_send_match
from lsp_server.completion import healing
from lsp_server.completion.cache import SuggestionCache
from lsp_server.completion.confidence import confidence_of_kept
from lsp_server.completion.context import CompletionContext, build_context
from lsp_server.completion.early import EarlyAnswer, FollowedGeneration, finished_lines
from lsp_server.completion.fim import FimTemplate, template_for
from lsp_server.completion.neighbours import RecentFiles
from lsp_server.completion.postprocess import StopChecker, make_stop_checker, postprocess
from lsp_server.completion.window import MiddleSplitter, rung_window, split_middle
from lsp_server.documents import DocumentSnapshot, looks_binary
from lsp_server.errors import EndpointUnavailable
from lsp_server.inference.guard import LatencyGuard, Rung
from lsp_server.inference.stream import GenerationStream
from lsp_server.inference.tiers import TierManager
from lsp_server.inference.types import (
    AsyncEngine,
    CancelToken,
    GenerationRequest,
    GenerationResult,
    InfillParts,
    Partial,
    Priority,
)
from lsp_server.settings import GearshiftSettings
from lsp_server.wire import PipelineFacts

if TYPE_CHECKING:  # the engine module loads llama.cpp
    from lsp_server.inference.llama.engine import LlamaEngine

log = logging.getLogger(__name__)

PROMPT_SPEED_MIN_TOKENS = 64
"""A request that evaluated fewer prompt tokens says little about prompt speed (fixed costs dominate)."""


def _display_path(path: str | None) -> str | None:
    """The file name for the prompt header: enough for the model to know the language and module."""
    return PurePath(path).name if path else None


@dataclass
class CompletionOutcome:
    """What happened for one request: the suggestion (if any) and the figures the status shows."""

    suggestion: str | None
    tier: str
    cache_hit: bool = False
    confidence: float | None = None
    hidden_reason: str | None = None
    """Why nothing is shown although the model answered (low confidence, failed to parse, repeat...)."""

    tokens_per_s: float | None = None
    time_to_first_token_ms: float | None = None
    latency_ms: float = 0.0
    generated_tokens: int = 0
    stop_reason: str | None = None
    background: bool = False
    """The full suggestion of a request answered early (``first_answer_ms``), finished after its answer."""

    shift: dict | None = None
    """When this request made the guard shift: {"reason", "shiftFrom", "shiftTo", "shiftDirection"} for the status
    (``shiftFrom`` differs from this request's tier when the request was a probe of a higher rung)."""
    facts: PipelineFacts = field(default_factory=PipelineFacts)
    """The pipeline's own facts for the status: prompt and reused tokens, the stop rule, a remote failure..."""

    generated: str | None = None
    """The model's answer before post-processing, for benchmarks: never sent or logged (it is document text)."""


def _typed(doc: DocumentSnapshot, text: str) -> DocumentSnapshot:
    """``doc`` with ``text`` inserted at its cursor and the cursor after it (an accepted suggestion, a key)."""
    return DocumentSnapshot(doc.uri, doc.version, doc.text[: doc.offset] + text + doc.text[doc.offset :],
                            doc.offset + len(text), doc.language_id, doc.path)


def _on_next_line(doc: DocumentSnapshot) -> DocumentSnapshot:
    """``doc`` after Enter at its cursor, the new line indented as the cursor's line (an editor's auto-indent)."""
    line = doc.text[doc.text.rfind("\n", 0, doc.offset) + 1 : doc.offset]
    return _typed(doc, "\n" + line[: len(line) - len(line.lstrip(" \t"))])


BOUNDED_WINDOW_KEY = "#bounded"
"""Appended to a document's key for its prompt in the window bounded by ``completion.coldPromptMs``: the engine
keeps that evaluation apart from the full window's, so neither evicts the other."""

CATCH_UP_IDLE_S = 0.5
"""The full window is evaluated in the background once no request came for this long: while the user types on,
each keystroke would wait for a background batch and pay for two KV state switches (measured on two cores: p95
up by ~40 ms with the catch-up running between keystrokes)."""

FULL_WINDOW_SLACK_S = 0.3
"""The full window is used when what it still needs takes at most this much longer than the bounded window's."""


@dataclass(frozen=True)
class _Window:
    """One prompt window for a request: its context, pieces, prompt text and the engine's document key."""

    ctx: CompletionContext
    parts: InfillParts
    prompt: str
    key: str

    @property
    def bounded(self) -> bool:
        """Whether this is the window ``completion.coldPromptMs`` bounds (kept under its own key)."""
        return self.key.endswith(BOUNDED_WINDOW_KEY)

    def background_request(self) -> GenerationRequest:
        """The request that evaluates this window's prompt into the KV cache at background priority."""
        return GenerationRequest(prompt=self.prompt, infill=self.parts, affinity_key=self.key,
                                 priority=Priority.BACKGROUND)


@dataclass(frozen=True)
class _Job:
    """One request's cursor and prompt facts, for post-processing its generation (now or in the background)."""

    uri: str
    version: int | None
    prefix: str
    suffix: str
    ctx: CompletionContext
    rung: Rung
    started: float
    checker: StopChecker | None = None
    """The request's stop checker: which rule, if any, stopped the generation."""
    context_chunks: int = 0
    """Other files' outlines in the prompt (``completion.crossFileTokens``), for the status."""
    doc: DocumentSnapshot | None = None
    """The document as the request saw it (for the speculation that follows a shown suggestion)."""
    speculative: bool = False
    """A background request for the suggestion after an accepted one: yields to any request, measured by nobody."""


class CompletionService:
    """Holds what completions share across keystrokes: the cache, the guard, the loaded tiers."""

    def __init__(self, settings: GearshiftSettings, tiers: TierManager, guard: LatencyGuard) -> None:
        self.settings = settings
        self.tiers = tiers
        self.guard = guard
        self._templates: dict[tuple[str, str | None], FimTemplate] = {}
        self.splitter = MiddleSplitter()
        self._background: dict[str, GenerationStream] = {}
        """Generations that go on after an early answer, per document (at most one runs: one engine thread)."""
        self._finishing: set[asyncio.Future] = set()
        """The tasks that follow those generations to their end (held here: the loop keeps only weak references)."""
        self.on_background_outcome: Callable[[CompletionOutcome], None] | None = None
        """Called on the event loop with each finished background generation (the server sends its status)."""
        self._prompt_speed: dict[str, float] = {}
        """Fastest prompt evaluation (tokens/s) seen per rung on a request that evaluated PROMPT_SPEED_MIN_TOKENS or
        more: the engine's one measurement at load is taken when the machine may be busy (loading the model, another
        process), and a window sized from it alone stays small for the whole session."""
        self._catching_up: asyncio.Task | None = None
        """The background evaluation of a full window after a request made do with the bounded one (one at a
        time: the cursor is in one place)."""
        self._catch_up_timer: asyncio.TimerHandle | None = None
        """Starts ``_catching_up`` after ``CATCH_UP_IDLE_S`` without a request."""
        self._requested_at: LRUCache[str, float] = LRUCache(maxsize=256)
        """When the last completion request for each document started (monotonic)."""
        self.neighbours = RecentFiles()
        """Recently used documents: the source of cross-file context."""
        self.cache = SuggestionCache(
            maxsize=settings.completion.cache_size, ttl=settings.completion.cache_ttl_s
        )

    def update_settings(self, settings: GearshiftSettings) -> None:
        self.settings = settings

    async def complete(self, doc: DocumentSnapshot, cancel: CancelToken | None = None) -> CompletionOutcome:
        started = time.perf_counter()
        self._stop_catching_up()  # the user is typing: the full window waits for the next pause
        self._requested_at[doc.uri] = time.monotonic()
        self.neighbours.seen(doc.uri, doc.path, doc.text)
        prefix, suffix = doc.text[: doc.offset], doc.text[doc.offset :]

        hit = self.cache.lookup(doc.uri, prefix, suffix)
        if hit is not None:
            if not self.guard.current.remote:
                self._speculate_after(doc, self.guard.current, hit.text)  # accepting this one comes next
            return CompletionOutcome(
                suggestion=hit.text,
                tier=hit.meta.get("tier", ""),
                cache_hit=True,
                confidence=hit.meta.get("confidence"),
                latency_ms=(time.perf_counter() - started) * 1000,
            )

        probe = self.guard.probe_rung()
        rung = probe or self.guard.current
        if rung.remote and (refusal := remote_refusal(self.tiers.endpoint(rung.model), doc.path, self.settings)):
            log.debug("not sent to %s: %s", rung.name, refusal)
            rung, probe = self._local_below(rung), None
        try:
            return await self._complete_on(doc, cancel, rung, probe, started)
        except EndpointUnavailable as exc:
            # A team server down or refusing: this request is answered below it, and the guard moves there.
            shift = self.guard.unavailable(rung, str(exc))
            outcome = await self._complete_on(doc, cancel, self._local_below(rung), None, started)
            outcome.facts.remote_error = str(exc)
            if shift is not None:
                outcome.shift = shift.to_status()
            return outcome

    def _local_below(self, rung: Rung) -> Rung:
        """The first in-process rung after ``rung`` (the current one if that is below it)."""
        rungs = list(self.guard.rungs)
        below = [r for r in rungs[rungs.index(rung) + 1 :] if not r.remote] if rung in rungs else []
        current = self.guard.current
        if not current.remote and current in below:
            return current
        if not below:
            raise EndpointUnavailable(f"{rung.name} cannot be used and no in-process rung is below it in the ladder")
        return below[0]

    async def _complete_on(
        self, doc: DocumentSnapshot, cancel: CancelToken | None, rung: Rung, probe: Rung | None, started: float,
        *, speculative: bool = False,
    ) -> CompletionOutcome:
        settings = self.settings.completion
        prefix, suffix = doc.text[: doc.offset], doc.text[doc.offset :]
        engine = await self.tiers.get(rung.model)
        if looks_binary(doc.text, doc.offset):
            return CompletionOutcome(suggestion=None, tier=rung.name, hidden_reason="binary content")

        window = self._window(doc, engine, rung, remember=not speculative)
        ctx, parts = window.ctx, window.parts
        template = self.template(engine)
        max_tokens = max(4, int(settings.max_tokens * rung.max_tokens_scale))
        checker = make_stop_checker(ctx, settings.max_lines)
        request = GenerationRequest(
            prompt=window.prompt,
            infill=parts,
            affinity_key=window.key,
            max_tokens=max_tokens if ctx.multiline else min(max_tokens, 48),
            stop=list(template.stop_strings),
            time_budget_s=settings.time_budget_ms / 1000,
            prompt_lookup=rung.prompt_lookup,
            priority=Priority.BACKGROUND if speculative else Priority.REQUEST,
        )
        job = _Job(doc.uri, doc.version, prefix, suffix, ctx, rung, started, checker, len(parts.extra), doc,
                   speculative)
        # A guard probe runs to its end: it is there for its measurement, which the next keystroke would cut short.
        answer_early = settings.first_answer_ms < settings.time_budget_ms and probe is None and not speculative
        early = EarlyAnswer(settings.first_answer_ms / 1000 if answer_early else None)
        if not speculative:
            self._cancel_background()  # the model is needed here: free the engine's thread
        if rung.n_threads is not None:
            engine.set_n_threads(rung.n_threads)
        generation = FollowedGeneration(engine.stream(request, cancel), checker)
        try:
            partial = await generation.early(early)
            if partial is not None:
                outcome = self._shown_early(job, partial)
                if outcome.suggestion is not None:
                    outcome.tokens_per_s = round(partial.decode_tokens_per_s, 1)
                    outcome.time_to_first_token_ms = round(partial.time_to_first_token_s * 1000, 1)
                    outcome.generated_tokens = partial.n_tokens
                    outcome.stop_reason = "first_answer"
                    # The rest goes on in the background and lands in the typed-ahead cache.
                    self._background[doc.uri] = generation.stream
                    rest = asyncio.ensure_future(generation.result())
                    self._finishing.add(rest)
                    rest.add_done_callback(lambda done: self._finish_in_background(done, job, generation.stream))
                    self._after_window(window, outcome, doc, rung)  # a catch-up comes after the rest
                    return outcome
                # nothing worth showing yet: wait for the full suggestion
            result = await generation.result()
        except asyncio.CancelledError:
            generation.stream.cancel()
            raise
        outcome = self._finish(job, result)
        if outcome.suggestion is not None and not speculative:  # one step ahead: more waits for an acceptance
            self._speculate_after(doc, rung, outcome.suggestion)
        self._after_window(window, outcome, doc, rung)
        return outcome

    # ------------------------------------------------------------------ the full window, in the background

    def _after_window(self, window: _Window, outcome: CompletionOutcome, doc: DocumentSnapshot, rung: Rung) -> None:
        """A request answered on the bounded window says so, and the full window is caught up on after it."""
        if window.bounded:
            outcome.facts.bounded_window = True
            self._catch_up(doc, rung)

    def _catch_up(self, doc: DocumentSnapshot, rung: Rung) -> None:
        """After a request (or speculation) that made do with the bounded window: evaluate the full window in the
        background, so the keystrokes after it get the whole context (``_window`` picks it once it is held).

        It starts after ``CATCH_UP_IDLE_S`` without a request (a speculation runs first), gives way to any request
        within one background batch, keeping what it evaluated, and the next pause resumes it.  A newer one
        replaces it: the cursor is in one place.
        """
        if rung.remote or not self.settings.completion.prewarm:
            return
        self._stop_catching_up()
        self._catch_up_timer = asyncio.get_running_loop().call_later(
            CATCH_UP_IDLE_S, self._start_catching_up, doc, rung)

    def _start_catching_up(self, doc: DocumentSnapshot, rung: Rung) -> None:
        self._catch_up_timer = None
        self._catching_up = asyncio.ensure_future(self._evaluate_full_window(doc, rung))

    def _stop_catching_up(self) -> None:
        """Cancel the pending or running catch-up (a running one stops at its next background batch)."""
        if self._catch_up_timer is not None:
            self._catch_up_timer.cancel()
            self._catch_up_timer = None
        if self._catching_up is not None and not self._catching_up.done():
            self._catching_up.cancel()

    async def _evaluate_full_window(self, doc: DocumentSnapshot, rung: Rung) -> None:
        engine = self.tiers.get_loaded(rung.model)
        if engine is None:
            return
        try:
            _, full = self._windows(doc, engine, rung, remember=False)
            if full is not None:
                await engine.prewarm(full.background_request())
        except Exception as exc:  # background work: a failure here must not reach anyone's keystroke
            log.debug("evaluating the full window in the background failed: %s", exc)

    # ------------------------------------------------------------------ speculation

    def _speculate_after(self, doc: DocumentSnapshot, rung: Rung, suggestion: str) -> None:
        """Once ``suggestion`` is shown: compute the one that follows its acceptance, when the engine is idle.

        The answer lands in the typed-ahead cache, so accepting a suggestion shows the next one at once (and
        accepting that one speculates again).  The request runs at background priority: any keystroke's request
        pre-empts it within one decode step, and it is never measured by the guard.  In-process rungs only: a
        team server's slots serve other people's keystrokes.
        """
        if not self.settings.completion.speculate_next or rung.remote or not suggestion:
            return
        accepted = _typed(doc, suggestion)
        if self._cached(accepted):
            return  # already known
        work = asyncio.ensure_future(self._speculate(accepted, rung))
        self._finishing.add(work)
        work.add_done_callback(self._finishing.discard)

    async def _speculate(self, doc: DocumentSnapshot, rung: Rung) -> None:
        engine = self.tiers.get_loaded(rung.model)
        if engine is None:
            return
        if not self._context(doc, engine, rung, remember=False).multiline:
            # The accepted text ends a line: the next suggestion is wanted after Enter (the new line indented as
            # this one, as editors auto-indent), not for the rest of this line.
            doc = _on_next_line(doc)
            if self._cached(doc):
                return
        try:
            await self._complete_on(doc, None, rung, None, time.perf_counter(), speculative=True)
        except Exception as exc:  # background work: a failure here must not reach anyone's keystroke
            log.debug("speculating the next suggestion failed: %s", exc)

    def _cached(self, doc: DocumentSnapshot) -> bool:
        """Whether the typed-ahead cache already has a suggestion for ``doc``'s cursor."""
        return self.cache.lookup(doc.uri, doc.text[: doc.offset], doc.text[doc.offset :]) is not None

    def _finish_in_background(self, work: asyncio.Future, job: _Job, stream: GenerationStream) -> None:
        """The rest of an early answer: post-processed, cached and reported; what follows it speculated."""
        self._finishing.discard(work)
        if self._background.get(job.uri) is stream:
            del self._background[job.uri]
        if work.cancelled():
            return
        if (error := work.exception()) is not None:
            log.warning("the rest of an early suggestion failed: %s", error)
            return
        try:
            outcome = self._finish(job, work.result())
        except Exception:  # a done-callback: nobody else would see it
            log.exception("finishing a suggestion in the background failed")
            return
        outcome.background = True
        # Which document and version it was for: an editor still there can ask again and get it from the cache.
        outcome.facts.uri, outcome.facts.version = job.uri, job.version
        if self.on_background_outcome is not None:
            self.on_background_outcome(outcome)
        if outcome.suggestion is not None and job.doc is not None:
            self._speculate_after(job.doc, job.rung, outcome.suggestion)

    def _cancel_background(self) -> None:
        for stream in self._background.values():
            stream.cancel()
        self._background.clear()

    def _finish(self, job: _Job, result: GenerationResult) -> CompletionOutcome:
        """The outcome of a finished generation: measured by the guard, post-processed, cached if shown."""
        # A single line is judged by when it was finished: the whole of what the person waits for there.
        # A speculation is nobody's wait (and often cut short by a keystroke): the guard does not see it.
        shift = None if job.speculative else self.guard.record_result(job.rung, result, single_line=not job.ctx.multiline)
        evaluated = result.n_prompt_tokens - result.n_reused_tokens
        measured = not job.speculative and result.stop_reason != "cancelled"
        if measured and evaluated >= PROMPT_SPEED_MIN_TOKENS and result.prompt_eval_s > 0:
            speed = evaluated / result.prompt_eval_s
            self._prompt_speed[job.rung.name] = max(speed, self._prompt_speed.get(job.rung.name, 0.0))
        if result.stop_reason == "cancelled":
            outcome = CompletionOutcome(suggestion=None, tier=job.rung.name, hidden_reason="cancelled")
        else:
            truncated = result.stop_reason in ("length", "time_budget")
            outcome = self._shown(job, result.text, result.token_logprobs, truncated=truncated)
            if result.stop_reason == "stop" and job.checker is not None and job.checker.rule:
                outcome.facts.stopped_by = job.checker.rule
                if outcome.suggestion is None and not outcome.facts.rules:
                    outcome.hidden_reason = f"removed by {job.checker.rule}"  # the stop rule cut all of it
        outcome.tokens_per_s = round(result.decode_tokens_per_s, 1)
        outcome.time_to_first_token_ms = round(result.time_to_first_token_s * 1000, 1)
        outcome.generated_tokens = result.n_generated_tokens
        # How much of the prompt this request evaluated: what cursor hints and prewarm are meant to shrink.
        outcome.facts.prompt_tokens, outcome.facts.reused_tokens = result.n_prompt_tokens, result.n_reused_tokens
        if result.failover:  # another server of the rung answered: where and why, as remoteError says for a rung
            outcome.facts.remote_failover = result.failover
        outcome.stop_reason = result.stop_reason
        if shift:
            outcome.shift = shift.to_status()
        log.debug(
            "completion tier=%s tokens=%d tok/s=%.1f ttft=%.0fms shown=%s reason=%s",
            job.rung.name,
            result.n_generated_tokens,
            result.decode_tokens_per_s,
            result.time_to_first_token_s * 1000,
            outcome.suggestion is not None,
            outcome.hidden_reason,
        )
        return outcome

    def _shown_early(self, job: _Job, answer: Partial) -> CompletionOutcome:
        """``_shown`` for the text so far of a generation still running: its finished lines only, or nothing."""
        cut = finished_lines(answer.text)
        if cut is None:
            outcome = CompletionOutcome(suggestion=None, tier=job.rung.name, hidden_reason="no finished line yet")
            outcome.latency_ms = (time.perf_counter() - job.started) * 1000
            return outcome
        return self._shown(job, answer.text, answer.token_logprobs, truncated=False, cut=cut)

    def _shown(
        self, job: _Job, generated: str, logprobs: list[float], *, truncated: bool, cut: int | None = None
    ) -> CompletionOutcome:
        """What of ``generated`` (up to ``cut``) is shown (post-processed, confident enough), cached for typed-ahead
        hits."""
        settings = self.settings.completion
        outcome = CompletionOutcome(suggestion=None, tier=job.rung.name)
        if job.context_chunks:
            outcome.facts.context_chunks = job.context_chunks
        continuation = healing.continuation(generated[:cut], job.ctx)
        rules: list[str] = []
        kept = postprocess(continuation, job.ctx, max_lines=settings.max_lines, truncated=truncated, trace=rules)
        outcome.facts.rules, outcome.generated = rules, generated
        if not kept:
            outcome.hidden_reason = f"removed by {rules[-1]}" if rules else "nothing after the cursor"
        else:
            outcome.confidence = round(confidence_of_kept(logprobs, generated, kept), 3)
            if outcome.confidence < settings.min_confidence:
                outcome.hidden_reason = f"confidence {outcome.confidence:.2f} below {settings.min_confidence:.2f}"
            else:
                outcome.suggestion = kept
                meta = {"tier": job.rung.name, "confidence": outcome.confidence}
                self.cache.put(job.uri, job.prefix, job.suffix, kept, meta)
        outcome.latency_ms = (time.perf_counter() - job.started) * 1000
        return outcome

    def template(self, engine: AsyncEngine) -> FimTemplate:
        """The FIM template for ``engine``'s model: its own setting (a team endpoint's ``fimTemplate``), else
        ``models.fimTemplate``, else from the model's vocabulary (a team endpoint: its model's name)."""
        key = (str(engine.model_path or engine.name), self.settings.models.fim_template)
        if key not in self._templates:
            override = engine.fim_family or key[1]
            self._templates[key] = template_for(engine.metadata, override, vocabulary=engine.vocabulary)
        return self._templates[key]

    async def prewarm(self, doc: DocumentSnapshot, since: float | None = None, *, guessed: bool = False) -> bool:
        """Evaluate the prompt the next keystroke at ``doc.offset`` would need, so it only pays for new tokens.

        ``since``: when the change this prewarm follows happened (monotonic); a completion requested after it
        has evaluated that prompt already, and a prewarm now could evict it (a guard probe's window).
        ``guessed``: the cursor is a guess (a file just opened): warm only a window that reaches back to the
        file's start, which the prompt wherever the user starts typing shares; elsewhere the guess would hold
        the engine's thread for nothing when the first real request comes.
        Returns whether the prompt is evaluated now (False: nothing to warm, warming now would not help, it gave
        way to a request, or the engine could not evaluate it).
        """
        if since is not None and self._requested_at.get(doc.uri, -math.inf) >= since:
            return False
        rung = self.guard.expected_rung()  # warming another rung's window would evict the one about to be used
        engine = self.tiers.get_loaded(rung.model)
        if engine is None or looks_binary(doc.text, doc.offset):
            return False
        bounded, full = self._windows(doc, engine, rung)
        if guessed and bounded.ctx.prefix_start > 0:
            return False
        if rung.remote and remote_refusal(self.tiers.endpoint(rung.model), doc.path, self.settings):
            return False  # never-send or local-only: not even a prewarm leaves the machine
        # The window the next keystroke would get cold first, then (where it is larger) the full window, which
        # later requests use once it is held (see ``_window``); each gives way to any request.
        for window in (bounded, full) if full is not None else (bounded,):
            if not await engine.prewarm(window.background_request()):
                return False  # it gave way to a request, or nothing could be sent: nobody is told it is warm
        return True

    def _window(self, doc: DocumentSnapshot, engine: LlamaEngine, rung: Rung, remember: bool = True) -> _Window:
        """The prompt window a request gets: the configured (full) one when the engine holds enough of it that
        what is left to evaluate costs no more than the window bounded by ``completion.coldPromptMs`` would;
        that bounded window otherwise (a file not seen yet, a jump elsewhere), kept under its own key."""
        bounded, full = self._windows(doc, engine, rung, remember)
        if full is None:
            return bounded
        held_bounded, n_bounded = engine.held_tokens(bounded.prompt, bounded.key)
        held_full, n_full = engine.held_tokens(full.prompt, full.key)
        slack = (self._speed(engine, rung) or 0.0) * FULL_WINDOW_SLACK_S
        return full if n_full - held_full <= n_bounded - held_bounded + slack else bounded

    def _windows(
        self, doc: DocumentSnapshot, engine: LlamaEngine, rung: Rung, remember: bool = True
    ) -> tuple[_Window, _Window | None]:
        """(the window bounded by the cold-prompt rule, the full window where it is larger and the engine can say
        how much of a prompt it holds; else None).  ``remember``: see ``MiddleSplitter.point``."""
        template = self.template(engine)
        speed = self._speed(engine, rung)
        bounded_size = rung_window(self.settings.completion, rung, speed)
        full_size = rung_window(self.settings.completion, rung, None)
        extra = self._cross_file(doc)

        def window(size: tuple[int, int], key: str) -> _Window:
            ctx = self._context(doc, engine, rung, size, remember)
            parts = self._infill_parts(doc, ctx, extra)
            return _Window(ctx, parts, self._prompt(template, doc, parts), key)

        if bounded_size == full_size or not hasattr(engine, "held_tokens"):
            return window(full_size if bounded_size == full_size else bounded_size, doc.uri), None
        return window(bounded_size, doc.uri + BOUNDED_WINDOW_KEY), window(full_size, doc.uri)

    def _speed(self, engine: LlamaEngine, rung: Rung) -> float | None:
        """The rung's prompt speed: the fastest of the engine's measurement at load and what requests showed."""
        return max(engine.prompt_tokens_per_s or 0.0, self._prompt_speed.get(rung.name, 0.0)) or None

    def _context(
        self, doc: DocumentSnapshot, engine: LlamaEngine, rung: Rung, size: tuple[int, int] | None = None,
        remember: bool = True,
    ) -> CompletionContext:
        """The cursor's context with the prompt window ``size`` (prefix, suffix tokens; default: the one the
        cold-prompt rule allows ``rung``)."""
        settings = self.settings.completion
        prefix_tokens, suffix_tokens = size or rung_window(settings, rung, self._speed(engine, rung))
        return build_context(
            doc.text,
            doc.offset,
            doc.language_id,
            count_tokens=engine.count_tokens,
            prefix_tokens=prefix_tokens,
            suffix_tokens=suffix_tokens,
            max_lines=settings.max_lines,
            path=doc.path,
            # The window ends where the typed middle starts: its start stays put while the user types.
            window_end=self.splitter.point(doc.uri, doc.text, doc.offset, settings.middle_chars, remember),
        )

    def _infill_parts(
        self, doc: DocumentSnapshot, ctx: CompletionContext, extra: tuple[tuple[str, str], ...] | None = None
    ) -> InfillParts:
        """The prompt's pieces for ``ctx`` (built by ``_context``, whose window ends at the split point)."""
        prefix, middle = split_middle(ctx)
        return InfillParts(prefix=prefix, middle=middle, suffix=ctx.suffix,
                           extra=self._cross_file(doc) if extra is None else extra)

    def _prompt(self, template: FimTemplate, doc: DocumentSnapshot, parts: InfillParts) -> str:
        """The FIM prompt from ``parts`` in ``template``'s layout."""
        # A space typed last stays out of the prompt (see ``healing``).
        return template.build(parts.prefix, parts.suffix, _display_path(doc.path), middle=healing.unspaced(parts.middle),
                              extra=parts.extra)

    def _cross_file(self, doc: DocumentSnapshot) -> tuple[tuple[str, str], ...]:
        """Chunks of other recently used files for ``doc``'s prompt (``completion.crossFileTokens``)."""
        budget = self.settings.completion.cross_file_tokens
        if budget <= 0:
            return ()
        cloud = self.settings.cloud
        return self.neighbours.chunks(
            doc.uri, doc.text, budget, count_tokens=lambda text: len(text.encode("utf-8", "replace")) // 3 + 1,
            excluded=lambda path: never_send_match(path, cloud) is not None,
        )
