"""The cloud client, meter, audit log and prompts, against a real loopback Anthropic API.

No mocks: the real ``anthropic`` SDK talks HTTP to ``tests/support/fake_anthropic.py``,
so retries, backoff, streaming and error mapping are the SDK's real behaviour.
"""

from __future__ import annotations

import asyncio
import logging
import re
import socket
import time

import pytest
from pydantic import SecretStr

from lsp_server.cloud.audit import AuditLog, record_cloud_request
from lsp_server.cloud.client import CloudClient
from lsp_server.cloud.meter import CostMeter
from lsp_server.cloud.prompts import build_prompt, extract_code_block
from lsp_server.cloud.redaction import Redaction
from lsp_server.cloud.router import CLOUD_NOT_CONFIGURED
from lsp_server.cloud.service import CloudService
from lsp_server.errors import CloudError
from lsp_server.settings import CloudSettings
from tests.support.fake_anthropic import (
    FakeAnthropic,
    Reply,
    fake_anthropic_fixture,  # noqa: F401 - registers the `fake_anthropic` fixture
    overloaded,
    rate_limited,
    server_error,
    slow,
    unauthorized,
)
from tests.support.loopback_cloud import (
    LoopbackCloud,
    answer,
    bad_content_encoding,
    binary_bytes,
    broken_stream,
    events_out_of_order,
    html_page,
    stream_closed_mid_answer,
    stream_ended_early,
)

KEY = "test-key-not-a-secret"
MODEL = "claude-sonnet-4-6"


def settings_for(fake: FakeAnthropic, **overrides) -> CloudSettings:
    values = {"api_key": KEY, "base_url": fake.url, "model": MODEL, "timeout_s": 5.0, "max_retries": 2}
    return CloudSettings(**{**values, **overrides})


async def ask(client: CloudClient, mode: str, prompt: str = "What does this do?") -> object:
    if mode == "stream":
        return await client.stream("You are terse.", prompt)
    return await client.complete("You are terse.", prompt)


MODES = [pytest.param("stream", id="stream"), pytest.param("complete", id="complete")]


# -- answers ----------------------------------------------------------------------------------------


async def test_plain_answer(fake_anthropic: FakeAnthropic) -> None:
    fake_anthropic.script(Reply("It adds one.", input_tokens=21, output_tokens=4))
    client = CloudClient(settings_for(fake_anthropic, max_tokens=300))
    answer = await client.complete("You are terse.", "What does x + 1 do?")
    await client.aclose()

    assert (answer.text, answer.model, answer.input_tokens, answer.output_tokens, answer.stop_reason) == (
        "It adds one.",
        MODEL,
        21,
        4,
        "end_turn",
    )
    [request] = fake_anthropic.requests
    assert request.path == "/v1/messages"
    assert request.body == {
        "model": MODEL,
        "max_tokens": 300,
        "system": "You are terse.",
        "messages": [{"role": "user", "content": "What does x + 1 do?"}],
    }
    assert KEY in request.headers.get("authorization", "") + request.headers.get("x-api-key", "")


async def test_streamed_answer_calls_on_text_per_delta(fake_anthropic: FakeAnthropic) -> None:
    fake_anthropic.script(
        Reply(chunks=("It ", "adds ", "one."), input_tokens=30, output_tokens=3, stop_reason="max_tokens")
    )
    client = CloudClient(settings_for(fake_anthropic))
    pieces: list[str] = []
    answer = await client.stream(
        "You are terse.", "What does x + 1 do?", max_tokens=64, on_text=pieces.append
    )
    await client.aclose()

    assert pieces == ["It ", "adds ", "one."]
    assert answer.text == "It adds one."
    assert (answer.input_tokens, answer.output_tokens, answer.stop_reason) == (30, 3, "max_tokens")
    [request] = fake_anthropic.requests
    assert request.body["stream"] is True
    assert request.body["max_tokens"] == 64


# -- retries: the SDK's own, against real HTTP responses ---------------------------------------------


@pytest.mark.parametrize("mode", MODES)
async def test_rate_limit_then_success_is_retried(fake_anthropic: FakeAnthropic, mode: str) -> None:
    fake_anthropic.script(rate_limited(retry_after="0"), Reply("after the 429"))
    client = CloudClient(settings_for(fake_anthropic))
    answer = await ask(client, mode)
    await client.aclose()

    assert answer.text == "after the 429"  # type: ignore[attr-defined]
    first, second = fake_anthropic.requests
    assert first.body == second.body
    assert (first.headers["x-stainless-retry-count"], second.headers["x-stainless-retry-count"]) == ("0", "1")


