"""A shared inference server as an engine: llama.cpp's ``llama-server`` (``/infill``) or any OpenAI-compatible
``/v1/completions`` (vLLM, Ollama, gateways), streamed over httpx with a keep-alive pool.

The same contract as the in-process engine (``GenerationRequest`` in, a ``GenerationStream`` of partial outputs,
``GenerationResult`` out): stop strings and the time budget work on the streamed text, and a cancel or the
consumer's ``stop(cut)`` closes the stream, which makes llama-server stop generating for that slot; a cancel before
the first token (the request queued for a slot, or its prompt being evaluated: llama-server sends the response
headers only with the first token) hangs up too, which takes the request out of the server's queue. Anything
that is not a usable answer (refused connection, timeout, an HTTP error, HTML or garbage where a stream should be)
from every server of the rung raises ``EndpointUnavailable`` naming the URLs and the reasons, so the ladder's next
rung can answer instead; where another server of the rung answered, the result's ``failover`` says so.

Slots: llama-server keeps one KV cache per slot (``--parallel``) and, asked without ``id_slot``, picks a slot by
prompt similarity, which misses when the document's slot is busy (its prewarm still evaluating, a cancelled
request not yet stopped): the request is then evaluated cold in another slot. So each document is pinned to a slot
of its server: the first request for it lets the server choose (an idle slot, the least recently used one; it
sees every client's requests, which this client does not), the answer's ``id_slot`` is remembered, and every
later request and prewarm for the document names that slot (llama-server then waits for it rather than starting
over elsewhere); a document placed in a slot takes it from this client's document there before.

Several servers of one rung: a document sticks to the server that answered it last (its KV cache holds the
document); a new document goes to the healthy server this client has sent the fewest documents to. A server that
failed is backed off (``BACKOFF_S``, doubled with each failure in a row, at most ``BACKOFF_MAX_S``): nothing is
sent to it meanwhile, and when the back-off is over its ``/health`` is asked before a request goes there again.

Token counts for window sizing are estimated from bytes (the server's tokenizer is a round trip away); the server's
own counts come back in the result.
"""

from __future__ import annotations

import asyncio
import json
import logging
import math
import os
import time
from collections import Counter, OrderedDict
from dataclasses import dataclass, field
from urllib.parse import urlsplit

import httpx
from cachetools import LRUCache

from lsp_server.errors import EndpointUnavailable
from lsp_server.inference.remote_stream import POLL_S, StreamedAnswer, error_text, read_events
from lsp_server.inference.stream import GenerationStream
from lsp_server.inference.types import CancelToken, GenerationRequest, GenerationResult
from lsp_server.settings import EndpointSettings

log = logging.getLogger(__name__)

BYTES_PER_TOKEN = 3.5
"""Code averages 3-4 UTF-8 bytes per token with BPE vocabularies of 32k-150k entries; estimates size windows only."""

PREWARM_TIMEOUT_S = 120.0
"""A prewarm evaluates a whole cold prompt, which may wait for a slot first: far longer than a read timeout."""

BACKOFF_S = 1.0
"""After a server fails, nothing is sent to it for this long, doubled with each failure in a row."""
BACKOFF_MAX_S = 30.0
"""The longest back-off: a server that came back is asked again within this."""



def _host(url: str) -> str:
    return urlsplit(url).netloc or url


@dataclass
class _Server:
    """One URL of a rung and what this client knows of its health."""

    url: str
    failures: int = 0
    """Failed requests (or health probes) in a row; 0 once it answers."""
    retry_at: float = 0.0
    """``time.monotonic()`` before which nothing is sent to it."""
    reason: str = ""
    """Why it failed last."""
    probed: bool = False
    """Its ``/health`` answered since its last failure: requests may go there again."""
    total_slots: int | None = None
    """Its ``/props`` ``total_slots`` (llama-server's ``--parallel``), once asked; 0: it did not say (no pinning)."""
    slots: OrderedDict[str, int] = field(default_factory=OrderedDict)
    """Document -> the slot that holds its KV cache there, least recently used first; one document per slot."""
    placing: dict[str, asyncio.Event] = field(default_factory=dict)
    """Documents whose first request (the server choosing the slot) is under way: later ones wait for its slot."""
    asking: asyncio.Lock = field(default_factory=asyncio.Lock)
    """Held while ``/props`` is asked: requests that come meanwhile wait for its answer rather than go unpinned."""

    def backed_off(self, now: float) -> bool:
        return now < self.retry_at

    def place(self, document: str, slot: object) -> None:
        """The server put ``document`` in ``slot``: later requests for it name that slot."""
        if not isinstance(slot, int) or not self.total_slots or not 0 <= slot < self.total_slots:
            return
        for other in [d for d, s in self.slots.items() if s == slot and d != document]:
            del self.slots[other]  # its cache there is being replaced
        self.slots[document] = slot
        self.slots.move_to_end(document)

    def forget(self) -> None:
        """After a failure: a server that comes back may have restarted, with empty slots or another count."""
        self.total_slots = None
        self.slots.clear()


