"""The team engine end to end: a real llama-server on loopback serving the embedded 0.5B, the real Gearshift
server in front of it, a real LSP client.

``make test`` builds llama-server first (``make team-server``); without it these tests skip with the command.
"""

from __future__ import annotations

import asyncio
import json
import socket
import subprocess
import time
import urllib.request
from pathlib import Path

import pytest
import pytest_lsp
from lsprotocol import types
from pygls.exceptions import JsonRpcException
from pytest_lsp import ClientServerConfig, LanguageClient

from lsp_server.inference.models import ensure_model
from tests.e2e.conftest import (
    E2E_MODEL,
    SERVER,
    inline_params,
    open_doc,
    request_inline,
    start,
    statuses,
    wait_ready,
)

pytestmark = [pytest.mark.e2e, pytest.mark.model]

ROOT = Path(__file__).resolve().parents[2]
OBVIOUS = 'def add(a, b):\n    """Return the sum of a and b."""\n    return a + b\n\n\ndef subtract(a, b):\n    """Return a minus b."""\n    return '


def llama_server_binary() -> str:
    """The cached llama-server that ``make team-server`` built (``make test`` builds it first); never built here."""
    import importlib.util

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
    """One llama-server process on loopback; ``metrics()`` reads its request counters."""

    def __init__(self, binary: str, port: int | None = None) -> None:
        self.binary, self.port = binary, port or free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.process: subprocess.Popen | None = None

    def start(self) -> None:
        model = ensure_model(E2E_MODEL)
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
        raise AssertionError("llama-server never became healthy")

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.kill()
            self.process.wait()

    def tokens_received(self) -> int:
        """Prompt tokens this server has processed since it started (its /metrics counter)."""
        with urllib.request.urlopen(self.url + "/metrics", timeout=5) as response:
            for line in response.read().decode().splitlines():
                if line.startswith("llamacpp:prompt_tokens_total"):
                    return int(float(line.split()[-1]))
        raise AssertionError("no prompt token counter in /metrics")

    def busy_slots(self) -> int:
        status, slots = get_json(self.url + "/slots")
        assert status == 200, status
        return sum(1 for slot in slots if slot.get("is_processing"))  # type: ignore[union-attr]


@pytest.fixture(scope="module")
def llama_server():
    server = LlamaServer(llama_server_binary())
    server.start()
    yield server
    server.stop()


def team_settings(url: str, **cloud) -> dict:
    return {
        "endpoints": [{"name": "team", "urls": [url], "api": "llama-server", "connectTimeoutS": 1.0}],
        "models": {"defaultModel": "team", "ladder": ["team", E2E_MODEL]},
        # Both servers share this machine's two cores: a low target so only a dead server makes the guard move.
        "guard": {"minDwellS": 0.0, "probeIntervalS": 0.5, "inlineTargetTokS": 2.0},
        "cloud": cloud,
        "completion": {"minConfidence": 0.0, "timeBudgetMs": 30000, "firstAnswerMs": 30000},
    }


@pytest_lsp.fixture(config=ClientServerConfig(server_command=SERVER))
async def team_client(lsp_client: LanguageClient, request):
    url = request.getfixturevalue("llama_server").url
    await start(lsp_client, "visual_studio_code", options=team_settings(url, **getattr(request, "param", {})))
    yield
    await lsp_client.shutdown_session()


async def test_completion_comes_from_the_team_server(team_client: LanguageClient, llama_server: LlamaServer):
    client = team_client
    assert (await wait_ready(client))["tier"] == "team"
    uri = "file:///tmp/gearshift-e2e/team.py"
    open_doc(client, uri, OBVIOUS)
    before = llama_server.tokens_received()
    lines = OBVIOUS.split("\n")
    result = await client.text_document_inline_completion_async(inline_params(uri, len(lines) - 1, len(lines[-1])))
    assert result is not None and result.items, statuses(client)[-3:]
    assert result.items[0].insert_text.replace(" ", "").startswith("a-b"), result.items[0].insert_text
    assert statuses(client)[-1]["tier"] == "team"
    assert llama_server.tokens_received() > before  # it really went there