async def test_retry_after_header_is_honoured(fake_anthropic: FakeAnthropic) -> None:
    fake_anthropic.script(rate_limited(retry_after="0.6"), Reply("waited"))
    client = CloudClient(settings_for(fake_anthropic))
    assert (await client.stream("s", "p")).text == "waited"
    await client.aclose()
    first, second = fake_anthropic.requests
    assert second.time - first.time >= 0.55


async def test_overloaded_then_success(fake_anthropic: FakeAnthropic) -> None:
    fake_anthropic.script(overloaded(retry_after_ms="10"), Reply("recovered"))
    client = CloudClient(settings_for(fake_anthropic))
    assert (await client.stream("s", "p")).text == "recovered"
    await client.aclose()
    assert len(fake_anthropic.requests) == 2


@pytest.mark.parametrize("mode", MODES)
async def test_server_errors_exhaust_retries(fake_anthropic: FakeAnthropic, mode: str) -> None:
    fake_anthropic.script(*[server_error(500, retry_after_ms="10")] * 3)
    client = CloudClient(settings_for(fake_anthropic, max_retries=2))
    with pytest.raises(CloudError, match=r"Anthropic server error \(500\) after 2 retries; try again later"):
        await ask(client, mode)
    await client.aclose()
    assert len(fake_anthropic.requests) == 3


async def test_rate_limit_that_persists_is_reported(fake_anthropic: FakeAnthropic) -> None:
    fake_anthropic.script(*[rate_limited(retry_after="0.01")] * 2)
    client = CloudClient(settings_for(fake_anthropic, max_retries=1))
    with pytest.raises(CloudError, match=r"rate limit reached \(429\) after 1 retry"):
        await client.stream("s", "p")
    await client.aclose()
    assert len(fake_anthropic.requests) == 2


async def test_overloaded_that_persists_is_reported(fake_anthropic: FakeAnthropic) -> None:
    fake_anthropic.script(overloaded(retry_after_ms="10"))
    client = CloudClient(settings_for(fake_anthropic, max_retries=0))
    with pytest.raises(CloudError, match=r"Anthropic is overloaded \(529\); try again shortly"):
        await client.complete("s", "p")
    await client.aclose()


@pytest.mark.parametrize("mode", MODES)
async def test_timeout_fails_fast_with_a_clear_error(fake_anthropic: FakeAnthropic, mode: str) -> None:
    fake_anthropic.script(slow(10), slow(10))
    client = CloudClient(settings_for(fake_anthropic, timeout_s=0.3, max_retries=1))
    started = time.perf_counter()
    with pytest.raises(
        CloudError, match=r"did not answer within 0.3s after 1 retry.*gearshift.cloud.timeoutS"
    ):
        await ask(client, mode)
    elapsed = time.perf_counter() - started
    await client.aclose()
    assert len(fake_anthropic.requests) == 2  # timeouts are retried too
    assert elapsed < 3.0


async def test_invalid_key_is_not_retried(fake_anthropic: FakeAnthropic) -> None:
    fake_anthropic.api_key = "the-right-key"
    client = CloudClient(settings_for(fake_anthropic, api_key="a-wrong-key"))
    with pytest.raises(CloudError, match=r"rejected the API key \(401\); check ANTHROPIC_API_KEY"):
        await client.stream("s", "p")
    await client.aclose()
    assert len(fake_anthropic.requests) == 1


async def test_scripted_401(fake_anthropic: FakeAnthropic) -> None:
    fake_anthropic.script(unauthorized())
    client = CloudClient(settings_for(fake_anthropic))
    with pytest.raises(CloudError, match="401"):
        await client.complete("s", "p")
    await client.aclose()


async def test_bad_request_names_the_problem(fake_anthropic: FakeAnthropic) -> None:
    from tests.support.fake_anthropic import Status

    fake_anthropic.script(Status(400, "invalid_request_error", "prompt is too long: 300000 tokens > 200000"))
    client = CloudClient(settings_for(fake_anthropic))
    with pytest.raises(
        CloudError, match=r"rejected the request \(400 invalid_request_error\): prompt is too long"
    ):
        await client.stream("s", "p")
    await client.aclose()
    assert len(fake_anthropic.requests) == 1


