"""A team server's streamed answer read as events: server-sent events parsed, pieces assembled, the request's stop
rules and time budget applied (``RemoteEngine`` sends the request and owns the connection)."""

from __future__ import annotations

import asyncio
import json
import math
import time
from collections.abc import AsyncIterator, Callable

import httpx

from lsp_server.errors import EndpointUnavailable
from lsp_server.inference.stream import GenerationStream
from lsp_server.inference.types import GenerationRequest, GenerationResult, Partial

POLL_S = 0.05
"""How often a cancel is noticed while waiting for the next streamed piece."""


def error_text(detail: str) -> str:
    try:
        parsed = json.loads(detail)
    except ValueError:
        return detail.strip().splitlines()[0][:120] if detail.strip() else "no details"
    error = parsed.get("error") if isinstance(parsed, dict) else None
    if isinstance(error, dict):
        return str(error.get("message", error))[:200]
    return str(error or parsed)[:200]


async def read_events(response: httpx.Response, cancel: GenerationStream) -> AsyncIterator[dict]:
    """The JSON objects of a server-sent event stream; stops quietly at ``[DONE]`` or a cancel."""
    lines = response.aiter_lines()
    while not cancel.cancelled:
        pending = asyncio.ensure_future(lines.__anext__())
        while not pending.done():
            await asyncio.wait({pending}, timeout=POLL_S)
            if cancel.cancelled:
                pending.cancel()
                return
        try:
            line = pending.result()
        except StopAsyncIteration:
            return
        if not line.startswith("data:"):
            continue  # comments, event names, the blank line between events
        data = line[5:].strip()
        if data == "[DONE]":
            return
        try:
            event = json.loads(data)
        except ValueError:
            raise EndpointUnavailable(f"a streamed piece is not JSON: {data[:60]!r}") from None
        if not isinstance(event, dict):
            raise EndpointUnavailable(f"a streamed piece is not an object: {data[:60]!r}")
        if "error" in event:
            raise EndpointUnavailable(f"the server reported an error: {error_text(json.dumps(event))}")
        yield event


class StreamedAnswer:
    """Text, log-probabilities and timings of one streamed answer, with the request's stop rules applied."""

    def __init__(self, request: GenerationRequest, called: float, publish: Callable[[Partial], None]) -> None:
        self.request = request
        self.called = called
        self.publish = publish
        self.text = ""
        self.logprobs: list[float] = []
        self.n_tokens = 0
        self.first_token_at: float | None = None
        self.last_token_at: float | None = None
        self.stop_reason = "length"
        self.timings: dict = {}

    def push(self, event: dict, api: str) -> bool:
        """Take one event; True when generation should end here."""
        piece, logprobs, finished = _parse_event(event, api)
        if "timings" in event and isinstance(event["timings"], dict):
            self.timings = event["timings"]
        if piece:
            now = time.perf_counter()
            self.first_token_at = self.first_token_at or now
            self.last_token_at = now
            self.text += piece
            self.logprobs += logprobs
            self.n_tokens += max(1, len(logprobs))
            if self._cut():
                return True
            if self._out_of_time(now):
                return True
            if finished is None:
                self.publish(self._partial(now))
        if finished is not None:
            self.stop_reason = finished
            return True
        return False

    def _cut(self) -> bool:
        request = self.request
        cuts = [i for i in (self.text.find(s) for s in request.stop if s) if i >= 0]
        if not cuts:
            return False
        self.text = self.text[: min(cuts)]
        self.stop_reason = "stop"
        return True

    def _out_of_time(self, now: float) -> bool:
        budget = self.request.time_budget_s
        if budget is None or self.first_token_at is None or now - self.first_token_at < budget:
            return False
        self.stop_reason = "time_budget"
        return True

    def _partial(self, now: float) -> Partial:
        return Partial(
            text=self.text, token_logprobs=list(self.logprobs), n_tokens=self.n_tokens, elapsed_s=now - self.called,
            time_to_first_token_s=(self.first_token_at or now) - self.called, decode_tokens_per_s=self._decode_rate(),
        )

    def _decode_rate(self) -> float:
        if self.n_tokens <= 1 or self.first_token_at is None or self.last_token_at in (None, self.first_token_at):
            return 0.0
        return (self.n_tokens - 1) / (self.last_token_at - self.first_token_at)  # type: ignore[operator]

    def result(self, model_name: str) -> GenerationResult:
        now = time.perf_counter()
        first = self.first_token_at or now
        timings = self.timings
        prompt_n, cache_n = int(timings.get("prompt_n", 0) or 0), int(timings.get("cache_n", 0) or 0)
        return GenerationResult(
            text=self.text,
            stop_reason=self.stop_reason,  # type: ignore[arg-type]
            n_prompt_tokens=prompt_n + cache_n,
            n_reused_tokens=cache_n,
            n_generated_tokens=self.n_tokens,
            token_logprobs=self.logprobs,
            prompt_eval_s=float(timings.get("prompt_ms", 0) or 0) / 1000 or (first - self.called),
            time_to_first_token_s=first - self.called,
            decode_s=(self.last_token_at or first) - first,
            model_name=model_name,
        )


def _parse_event(event: dict, api: str) -> tuple[str, list[float], str | None]:
    """(new text, its tokens' log-probabilities, why it finished or None) for one streamed event."""
    if "choices" in event:  # OpenAI completions
        choices = event.get("choices") or [{}]
        choice = choices[0] if isinstance(choices[0], dict) else {}
        text = choice.get("text") or ""
        logprobs = choice.get("logprobs") or {}
        values = [float(v) for v in (logprobs.get("token_logprobs") or []) if isinstance(v, (int, float))]
        reason = choice.get("finish_reason")
        finished = None if reason is None else ("stop" if reason == "stop" else "length" if reason == "length" else "eos")
        return text, values, finished
    if "content" in event:  # llama-server /completion and /infill
        text = event.get("content") or ""
        values = []
        for entry in event.get("completion_probabilities") or []:
            if isinstance(entry, dict) and isinstance(entry.get("logprob"), (int, float)):
                values.append(float(entry["logprob"]))
            elif isinstance(entry, dict) and isinstance(entry.get("probs"), list) and entry["probs"]:
                top = entry["probs"][0]
                values.append(math.log(max(float(top.get("prob", 0.0)), 1e-12)))
        finished = None
        if event.get("stop"):
            stop_type = event.get("stop_type", "")
            finished = "length" if stop_type == "limit" else "stop" if stop_type == "word" else "eos"
        return text, values, finished
    raise EndpointUnavailable(f"not a {api} stream: a piece without text ({', '.join(list(event)[:5])})")
