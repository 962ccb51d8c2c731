"""A real HTTP server on 127.0.0.1 that speaks enough of the Anthropic Messages API for the real SDK.

``POST /v1/messages`` answers with JSON, or with server-sent events when the
body says ``"stream": true`` (``message_start``, ``content_block_start``,
``ping``, ``content_block_delta``/``text_delta``, ``content_block_stop``,
``message_delta`` with usage, ``message_stop``), in the wire format of the
real API.  Each test scripts what the next requests get::

    fake_anthropic.script(rate_limited(), reply("hello"))   # 429 then an answer
    fake_anthropic.script(server_error(500), server_error(500), server_error(500))
    fake_anthropic.script(slow(2.0))                        # longer than the client timeout

and reads what was received (``fake_anthropic.requests``: headers and JSON
body of every request, for privacy assertions).  When the script is used up
every request gets ``fake_anthropic.default``.

Register the ``fake_anthropic`` fixture with
``pytest_plugins = ["tests.support.fake_anthropic"]`` in ``tests/conftest.py``,
or import it into a test module:
``from tests.support.fake_anthropic import fake_anthropic_fixture  # noqa: F401``.
"""

from __future__ import annotations

import itertools
import json
import threading
import time
from collections import deque
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest

_ids = itertools.count(1)


def _id(prefix: str) -> str:
    return f"{prefix}_fake{next(_ids):016d}"


# -- behaviours -------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Reply:
    """A successful answer; streamed when the request asks for a stream."""

    text: str = "Hello from the fake Anthropic API."
    chunks: tuple[str, ...] | None = None
    """Text deltas to stream; by default the text split after each space."""
    input_tokens: int | None = None
    """By default about a quarter of the characters in the request's system and messages."""
    output_tokens: int | None = None
    """By default the number of chunks."""
    stop_reason: str = "end_turn"
    chunk_delay_s: float = 0.0
    """Pause between streamed deltas (to test cancellation)."""
    error_after_chunks: int | None = None
    """Send an SSE ``error`` event (``overloaded_error``) after this many deltas instead of finishing."""


@dataclass(frozen=True)
class Status:
    """An error response with the API's error body."""

    status: int
    error_type: str
    message: str = "scripted error"
    headers: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class Slow:
    """Wait before answering (the client should time out first), then give ``then``."""

    seconds: float
    then: Reply | Status = field(default_factory=Reply)


Behaviour = Reply | Status | Slow


def reply(text: str = "Hello from the fake Anthropic API.", **kwargs: Any) -> Reply:
    return Reply(text=text, **kwargs)


def rate_limited(retry_after: str = "0") -> Status:
    """429 rate_limit_error with ``retry-after`` (seconds; the SDK backs off itself when it is 0)."""
    return Status(
        429,
        "rate_limit_error",
        "Number of request tokens has exceeded your rate limit.",
        {"retry-after": retry_after},
    )


def server_error(status: int = 500, retry_after_ms: str | None = None) -> Status:
    headers = {"retry-after-ms": retry_after_ms} if retry_after_ms is not None else {}
    return Status(status, "api_error", "Internal server error", headers)


def overloaded(retry_after_ms: str | None = None) -> Status:
    headers = {"retry-after-ms": retry_after_ms} if retry_after_ms is not None else {}
    return Status(529, "overloaded_error", "Overloaded", headers)


def unauthorized() -> Status:
    return Status(401, "authentication_error", "invalid x-api-key")


def slow(seconds: float, then: Reply | Status | None = None) -> Slow:
    return Slow(seconds, then or Reply())


# -- what was received ------------------------------------------------------------------------------


@dataclass(frozen=True)
class ReceivedRequest:
    method: str
    path: str
    headers: dict[str, str]
    """Lower-cased header names."""
    body: Any
    """The JSON body (None when it was not JSON)."""
    raw: bytes
    time: float

    @property
    def text(self) -> str:
        """Everything the request carried that could hold content: the raw body and all header values."""
        return self.raw.decode("utf-8", "replace") + "\n" + "\n".join(self.headers.values())


# -- the server -------------------------------------------------------------------------------------