async def test_unreachable_server() -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    settings = CloudSettings(
        api_key=SecretStr(KEY), base_url=f"http://127.0.0.1:{port}", model=MODEL, max_retries=0
    )
    client = CloudClient(settings)
    with pytest.raises(
        CloudError, match=r"Cannot reach the Anthropic API at 127.0.0.1.*gearshift.cloud.baseUrl"
    ):
        await client.stream("s", "p")
    await client.aclose()


async def test_error_event_mid_stream(fake_anthropic: FakeAnthropic) -> None:
    fake_anthropic.script(Reply(chunks=("one ", "two ", "three"), error_after_chunks=1))
    client = CloudClient(settings_for(fake_anthropic))
    pieces: list[str] = []
    with pytest.raises(CloudError, match=r"mid-stream \(overloaded_error\)"):
        await client.stream("s", "p", on_text=pieces.append)
    await client.aclose()
    assert pieces == ["one "]


# -- a 200 response that is not an answer -------------------------------------------------------------
# Byte-level loopback server (tests/support/loopback_cloud.py): what a proxy, a captive portal or a broken
# connection hands the SDK instead of the API's answer.  Each must be a CloudError that says what came
# (so the caller answers locally, labelled with it), never the parser's exception, never a half answer.

PARSER_EXCEPTIONS = re.compile(r"AssertionError|UnicodeDecodeError|JSONDecodeError|ValidationError|Error:")

FAULTS = [
    pytest.param(html_page, "stream", r"sent an HTML page instead of an answer", id="html-stream"),
    pytest.param(html_page, "complete", r"sent an HTML page instead of an answer", id="html-complete"),
    pytest.param(
        lambda: binary_bytes(),
        "stream",
        r"sent a response of type application/octet-stream instead of an answer",
        id="binary-stream",
    ),
    pytest.param(
        lambda: binary_bytes(), "complete", r"sent a response that is not JSON instead", id="binary-complete"
    ),
    pytest.param(
        lambda: binary_bytes("text/event-stream"),
        "stream",
        r"sent bytes that are not UTF-8 text instead of an answer",
        id="binary-labelled-event-stream",
    ),
    pytest.param(broken_stream, "stream", r"sent a broken event stream instead of an answer", id="broken-sse"),
    pytest.param(
        events_out_of_order, "stream", r"sent a broken event stream instead of an answer", id="sse-out-of-order"
    ),
    pytest.param(
        bad_content_encoding,
        "stream",
        r"sent a body that does not decode \(a broken content-encoding\) instead of an answer",
        id="bad-content-encoding-stream",
    ),
    pytest.param(
        stream_closed_mid_answer,
        "stream",
        r"cut the answer off: the connection closed before the end of the stream",
        id="connection-closed-mid-stream",
    ),
    pytest.param(
        stream_ended_early,
        "stream",
        r"cut the answer off: the connection closed before the end of the stream",
        id="stream-ended-before-message-stop",
    ),
]


@pytest.fixture(name="loopback")
def loopback_fixture():
    with LoopbackCloud() as cloud:
        yield cloud


@pytest.mark.parametrize(("fault", "mode", "message"), FAULTS)
async def test_a_200_that_is_not_an_answer_is_a_clear_cloud_error(
    loopback: LoopbackCloud, fault, mode: str, message: str
) -> None:
    loopback.script(fault())
    client = CloudClient(CloudSettings(api_key=KEY, base_url=loopback.url, model=MODEL, max_retries=2))
    with pytest.raises(CloudError, match=message) as raised:
        await ask(client, mode)
    await client.aclose()
    assert "127.0.0.1" in str(raised.value)
    assert not PARSER_EXCEPTIONS.search(str(raised.value)), str(raised.value)
    assert len(loopback.bodies) == 1  # a 200 is not retried


async def test_a_body_that_does_not_decode_is_retried_then_named(loopback: LoopbackCloud) -> None:
    # Outside a stream the SDK takes a decoding failure for a connection error and retries it.
    loopback.script(*[bad_content_encoding()] * 3)
    client = CloudClient(CloudSettings(api_key=KEY, base_url=loopback.url, model=MODEL, max_retries=2))
    with pytest.raises(CloudError, match=r"sent a body that does not decode \(a broken content-encoding\)"):
        await client.complete("s", "p")
    await client.aclose()
    assert len(loopback.bodies) == 3


