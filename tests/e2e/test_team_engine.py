"""The team engine end to end: a real llama-server on loopback serving the embedded 0.5B, the real Gearshift
server in front of it, a real LSP client.

``make test`` builds llama-server first (``make team-server``); without it these tests skip with the command.
What reached a server is read from that server (``tests/support/llama_server.py``), not from Gearshift's status.
"""

from __future__ import annotations

import asyncio

import pytest
import pytest_lsp
from lsprotocol import types
from pygls.exceptions import JsonRpcException
from pytest_lsp import ClientServerConfig, LanguageClient

from lsp_server.inference.remote import RemoteEngine
from lsp_server.inference.types import CancelToken, GenerationRequest, InfillParts
from lsp_server.settings import EndpointSettings
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
from tests.support.fake_team_server import FakeTeamServer, HeldHeaders, Raw
from tests.support.fake_team_server import fake_team_server as fake_team_server  # noqa: F401 (fixture)
from tests.support.llama_server import LlamaServer, get_json, llama_server_binary

pytestmark = [pytest.mark.e2e, pytest.mark.model]

OBVIOUS = 'def add(a, b):\n    """Return the sum of a and b."""\n    return a + b\n\n\ndef subtract(a, b):\n    """Return a minus b."""\n    return '


@pytest.fixture(scope="module")
def llama_server():
    server = LlamaServer(llama_server_binary(), E2E_MODEL)
    try:
        server.start()
        yield server
    finally:
        server.stop()


