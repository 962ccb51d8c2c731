"""The latency guard through the real server: measured speed below target shifts down, speed above shifts back up.

The smallest model runs (SmolLM2-135M); the target is set out of its reach, so
every real measurement is slow and the guard must leave the top rung.  Lowering
the target live (`workspace/didChangeConfiguration`) then gives headroom, and
the guard must probe the top rung and return to it.  The speeds are real; only
the target is chosen so that the outcome does not depend on how loaded the
machine is.
"""

from __future__ import annotations

import pytest
import pytest_lsp
from lsprotocol import types
from pytest_lsp import ClientServerConfig, LanguageClient

from tests.e2e.conftest import SERVER, as_dict, inline_params, open_doc, start, statuses, wait_ready

MODEL = "smollm2-135m"
UNREACHABLE_TOK_S = 1_000_000.0
EASY_TOK_S = 0.5


def guard_options(target: float, *, dwell_s: float, probe_interval_s: float) -> dict:
    return {
        "models": {"defaultModel": MODEL, "ladder": [MODEL]},
        "guard": {
            "enabled": True,
            "inlineTargetTokS": target,
            "slowRequestsToDownshift": 2,
            "minDwellS": dwell_s,
            "probeIntervalS": probe_interval_s,
        },
        "completion": {
            "minConfidence": 0.0,
            "timeBudgetMs": 30000,
            "firstAnswerMs": 30000,
            "prefixTokens": 256,
            "maxTokens": 16,
        },
    }


@pytest_lsp.fixture(config=ClientServerConfig(server_command=SERVER))
async def guarded(lsp_client: LanguageClient):
    await start(lsp_client, "visual_studio_code", options=guard_options(UNREACHABLE_TOK_S, dwell_s=600, probe_interval_s=600))
    yield
    await lsp_client.shutdown_session()


async def complete_fresh(client: LanguageClient, n: int) -> dict:
    """One completion on a document never seen before (no typed-ahead cache hit); returns its status."""
    uri = f"file:///guard/case_{n}.py"
    open_doc(client, uri, f"# case {n}\ndef add_numbers_{n}(first, second):\n    ")
    seen = len(statuses(client))
    await client.text_document_inline_completion_async(inline_params(uri, 2, 4))
    new = [s for s in statuses(client)[seen:] if "tokensPerSecond" in s]
    assert new, "every answered completion sends a gearshift/status"
    return new[-1]


async def guard_state(client: LanguageClient) -> dict:
    result = await client.workspace_execute_command_async(types.ExecuteCommandParams(command="gearshift.status"))
    return as_dict(result)["guard"]


@pytest.mark.model
async def test_guard_shifts_down_when_slow_and_back_up_when_fast(guarded: LanguageClient):
    client = guarded
    ready = await wait_ready(client)
    assert ready["state"] == "ready", ready
    top = ready["tier"]
    assert top == MODEL  # the top rung is the configured model at full speed

    down = None
    for n in range(8):
        status = await complete_fresh(client, n)
        if status.get("shiftDirection") == "down":
            down = status
            break
    assert down is not None, f"no downshift after 8 slow requests: {statuses(client)[-3:]}"
    assert down["shiftTo"] != top
    assert "tok/s" in down["reason"]
    assert down["generatedTokens"] >= 4 and 0 < down["tokensPerSecond"] < UNREACHABLE_TOK_S

    after = await complete_fresh(client, 100)
    assert after["tier"] == down["shiftTo"], "the next request runs on the rung shifted to"
    state = await guard_state(client)
    assert state["current"] == down["shiftTo"]
    assert state["top"] == top
    assert any(shift["to"] == down["shiftTo"] for shift in state["shifts"])

    # The user lowers the target: the measured speeds now have headroom, so the guard probes upward.
    client.workspace_did_change_configuration(
        types.DidChangeConfigurationParams(settings={"gearshift": guard_options(EASY_TOK_S, dwell_s=0, probe_interval_s=0.1)})
    )
    up = None
    for n in range(200, 215):
        status = await complete_fresh(client, n)
        if status.get("shiftDirection") == "up":
            up = status
            break
    assert up is not None, f"no upshift after the target was lowered: {await guard_state(client)}"
    state = await guard_state(client)
    assert state["current"] == top
    assert [shift["direction"] for shift in state["shifts"]][-1] == "up"