async def test_a_cut_off_stream_is_not_passed_off_as_a_whole_answer(loopback: LoopbackCloud) -> None:
    loopback.script(stream_ended_early())
    client = CloudClient(CloudSettings(api_key=KEY, base_url=loopback.url, model=MODEL))
    pieces: list[str] = []
    with pytest.raises(CloudError, match="cut the answer off"):
        await client.stream("s", "p", on_text=pieces.append)
    await client.aclose()
    assert pieces == ["one ", "two "]  # what arrived was shown as progress, but is not the answer


@pytest.mark.parametrize(
    "fault", [html_page, binary_bytes, broken_stream, stream_closed_mid_answer], ids=lambda f: f.__name__
)
async def test_service_turns_bad_responses_into_cloud_errors_and_meters_nothing(
    loopback: LoopbackCloud, fault
) -> None:
    loopback.script(fault(), answer("It adds one."))
    service = CloudService(CloudSettings(api_key=KEY, base_url=loopback.url, model=MODEL))
    decision = service.route("review_security", file_path="/w/app.py", text="x = 1")
    with pytest.raises(CloudError):
        await service.ask(decision, task="review_security", system="s", prompt="x = 1", file_name="/w/app.py")
    assert service.meter.snapshot()["requests"] == 0
    # The client is not left broken: the next request gets its answer.
    answer_ = await service.ask(decision, task="review_security", system="s", prompt="x = 1", file_name="app.py")
    await service.aclose()
    assert answer_.text == "It adds one." and service.meter.snapshot()["requests"] == 1


# -- cancellation -----------------------------------------------------------------------------------


async def test_cancel_mid_stream_returns_the_text_so_far(fake_anthropic: FakeAnthropic) -> None:
    fake_anthropic.script(Reply(chunks=tuple(f"w{i} " for i in range(50)), chunk_delay_s=0.2))
    client = CloudClient(settings_for(fake_anthropic))
    cancel = asyncio.Event()

    def on_text(piece: str) -> None:
        cancel.set()

    started = time.perf_counter()
    answer = await client.stream("s", "p", on_text=on_text, cancel=cancel)
    await client.aclose()
    assert answer.cancelled and answer.stop_reason == "cancelled"
    assert answer.text == "w0 "
    assert answer.input_tokens > 0
    assert time.perf_counter() - started < 2.0


async def test_cancel_while_waiting_for_the_first_byte(fake_anthropic: FakeAnthropic) -> None:
    fake_anthropic.script(slow(10))
    client = CloudClient(settings_for(fake_anthropic))
    cancel = asyncio.Event()
    asyncio.get_running_loop().call_later(0.2, cancel.set)
    started = time.perf_counter()
    answer = await client.stream("s", "p", cancel=cancel)
    await client.aclose()
    assert answer.cancelled and answer.text == ""
    assert time.perf_counter() - started < 2.0


async def test_cancelled_before_sending_sends_nothing(fake_anthropic: FakeAnthropic) -> None:
    client = CloudClient(settings_for(fake_anthropic))
    cancel = asyncio.Event()
    cancel.set()
    answer = await client.stream("s", "p", cancel=cancel)
    assert answer.cancelled
    assert fake_anthropic.requests == []


async def test_task_cancellation_propagates(fake_anthropic: FakeAnthropic) -> None:
    fake_anthropic.script(slow(10))
    client = CloudClient(settings_for(fake_anthropic))
    task = asyncio.ensure_future(client.stream("s", "p", cancel=asyncio.Event()))
    await asyncio.sleep(0.2)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    await client.aclose()


# -- keys -------------------------------------------------------------------------------------------


async def test_no_key_means_not_available_and_nothing_is_sent(fake_anthropic: FakeAnthropic) -> None:
    settings = settings_for(fake_anthropic, api_key=None)
    client = CloudClient(settings, env={})
    assert client.available is False
    with pytest.raises(
        CloudError, match="cloud not configured: set ANTHROPIC_API_KEY or gearshift.cloud.apiKey"
    ):
        await client.stream("s", "p")
    service = CloudService(settings, env={})
    decision = service.route("review_security", file_path="/w/app.py", text="eval(input())")
    assert decision.destination == "local"
    assert decision.reason == CLOUD_NOT_CONFIGURED
    assert fake_anthropic.requests == []


