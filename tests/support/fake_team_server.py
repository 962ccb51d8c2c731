"""A real HTTP server on 127.0.0.1 speaking llama-server's ``/infill`` and OpenAI's ``/v1/completions`` streams.

For the remote engine's fault handling (HTML, garbage, HTTP errors, a stream cut mid-way, a slow server). Each
test scripts what the next requests get; ``requests`` records path and JSON body of every request,
``aborted`` counts streams the client closed before their end (a cancel), ``hung_up_s`` says how long after
its arrival each ``HeldHeaders`` request was closed by the client while it was still waiting, and ``gets`` lists
the GETs (health probes, ``/props``). Slots as llama-server's: ``/props`` says ``total_slots``; a request naming
``id_slot`` gets that slot, one with ``-1`` or none the least recently used; every answer says ``id_slot``
(``slots_used`` lists them in order). A request with ``"stream": false`` (a prewarm) gets one JSON object.
"""

from __future__ import annotations

import json
import select
import socket
import threading
import time
from collections import deque
from collections.abc import Iterator
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest


@dataclass(frozen=True)
class Pieces:
    """A streamed answer: one event per piece, then the final event (llama-server) or ``[DONE]`` (OpenAI)."""

    pieces: tuple[str, ...]
    delay_s: float = 0.0
    finish: str = "stop"  # llama-server stop_type "eos"/"limit"/"word"; OpenAI finish_reason "stop"/"length"
    timings: dict | None = None
    """llama-server's final ``timings`` (prompt_n, cache_n, prompt_ms...): defaults where None."""


@dataclass(frozen=True)
class Raw:
    """Bytes as they are, with a status and a content type."""

    body: bytes
    status: int = 200
    content_type: str = "text/html"


@dataclass(frozen=True)
class CutStream:
    """Two pieces, then the connection closes without the end of the stream."""


@dataclass(frozen=True)
class HeldHeaders:
    """Not even a status line for ``seconds``, as llama-server while a streamed request waits for a slot and its
    prompt is evaluated (it sends the headers with the first token); then the default answer. A client that hangs
    up meanwhile ends it, and ``FakeTeamServer.hung_up_s`` records when."""

    seconds: float


class FakeTeamServer:
    def __init__(self) -> None:
        self.requests: list[dict[str, Any]] = []
        self.aborted = 0
        self.hung_up_s: list[float] = []
        self.gets: list[str] = []
        """Paths of every GET (``/health``, ``/props``), in order."""
        self.health_status = 200
        """What ``/health`` answers (llama-server: 503 while it loads the model)."""
        self.total_slots = 2
        self.slots_used: list[int] = []
        """The slot of each request, in order of arrival."""
        self._slot_last_used = [0.0] * self.total_slots
        self.default: Any = Pieces(("return", " a", " +", " b"))
        self._script: deque = deque()
        fake = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args) -> None:
                pass

            def do_GET(self) -> None:
                fake.gets.append(self.path)
                props = {"model_path": "fake.gguf", "total_slots": fake.total_slots}
                body = json.dumps({"status": "ok"} if self.path == "/health" else props).encode()
                self.send_response(fake.health_status if self.path == "/health" else 200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def do_POST(self) -> None:
                length = int(self.headers.get("Content-Length", 0))
                body = json.loads(self.rfile.read(length) or b"{}")
                fake.requests.append({"path": self.path, "body": body, "headers": dict(self.headers)})
                behaviour = fake._script.popleft() if fake._script else fake.default
                try:
                    fake._answer(self, behaviour, fake._slot(body), body.get("stream", True))
                except (BrokenPipeError, ConnectionResetError):
                    fake.aborted += 1

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self._server.server_address[1]}"
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)
        self._thread.start()

    def script(self, *behaviours: Any) -> None:
        self._script.extend(behaviours)

    def close(self) -> None:
        self._server.shutdown()
        self._server.server_close()

    def _slot(self, body: dict) -> int:
        if len(self._slot_last_used) != self.total_slots:  # a test changed the count
            self._slot_last_used = [0.0] * self.total_slots
        wanted = body.get("id_slot", -1)
        if not isinstance(wanted, int) or wanted < 0:
            wanted = min(range(self.total_slots), key=lambda i: self._slot_last_used[i])
        slot = wanted % self.total_slots
        self._slot_last_used[slot] = time.monotonic()
        self.slots_used.append(slot)
        return slot

    def _answer(self, handler: BaseHTTPRequestHandler, behaviour: Any, slot: int, streamed: bool) -> None:
        openai = handler.path.startswith("/v1/")
        if isinstance(behaviour, HeldHeaders):
            arrived = time.monotonic()
            while time.monotonic() - arrived < behaviour.seconds:
                if _hung_up(handler.connection):
                    self.hung_up_s.append(time.monotonic() - arrived)
                    handler.close_connection = True
                    return
                time.sleep(0.02)
            behaviour = self.default
        if not streamed and isinstance(behaviour, Pieces):  # llama-server's one JSON answer
            behaviour = Raw(json.dumps({"content": "".join(behaviour.pieces), "id_slot": slot, "stop": True,
                                        "timings": {"prompt_n": 42, "cache_n": 0}}).encode(),
                            content_type="application/json")
        if isinstance(behaviour, Raw):
            handler.send_response(behaviour.status)
            handler.send_header("Content-Type", behaviour.content_type)
            handler.send_header("Content-Length", str(len(behaviour.body)))
            handler.end_headers()
            handler.wfile.write(behaviour.body)
            return
        handler.send_response(200)
        handler.send_header("Content-Type", "text/event-stream")
        handler.send_header("Connection", "close")
        handler.end_headers()
        if isinstance(behaviour, CutStream):
            for event in list(_events(Pieces(("a", "b", "c")), openai, slot))[:2]:
                handler.wfile.write(event)
            handler.wfile.flush()
            handler.close_connection = True
            return
        for event in _events(behaviour, openai, slot):
            handler.wfile.write(event)
            handler.wfile.flush()
            if behaviour.delay_s:
                time.sleep(behaviour.delay_s)
        handler.close_connection = True


def _hung_up(connection: socket.socket) -> bool:
    """The client closed its end: the socket reads as ready and has no byte left (a request body was read)."""
    readable, _, _ = select.select([connection], [], [], 0)
    if not readable:
        return False
    try:
        return connection.recv(1, socket.MSG_PEEK) == b""
    except OSError:
        return True


def _events(answer: Pieces, openai: bool, slot: int) -> Iterator[bytes]:
    def sse(obj: Any) -> bytes:
        return b"data: " + json.dumps(obj).encode() + b"\n\n"

    for piece in answer.pieces:
        if openai:
            yield sse({"choices": [{"text": piece, "index": 0, "finish_reason": None,
                                    "logprobs": {"tokens": [piece], "token_logprobs": [-0.05]}}]})
        else:
            yield sse({"content": piece, "stop": False, "id_slot": slot, "completion_probabilities": [
                {"id": 1, "token": piece, "logprob": -0.05, "top_logprobs": []}]})
    if openai:
        yield sse({"choices": [{"text": "", "index": 0, "finish_reason": answer.finish}]})
        yield b"data: [DONE]\n\n"
    else:
        timings = {"prompt_n": 12, "cache_n": 30, "prompt_ms": 8.0, "predicted_n": len(answer.pieces),
                   "predicted_ms": 20.0, **(answer.timings or {})}
        yield sse({"content": "", "stop": True, "stop_type": answer.finish, "id_slot": slot, "timings": timings})


@pytest.fixture
def fake_team_server() -> Iterator[FakeTeamServer]:
    server = FakeTeamServer()
    yield server
    server.close()