def team_settings(*urls: str, **cloud) -> dict:
    return {
        "endpoints": [{"name": "team", "urls": list(urls), "api": "llama-server", "connectTimeoutS": 1.0}],
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
async def held_client(lsp_client: LanguageClient, request):
    """The team rung on a fake llama-server that holds its headers as the real one does until the first token."""
    fake: FakeTeamServer = request.getfixturevalue("fake_team_server")
    fake.script(HeldHeaders(8.0))
    await start(lsp_client, "visual_studio_code", options={
        "endpoints": [{"name": "team", "urls": [fake.url], "api": "llama-server"}],
        "models": {"defaultModel": "team", "ladder": ["team"]},
        "guard": {"enabled": False},
        # No prewarm: the held request must be the completion's.
        "completion": {"minConfidence": 0.0, "prewarm": False, "timeBudgetMs": 30000, "firstAnswerMs": 30000},
    })
    yield
    await lsp_client.shutdown_session()


async def test_cancel_before_the_first_token_hangs_up(held_client: LanguageClient, fake_team_server: FakeTeamServer):
    client = held_client
    await wait_ready(client)
    uri = "file:///tmp/gearshift-e2e/team_held.py"
    open_doc(client, uri, OBVIOUS)
    lines = OBVIOUS.split("\n")
    pending, cancel = request_inline(client, inline_params(uri, len(lines) - 1, len(lines[-1])))
    for _ in range(250):
        if fake_team_server.requests:
            break
        await asyncio.sleep(0.02)
    assert fake_team_server.requests, "the completion never reached the team server"
    cancel()
    with pytest.raises(JsonRpcException, match="cancel"):
        await pending
    for _ in range(100):
        if fake_team_server.hung_up_s:
            break
        await asyncio.sleep(0.02)
    assert fake_team_server.hung_up_s, "the cancelled request still holds its connection (and the server's slot)"

# -- slots: each document keeps its slot, and so its prompt, on the server ------------------------------------------

SLOT_DOC_A = "".join(f"def scale_{i}(values):\n    return [v * {i} for v in values]\n\n\n" for i in range(14))
SLOT_DOC_B = "".join(f"class Shape{i}:\n    sides = {i}\n\n    def area(self):\n        return self.sides ** 2\n\n\n"
                     for i in range(10))


def slot_request(doc: str, key: str, middle: str, max_tokens: int = 4) -> GenerationRequest:
    parts = InfillParts(prefix=doc + "def ", middle=middle, suffix="\n")
    return GenerationRequest(prompt="", max_tokens=max_tokens, stop=["\n\n"], infill=parts, affinity_key=key)


async def test_each_document_keeps_its_slot_and_its_prompt(llama_server: LlamaServer):
    """Two documents on a ``--parallel 2`` server: each is pinned to the slot its prewarm landed in, and its
    next requests reuse the prompt there (the server's own ``cache_n``), even when the document's slot is busy
    as the request comes (where llama-server, left to choose, would evaluate it cold in the other slot)."""
    engine = RemoteEngine(EndpointSettings(name="team", urls=[llama_server.url], read_timeout_s=120.0))
    try:
        a, b = "file:///tmp/gearshift-e2e/slot_a.py", "file:///tmp/gearshift-e2e/slot_b.py"
        await engine.prewarm(slot_request(SLOT_DOC_A, a, ""))
        await engine.prewarm(slot_request(SLOT_DOC_B, b, ""))
        pinned = dict(engine._servers[0].slots)
        assert set(pinned) == {a, b} and pinned[a] != pinned[b], pinned
        status, slots = get_json(llama_server.url + "/slots")
        assert status == 200
        holds = {slot["id"]: slot.get("n_prompt_tokens") or 0 for slot in slots}  # type: ignore[union-attr]
        assert holds[pinned[a]] > 200 and holds[pinned[b]] > 200, holds  # the server's own view: both slots in use

        for typed in ("s", "sc"):
            for doc, key in ((SLOT_DOC_A, a), (SLOT_DOC_B, b)):
                result = await engine.generate(slot_request(doc, key, typed))
                assert result.n_prompt_tokens > 200 and result.n_reused_tokens >= result.n_prompt_tokens - 8, (
                    key, result.n_prompt_tokens, result.n_reused_tokens)

        # A's slot busy with a long answer when the next keystroke's request for A comes: it waits for that slot
        # (cancelling the old one, as the editor does) instead of evaluating A cold in B's slot.
        token = CancelToken()
        busy = asyncio.ensure_future(engine.generate(slot_request(SLOT_DOC_A, a, "sca", max_tokens=200), token))
        await asyncio.sleep(0.5)
        following = asyncio.ensure_future(engine.generate(slot_request(SLOT_DOC_A, a, "scal")))
        await asyncio.sleep(0.3)
        token.cancel()
        await busy
        result = await following
        assert result.n_reused_tokens >= result.n_prompt_tokens - 8, (result.n_prompt_tokens, result.n_reused_tokens)
        again = await engine.generate(slot_request(SLOT_DOC_B, b, "sc"))
        assert again.n_reused_tokens >= again.n_prompt_tokens - 8  # B's slot was left alone
        assert dict(engine._servers[0].slots) == pinned
    finally:
        await engine._client.aclose()


@pytest_lsp.fixture(config=ClientServerConfig(server_command=SERVER))
async def fake_team_client(lsp_client: LanguageClient, request):
    """The team rung alone, on the fake llama-server (which each test scripts)."""
    fake: FakeTeamServer = request.getfixturevalue("fake_team_server")
    await start(lsp_client, "visual_studio_code", options={
        "endpoints": [{"name": "team", "urls": [fake.url], "api": "llama-server"}],
        "models": {"defaultModel": "team", "ladder": ["team"]},
        "guard": {"enabled": False},
        "completion": {"minConfidence": 0.0},
    })
    yield
    await lsp_client.shutdown_session()


async def test_prewarmed_is_sent_only_when_the_server_evaluated_the_prompt(
    fake_team_client: LanguageClient, fake_team_server: FakeTeamServer
):
    client = fake_team_client
    prewarmed: list[dict] = []

    @client.feature("gearshift/prewarmed")
    def on_prewarmed(params) -> None:
        prewarmed.append({"line": params.line, "character": params.character})

    await wait_ready(client)
    fake_team_server.script(Raw(b'{"error": {"message": "Loading model"}}', status=503,
                                content_type="application/json"))
    uri = "file:///tmp/gearshift-e2e/team_prewarm.py"
    open_doc(client, uri, OBVIOUS)  # a short file: its end is warmed on open (the window reaches its start)
    for _ in range(100):
        if fake_team_server.requests:
            break
        await asyncio.sleep(0.05)
    assert fake_team_server.requests and fake_team_server.requests[0]["body"]["n_predict"] == 0
    await asyncio.sleep(0.5)
    assert prewarmed == []  # the server answered 503: nothing was evaluated, nobody is told otherwise

    await asyncio.sleep(1.0)  # its back-off (1 s after one failure) is over
    client.protocol.notify("gearshift/cursor", {"textDocument": {"uri": uri}, "position": {"line": 1, "character": 4}})
    for _ in range(100):
        if prewarmed:
            break
        await asyncio.sleep(0.05)
    assert prewarmed == [{"line": 1, "character": 4}], prewarmed
    assert len(fake_team_server.requests) == 2 and "/health" in fake_team_server.gets  # probed, then warmed


@pytest_lsp.fixture(config=ClientServerConfig(server_command=SERVER))
async def restartable(lsp_client: LanguageClient):
    server = LlamaServer(llama_server_binary(), E2E_MODEL)
    try:
        server.start()
        lsp_client.team = server  # type: ignore[attr-defined]
        await start(lsp_client, "visual_studio_code", options=team_settings(server.url))
        yield
        await lsp_client.shutdown_session()
    finally:
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


# -- two llama-servers as one rung --------------------------------------------------------------------------------

# Short documents with several cursors each: every request is a new prompt (no typed-ahead cache hit), and each is
# cheap on one thread per server.
DOC_A = "def add(a, b):\n    return \n\n\ndef sub(a, b):\n    return \n\n\ndef mul(a, b):\n    return \n\n\ndef neg(a):\n    return \n\n\ndef div(a, b):\n    return \n"
CURSORS_A = [(1, 11), (5, 11), (9, 11), (13, 11), (17, 11)]
DOC_B = ("class Point:\n    def __init__(self, x, y):\n        self.x = \n        self.y = \n\n    def norm(self):\n"
         "        return \n\n    def scale(self, k):\n        return \n")
CURSORS_B = [(2, 17), (3, 17), (6, 15), (9, 15)]
DOC_C = "def square(x):\n    return \n"


def pair_settings(*urls: str) -> dict:
    """One rung over both servers and nothing below it: whatever answers, a team server answered."""
    return {
        "endpoints": [{"name": "team", "urls": list(urls), "api": "llama-server", "connectTimeoutS": 1.0}],
        "models": {"defaultModel": "team", "ladder": ["team"]},
        "guard": {"enabled": False},
        "completion": {"minConfidence": 0.0, "maxTokens": 8, "timeBudgetMs": 30000, "firstAnswerMs": 30000},
    }


@pytest_lsp.fixture(config=ClientServerConfig(server_command=SERVER))
async def pair_client(lsp_client: LanguageClient):
    binary = llama_server_binary()
    servers = [LlamaServer(binary, E2E_MODEL), LlamaServer(binary, E2E_MODEL)]
    try:
        for server in servers:
            server.start()
        lsp_client.pair = servers  # type: ignore[attr-defined]
        await start(lsp_client, "visual_studio_code", options=pair_settings(*(s.url for s in servers)))
        yield
        await lsp_client.shutdown_session()
    finally:
        for server in servers:
            server.stop()


async def settled(servers: list[LlamaServer]) -> None:
    """Until no slot of any running server is processing (a closed stream ends at the server's next token)."""
    for _ in range(100):
        if not any(s.busy_slots() for s in servers if s.running):
            return
        await asyncio.sleep(0.05)


async def served_by(client: LanguageClient, uri: str, cursor: tuple[int, int]) -> tuple[int, dict]:
    """Ask for a completion at ``cursor``; return which server's decode counter moved for it, and its status."""
    servers: list[LlamaServer] = client.pair  # type: ignore[attr-defined]
    await settled(servers)  # the last request's generation, cut short by a stop rule, may still be ending
    before = {i: s.decodes() for i, s in enumerate(servers) if s.running}
    sent = len(statuses(client))
    await client.text_document_inline_completion_async(inline_params(uri, *cursor))
    assert len(statuses(client)) > sent, "the completion sent no status"
    status = statuses(client)[-1]
    assert status["tier"] == "team" and not status["cacheHit"], status
    await settled(servers)
    moved = [i for i, count in before.items() if servers[i].decodes() > count]
    assert len(moved) == 1, f"servers that worked for one request: {moved}"
    return moved[0], status


async def test_two_servers_one_rung_affinity_failover_and_return(pair_client: LanguageClient):
    client = pair_client
    servers: list[LlamaServer] = client.pair  # type: ignore[attr-defined]
    assert (await wait_ready(client))["tier"] == "team"
    doc_a, doc_b = "file:///tmp/gearshift-e2e/pair_a.py", "file:///tmp/gearshift-e2e/pair_b.py"

    # (a) Affinity: every request for a document reaches one server, by that server's own counters.
    open_doc(client, doc_a, DOC_A)
    a_servers = {(await served_by(client, doc_a, cursor))[0] for cursor in CURSORS_A[:3]}
    assert len(a_servers) == 1, a_servers
    open_doc(client, doc_b, DOC_B)
    b_servers = {(await served_by(client, doc_b, cursor))[0] for cursor in CURSORS_B[:3]}
    assert len(b_servers) == 1, b_servers
    (holder,), (b_server,) = a_servers, b_servers
    assert holder != b_server  # two new documents: one on each server
    other = 1 - holder

    # (b) Failover: the server holding A dies; the very next request for A is answered by the other one.
    servers[holder].stop()
    answered_by, status = await served_by(client, doc_a, CURSORS_A[3])
    assert answered_by == other
    assert "remoteError" not in status, status  # the rung did not fail: no shift, nothing answered locally

    # (c) It comes back on the same port, and its back-off (1 s after one failure) is over: its /health answers. A stays where it
    # failed over to (its KV cache is there now); B never failed, so it still goes where it went; a new document
    # goes to the server with the fewest documents: the restarted one, which has none left.
    servers[holder].start()
    await asyncio.sleep(1.1)
    assert (await served_by(client, doc_a, CURSORS_A[4]))[0] == other
    assert (await served_by(client, doc_b, CURSORS_B[3]))[0] == b_server
    doc_c = "file:///tmp/gearshift-e2e/pair_c.py"
    open_doc(client, doc_c, DOC_C)
    assert (await served_by(client, doc_c, (1, 11)))[0] == holder


async def test_failover_inside_the_rung_is_in_the_status(pair_client: LanguageClient):
    client = pair_client
    servers: list[LlamaServer] = client.pair  # type: ignore[attr-defined]
    await wait_ready(client)
    uri = "file:///tmp/gearshift-e2e/pair_label.py"
    open_doc(client, uri, DOC_A)
    holder, _ = await served_by(client, uri, CURSORS_A[0])
    servers[holder].stop()
    answered_by, status = await served_by(client, uri, CURSORS_A[1])
    report = await client.workspace_execute_command_async(types.ExecuteCommandParams(command="gearshift.status"))
    assert f":{servers[answered_by].port}" in report.get("tierLabel", ""), report.get("tierLabel")
    assert any(f":{servers[holder].port}" in str(value) for value in status.values()), status  # why it moved