async def test_key_from_environment(fake_anthropic: FakeAnthropic) -> None:
    client = CloudClient(
        settings_for(fake_anthropic, api_key=None), env={"ANTHROPIC_API_KEY": "from-env-key"}
    )
    assert client.available
    await client.complete("s", "p")
    await client.aclose()
    assert "from-env-key" in fake_anthropic.requests[0].headers["authorization"]


def test_settings_key_wins_over_environment() -> None:
    client = CloudClient(
        CloudSettings(api_key=SecretStr("from-settings")), env={"ANTHROPIC_API_KEY": "from-env"}
    )
    assert client._api_key == "from-settings"
    assert not CloudClient(CloudSettings(api_key=SecretStr("  ")), env={"ANTHROPIC_API_KEY": " "}).available


# -- privacy, end to end: route + redact + audit + client + meter -------------------------------------

PLANTED = {
    "aws": "AKIA" + "ZZZZ7777YYYY8888",
    "password": "pl4nted-Pa55word",
    "url": "db-pl4nted-pw",
    "github": "ghp_" + "Pl4nt3d" * 5 + "x",
}
SOURCE = f"""import boto3

AWS_KEY = "{PLANTED["aws"]}"
DB_PASSWORD = "{PLANTED["password"]}"
DSN = "postgres://app:{PLANTED["url"]}@db.internal/app"
GH = "{PLANTED["github"]}"


def handler(event):
    query = "SELECT * FROM users WHERE name = '%s'" % event["name"]
    return run(query)
"""