class FakeAnthropic:
    """The server: ``url`` for ``base_url``, ``script()`` what comes next, ``requests`` what came."""

    def __init__(self, *, api_key: str | None = None) -> None:
        self.api_key = api_key
        """When set, requests with another key (``x-api-key`` or ``authorization: Bearer``) get 401."""
        self.default: Behaviour = Reply()
        self._script: deque[Behaviour] = deque()
        self._requests: list[ReceivedRequest] = []
        self._lock = threading.Condition()
        self._stopping = threading.Event()
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), _handler_for(self))
        self._server.daemon_threads = True
        self._thread = threading.Thread(
            target=self._server.serve_forever,
            kwargs={"poll_interval": 0.05},
            name="fake-anthropic",
            daemon=True,
        )

    @property
    def url(self) -> str:
        port = self._server.server_address[1]
        return f"http://127.0.0.1:{port}"

    @property
    def requests(self) -> list[ReceivedRequest]:
        with self._lock:
            return list(self._requests)

    def script(self, *behaviours: Behaviour | str) -> FakeAnthropic:
        """Queue what the next requests get, in order; a str is ``reply(str)``."""
        with self._lock:
            for behaviour in behaviours:
                self._script.append(Reply(text=behaviour) if isinstance(behaviour, str) else behaviour)
        return self

    @property
    def pending(self) -> int:
        """Scripted behaviours not used yet."""
        with self._lock:
            return len(self._script)

    def wait_for_requests(self, count: int, timeout: float = 10.0) -> list[ReceivedRequest]:
        """Block until ``count`` requests arrived (for tests driving a server in another process)."""
        with self._lock:
            if not self._lock.wait_for(lambda: len(self._requests) >= count, timeout):
                raise TimeoutError(f"expected {count} requests, got {len(self._requests)}")
            return list(self._requests)

    def start(self) -> FakeAnthropic:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stopping.set()
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(timeout=5)

    def __enter__(self) -> FakeAnthropic:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # called from handler threads
    def _record(self, request: ReceivedRequest) -> None:
        with self._lock:
            self._requests.append(request)
            self._lock.notify_all()

    def _next_behaviour(self) -> Behaviour:
        with self._lock:
            return self._script.popleft() if self._script else self.default


def _handler_for(fake: FakeAnthropic) -> type[BaseHTTPRequestHandler]:
    class Handler(_Handler):
        owner = fake

    return Handler


