"""The remote engine against a loopback server: streams, stops, cancels, failover and every kind of bad answer."""

from __future__ import annotations

import asyncio
import socket

import pytest

from lsp_server.cloud.endpoints import remote_refusal
from lsp_server.completion.early import EarlyAnswer
from lsp_server.errors import EndpointUnavailable
from lsp_server.inference import remote
from lsp_server.inference.guard import build_ladder
from lsp_server.inference.remote import BYTES_PER_TOKEN, RemoteEngine
from lsp_server.inference.types import CancelToken, GenerationRequest, InfillParts
from lsp_server.settings import EndpointSettings, GearshiftSettings, parse_settings
from tests.support.fake_team_server import CutStream, HeldHeaders, Pieces, Raw
from tests.support.fake_team_server import fake_team_server as fake_team_server  # noqa: F401 (fixture)


def engine_for(*urls: str, api: str = "llama-server", **extra) -> RemoteEngine:
    return RemoteEngine(EndpointSettings(name="team", urls=list(urls), api=api, connect_timeout_s=0.5,
                                         read_timeout_s=2.0, **extra))


def request(**extra) -> GenerationRequest:
    return GenerationRequest(prompt="<fim_prefix>def add(a, b):\n    <fim_suffix>\n<fim_middle>", max_tokens=16,
                             stop=["\n\n"], infill=InfillParts(prefix="def add(a, b):\n    ", middle="", suffix="\n"),
                             **{"affinity_key": "file:///a.py", **extra})


def closed_port() -> str:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return f"http://127.0.0.1:{sock.getsockname()[1]}"


async def test_llama_server_infill_stream(fake_team_server):
    engine = engine_for(fake_team_server.url)
    result = await engine.generate(request())
    assert result.text == "return a + b" and result.stop_reason == "eos"
    assert result.n_generated_tokens == 4 and result.token_logprobs == [-0.05] * 4
    assert (result.n_prompt_tokens, result.n_reused_tokens) == (42, 30)  # the server's own counts
    assert engine.label == f"team · {fake_team_server.url.removeprefix('http://')} · fake"  # from /props
    assert engine.requests_sent == 1 and engine.bytes_sent > 0


async def test_remote_requests_are_audited_without_content(fake_team_server, caplog):
    import logging

    caplog.set_level(logging.INFO, logger="lsp_server.inference.remote")
    await engine_for(fake_team_server.url).generate(request())
    lines = [r.getMessage() for r in caplog.records if "team request" in r.getMessage()]
    assert len(lines) == 1 and "a.py" in lines[0] and "bytes" in lines[0]
    assert "def add" not in caplog.text  # never the code
    sent = fake_team_server.requests[-1]
    assert sent["path"] == "/infill"
    body = sent["body"]
    assert body["input_prefix"] == "def add(a, b):\n    " and body["input_suffix"] == "\n"
    assert body["cache_prompt"] is True and body["stream"] is True and body["n_predict"] == 16


async def test_openai_completions_stream_with_model_and_key(fake_team_server, monkeypatch):
    monkeypatch.setenv("TEAM_KEY", "sk-team-123")
    engine = engine_for(fake_team_server.url, api="openai", model="qwen-coder", api_key_env="TEAM_KEY")
    result = await engine.generate(request())
    assert result.text == "return a + b" and result.stop_reason == "stop"
    sent = fake_team_server.requests[-1]
    assert sent["path"] == "/v1/completions" and sent["body"]["model"] == "qwen-coder"
    assert sent["body"]["prompt"].startswith("<fim_prefix>")
    assert sent["headers"]["Authorization"] == "Bearer sk-team-123"


async def test_the_consumers_cut_stops_and_closes_the_stream(fake_team_server):
    fake_team_server.script(Pieces(("x = 1", "\n", "y = 2", "\n", "z = 3"), delay_s=0.05))
    engine = engine_for(fake_team_server.url)
    stream = engine.stream(request())
    async for partial in stream:
        if "\n" in partial.text:
            stream.stop(partial.text.find("\n"))
    result = await stream.result()
    assert result.text == "x = 1" and result.stop_reason == "stop"