async def test_nothing_planted_leaves_the_machine(
    fake_anthropic: FakeAnthropic, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    fake_anthropic.script(Reply("- **line 10** (high): SQL injection.", input_tokens=200, output_tokens=12))
    service = CloudService(settings_for(fake_anthropic))
    decision = service.route("review_security", file_path="/home/dev/app/handler.py", text=SOURCE)
    assert decision.is_cloud
    prompt = build_prompt("review_security", SOURCE, language="python")

    answer = await service.ask(
        decision,
        task="review_security",
        system=prompt.system,
        prompt=prompt.user,
        file_name="/home/dev/app/handler.py",
    )
    await service.aclose()

    assert "SQL injection" in answer.text
    assert {r.kind for r in answer.redactions} == {
        "aws_access_key",
        "password",
        "url_password",
        "github_token",
    }
    [request] = fake_anthropic.requests
    for secret in PLANTED.values():
        assert secret not in request.text
        assert secret not in caplog.text
    # The code itself did go (redacted), and the audit line says so in sizes and names only.
    sent = request.body["messages"][0]["content"]
    assert 'query = "SELECT * FROM users' in sent and "[REDACTED:aws_access_key]" in sent
    [audit] = [r for r in caplog.records if r.getMessage().startswith("cloud request:")]
    assert audit.levelno == logging.INFO
    line = audit.getMessage()
    assert "task=review_security file=handler.py" in line
    assert f"sent_chars={len(prompt.system) + len(sent)}" in line
    assert "redactions=4" in line and "aws_access_key=1" in line and f"model={MODEL}" in line
    assert "SELECT" not in line and "/home/dev" not in line
    # No log record at all carries the code (the SDK logs request bodies at DEBUG unless quietened).
    assert "SELECT * FROM users" not in caplog.text
    assert service.status()["requests"] == 1


async def test_never_send_file_is_refused_before_anything_is_sent(fake_anthropic: FakeAnthropic) -> None:
    service = CloudService(settings_for(fake_anthropic))
    decision = service.route(
        "review_security", file_path="/home/dev/app/.env", text="TOKEN=abc", explicit_escalation=True
    )
    assert not decision.is_cloud
    with pytest.raises(CloudError, match=r"not sent to the cloud: never_send matched \*\*/\.env"):
        await service.ask(decision, task="review_security", system="s", prompt="TOKEN=abc", file_name=".env")
    assert fake_anthropic.requests == []
    assert service.audit.records() == []


async def test_local_only_refuses_even_an_explicit_escalation(fake_anthropic: FakeAnthropic) -> None:
    service = CloudService(settings_for(fake_anthropic, local_only=True))
    decision = service.route("explain", file_path="/w/a.py", text="x = 1", explicit_escalation=True)
    with pytest.raises(CloudError, match="local_only is set"):
        await service.ask(decision, task="explain", system="s", prompt="x = 1", file_name="a.py")
    assert fake_anthropic.requests == []


async def test_ask_rechecks_the_settings_at_send_time(fake_anthropic: FakeAnthropic) -> None:
    service = CloudService(settings_for(fake_anthropic))
    decision = service.route("review_security", file_path="/w/app.py", text="x = 1")
    assert decision.is_cloud
    service.update_settings(settings_for(fake_anthropic, local_only=True))
    with pytest.raises(CloudError, match="not sent to the cloud: local_only is set"):
        await service.ask(decision, task="review_security", system="s", prompt="x = 1", file_name="app.py")
    service.update_settings(settings_for(fake_anthropic))
    with pytest.raises(CloudError, match=r"not sent to the cloud: never_send matched \*\*/\.env"):
        await service.ask(decision, task="review_security", system="s", prompt="x = 1", file_name="/w/.env")
    await service.aclose()
    assert fake_anthropic.requests == []


async def test_system_prompt_is_redacted_too(fake_anthropic: FakeAnthropic) -> None:
    service = CloudService(settings_for(fake_anthropic))
    decision = service.route("review_security", file_path=None, text="")
    answer = await service.ask(
        decision, task="review_security", system=f"Context: {PLANTED['aws']}", prompt="x", file_name=None
    )
    await service.aclose()
    assert PLANTED["aws"] not in fake_anthropic.requests[0].text
    assert [r.kind for r in answer.redactions] == ["aws_access_key"]


# -- meter and status -------------------------------------------------------------------------------


async def test_service_meters_tokens_and_cost(fake_anthropic: FakeAnthropic) -> None:
    fake_anthropic.script(
        Reply("a", input_tokens=1000, output_tokens=200), Reply("b", input_tokens=500, output_tokens=100)
    )
    service = CloudService(settings_for(fake_anthropic, input_cost_per_mtok=3.0, output_cost_per_mtok=15.0))
    decision = service.route("review_data_race", file_path=None, text="x")
    for _ in range(2):
        await service.ask(decision, task="review_data_race", system="s", prompt="x", file_name=None)
    await service.aclose()
    status = service.status()
    assert {k: status[k] for k in ("requests", "inputTokens", "outputTokens", "costUsd")} == {
        "requests": 2,
        "inputTokens": 1500,
        "outputTokens": 300,
        "costUsd": 0.009,
    }
    assert status["available"] is True and status["model"] == MODEL
    assert [r["task"] for r in status["recent"]] == ["review_data_race", "review_data_race"]
    assert status["recent"][0]["fileName"] is None


async def test_failed_request_costs_nothing(fake_anthropic: FakeAnthropic) -> None:
    fake_anthropic.script(unauthorized())
    service = CloudService(settings_for(fake_anthropic))
    decision = service.route("review_security", file_path=None, text="x")
    with pytest.raises(CloudError):
        await service.ask(decision, task="review_security", system="s", prompt="x", file_name=None)
    await service.aclose()
    assert service.meter.snapshot()["requests"] == 0
    assert len(service.audit.records()) == 1  # the attempt is still audited


async def test_update_settings_swaps_the_client(fake_anthropic: FakeAnthropic) -> None:
    service = CloudService(settings_for(fake_anthropic))
    await service.client.complete("s", "p")
    old = service.client
    service.update_settings(settings_for(fake_anthropic, model="claude-haiku-4-5", output_cost_per_mtok=5.0))
    assert service.client is not old and service.client.model == "claude-haiku-4-5"
    await service.client.complete("s", "p")
    await service.aclose()
    assert fake_anthropic.requests[-1].body["model"] == "claude-haiku-4-5"
    assert service.meter.price(0, 1_000_000) == 5.0


def test_meter_snapshot_shape_and_prices() -> None:
    meter = CostMeter(CloudSettings(input_cost_per_mtok=3.0, output_cost_per_mtok=15.0))
    assert meter.snapshot() == {"requests": 0, "inputTokens": 0, "outputTokens": 0, "costUsd": 0.0}
    assert meter.record(input_tokens=1_000_000, output_tokens=0) == 3.0
    meter.update_settings(CloudSettings(input_cost_per_mtok=1.0, output_cost_per_mtok=2.0))
    meter.record(input_tokens=0, output_tokens=500_000)
    assert meter.snapshot() == {
        "requests": 2,
        "inputTokens": 1_000_000,
        "outputTokens": 500_000,
        "costUsd": 4.0,
    }
    with pytest.raises(ValueError):
        meter.record(input_tokens=-1, output_tokens=0)


# -- audit ------------------------------------------------------------------------------------------


def test_audit_line_has_sizes_and_names_only(caplog: pytest.LogCaptureFixture) -> None:
    logger = logging.getLogger("test.audit")
    history = AuditLog(maxlen=2)
    with caplog.at_level(logging.INFO, logger="test.audit"):
        for task in ("explain", "refactor", "review_security"):
            record_cloud_request(
                logger,
                task=task,
                file_name="C:\\work\\proj\\db.py",
                sent_chars=1234,
                redactions=[
                    Redaction("password", 3, 8),
                    Redaction("password", 9, 12),
                    Redaction("jwt", 4, 90),
                ],
                model=MODEL,
                history=history,
            )
    assert caplog.messages[-1] == (
        f"cloud request: task=review_security file=db.py sent_chars=1234 redactions=3 (jwt=1, password=2) model={MODEL}"
    )
    assert [r.task for r in history.records()] == ["refactor", "review_security"]
    assert history.snapshot()[-1]["redactions"] == {"password": 2, "jwt": 1}


def test_audit_accepts_counts_and_unsaved_buffers(caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.INFO, logger="gearshift.cloud.audit"):
        record = record_cloud_request(
            None, task="explain", file_name=None, sent_chars=10, redactions={}, model=MODEL
        )
    assert record.redaction_count == 0
    assert caplog.messages == [
        f"cloud request: task=explain file=<unsaved> sent_chars=10 redactions=0 model={MODEL}"
    ]


# -- prompts ----------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("task", "must_say"),
    [
        pytest.param("explain", "Explain this python code", id="explain"),
        pytest.param("refactor", "only the rewritten code", id="refactor"),
        pytest.param("review_data_race", "data races", id="review-data-race"),
        pytest.param("review_security", "security vulnerabilities", id="review-security"),
    ],
)
def test_prompts_fence_the_code(task: str, must_say: str) -> None:
    prompt = build_prompt(task, "def f():\n    return 1\n", language="python")  # type: ignore[arg-type]
    assert must_say in prompt.user
    assert "```python\ndef f():\n    return 1\n```" in prompt.user
    assert prompt.system.startswith("You are Gearshift")
    assert len(prompt.system) < 400  # small local models follow short instructions


