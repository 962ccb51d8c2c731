"""Cloud faults and the privacy audit through the real server, the real local model and the real SDK.

The cloud is ``tests/support/loopback_cloud.py``: it answers with whatever bytes a test scripts (a proxy's
HTML page, binary bytes, a broken or cut-off event stream) and records every byte it receives.
"""

from __future__ import annotations

import os
import re
import sys

import pytest
import pytest_lsp
from lsprotocol import types
from pytest_lsp import ClientServerConfig, LanguageClient

from tests.e2e.conftest import E2E_MODEL, open_doc, start, wait_ready
from tests.support.loopback_cloud import (
    LoopbackCloud,
    answer,
    binary_bytes,
    broken_stream,
    html_page,
    stream_closed_mid_answer,
)
from tests.unit.test_privacy_audit import HANDLER_PY, NEVER_SEND, SETTINGS_OVERRIDES, leaks

pytestmark = [pytest.mark.e2e, pytest.mark.model]

SOURCE = """import threading

counter = 0


def bump():
    global counter
    value = counter
    counter = value + 1
"""


@pytest.fixture(name="loopback")
def loopback_fixture():
    with LoopbackCloud() as cloud:
        yield cloud


@pytest_lsp.fixture(
    config=ClientServerConfig(
        server_command=[sys.executable, "-m", "lsp_server", "serve"],
        server_env={**os.environ, "ANTHROPIC_API_KEY": ""},
    ),
)
async def client(request, lsp_client: LanguageClient):
    cloud = request.getfixturevalue("loopback")
    options = {
        "models": {"defaultModel": E2E_MODEL, "ladder": [E2E_MODEL]},
        "guard": {"enabled": False},
        "actions": {"maxTokens": 32},
        "cloud": {
            "baseUrl": cloud.url,
            "apiKey": "test-key",
            "timeoutS": 5,
            "maxRetries": 1,
            "neverSend": SETTINGS_OVERRIDES["never_send"],
        },
    }
    await start(lsp_client, "visual_studio_code", options=options)
    yield
    await lsp_client.shutdown_session()


def whole(uri: str, text: str) -> dict:
    return {"uri": uri, "range": {"start": {"line": 0, "character": 0}, "end": {"line": text.count("\n"), "character": 0}}}


async def run(client: LanguageClient, command: str, *args):
    result = await client.workspace_execute_command_async(types.ExecuteCommandParams(command=command, arguments=list(args)))
    return result._asdict() if hasattr(result, "_asdict") else result


FAULTS = [
    (html_page, "sent an HTML page instead of an answer"),
    (binary_bytes, "sent a response of type application/octet-stream instead of an answer"),
    (broken_stream, "sent a broken event stream instead of an answer"),
    (stream_closed_mid_answer, "cut the answer off"),
]


async def test_a_200_that_is_not_an_answer_gives_a_labelled_local_answer(client: LanguageClient, loopback):
    uri = "file:///tmp/gearshift-e2e/faults.py"
    open_doc(client, uri, SOURCE)
    await wait_ready(client)
    for fault, reason in FAULTS:
        loopback.script(fault())
        result = await run(client, "gearshift.review", {**whole(uri, SOURCE), "kind": "data_race"})
        assert result["source"] == "local", (fault.__name__, result)
        assert f"Cloud unavailable (The Anthropic API at 127.0.0.1 {reason}" in result["markdown"]
        assert "answered by the local model instead" in result["markdown"]
        assert not re.search(r"AssertionError|UnicodeDecodeError|JSONDecodeError|Traceback", result["markdown"])
    # The cloud is used again as soon as it answers.
    loopback.script(answer("Race: `counter` is read and written without a lock."))
    result = await run(client, "gearshift.review", {**whole(uri, SOURCE), "kind": "data_race"})
    assert result["source"] == "cloud" and "without a lock" in result["markdown"]


async def test_privacy_audit_through_the_server(client: LanguageClient, loopback):
    handler = "file:///tmp/gearshift-e2e/orders/app/handler.py"
    open_doc(client, handler, HANDLER_PY)
    await wait_ready(client)
    for kind in ("data_race", "security"):
        result = await run(client, "gearshift.review", {**whole(handler, HANDLER_PY), "kind": kind})
        assert result["source"] == "cloud", result
    result = await run(client, "gearshift.escalate", {**whole(handler, HANDLER_PY), "task": "explain"})
    assert result["source"] == "cloud", result
    sent = len(loopback.bodies)

    # Each refusal is answered by the local model, which is slow here: one review, one escalation.
    secrets = "file:///tmp/gearshift-e2e/orders/secrets/settings.py"
    secrets_text = NEVER_SEND["/home/dev/orders/secrets/settings.py"]
    own_glob = "file:///tmp/gearshift-e2e/orders/internal/pricing/rules.py"
    own_glob_text = NEVER_SEND["/home/dev/orders/internal/pricing/rules.py"]
    open_doc(client, secrets, secrets_text)
    open_doc(client, own_glob, own_glob_text)
    review = await run(client, "gearshift.review", {**whole(secrets, secrets_text), "kind": "security"})
    escalated = await run(client, "gearshift.escalate", {**whole(own_glob, own_glob_text), "task": "explain"})
    for result in (review, escalated):
        assert result["source"] == "local" and "never_send matched" in result["routeReason"], result

    assert len(loopback.bodies) == sent == 3
    assert b"SELECT * FROM orders WHERE id" in loopback.received
    assert leaks(loopback.received) == []
