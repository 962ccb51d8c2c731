"""Code actions, routing and escalation through the real server, the real local model and the real SDK.

The cloud is a loopback server speaking the Anthropic Messages API
(tests/support/fake_anthropic.py); what it received is the proof of what left
the machine.
"""

from __future__ import annotations

import ast
import os
import sys

import pytest
import pytest_lsp
from lsprotocol import types
from pygls.exceptions import JsonRpcException
from pytest_lsp import ClientServerConfig, LanguageClient

from tests.e2e.conftest import E2E_MODEL, open_doc, start, wait_ready
from tests.support.fake_anthropic import fake_anthropic_fixture, reply, server_error  # noqa: F401

pytestmark = [pytest.mark.e2e, pytest.mark.model]

SECRET = "sk-ant-api03-PLANTEDsecretVALUE1234567890abcdef"
SOURCE = f'''import threading

API_KEY = "{SECRET}"
counter = 0


def bump():
    global counter
    value = counter
    counter = value + 1


def double(x):
    result = x * 2
    return result
'''


def action_settings(base_url: str, **cloud) -> dict:
    return {
        "models": {"defaultModel": E2E_MODEL, "ladder": [E2E_MODEL]},
        "guard": {"enabled": False},
        "actions": {"maxTokens": 64},
        "cloud": {"baseUrl": base_url, "apiKey": "test-key", "timeoutS": 5, "maxRetries": 1, **cloud},
    }


@pytest_lsp.fixture(
    config=ClientServerConfig(server_command=[sys.executable, "-m", "lsp_server", "serve"], server_env={**os.environ, "ANTHROPIC_API_KEY": ""}),
)
async def client(request, lsp_client: LanguageClient):
    fake = request.getfixturevalue("fake_anthropic")
    marker = request.node.get_closest_marker("cloud")
    cloud = dict(marker.kwargs) if marker else {}
    lsp_client.applied_edits = []  # type: ignore[attr-defined]

    @lsp_client.feature(types.WORKSPACE_APPLY_EDIT)
    def on_apply(params: types.ApplyWorkspaceEditParams) -> types.ApplyWorkspaceEditResult:
        lsp_client.applied_edits.append(params.edit)  # type: ignore[attr-defined]
        return types.ApplyWorkspaceEditResult(applied=True)

    await start(lsp_client, "visual_studio_code", options=action_settings(fake.url, **cloud))
    yield
    await lsp_client.shutdown_session()


def selection(uri: str, text: str, first: str, last: str) -> dict:
    """`{uri, range}` covering the lines from the one starting with ``first`` to the one with ``last``."""
    lines = text.split("\n")
    start = next(i for i, line in enumerate(lines) if line.startswith(first))
    end = next(i for i, line in enumerate(lines) if i >= start and last in line)
    return {"uri": uri, "range": {"start": {"line": start, "character": 0}, "end": {"line": end + 1, "character": 0}}}


async def run(client: LanguageClient, command: str, *args):
    result = await client.workspace_execute_command_async(types.ExecuteCommandParams(command=command, arguments=list(args)))
    return result._asdict() if hasattr(result, "_asdict") else result


async def test_code_actions_offered_and_resolved(client: LanguageClient):
    uri = "file:///tmp/gearshift-e2e/actions.py"
    open_doc(client, uri, SOURCE)
    sel = selection(uri, SOURCE, "def double", "return result")
    actions = await client.text_document_code_action_async(
        types.CodeActionParams(
            text_document=types.TextDocumentIdentifier(uri=uri),
            range=types.Range(start=types.Position(**sel["range"]["start"]), end=types.Position(**sel["range"]["end"])),
            context=types.CodeActionContext(diagnostics=[]),
        )
    )
    titles = [a.title for a in actions]
    assert any("Explain" in t for t in titles) and any("Refactor" in t for t in titles)
    assert any("data races" in t for t in titles)
    resolved = await client.code_action_resolve_async(actions[0])
    assert resolved.command is not None and resolved.command.command.startswith("gearshift.")


async def test_explain_runs_on_the_local_model(client: LanguageClient, fake_anthropic):
    uri = "file:///tmp/gearshift-e2e/explain.py"
    open_doc(client, uri, SOURCE)
    await wait_ready(client)
    answer = await run(client, "gearshift.explain", selection(uri, SOURCE, "def double", "return result"))
    assert answer["source"] == "local"
    assert len(answer["markdown"]) > 40 and "local" in answer["markdown"]
    assert fake_anthropic.requests == []  # explain is not critical: nothing left the machine


async def test_refactor_applies_an_edit_that_parses(client: LanguageClient, fake_anthropic):
    uri = "file:///tmp/gearshift-e2e/refactor.py"
    open_doc(client, uri, SOURCE)
    await wait_ready(client)
    sel = selection(uri, SOURCE, "def double", "return result")
    sel["instruction"] = "Rename the variable `result` to `doubled`."
    outcome = await run(client, "gearshift.refactor", sel)
    assert outcome["applied"] is True, outcome
    edit = client.applied_edits[-1]
    new_text = edit.document_changes[0].edits[0].new_text
    assert "doubled" in new_text
    lines = SOURCE.split("\n")
    start, end = sel["range"]["start"]["line"], sel["range"]["end"]["line"]
    ast.parse("\n".join(lines[:start]) + "\n" + new_text + "\n".join(lines[end:]))  # the file still parses
    assert fake_anthropic.requests == []


