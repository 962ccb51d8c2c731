"""A byte-level loopback stand-in for the Anthropic API: it records every byte it receives and answers each
request with whatever bytes a test scripts, however wrong.

``tests/support/fake_anthropic.py`` speaks the API correctly; this one is for what a real network can
hand the SDK instead (a proxy's HTML page, binary bytes, a broken or cut-off event stream, a connection
closed mid-answer), and for privacy audits, which want the raw bytes on the wire, request line and
headers included, not a parsed body::

    with LoopbackCloud() as cloud:
        cloud.script(html_page())                 # the next request gets a 200 HTML page
        ...                                       # point CloudSettings.base_url at cloud.url
        assert secret.encode() not in cloud.received

Unscripted requests get a correct streamed (or JSON) answer, so a test can drive many requests.
"""

from __future__ import annotations

import json
import socket
import threading
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass

# -- responses --------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Raw:
    """Bytes to write back verbatim; the connection is closed right after them."""

    data: bytes


Responder = Callable[[dict], Raw]
"""Builds the response from the request's JSON body (None when it was not JSON)."""


def http_response(body: bytes, content_type: str, *, status: str = "200 OK", length: bool = True) -> bytes:
    head = f"HTTP/1.1 {status}\r\ncontent-type: {content_type}\r\nrequest-id: req_loopback\r\n"
    if length:
        head += f"content-length: {len(body)}\r\n"
    head += "connection: close\r\n\r\n"
    return head.encode() + body


def sse_event(name: str, data: object) -> bytes:
    return f"event: {name}\ndata: {json.dumps(data)}\n\n".encode()


def message(model: str, content: list, stop_reason: str | None, input_tokens: int, output_tokens: int) -> dict:
    return {
        "id": "msg_loopback",
        "type": "message",
        "role": "assistant",
        "model": model,
        "content": content,
        "stop_reason": stop_reason,
        "stop_sequence": None,
        "usage": {"input_tokens": input_tokens, "output_tokens": output_tokens},
    }


def stream_events(text: str, model: str = "claude-sonnet-4-6") -> list[bytes]:
    """The events of a whole, correct streamed answer, one delta per word."""
    words = text.split(" ")
    deltas = [word + " " for word in words[:-1]] + [words[-1]]
    return [
        sse_event("message_start", {"type": "message_start", "message": message(model, [], None, 25, 1)}),
        sse_event(
            "content_block_start",
            {"type": "content_block_start", "index": 0, "content_block": {"type": "text", "text": ""}},
        ),
        *(
            sse_event(
                "content_block_delta",
                {"type": "content_block_delta", "index": 0, "delta": {"type": "text_delta", "text": delta}},
            )
            for delta in deltas
        ),
        sse_event("content_block_stop", {"type": "content_block_stop", "index": 0}),
        sse_event(
            "message_delta",
            {
                "type": "message_delta",
                "delta": {"stop_reason": "end_turn", "stop_sequence": None},
                "usage": {"output_tokens": len(deltas)},
            },
        ),
        sse_event("message_stop", {"type": "message_stop"}),
    ]


def answer(text: str = "No issues found.") -> Responder:
    """A correct answer: streamed when the request asks for a stream, JSON otherwise."""

    def respond(body: dict) -> Raw:
        model = body.get("model", "claude-sonnet-4-6") if isinstance(body, dict) else "claude-sonnet-4-6"
        if isinstance(body, dict) and body.get("stream"):
            return Raw(http_response(b"".join(stream_events(text, model)), "text/event-stream; charset=utf-8"))
        payload = message(model, [{"type": "text", "text": text}], "end_turn", 25, 3)
        return Raw(http_response(json.dumps(payload).encode(), "application/json"))

    return respond


def html_page() -> Raw:
    """What a captive portal or a corporate proxy's login page looks like to the SDK."""
    page = b"<!DOCTYPE html><html><head><title>Sign in</title></head><body><form>Proxy login</form></body></html>"
    return Raw(http_response(page, "text/html; charset=utf-8"))


def binary_bytes(content_type: str = "application/octet-stream") -> Raw:
    """Bytes that are not text at all (every byte value, as a misrouted download would be)."""
    return Raw(http_response(bytes(range(256)) * 8, content_type))