async def test_cancel_closes_the_stream_mid_generation(fake_team_server):
    fake_team_server.script(Pieces(tuple("abcdefghijklmnopqrstuvwxyz"), delay_s=0.1))
    engine = engine_for(fake_team_server.url)
    token = CancelToken()
    asyncio.get_running_loop().call_later(0.35, token.cancel)
    result = await engine.generate(request(), token)
    assert result.stop_reason == "cancelled" and len(result.text) < 10
    for _ in range(50):  # the server notices the closed connection at its next write
        if fake_team_server.aborted:
            break
        await asyncio.sleep(0.05)
    assert fake_team_server.aborted == 1


async def test_cancel_before_the_first_token_hangs_up(fake_team_server):
    fake_team_server.script(HeldHeaders(5.0))  # llama-server: no headers while queued or evaluating the prompt
    engine = engine_for(fake_team_server.url)
    token = CancelToken()
    asyncio.get_running_loop().call_later(0.3, token.cancel)
    started = asyncio.get_running_loop().time()
    result = await engine.generate(request(), token)
    assert result.stop_reason == "cancelled" and result.text == ""
    assert asyncio.get_running_loop().time() - started < 1.0  # not the server's 5 s
    for _ in range(50):
        if fake_team_server.hung_up_s:
            break
        await asyncio.sleep(0.02)
    assert fake_team_server.hung_up_s and fake_team_server.hung_up_s[0] < 1.0  # the server saw the hang-up
    assert len(fake_team_server.requests) == 1


async def test_the_consumers_stop_before_the_first_token_hangs_up(fake_team_server):
    fake_team_server.script(HeldHeaders(5.0))
    stream = engine_for(fake_team_server.url).stream(request())
    asyncio.get_running_loop().call_later(0.3, stream.cancel)
    assert (await stream.result()).stop_reason == "cancelled"
    for _ in range(50):
        if fake_team_server.hung_up_s:
            break
        await asyncio.sleep(0.02)
    assert fake_team_server.hung_up_s


async def test_early_answer_and_time_budget(fake_team_server):
    fake_team_server.script(Pieces(("a", "b\n", "c", "d", "e\n", "f", "g", "h", "i", "j"), delay_s=0.1))
    engine = engine_for(fake_team_server.url)
    stream = engine.stream(request(time_budget_s=0.5))
    answer = EarlyAnswer(0.05)
    early = [partial async for partial in stream if answer.due(partial)]
    result = await stream.result()
    assert len(early) == 1 and early[0].text == "ab\n"  # the first finished line after first_answer_s
    assert result.stop_reason == "time_budget" and len(result.text) < 10


@pytest.mark.parametrize(("behaviour", "says"), [
    (Raw(b"<html><body>Login required</body></html>"), "is not a llama-server server"),
    (Raw(b"\x00\xff\xfe garbage", content_type="text/event-stream"), "no events"),
    (Raw(b'data: {"unexpected": true}\n\n', content_type="text/event-stream"), "a piece without text"),
    (Raw(b"data: not json\n\n", content_type="text/event-stream"), "not JSON"),
    (Raw(b'{"error": {"message": "this model does not support infill"}}', status=501,
         content_type="application/json"), "does not support infill"),
    (Raw(b'{"error": "invalid api key"}', status=401, content_type="application/json"), "HTTP 401"),
])
async def test_bad_answers_are_endpoint_unavailable_with_the_reason(fake_team_server, behaviour, says):
    fake_team_server.script(behaviour)
    with pytest.raises(EndpointUnavailable, match=says):
        await engine_for(fake_team_server.url).generate(request())


async def test_a_stream_cut_short_returns_what_arrived(fake_team_server):
    fake_team_server.script(CutStream())
    result = await engine_for(fake_team_server.url).generate(request())
    assert result.text == "ab"


async def test_unreachable_url_is_a_clear_error():
    with pytest.raises(EndpointUnavailable, match="127.0.0.1"):
        await engine_for(closed_port()).generate(request())