async def test_data_race_review_goes_to_the_cloud_redacted(client: LanguageClient, fake_anthropic):
    fake_anthropic.script(reply("Race: `counter` is read and written without a lock."))
    uri = "file:///tmp/gearshift-e2e/race.py"
    open_doc(client, uri, SOURCE)
    await wait_ready(client)
    answer = await run(client, "gearshift.review", {**selection(uri, SOURCE, "import threading", "counter = value + 1"), "kind": "data_race"})
    assert answer["source"] == "cloud"
    assert "without a lock" in answer["markdown"]
    received = fake_anthropic.requests
    assert len(received) == 1
    body = received[0].text
    assert "counter" in body  # the code was sent...
    assert SECRET not in body and "[REDACTED" in body  # ...but not the key planted in it
    status = await run(client, "gearshift.status")
    assert status["cloud"]["requests"] == 1 and status["cloud"]["inputTokens"] > 0


async def test_never_send_file_is_never_sent(client: LanguageClient, fake_anthropic):
    uri = "file:///tmp/gearshift-e2e/.env"
    text = f"API_KEY={SECRET}\nDEBUG=1\n"
    open_doc(client, uri, text, language="dotenv")
    await wait_ready(client)
    answer = await run(client, "gearshift.escalate", {"uri": uri, "task": "explain",
                                                       "range": {"start": {"line": 0, "character": 0}, "end": {"line": 2, "character": 0}}})
    assert answer["source"] == "local"
    assert "never_send" in answer["routeReason"]
    assert fake_anthropic.requests == []


@pytest.mark.cloud(localOnly=True)
async def test_local_only_sends_nothing(client: LanguageClient, fake_anthropic):
    uri = "file:///tmp/gearshift-e2e/local_only.py"
    open_doc(client, uri, SOURCE)
    await wait_ready(client)
    answer = await run(client, "gearshift.review", {**selection(uri, SOURCE, "def bump", "counter = value + 1"), "kind": "data_race"})
    assert answer["source"] == "local" and "local" in answer["routeReason"].lower()
    assert fake_anthropic.requests == []


async def test_escalate_reruns_the_last_request_on_the_cloud(client: LanguageClient, fake_anthropic):
    fake_anthropic.script(reply("Doubles x."))
    uri = "file:///tmp/gearshift-e2e/escalate.py"
    open_doc(client, uri, SOURCE)
    await wait_ready(client)
    local = await run(client, "gearshift.explain", selection(uri, SOURCE, "def double", "return result"))
    assert local["source"] == "local" and fake_anthropic.requests == []
    escalated = await run(client, "gearshift.escalate")
    assert escalated["source"] == "cloud" and "Doubles x." in escalated["markdown"]
    assert len(fake_anthropic.requests) == 1 and "def double" in fake_anthropic.requests[0].text


async def test_cloud_failure_gives_a_labelled_local_answer(client: LanguageClient, fake_anthropic):
    fake_anthropic.script(server_error(500), server_error(500), server_error(500))
    uri = "file:///tmp/gearshift-e2e/fail.py"
    open_doc(client, uri, SOURCE)
    await wait_ready(client)
    answer = await run(client, "gearshift.review", {**selection(uri, SOURCE, "def bump", "counter = value + 1"), "kind": "data_race"})
    assert answer["source"] == "local"
    assert "Cloud unavailable" in answer["markdown"]
    assert len(fake_anthropic.requests) >= 2  # the SDK retried before giving up


async def test_bad_selections_get_clear_messages(client: LanguageClient, fake_anthropic):
    uri = "file:///tmp/gearshift-e2e/bad_actions.py"
    open_doc(client, uri, SOURCE)
    await wait_ready(client)
    empty = {"uri": uri, "range": {"start": {"line": 3, "character": 0}, "end": {"line": 3, "character": 0}}}
    with pytest.raises(JsonRpcException, match="selection is empty"):
        await run(client, "gearshift.explain", empty)
    cobol_uri = "file:///tmp/gearshift-e2e/prog.cob"
    open_doc(client, cobol_uri, "       DISPLAY 'HELLO'.\n", language="cobol")
    with pytest.raises(JsonRpcException, match="Refactor needs a language"):
        await run(client, "gearshift.refactor", {"uri": cobol_uri, "range": {"start": {"line": 0, "character": 0}, "end": {"line": 1, "character": 0}}})
    huge_uri = "file:///tmp/gearshift-e2e/huge.py"
    huge = "".join(f"value_{i} = compute({i}, {i * 7})\n" for i in range(3000))
    open_doc(client, huge_uri, huge)
    with pytest.raises(JsonRpcException, match="tokens; Gearshift handles up to"):
        await run(client, "gearshift.explain", {"uri": huge_uri, "range": {"start": {"line": 0, "character": 0}, "end": {"line": 3000, "character": 0}}})
    assert fake_anthropic.requests == []
    # Still answering.
    assert (await run(client, "gearshift.status"))["tier"]
