"""A real llama-server process on loopback for the team-engine end-to-end tests, and what it says about itself.

The binary is the one ``make team-server`` caches (``make test`` builds it first); it is never built here, and
without it the tests that need it skip with the command to run. What reached a server is read from the server
(its ``/metrics`` counters and ``/slots``), never from Gearshift's own claims.
"""

from __future__ import annotations

import importlib.util
import json
import socket
import subprocess
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest

from lsp_server.inference.assembly import ensure_model

ROOT = Path(__file__).resolve().parents[2]


def llama_server_binary() -> str:
    """The cached llama-server that ``make team-server`` built; skips the test when there is none."""
    spec = importlib.util.spec_from_file_location("build_llama_server", ROOT / "scripts" / "build_llama_server.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)  # type: ignore[union-attr]
    flags = module.build_llama.cmake_args(module.build_llama.cpu_flags())
    binary = module.server_cache_dir(module.server_cmake_args(flags)) / "llama-server"
    if not binary.is_file():
        pytest.skip(f"llama-server is not built: run `make team-server` ({binary})")
    return str(binary)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def get_json(url: str) -> tuple[int, object]:
    try:
        with urllib.request.urlopen(url, timeout=5) as response:
            return response.status, json.loads(response.read() or b"null")
    except urllib.error.HTTPError as exc:
        return exc.code, None
    except OSError:
        return 0, None


class LlamaServer:
    """One llama-server process on loopback serving ``model``; its counters say what reached it."""

    def __init__(self, binary: str, model: str, port: int | None = None) -> None:
        self.binary, self.model = binary, model
        self.port = port or free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.process: subprocess.Popen | None = None

    def start(self) -> None:
        model = ensure_model(self.model)
        self.process = subprocess.Popen(
            [self.binary, "-m", str(model), "--host", "127.0.0.1", "--port", str(self.port), "-c", "4096",
             "--parallel", "2", "-t", "1", "--metrics", "--slots", "--cache-reuse", "256", "--no-webui"],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        )
        deadline = time.monotonic() + 180
        while time.monotonic() < deadline:
            if get_json(self.url + "/health")[0] == 200:
                return
            if self.process.poll() is not None:
                raise AssertionError(f"llama-server exited with {self.process.returncode}")
            time.sleep(0.2)
        self.stop()
        raise AssertionError("llama-server never became healthy")

    def stop(self) -> None:
        """SIGKILL, as a crashed or unplugged box: no goodbye on its open connections."""
        if self.process is not None and self.process.poll() is None:
            self.process.kill()
            self.process.wait()

    @property
    def running(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def counter(self, name: str) -> int:
        """One of the server's ``/metrics`` counters (``llamacpp:<name>``) since it started."""
        with urllib.request.urlopen(self.url + "/metrics", timeout=5) as response:
            for line in response.read().decode().splitlines():
                if line.startswith(f"llamacpp:{name} "):
                    return int(float(line.split()[-1]))
        raise AssertionError(f"no {name} counter in /metrics")

    def tokens_received(self) -> int:
        """Prompt tokens this server has evaluated since it started (cached ones excluded)."""
        return self.counter("prompt_tokens_total")

    def decodes(self) -> int:
        """``llama_decode`` calls since it started: any request that reached a slot made at least one."""
        return self.counter("n_decode_total")

    def busy_slots(self) -> int:
        status, slots = get_json(self.url + "/slots")
        assert status == 200, status
        return sum(1 for slot in slots if slot.get("is_processing"))  # type: ignore[union-attr]