def broken_stream() -> Raw:
    """An event stream whose second event's JSON is cut in the middle, then the stream goes on."""
    events = stream_events("It adds one.")
    broken = b'event: content_block_delta\ndata: {"type": "content_block_delta", "index": 0, "delta": {"ty\n\n'
    return Raw(http_response(events[0] + broken + b"".join(events[1:]), "text/event-stream; charset=utf-8"))


def events_out_of_order() -> Raw:
    """Text deltas before ``message_start``."""
    events = stream_events("It adds one.")
    return Raw(http_response(b"".join(events[1:3] + events[:1] + events[3:]), "text/event-stream; charset=utf-8"))


def bad_content_encoding() -> Raw:
    """A body that says it is gzip and is not."""
    body = b"this is not gzip at all"
    head = (
        "HTTP/1.1 200 OK\r\ncontent-type: text/event-stream\r\ncontent-encoding: gzip\r\n"
        f"content-length: {len(body)}\r\nconnection: close\r\n\r\n"
    )
    return Raw(head.encode() + body)


def stream_closed_mid_answer() -> Raw:
    """A stream that promised more bytes (content-length) than it sends: the connection drops mid-answer."""
    events = stream_events("one two three four five")
    sent = b"".join(events[:4])  # message_start, content_block_start and two deltas
    head = (
        "HTTP/1.1 200 OK\r\ncontent-type: text/event-stream; charset=utf-8\r\n"
        f"content-length: {len(sent) + 4096}\r\nconnection: close\r\n\r\n"
    )
    return Raw(head.encode() + sent)


def stream_ended_early() -> Raw:
    """A stream that ends cleanly (connection: close, no length) but before ``message_stop``."""
    events = stream_events("one two three four five")
    return Raw(http_response(b"".join(events[:4]), "text/event-stream; charset=utf-8", length=False))


# -- the server -------------------------------------------------------------------------------------


class LoopbackCloud:
    """A TCP server on 127.0.0.1 that records all bytes received (``received``) and answers per ``script``."""

    def __init__(self, default: Responder | None = None) -> None:
        self.default: Responder = default or answer()
        self._script: deque[Raw | Responder] = deque()
        self._lock = threading.Lock()
        self._received = bytearray()
        self._bodies: list[bytes] = []
        self._socket = socket.create_server(("127.0.0.1", 0))
        self._socket.settimeout(0.1)
        self._stopping = threading.Event()
        self._thread = threading.Thread(target=self._serve, name="loopback-cloud", daemon=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self._socket.getsockname()[1]}"

    @property
    def received(self) -> bytes:
        """Every byte any client sent, on every connection, in arrival order."""
        with self._lock:
            return bytes(self._received)

    @property
    def bodies(self) -> list[bytes]:
        """The body of each complete request, in order."""
        with self._lock:
            return list(self._bodies)

    def script(self, *responses: Raw | Responder) -> LoopbackCloud:
        with self._lock:
            self._script.extend(responses)
        return self

    def start(self) -> LoopbackCloud:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stopping.set()
        self._thread.join(timeout=5)
        self._socket.close()

    def __enter__(self) -> LoopbackCloud:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def _serve(self) -> None:
        while not self._stopping.is_set():
            try:
                connection, _ = self._socket.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            threading.Thread(target=self._handle, args=(connection,), daemon=True).start()

    def _read(self, connection: socket.socket) -> bytes:
        chunk = connection.recv(65536)
        with self._lock:
            self._received += chunk
        return chunk

    def _handle(self, connection: socket.socket) -> None:
        connection.settimeout(10)
        with connection:
            try:
                data = b""
                while b"\r\n\r\n" not in data:
                    chunk = self._read(connection)
                    if not chunk:
                        return
                    data += chunk
                head, body = data.split(b"\r\n\r\n", 1)
                length = 0
                for line in head.split(b"\r\n")[1:]:
                    name, _, value = line.partition(b":")
                    if name.strip().lower() == b"content-length":
                        length = int(value.strip())
                while len(body) < length:
                    chunk = self._read(connection)
                    if not chunk:
                        return
                    body += chunk
                with self._lock:
                    self._bodies.append(body)
                    scripted = self._script.popleft() if self._script else self.default
                try:
                    parsed = json.loads(body)
                except ValueError:
                    parsed = None
                response = scripted if isinstance(scripted, Raw) else scripted(parsed)
                connection.sendall(response.data)
            except OSError:
                pass  # the client hung up: some tests do that on purpose