class RemoteEngine:
    """One ladder rung served by one or more URLs of the same kind of server."""

    def __init__(self, endpoint: EndpointSettings) -> None:
        self.endpoint = endpoint
        self.name = endpoint.name
        self.model_path = None  # no local file: the FIM template comes from ``fim_family`` or the model's name
        self.metadata = {"general.name": endpoint.model or endpoint.name}
        self.fim_family = endpoint.fim_template
        self.vocabulary = None  # the server's vocabulary is a round trip away: the family is set or named
        self.served_model: str | None = endpoint.model
        """The model the server says it serves (from ``/props`` or ``/v1/models``), once asked."""
        self._servers = [_Server(url) for url in endpoint.urls]
        self._affinity: LRUCache[str, int] = LRUCache(maxsize=1024)
        """Document -> index of the server that answered it last (where its KV cache is)."""
        self._serving = 0
        """The index of the URL that answered last: the one the status names."""
        self.requests_sent = 0
        """Requests sent to this endpoint's servers (the audit log has one line per request)."""
        self.bytes_sent = 0
        self._client = httpx.AsyncClient(
            timeout=httpx.Timeout(endpoint.read_timeout_s, connect=endpoint.connect_timeout_s),
            limits=httpx.Limits(max_keepalive_connections=8, keepalive_expiry=60),
            headers=self._headers(),
            trust_env=False,  # a proxy from the environment must not see the code
        )

    def _headers(self) -> dict[str, str]:
        key = self.endpoint.api_key.get_secret_value() if self.endpoint.api_key else None
        if key is None and self.endpoint.api_key_env:
            key = os.environ.get(self.endpoint.api_key_env)
        return {"Authorization": f"Bearer {key}"} if key else {}

    @property
    def label(self) -> str:
        """``team · gpu-box:8080 · qwen2.5-coder-1.5b``: for the status line; the host is the server that answered
        last (after a failover, the one that took over)."""
        host = _host(self.endpoint.urls[self._serving])
        return " · ".join([self.name, host, *([self.served_model] if self.served_model else [])])

    def count_tokens(self, text: str) -> int:
        return math.ceil(len(text.encode("utf-8", "replace")) / BYTES_PER_TOKEN)

    prompt_tokens_per_s: float | None = None
    """Unknown: the server's speed is not measured here."""

    def set_n_threads(self, n: int) -> None:
        """The server decides its own threads."""

    def stats(self) -> dict:
        return {"model": self.served_model or self.name, "requests_sent": self.requests_sent,
                "bytes_sent": self.bytes_sent}

    async def prewarm(self, request: GenerationRequest) -> bool:
        """Have llama-server evaluate this prompt into the slot the document's requests go to (``n_predict: 0``,
        as llama.vim warms): a request cancelled mid-prompt there starts over, so a cold prompt must be evaluated
        before the keystrokes that need it.  Only llama-server with the FIM pieces: OpenAI-compatible servers have
        no evaluate-only request (nothing is sent).  Raises ``EndpointUnavailable`` when the server did not
        evaluate it (down, backed off, an error status, not its answer), so that nobody is told it is warm.
        Returns whether it was evaluated (False: nothing sent)."""
        parts = request.infill
        if self.endpoint.api != "llama-server" or parts is None:
            return False
        key = request.affinity_key or ""
        candidates = self._candidates(key)
        if not candidates:
            raise EndpointUnavailable(self._backed_off_text(self._servers))
        index = candidates[0]
        server = self._servers[index]
        if not await self._usable(server):
            raise EndpointUnavailable(server.reason)
        body = {"input_prefix": parts.prefix, "input_suffix": parts.suffix, "prompt": parts.middle,
                "input_extra": [{"filename": name, "text": text} for name, text in parts.extra],
                "n_predict": 0, "cache_prompt": True, "stream": False}
        choosing = await self._pin(server, key, body, None)
        log.info("team prewarm %s/infill: file %s, %d bytes", _host(server.url),
                 key.rsplit("/", 1)[-1] or "untitled", len(json.dumps(body).encode()))
        url = server.url.rstrip("/") + "/infill"
        try:
            try:
                response = await self._client.post(url, json=body, timeout=httpx.Timeout(
                    PREWARM_TIMEOUT_S, connect=self.endpoint.connect_timeout_s))
            except httpx.HTTPError as exc:
                raise EndpointUnavailable(f"{server.url}: {exc or type(exc).__name__}") from None
            if response.status_code != 200:
                detail = error_text(response.text[:300])
                raise EndpointUnavailable(f"{url} answered HTTP {response.status_code}: {detail}")
            try:
                answer = response.json()
            except ValueError:
                answer = None
            if not isinstance(answer, dict) or "content" not in answer:
                kind = response.headers.get("content-type", "no content type")
                raise EndpointUnavailable(f"{url} is not a llama-server server: it answered {kind} to a prewarm")
            self._placed(server, key, choosing, answer.get("id_slot"))
        except EndpointUnavailable as exc:
            self._failed(server, str(exc))
            raise
        finally:
            self._placed(server, key, choosing, None)  # failed or cancelled before the server said: not placed
        self._affinity[key] = index  # the next request for the document goes where its prompt is
        return True

    def close(self) -> None:
        try:
            asyncio.get_running_loop().create_task(self._client.aclose())
        except RuntimeError:  # no loop running (shutdown): the pool goes with the process
            pass

    # -- generation ---------------------------------------------------------------------------------

    async def describe(self, server: _Server) -> None:
        """Learn the served model's name once (llama-server ``/props``, with the server's slot count; OpenAI
        ``/v1/models``) from ``server`` (the one about to be asked), for the status."""
        if self.endpoint.api == "llama-server":
            if server.total_slots is None:
                await self._props(server)
            return
        if self.served_model is not None:
            return
        try:
            response = await self._client.get(server.url.rstrip("/") + "/v1/models",
                                              timeout=self.endpoint.connect_timeout_s)
            body = response.json()
        except (httpx.HTTPError, ValueError):
            return  # the status just shows less; generation says what is wrong
        if isinstance(body, dict) and isinstance(body.get("data"), list) and body["data"]:
            first = body["data"][0]
            self.served_model = first.get("id") if isinstance(first, dict) else None

    # -- which slot: a document pinned to one ------------------------------------------------------------

    async def _pin(
        self, server: _Server, key: str, body: dict, consumer: GenerationStream | None
    ) -> asyncio.Event | None:
        """Name the document's slot in ``body`` (``id_slot``). Returns the event to set once the server chose a
        slot, where this request lets it choose (the document's first); waits first while another request for
        the document is choosing (until the consumer cancels)."""
        if self.endpoint.api != "llama-server" or not key:
            return None
        if server.total_slots is None:
            await self._props(server)
        if not server.total_slots:
            return None
        while (pending := server.placing.get(key)) is not None:
            if consumer is None:
                await pending.wait()
                continue
            try:
                await asyncio.wait_for(pending.wait(), POLL_S)
            except asyncio.TimeoutError:  # not the builtin before Python 3.11
                if consumer.cancelled:
                    return None
        slot = server.slots.get(key)
        if slot is not None:
            server.slots.move_to_end(key)
            body["id_slot"] = slot
            return None
        body["id_slot"] = -1
        choosing = server.placing[key] = asyncio.Event()
        return choosing

    def _placed(self, server: _Server, key: str, choosing: asyncio.Event | None, slot: object) -> None:
        """The answer to the request that let the server choose said ``slot`` (None: it did not, or failed)."""
        if choosing is None or server.placing.get(key) is not choosing:
            return
        if slot is not None:
            server.place(key, slot)
        del server.placing[key]
        choosing.set()

    async def _props(self, server: _Server) -> None:
        """``total_slots`` (and the model's name) from the server's ``/props``, asked once at a time; 0 where it
        does not say."""
        async with server.asking:
            if server.total_slots is None:
                server.total_slots = await self._ask_props(server)

    async def _ask_props(self, server: _Server) -> int:
        try:
            response = await self._client.get(server.url.rstrip("/") + "/props",
                                              timeout=self.endpoint.connect_timeout_s)
            body = response.json()
        except (httpx.HTTPError, ValueError):
            return 0
        if not isinstance(body, dict):
            return 0
        if self.served_model is None and isinstance(body.get("model_path"), str):
            self.served_model = body["model_path"].replace("\\", "/").rsplit("/", 1)[-1].removesuffix(".gguf")
        slots = body.get("total_slots")
        return slots if isinstance(slots, int) and slots > 0 else 0

    # -- which server: affinity, spreading, back-off ----------------------------------------------------

    def _candidates(self, key: str) -> list[int]:
        """The servers to try for document ``key``, in order: the one that answered it last (its KV cache holds
        it), else the one with the fewest of this client's documents (new documents spread); then the others by
        the same count. Servers in their back-off are left out: nothing is sent to them."""
        now = time.monotonic()
        load = Counter(self._affinity.values())
        usable = sorted((i for i, server in enumerate(self._servers) if not server.backed_off(now)),
                        key=lambda i: (load[i], i))
        home = self._affinity.get(key)
        if home in usable:
            usable.remove(home)
            usable.insert(0, home)
        return usable

    async def _usable(self, server: _Server) -> bool:
        """Whether a request may go to ``server``: yes unless it failed and its ``/health`` (asked once its
        back-off is over) does not answer 200; a failed probe backs it off again, for twice as long."""
        if not server.failures or server.probed:
            return True
        try:
            response = await self._client.get(server.url.rstrip("/") + "/health",
                                              timeout=self.endpoint.connect_timeout_s)
        except httpx.HTTPError as exc:
            self._failed(server, f"{server.url}/health: {exc or type(exc).__name__}")
            return False
        if response.status_code != 200:  # llama-server: 503 while it loads the model
            self._failed(server, f"{server.url}/health answered HTTP {response.status_code}")
            return False
        server.probed = True
        log.info("endpoint %s: %s answers /health again", self.name, _host(server.url))
        return True

    def _failed(self, server: _Server, reason: str) -> None:
        server.forget()
        server.failures += 1
        server.probed = False
        server.reason = reason
        wait = min(BACKOFF_MAX_S, BACKOFF_S * 2 ** (server.failures - 1))
        server.retry_at = time.monotonic() + wait
        log.warning("endpoint %s: %s; nothing is sent to %s for %.1f s", self.name, reason, _host(server.url), wait)

    def _backed_off_text(self, skipped: list[_Server]) -> str:
        now = time.monotonic()
        return "; ".join(f"{_host(s.url)} backed off for {max(0.0, s.retry_at - now):.1f} s more after: {s.reason}"
                         for s in skipped)

    def stream(self, request: GenerationRequest, cancel: CancelToken | None = None) -> GenerationStream:
        stream = GenerationStream(cancel)
        return stream.run(self._generate(request, stream))

    async def generate(self, request: GenerationRequest, cancel: CancelToken | None = None) -> GenerationResult:
        """``stream`` to its end."""
        return await self.stream(request, cancel).result()

    async def _generate(self, request: GenerationRequest, stream: GenerationStream) -> GenerationResult:
        key = request.affinity_key or ""
        candidates = self._candidates(key)
        skipped = [server for i, server in enumerate(self._servers) if i not in candidates]
        if not candidates:  # every server failed a moment ago: the next rung answers without a round trip
            raise EndpointUnavailable(self._backed_off_text(skipped))
        failures: list[str] = []
        for step, index in enumerate(candidates):
            if step and stream.cancelled:  # nobody waits for an answer: no other server is asked, the rung not blamed
                cancelled = StreamedAnswer(request, time.perf_counter(), stream.publish)
                cancelled.stop_reason = "cancelled"
                return cancelled.result(self.served_model or self.name)
            server = self._servers[index]
            if not await self._usable(server):
                failures.append(server.reason)
                continue
            await self.describe(server)
            try:
                result = await self._generate_at(server, request, stream)
            except EndpointUnavailable as exc:
                failures.append(str(exc))
                self._failed(server, str(exc))
                continue
            server.failures, server.probed = 0, False
            self._affinity[key] = index  # this document's KV cache lives there now
            self._serving = index
            if failures:  # the rung answered, but not where it should have: the status says where and why
                result.failover = f"{'; '.join(failures)}; {_host(server.url)} answered instead"
            return result
        if skipped:
            failures.append(self._backed_off_text(skipped))
        raise EndpointUnavailable("; ".join(failures))

    async def _generate_at(
        self, server: _Server, request: GenerationRequest, consumer: GenerationStream
    ) -> GenerationResult:
        key = request.affinity_key or ""
        path, body = self._request_body(request)
        choosing = await self._pin(server, key, body, consumer) if path == "/infill" else None
        try:
            return await self._stream_from(server, path, body, request, consumer, choosing)
        finally:
            self._placed(server, key, choosing, None)  # failed or cancelled before the server said: not placed

    async def _stream_from(self, server: _Server, path: str, body: dict, request: GenerationRequest,
                           consumer: GenerationStream, choosing: asyncio.Event | None) -> GenerationResult:
        url = server.url
        # Audited like a cloud request: where, for which file, how much; never the content.
        sent = len(json.dumps(body).encode())
        file_name = (request.affinity_key or "").rsplit("/", 1)[-1] or "untitled"
        self.requests_sent += 1
        self.bytes_sent += sent
        log.info("team request %s%s: file %s, %d bytes", _host(url), path, file_name, sent)
        called = time.perf_counter()
        stream = StreamedAnswer(request, called, consumer.publish)
        if consumer.cancelled:  # while it waited for the document's slot to be chosen
            stream.stop_reason = "cancelled"
            return stream.result(self.served_model or self.name)
        try:
            response = await self._send(url.rstrip("/") + path, body, consumer)
            if response is None:  # cancelled before the first token: the connection is closed, the slot freed
                stream.stop_reason = "cancelled"
                return stream.result(self.served_model or self.name)
            try:
                if response.status_code >= 400:
                    detail = (await response.aread())[:300].decode("utf-8", "replace")
                    raise EndpointUnavailable(f"{url}{path} answered HTTP {response.status_code}: {error_text(detail)}")
                kind = response.headers.get("content-type", "")
                if "text/event-stream" not in kind:
                    raise EndpointUnavailable(
                        f"{url}{path} is not a {self.endpoint.api} server: it answered {kind or 'no content type'}"
                    )
                events = 0
                async for event in read_events(response, consumer):
                    events += 1
                    if choosing is not None and "id_slot" in event:
                        self._placed(server, request.affinity_key or "", choosing, event["id_slot"])
                        choosing = None
                    if stream.push(event, self.endpoint.api):
                        break
                if not events and not consumer.cancelled:
                    raise EndpointUnavailable(f"{url}{path} sent a stream with no events (not a {self.endpoint.api} server?)")
            finally:
                await response.aclose()  # before its end (a cut, a cancel): closes the connection, the server stops
        except httpx.TimeoutException as exc:
            raise EndpointUnavailable(f"{url}: timed out ({type(exc).__name__})") from None
        except httpx.HTTPError as exc:
            raise EndpointUnavailable(f"{url}: {exc or type(exc).__name__}") from None
        if consumer.cut is not None:  # the consumer's stop: the text ends there
            stream.text = stream.text[: consumer.cut]
            stream.stop_reason = "stop"
        elif consumer.cancelled:
            stream.stop_reason = "cancelled"
        return stream.result(self.served_model or self.name)

    async def _send(self, url: str, body: dict, consumer: GenerationStream) -> httpx.Response | None:
        """POST ``body`` and wait for the response headers, watching the cancel token meanwhile: llama-server sends
        them only with the first token, after the request waited for a slot and its prompt was evaluated.  None
        when cancelled first: the request is abandoned, which closes its connection (a half-read HTTP/1.1
        response cannot be reused), and llama-server drops a request whose client hung up."""
        sending = asyncio.ensure_future(self._client.send(self._client.build_request("POST", url, json=body),
                                                          stream=True))
        try:
            while not sending.done():
                await asyncio.wait({sending}, timeout=POLL_S)
                if consumer.cancelled and not sending.done():
                    break
        finally:
            if not sending.done():
                sending.cancel()
                await asyncio.gather(sending, return_exceptions=True)  # until the connection is closed
        if sending.cancelled():
            return None
        return sending.result()

    def _request_body(self, request: GenerationRequest) -> tuple[str, dict]:
        sampling = {
            "temperature": request.temperature,
            "top_k": 1 if request.temperature == 0 else request.top_k,
            "top_p": request.top_p,
            "seed": request.seed,
        }
        if self.endpoint.api == "llama-server" and request.infill is not None:
            parts = request.infill
            body = {
                "input_prefix": parts.prefix,
                "input_suffix": parts.suffix,
                "input_extra": [{"filename": name, "text": text} for name, text in parts.extra],
                "prompt": parts.middle,
                "n_predict": request.max_tokens,
                "stop": request.stop,
                "stream": True,
                "cache_prompt": True,
                "n_probs": 1,
                **sampling,
            }
            if request.time_budget_s is not None:
                body["t_max_predict_ms"] = int(request.time_budget_s * 1000)
            return "/infill", body
        body = {
            "prompt": request.prompt,
            "max_tokens": request.max_tokens,
            "stop": request.stop[:4],  # the OpenAI API allows four; the rest are applied here
            "stream": True,
            "logprobs": 1,
            **sampling,
        }
        if self.endpoint.model:
            body["model"] = self.endpoint.model
        return "/v1/completions", body