async def test_failover_and_document_affinity(fake_team_server):
    from tests.support.fake_team_server import FakeTeamServer

    other = FakeTeamServer()
    try:
        dead = closed_port()
        engine = engine_for(dead, fake_team_server.url, other.url)
        await engine.generate(request())  # the first URL is down: the second answers
        await engine.generate(request())
        assert len(fake_team_server.requests) == 2 and not other.requests  # and keeps this document
        fake_team_server.script(Raw(b"overloaded", status=503, content_type="text/plain"))
        await engine.generate(request())  # the sticky server fails: the next one takes over
        await engine.generate(request())
        assert len(other.requests) == 2
    finally:
        other.close()


async def test_a_failover_names_the_server_that_answered_and_why(fake_team_server):
    dead = closed_port()
    engine = engine_for(dead, fake_team_server.url)
    assert engine.label == f"team · {dead.removeprefix('http://')}"  # nothing answered yet: the first URL
    result = await engine.generate(request())
    here = fake_team_server.url.removeprefix("http://")
    assert engine.label == f"team · {here} · fake"  # the one serving now, its model from its own /props
    assert result.failover is not None and dead in result.failover and f"{here} answered" in result.failover
    again = await engine.generate(request())  # the document stays there: no failover this time
    assert again.failover is None and engine.label.startswith(f"team · {here}")


async def test_new_documents_spread_over_the_servers_and_keep_their_server(fake_team_server):
    from tests.support.fake_team_server import FakeTeamServer

    other = FakeTeamServer()
    try:
        engine = engine_for(fake_team_server.url, other.url)
        for name in ("a", "b", "c", "d"):
            await engine.generate(request(affinity_key=f"file:///{name}.py"))
        assert len(fake_team_server.requests) == 2 and len(other.requests) == 2  # not all on the first
        for _ in range(3):
            await engine.generate(request(affinity_key="file:///b.py"))
        assert len(other.requests) == 5 and len(fake_team_server.requests) == 2  # b stays where it started
    finally:
        other.close()


async def test_a_failed_server_is_backed_off_then_probed_back(fake_team_server, monkeypatch):
    from tests.support.fake_team_server import FakeTeamServer

    monkeypatch.setattr(remote, "BACKOFF_S", 0.4)
    sick = FakeTeamServer()
    try:
        sick.script(Raw(b"overloaded", status=503, content_type="text/plain"))
        engine = engine_for(sick.url, fake_team_server.url)
        first = await engine.generate(request(affinity_key="file:///a.py"))
        assert first.failover and "503" in first.failover and len(sick.requests) == 1
        for name in ("b", "c", "d"):  # new documents would spread to the sick server: it is backed off
            again = await engine.generate(request(affinity_key=f"file:///{name}.py"))
            assert again.failover is None
        assert len(sick.requests) == 1 and "/health" not in sick.gets  # nothing at all reached it
        await asyncio.sleep(0.45)
        await engine.generate(request(affinity_key="file:///e.py"))  # its back-off is over: probed, then used
        assert sick.gets.count("/health") == 1 and len(sick.requests) == 2
        assert len(fake_team_server.requests) == 4  # a stayed where it failed over to
    finally:
        sick.close()


async def test_the_back_off_doubles_while_the_health_probe_fails(fake_team_server, monkeypatch):
    monkeypatch.setattr(remote, "BACKOFF_S", 0.2)
    monkeypatch.setattr(remote, "BACKOFF_MAX_S", 0.3)
    engine = engine_for(fake_team_server.url)
    fake_team_server.script(Raw(b"down", status=503, content_type="text/plain"))
    fake_team_server.health_status = 503  # e.g. restarting: the model is loading
    with pytest.raises(EndpointUnavailable, match="503"):
        await engine.generate(request())
    with pytest.raises(EndpointUnavailable, match="backed off"):  # at once, without a round trip
        await engine.generate(request())
    assert len(fake_team_server.requests) == 1 and "/health" not in fake_team_server.gets
    await asyncio.sleep(0.25)
    with pytest.raises(EndpointUnavailable, match="health answered HTTP 503"):  # probed: still down
        await engine.generate(request())
    assert fake_team_server.gets.count("/health") == 1 and len(fake_team_server.requests) == 1
    await asyncio.sleep(0.25)  # the second back-off is longer (0.4 s, capped at 0.3): not over yet at 0.25
    with pytest.raises(EndpointUnavailable, match="backed off"):
        await engine.generate(request())
    assert fake_team_server.gets.count("/health") == 1
    fake_team_server.health_status = 200
    await asyncio.sleep(0.1)
    result = await engine.generate(request())  # probed, answers, and its failures are forgotten
    assert result.text == "return a + b" and fake_team_server.gets.count("/health") == 2


