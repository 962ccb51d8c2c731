"""Everything Gearshift puts on the wire or prints with --json is a WireModel: camelCase keys, none by hand."""

from __future__ import annotations

import importlib

import pytest

from lsp_server.completion.service import CompletionOutcome
from lsp_server.wire import CompletionResult, CompletionStatus, PipelineFacts, WireModel

# The modules that define wire shapes (importing them registers their WireModel subclasses).
WIRE_MODULES = [
    "lsp_server.wire", "lsp_server.cloud.audit", "lsp_server.cloud.meter", "lsp_server.cloud.service",
    "lsp_server.cli.models", "lsp_server.inference.machine", "lsp_server.inference.sizing",
    "lsp_server.inference.fit", "lsp_server.inference.guard", "lsp_server.evaluation.report",
]


def _all_wire_models() -> list[type[WireModel]]:
    for module in WIRE_MODULES:
        importlib.import_module(module)
    found, todo = [], list(WireModel.__subclasses__())
    while todo:
        cls = todo.pop()
        found.append(cls)
        todo.extend(cls.__subclasses__())
    return sorted(set(found), key=lambda cls: f"{cls.__module__}.{cls.__qualname__}")


@pytest.mark.parametrize("model", _all_wire_models(), ids=lambda cls: cls.__qualname__)
def test_every_key_is_camel_case(model: type[WireModel]) -> None:
    keys = [field.serialization_alias or field.alias or name for name, field in model.model_fields.items()]
    keys += [field.alias or name for name, field in model.model_computed_fields.items()]
    assert keys and not [key for key in keys if "_" in key], keys


def test_a_completion_status_has_the_documented_keys() -> None:
    outcome = CompletionOutcome(suggestion="x", tier="smollm2-135m", tokens_per_s=42.0, latency_ms=12.34,
                                generated_tokens=5, stop_reason="stop")
    assert CompletionStatus.of(outcome).to_json() == {
        "state": "ready", "tier": "smollm2-135m", "tokensPerSecond": 42.0, "timeToFirstTokenMs": None,
        "latencyMs": 12.3, "cacheHit": False, "confidence": None, "stopReason": "stop", "generatedTokens": 5,
    }  # no "hidden" or "background" key: those are only sent when they apply
    hidden = CompletionStatus.of(CompletionOutcome(suggestion=None, tier="t", hidden_reason="repeat", background=True))
    assert hidden.to_json()["hidden"] == "repeat" and hidden.to_json()["background"] is True


def test_the_pipelines_facts_are_camel_case_keys_of_the_status_and_the_raw_answer_stays_home() -> None:
    facts = PipelineFacts(prompt_tokens=120, reused_tokens=100, context_chunks=2, stopped_by="bracket_scope",
                          rules=["dedent", "repeat"], uri="file:///a.py", version=7)
    outcome = CompletionOutcome(suggestion="x", tier="t", facts=facts, generated="x = secret()\n")
    status = CompletionStatus.of(outcome).to_json()
    assert {key: status[key] for key in ("promptTokens", "reusedTokens", "contextChunks", "stoppedBy", "rules",
                                         "uri", "version")} == {
        "promptTokens": 120, "reusedTokens": 100, "contextChunks": 2, "stoppedBy": "bracket_scope",
        "rules": ["dedent", "repeat"], "uri": "file:///a.py", "version": 7,
    }
    assert "remoteError" not in status and "remoteFailover" not in status  # only sent when they apply
    assert "generated" not in status and "x = secret()" not in str(status)  # the model's raw text: not on the wire
    nothing_changed = CompletionOutcome(suggestion="x", tier="t", facts=PipelineFacts(rules=[]))
    assert CompletionStatus.of(nothing_changed).to_json()["rules"] == []  # no rule changed the answer: said so


def test_gearshift_complete_json_keys() -> None:
    result = CompletionResult.of(CompletionOutcome(suggestion=None, tier="t", hidden_reason="binary content"))
    assert set(result.to_json()) == {
        "suggestion", "tier", "confidence", "hiddenReason", "tokensPerSecond", "timeToFirstTokenMs", "latencyMs",
        "generatedTokens",
    }