async def test_cancel_mid_generation_frees_the_slot(team_client: LanguageClient, llama_server: LlamaServer):
    client = team_client
    await wait_ready(client)
    uri = "file:///tmp/gearshift-e2e/team_cancel.py"
    open_doc(client, uri, "class Matrix:\n    def __init__(self, rows):\n        ")
    pending, cancel = request_inline(client, inline_params(uri, 2, 8))
    for _ in range(500):
        if llama_server.busy_slots():
            break
        await asyncio.sleep(0.02)
    assert llama_server.busy_slots(), "the request never reached a slot"
    cancel()  # $/cancelRequest, as editors send it
    with pytest.raises(JsonRpcException, match="cancel"):
        await pending
    for _ in range(100):
        if not llama_server.busy_slots():
            break
        await asyncio.sleep(0.1)
    assert llama_server.busy_slots() == 0


@pytest.mark.parametrize("team_client", [{"localOnly": True}], indirect=True)
async def test_local_only_sends_nothing_to_the_team_server(team_client: LanguageClient, llama_server: LlamaServer):
    client = team_client
    await wait_ready(client)
    uri = "file:///tmp/gearshift-e2e/team_private.py"
    open_doc(client, uri, OBVIOUS)
    before = llama_server.tokens_received()
    lines = OBVIOUS.split("\n")
    await client.text_document_inline_completion_async(inline_params(uri, len(lines) - 1, len(lines[-1])))
    assert statuses(client)[-1]["tier"].startswith(E2E_MODEL)
    assert llama_server.tokens_received() == before


async def test_never_send_file_stays_local(team_client: LanguageClient, llama_server: LlamaServer):
    client = team_client
    await wait_ready(client)
    uri = "file:///tmp/gearshift-e2e/secrets/settings.py"
    open_doc(client, uri, OBVIOUS)
    before = llama_server.tokens_received()
    lines = OBVIOUS.split("\n")
    await client.text_document_inline_completion_async(inline_params(uri, len(lines) - 1, len(lines[-1])))
    assert statuses(client)[-1]["tier"].startswith(E2E_MODEL)
    assert llama_server.tokens_received() == before


@pytest_lsp.fixture(config=ClientServerConfig(server_command=SERVER))
async def restartable(lsp_client: LanguageClient):
    server = LlamaServer(llama_server_binary())
    server.start()
    lsp_client.team = server  # type: ignore[attr-defined]
    await start(lsp_client, "visual_studio_code", options=team_settings(server.url))
    yield
    await lsp_client.shutdown_session()
    server.stop()


async def test_team_server_killed_then_restarted(restartable: LanguageClient):
    client = restartable
    team: LlamaServer = client.team  # type: ignore[attr-defined]
    await wait_ready(client)
    uri = "file:///tmp/gearshift-e2e/team_restart.py"
    open_doc(client, uri, OBVIOUS)
    lines = OBVIOUS.split("\n")
    params = inline_params(uri, len(lines) - 1, len(lines[-1]))
    await client.text_document_inline_completion_async(params)
    assert statuses(client)[-1]["tier"] == "team"

    team.stop()
    after_kill = "file:///tmp/gearshift-e2e/team_after_kill.py"  # a new file: nothing in the typed-ahead cache
    open_doc(client, after_kill, OBVIOUS)
    result = await client.text_document_inline_completion_async(
        inline_params(after_kill, len(lines) - 1, len(lines[-1])))
    status = statuses(client)[-1]
    assert status["tier"].startswith(E2E_MODEL), status  # answered locally within the same request
    assert "remoteError" in status and status.get("shiftFrom") == "team", status
    assert result is not None

    team.start()  # same port: the guard's probes find it again
    for attempt in range(40):
        await asyncio.sleep(0.6)
        probe_uri = f"file:///tmp/gearshift-e2e/team_probe_{attempt}.py"  # a new file: no typed-ahead cache hit
        open_doc(client, probe_uri, OBVIOUS)
        await client.text_document_inline_completion_async(inline_params(probe_uri, len(lines) - 1, len(lines[-1])))
        if statuses(client)[-1].get("shiftTo") == "team":
            break
    report = await client.workspace_execute_command_async(types.ExecuteCommandParams(command="gearshift.status"))
    assert report["tier"] == "team", report