def slots_asked(server) -> list:
    return [r["body"].get("id_slot") for r in server.requests]


async def test_each_document_is_pinned_to_the_slot_the_server_chose(fake_team_server):
    engine = engine_for(fake_team_server.url)
    a, b = request(affinity_key="file:///a.py"), request(affinity_key="file:///b.py")
    await engine.prewarm(a)  # the first request for a document lets the server choose (its least recently used)
    await engine.prewarm(b)
    for _ in range(2):
        await engine.generate(a)
        await engine.generate(b)
    assert slots_asked(fake_team_server) == [-1, -1, 0, 1, 0, 1]  # then every request names the chosen slot
    assert fake_team_server.slots_used == [0, 1, 0, 1, 0, 1]
    assert fake_team_server.gets.count("/props") == 1  # total_slots asked once


async def test_a_request_waits_for_its_documents_slot_while_the_prewarm_chooses_it(fake_team_server):
    fake_team_server.script(HeldHeaders(0.5))  # the prewarm's prompt takes a while to evaluate
    engine = engine_for(fake_team_server.url)
    await engine.generate(request(affinity_key="file:///other.py"))  # slot 0 is this client's other document's
    prewarm = asyncio.ensure_future(engine.prewarm(request()))
    await asyncio.sleep(0.2)
    result = await engine.generate(request())  # typed while the prewarm still runs: waits for its slot
    await prewarm
    assert result.text == "return a + b"
    assert slots_asked(fake_team_server) == [-1, -1, 1]  # not -1 again: the server would take another slot
    assert fake_team_server.slots_used == [0, 1, 1]


async def test_a_document_placed_in_a_slot_takes_it_from_the_one_there_before(fake_team_server):
    fake_team_server.total_slots = 1
    engine = engine_for(fake_team_server.url)
    await engine.generate(request(affinity_key="file:///a.py"))
    await engine.generate(request(affinity_key="file:///b.py"))  # the server puts b where a was
    await engine.generate(request(affinity_key="file:///a.py"))  # a's cache is gone: the server chooses again
    await engine.generate(request(affinity_key="file:///a.py"))
    assert slots_asked(fake_team_server) == [-1, -1, -1, 0]


async def test_requests_that_come_while_the_slot_count_is_asked_are_pinned_too(fake_team_server):
    engine = engine_for(fake_team_server.url)
    await asyncio.gather(*(engine.generate(request(affinity_key=f"file:///{name}.py")) for name in "ab"))
    assert slots_asked(fake_team_server) == [-1, -1] and fake_team_server.gets.count("/props") == 1
    await engine.generate(request(affinity_key="file:///a.py"))
    assert slots_asked(fake_team_server)[-1] in (0, 1)


async def test_a_failed_server_forgets_its_slots(fake_team_server, monkeypatch):
    monkeypatch.setattr(remote, "BACKOFF_S", 0.05)
    engine = engine_for(fake_team_server.url)
    await engine.generate(request())
    fake_team_server.script(Raw(b"down", status=503, content_type="text/plain"))
    with pytest.raises(EndpointUnavailable):
        await engine.generate(request())
    await asyncio.sleep(0.1)
    await engine.generate(request())  # it may have restarted: slots asked again, the server chooses again
    assert slots_asked(fake_team_server) == [-1, 0, -1] and fake_team_server.gets.count("/props") == 2


async def test_openai_servers_get_no_slot(fake_team_server):
    await engine_for(fake_team_server.url, api="openai").generate(request())
    assert "id_slot" not in fake_team_server.requests[-1]["body"]