class _Handler(BaseHTTPRequestHandler):
    owner: FakeAnthropic
    protocol_version = "HTTP/1.1"
    timeout = 10  # idle keep-alive connections end on their own

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - keep test output quiet
        pass

    def handle(self) -> None:
        try:
            super().handle()
        except (ConnectionError, TimeoutError):
            pass  # the client hung up (timeout, cancellation, closed pool): that is what those tests do

    def do_POST(self) -> None:  # noqa: N802
        raw = self.rfile.read(int(self.headers.get("content-length") or 0))
        try:
            body = json.loads(raw)
        except ValueError:
            body = None
        headers = {name.lower(): value for name, value in self.headers.items()}
        self.owner._record(ReceivedRequest("POST", self.path, headers, body, raw, time.time()))
        try:
            self._answer(headers, body)
        except (BrokenPipeError, ConnectionResetError):
            pass  # the client hung up (timeout or cancellation): that is what those tests do

    def _answer(self, headers: dict[str, str], body: Any) -> None:
        # Requests the real API would refuse are refused before the script is consulted.
        if self.path.split("?")[0] != "/v1/messages":
            return self._error(Status(404, "not_found_error", f"Not found: {self.path}"))
        if not (headers.get("x-api-key") or headers.get("authorization")):
            return self._error(Status(401, "authentication_error", "x-api-key header is required"))
        if self.owner.api_key is not None and self.owner.api_key not in (
            headers.get("x-api-key"),
            headers.get("authorization", "").removeprefix("Bearer "),
        ):
            return self._error(Status(401, "authentication_error", "invalid x-api-key"))
        if "anthropic-version" not in headers:
            return self._error(Status(400, "invalid_request_error", "anthropic-version header is required"))
        missing = [
            k for k in ("model", "max_tokens", "messages") if not isinstance(body, dict) or k not in body
        ]
        if missing:
            return self._error(Status(400, "invalid_request_error", f"{missing[0]}: Field required"))
        behaviour = self.owner._next_behaviour()
        if isinstance(behaviour, Slow):
            if self.owner._stopping.wait(behaviour.seconds):
                return None
            behaviour = behaviour.then
        if isinstance(behaviour, Status):
            return self._error(behaviour)
        if body.get("stream"):
            return self._stream(behaviour, body)
        return self._json(behaviour, body)

    # -- responses ----------------------------------------------------------------------------------

    def _send_json(self, status: int, payload: Any, extra_headers: dict[str, str] | None = None) -> None:
        data = json.dumps(payload).encode()
        self.send_response(status)
        self.send_header("content-type", "application/json")
        self.send_header("content-length", str(len(data)))
        self.send_header("request-id", _id("req"))
        for name, value in (extra_headers or {}).items():
            self.send_header(name, value)
        self.end_headers()
        self.wfile.write(data)
        self.wfile.flush()

    def _error(self, status: Status) -> None:
        payload = {"type": "error", "error": {"type": status.error_type, "message": status.message}}
        self._send_json(status.status, payload, status.headers)

    def _usage(self, reply: Reply, body: dict[str, Any], chunks: list[str]) -> tuple[int, int]:
        if reply.input_tokens is not None:
            input_tokens = reply.input_tokens
        else:
            system = body.get("system") or ""
            input_tokens = max(1, (len(json.dumps(system)) + len(json.dumps(body.get("messages")))) // 4)
        output_tokens = reply.output_tokens if reply.output_tokens is not None else max(1, len(chunks))
        return input_tokens, output_tokens

    @staticmethod
    def _chunks(reply: Reply) -> list[str]:
        if reply.chunks is not None:
            return list(reply.chunks)
        words = reply.text.split(" ")
        return [word + " " for word in words[:-1]] + [words[-1]] if reply.text else []

    def _message(
        self, body: dict[str, Any], content: list[Any], stop_reason: str | None, usage: dict
    ) -> dict:
        return {
            "id": _id("msg"),
            "type": "message",
            "role": "assistant",
            "model": body["model"],
            "content": content,
            "stop_reason": stop_reason,
            "stop_sequence": None,
            "usage": usage,
        }

    def _json(self, reply: Reply, body: dict[str, Any]) -> None:
        chunks = self._chunks(reply)
        input_tokens, output_tokens = self._usage(reply, body, chunks)
        usage = {"input_tokens": input_tokens, "output_tokens": output_tokens}
        content = [{"type": "text", "text": reply.text}] if reply.text else []
        self._send_json(200, self._message(body, content, reply.stop_reason, usage))

    def _stream(self, reply: Reply, body: dict[str, Any]) -> None:
        chunks = self._chunks(reply)
        input_tokens, output_tokens = self._usage(reply, body, chunks)
        self.send_response(200)
        self.send_header("content-type", "text/event-stream; charset=utf-8")
        self.send_header("cache-control", "no-cache")
        self.send_header("transfer-encoding", "chunked")
        self.send_header("request-id", _id("req"))
        self.end_headers()
        for name, data in self._events(reply, body, chunks, input_tokens, output_tokens):
            if name == "sleep":
                if self.owner._stopping.wait(data):
                    return
                continue
            event = f"event: {name}\ndata: {json.dumps(data)}\n\n".encode()
            self.wfile.write(f"{len(event):x}\r\n".encode() + event + b"\r\n")
            self.wfile.flush()
        self.wfile.write(b"0\r\n\r\n")
        self.wfile.flush()

    def _events(
        self, reply: Reply, body: dict[str, Any], chunks: list[str], input_tokens: int, output_tokens: int
    ) -> Iterator[tuple[str, Any]]:
        start_usage = {"input_tokens": input_tokens, "output_tokens": 1}
        yield (
            "message_start",
            {"type": "message_start", "message": self._message(body, [], None, start_usage)},
        )
        yield (
            "content_block_start",
            {
                "type": "content_block_start",
                "index": 0,
                "content_block": {"type": "text", "text": ""},
            },
        )
        yield "ping", {"type": "ping"}
        for sent, chunk in enumerate(chunks):
            if reply.error_after_chunks is not None and sent == reply.error_after_chunks:
                yield (
                    "error",
                    {"type": "error", "error": {"type": "overloaded_error", "message": "Overloaded"}},
                )
                return
            if sent and reply.chunk_delay_s:
                yield "sleep", reply.chunk_delay_s
            yield (
                "content_block_delta",
                {
                    "type": "content_block_delta",
                    "index": 0,
                    "delta": {"type": "text_delta", "text": chunk},
                },
            )
        yield "content_block_stop", {"type": "content_block_stop", "index": 0}
        yield (
            "message_delta",
            {
                "type": "message_delta",
                "delta": {"stop_reason": reply.stop_reason, "stop_sequence": None},
                "usage": {"output_tokens": output_tokens},
            },
        )
        yield "message_stop", {"type": "message_stop"}


@pytest.fixture(name="fake_anthropic")
def fake_anthropic_fixture() -> Iterator[FakeAnthropic]:
    """A fresh loopback Anthropic API for one test."""
    with FakeAnthropic() as fake:
        yield fake