def test_refactor_prompt_carries_the_instruction() -> None:
    prompt = build_prompt("refactor", "x=1", language="python", instruction="Use a dataclass.")
    assert "Use a dataclass." in prompt.user


def test_code_containing_fences_gets_a_longer_fence() -> None:
    prompt = build_prompt("explain", 'doc = """\n```py\nx\n```\n"""', language="python")
    assert "````python\n" in prompt.user and prompt.user.rstrip().endswith("````")


@pytest.mark.parametrize(
    ("answer", "code"),
    [
        pytest.param("```python\ny = 2\n```", "y = 2\n", id="fenced"),
        pytest.param("Here you go:\n```\ny = 2\n```\nDone.", "y = 2\n", id="fenced-with-prose"),
        pytest.param("````py\na = '```'\n````", "a = '```'\n", id="long-fence"),
        pytest.param("```python\ny = 2\n", None, id="unterminated-is-refused"),
        pytest.param("Sorry, I can't.", None, id="no-fence"),
    ],
)
def test_extract_code_block(answer: str, code: str | None) -> None:
    assert extract_code_block(answer) == code


def test_extract_bare_code_when_allowed() -> None:
    assert extract_code_block("y = 2", allow_bare=True) == "y = 2\n"


async def test_errors_in_on_text_are_not_disguised_as_cloud_errors(fake_anthropic: FakeAnthropic) -> None:
    client = CloudClient(settings_for(fake_anthropic))

    def on_text(piece: str) -> None:
        raise KeyError("editor went away")

    for cancel in (None, asyncio.Event()):
        with pytest.raises(KeyError):
            await client.stream("s", "p", on_text=on_text, cancel=cancel)
    await client.aclose()


def test_importing_the_cloud_package_does_not_import_the_sdk() -> None:
    import subprocess
    import sys

    code = "import sys, lsp_server.cloud.service, lsp_server.cloud.router; print('anthropic' in sys.modules)"
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert result.stdout.strip() == "False"