def test_privacy_rules_apply_to_endpoints():
    team = EndpointSettings(name="team", urls=["http://gpu:8080"])
    allowed = EndpointSettings(name="box", urls=["http://127.0.0.1:8080"], allow_when_local_only=True)
    settings = GearshiftSettings()
    assert remote_refusal(team, "/src/app.py", settings) is None
    assert "neverSend" in remote_refusal(team, "/src/secrets/settings.py", settings)
    assert "neverSend" in remote_refusal(team, "/src/.env", settings)
    local_only = parse_settings({"cloud": {"localOnly": True}})
    assert "localOnly" in remote_refusal(team, "/src/app.py", local_only)
    assert remote_refusal(allowed, "/src/app.py", local_only) is None


def test_remote_rungs_are_single_and_outside_the_cpu_rules():
    rungs = build_ladder(["team", "qwen2.5-coder-0.5b"], ["team", "qwen2.5-coder-0.5b"], 2, remote={"team"})
    assert [r.name for r in rungs][:2] == ["team", "qwen2.5-coder-0.5b"]
    assert rungs[0].remote and rungs[0].n_threads is None and not rungs[1].remote


# -- through the completion service: a ladder of a team endpoint over a local model --------------------


class TeamTiers:
    """The real RemoteEngine for "team", a fake in-process engine for the local model."""

    def __init__(self, settings: GearshiftSettings, local) -> None:
        self.settings, self.local = settings, local
        self.remote = RemoteEngine(settings.endpoints[0])

    def endpoint(self, name: str):
        return next((e for e in self.settings.endpoints if e.name == name), None)

    def get_loaded(self, model: str):
        return self.remote if model == "team" else self.local

    async def get(self, model: str):
        return self.get_loaded(model)


def team_service(*urls: str, **cloud):
    from lsp_server.completion.fim import TEMPLATES
    from lsp_server.completion.service import CompletionService
    from lsp_server.inference.guard import LatencyGuard
    from tests.unit.fakes import MODEL, FakeEngine

    settings = parse_settings({
        "endpoints": [{"name": "team", "urls": list(urls), "fimTemplate": "qwen", "connectTimeoutS": 0.5}],
        "models": {"defaultModel": "team", "ladder": ["team", MODEL]},
        "cloud": cloud, "completion": {"firstAnswerMs": 60000, "minConfidence": 0.0},
    })
    local = FakeEngine()
    tiers = TeamTiers(settings, local)
    guard = LatencyGuard(build_ladder(["team", MODEL], ["team", MODEL], 2, remote={"team"}), settings.guard,
                         target_tok_s=40.0)
    service = CompletionService(settings, tiers, guard)  # type: ignore[arg-type]
    service._templates[(str(local.model_path), None)] = TEMPLATES["qwen"]
    return service, local


def snapshot_at_end(text: str, path: str = "/src/app.py"):
    from lsp_server.documents import DocumentSnapshot

    return DocumentSnapshot(uri="file://" + path, version=1, text=text, offset=len(text), language_id="python",
                            path=path)


async def test_the_team_rung_answers_and_its_template_comes_from_settings(fake_team_server):
    service, local = team_service(fake_team_server.url)
    outcome = await service.complete(snapshot_at_end("def add(a, b):\n    "))
    assert outcome.tier == "team" and outcome.suggestion == "return a + b"
    assert fake_team_server.requests and not local.requests


async def test_a_cancelled_request_does_not_fail_over(fake_team_server):
    token = CancelToken()
    token.cancel()  # the user typed on while the first server was failing
    result = await engine_for(closed_port(), fake_team_server.url).generate(request(), token)
    assert result.stop_reason == "cancelled" and not fake_team_server.requests


async def test_a_failover_inside_the_team_rung_is_in_the_outcome(fake_team_server):
    dead = closed_port()
    service, local = team_service(dead, fake_team_server.url)
    outcome = await service.complete(snapshot_at_end("def add(a, b):\n    "))
    assert outcome.tier == "team" and outcome.suggestion == "return a + b" and not local.requests
    assert dead in (outcome.facts.remote_failover or "") and outcome.facts.remote_error is None
    assert outcome.shift is None  # the rung answered: the guard does not move


