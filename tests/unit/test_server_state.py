"""The server declares the state its features share, wires the completion status at start-up, and hands command
handlers their arguments typed (pygls' structuring, strict and readable)."""

from __future__ import annotations

from types import SimpleNamespace

import pytest

from lsp_server.completion.service import CompletionOutcome
from lsp_server.features.command_arguments import EscalateArguments, RefactorArguments, SelectionArguments
from lsp_server.server import GearshiftServer
from lsp_server.settings import GearshiftSettings, ModelSettings
from lsp_server.wire import PipelineFacts
from tests.support.wire import Wire
from tests.unit.fakes import MODEL, FakeEngine
from tests.unit.test_protocol_conformance import PYTHON_EXCEPTION, open_doc, request

RANGE = {"start": {"line": 0, "character": 0}, "end": {"line": 1, "character": 5}}


def test_shared_state_is_declared_before_any_feature_registers() -> None:
    server = GearshiftServer()  # no feature registered
    assert server.last_action is None and server.last_local_answer is None
    assert server.cloud.settings == server.settings.cloud


def test_a_settings_change_reaches_the_cloud_service() -> None:
    server = GearshiftServer()
    assert server.apply_settings({"cloud": {"model": "claude-test", "localOnly": True}})
    assert server.cloud.settings.model == "claude-test" and server.cloud.settings.local_only


async def test_background_outcomes_reach_the_status_from_start_up(monkeypatch: pytest.MonkeyPatch) -> None:
    server = GearshiftServer(GearshiftSettings(models=ModelSettings(default_model=MODEL, ladder=[MODEL])))
    engine = FakeEngine()

    async def get(model: str, purpose: str = "completion") -> FakeEngine:
        return engine

    monkeypatch.setattr(server.tiers, "get", get)
    monkeypatch.setattr(server.tiers, "installed", lambda: [MODEL])
    monkeypatch.setattr(GearshiftServer, "workspace", property(lambda self: SimpleNamespace(root_path=None)))
    sent: list[dict] = []
    monkeypatch.setattr(server, "send_status", sent.append)
    await server._load_models()
    assert server.completions is not None and server.guard is server.completions.guard
    # No completion request yet: the rest of an early answer would still reach the status.
    assert server.completions.on_background_outcome == server.report_completion
    server.completions.on_background_outcome(CompletionOutcome(
        suggestion="x", tier=MODEL, background=True, shift={"reason": "r", "shiftTo": "a"},
        facts=PipelineFacts(prompt_tokens=10, uri="file:///a.py"),
    ))
    assert sent[-1]["background"] is True and sent[-1]["tier"] == MODEL and sent[-1]["state"] == "ready"
    # the guard's shift and the pipeline's figures travel in the same status
    assert (sent[-1]["shiftTo"], sent[-1]["promptTokens"], sent[-1]["uri"]) == ("a", 10, "file:///a.py")


def test_arguments_are_structured_into_their_types() -> None:
    converter = GearshiftServer().converter
    selection = converter.structure({"uri": "file:///a.py", "range": RANGE, "other": 1}, SelectionArguments)
    assert selection.uri == "file:///a.py" and selection.range.end.character == 5
    refactor = converter.structure({"uri": "file:///a.py", "range": RANGE, "instruction": "Shorter."},
                                   RefactorArguments)
    assert refactor.instruction == "Shorter."
    escalate = converter.structure({"uri": "file:///a.py", "range": RANGE}, EscalateArguments)
    assert (escalate.task, escalate.instruction) == ("explain", None)


@pytest.mark.parametrize(
    ("command", "argument", "named"),
    [
        pytest.param("gearshift.explain", {"uri": 7, "range": RANGE}, "argument.uri", id="uri-not-a-string"),
        pytest.param("gearshift.explain", {"uri": "file:///tmp/a.py"}, "argument.range", id="no-range"),
        pytest.param("gearshift.explain", {"uri": "file:///tmp/a.py", "range": {"start": {"line": "x"}}},
                     "argument.range.start", id="bad-position"),
        pytest.param("gearshift.refactor", {"uri": "file:///tmp/a.py", "range": RANGE, "instruction": 5},
                     "argument.instruction", id="instruction-not-a-string"),
        pytest.param("gearshift.review", "file:///tmp/a.py", "got str", id="not-an-object"),
        pytest.param("gearshift.escalate", {"uri": "file:///tmp/a.py", "range": RANGE, "task": 12},
                     "argument.task", id="task-not-a-string"),
    ],
)
async def test_a_malformed_argument_is_refused_with_a_sentence_naming_it(
    tmp_path, command: str, argument, named: str
) -> None:
    wire = Wire(str(tmp_path / "no-such-model.gguf"))
    wire.initialize()
    open_doc(wire)
    wire.feed(request(5, "workspace/executeCommand", {"command": command, "arguments": [argument]}))
    await wire.settle()
    (answer,) = wire.answers(5)
    error = answer["error"]
    assert error["code"] == -32602 and named in error["message"], error
    assert not PYTHON_EXCEPTION.search(error["message"]) and "While structuring" not in error["message"]