async def test_a_dead_team_server_is_answered_locally_in_the_same_request_and_the_guard_moves():
    service, local = team_service(closed_port())
    outcome = await service.complete(snapshot_at_end("def add(a, b):\n    "))
    assert outcome.tier == "smollm2-135m" and local.requests  # answered, by the rung below
    assert "127.0.0.1" in (outcome.facts.remote_error or "")
    assert outcome.shift["shiftFrom"] == "team" and "unavailable" in outcome.shift["reason"]
    assert service.guard.current.name == "smollm2-135m"


@pytest.mark.parametrize(("path", "cloud"), [("/src/secrets/settings.py", {}), ("/src/app.py", {"localOnly": True})])
async def test_never_send_and_local_only_keep_documents_off_the_team_server(fake_team_server, path, cloud):
    service, local = team_service(fake_team_server.url, **cloud)
    outcome = await service.complete(snapshot_at_end("password = load()\ndef f():\n    ", path))
    assert outcome.tier == "smollm2-135m" and local.requests
    assert fake_team_server.requests == []  # not a byte arrived


async def test_prewarm_evaluates_the_prompt_on_the_team_server_without_generating(fake_team_server):
    service, _local = team_service(fake_team_server.url)
    service.tiers.remote.served_model = "fake"  # no /props round trip in this test
    assert await service.prewarm(snapshot_at_end("def add(a, b):\n    "))
    sent = fake_team_server.requests[-1]
    assert sent["path"] == "/infill" and sent["body"]["n_predict"] == 0 and sent["body"]["cache_prompt"] is True


async def test_a_never_send_document_is_not_even_prewarmed_remotely(fake_team_server):
    service, _local = team_service(fake_team_server.url)
    assert not await service.prewarm(snapshot_at_end("def add(a, b):\n    ", "/src/secrets/keys.py"))
    assert fake_team_server.requests == []


async def test_a_slow_measured_prompt_does_not_shrink_the_remote_window(fake_team_server):
    """The local cold-prompt rule sizes in-process windows from this machine's prompt speed; a team server's
    measured speed (shared, queued) must not move the remote rung's window, or its start moves and the server's
    KV cache for the document is lost."""
    service, _local = team_service(fake_team_server.url)
    service.tiers.remote.served_model = "fake"
    # 50 tokens/s measured on the server: the local rule would allow 8 s x 50 = 400 tokens of the 1152 configured.
    fake_team_server.script(Pieces(("x",), timings={"prompt_n": 2000, "cache_n": 0, "prompt_ms": 40000.0}))
    text = "".join(f"value_{i} = compute({i}, 'some text here')\n" for i in range(400)) + "def f():\n    "
    await service.complete(snapshot_at_end(text))
    assert service._prompt_speed.get("team", 0) < 100  # the slow speed was measured
    await service.complete(snapshot_at_end(text + "x = 1\n    "))
    first, second = (r["body"]["input_prefix"] for r in fake_team_server.requests[-2:])
    configured = service.settings.completion.prefix_tokens
    assert len(second) > 0.75 * configured * BYTES_PER_TOKEN  # about the configured window, not 400 tokens'
    assert second.startswith(first[:200])  # the window's start stayed put


@pytest.mark.parametrize("behaviour", [
    pytest.param(Raw(b'{"error": {"message": "Loading model"}}', status=503, content_type="application/json"),
                 id="error-status"),
    pytest.param(Raw(b"<html>proxy login</html>"), id="html"),
    pytest.param(Raw(b'{"unexpected": 1}', content_type="application/json"), id="wrong-json"),
])
async def test_a_prewarm_the_server_did_not_do_is_not_reported_warm(fake_team_server, behaviour):
    service, _local = team_service(fake_team_server.url)
    fake_team_server.script(behaviour)
    with pytest.raises(EndpointUnavailable):
        await service.prewarm(snapshot_at_end("def add(a, b):\n    "))
    with pytest.raises(EndpointUnavailable, match="backed off"):  # and the server is left alone a while
        await service.prewarm(snapshot_at_end("def add(a, b):\n    "))
    assert len(fake_team_server.requests) == 1


async def test_a_prewarm_to_a_dead_server_is_not_reported_warm():
    service, _local = team_service(closed_port())
    with pytest.raises(EndpointUnavailable, match="127.0.0.1"):
        await service.prewarm(snapshot_at_end("def add(a, b):\n    "))
