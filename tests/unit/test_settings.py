"""Settings as editors send them: camelCase, wrapped or not, partial, invalid."""

from __future__ import annotations

import pytest

from lsp_server.settings import GearshiftSettings, SettingsError, parse_settings


def test_defaults_have_a_docstring_for_every_field():
    import typing

    for section in GearshiftSettings.model_fields.values():
        model = section.annotation
        if typing.get_origin(model) is list:  # a list of sections (endpoints)
            model = typing.get_args(model)[0]
        for name, field in model.model_fields.items():
            assert field.description, f"{model.__name__}.{name} has no docstring"


@pytest.mark.parametrize(
    "raw, check",
    [
        pytest.param({"completion": {"maxTokens": 12}}, lambda s: s.completion.max_tokens == 12, id="camelCase"),
        pytest.param({"completion": {"max_tokens": 12}}, lambda s: s.completion.max_tokens == 12, id="snake_case"),
        pytest.param({"gearshift": {"cloud": {"localOnly": True}}}, lambda s: s.cloud.local_only, id="vscode-wrapped"),
        pytest.param({"engine": None}, lambda s: s.engine.n_ctx == 4096, id="null-section-is-default"),
        pytest.param(None, lambda s: s == GearshiftSettings(), id="none"),
    ],
)
def test_parse(raw, check):
    assert check(parse_settings(raw))


def test_partial_update_keeps_other_fields():
    base = parse_settings({"completion": {"maxTokens": 12, "minConfidence": 0.5}})
    updated = parse_settings({"completion": {"maxTokens": 20}}, base)
    assert updated.completion.max_tokens == 20
    assert updated.completion.min_confidence == 0.5


@pytest.mark.parametrize(
    "raw, fragment",
    [
        pytest.param({"engine": {"nCtx": 0}}, "engine.nCtx", id="zero-context"),
        pytest.param({"engine": {"nThreads": -2}}, "engine.nThreads", id="negative-threads"),
        pytest.param({"guard": {"inlineTargetTokS": 0}}, "guard.inlineTargetTokS", id="zero-target"),
        pytest.param({"guard": {"chatTargetTokS": -5}}, "guard.chatTargetTokS", id="negative-target"),
        pytest.param({"engine": {"kvCacheTypeK": "q3"}}, "engine.kvCacheTypeK", id="unknown-cache-type"),
        pytest.param({"completion": {"bogus": 1}}, "completion.bogus", id="unknown-field"),
        pytest.param([1, 2], "must be an object", id="not-an-object"),
    ],
)
def test_invalid_settings_give_one_clear_message(raw, fragment):
    with pytest.raises(SettingsError) as error:
        parse_settings(raw)
    assert fragment in str(error.value)


def test_team_endpoints_parse_and_a_null_list_is_empty():
    settings = parse_settings({"endpoints": [{"name": "team", "urls": ["http://gpu:8080"], "api": "openai",
                                             "model": "qwen"}], "models": {"ladder": ["team"]}})
    assert settings.endpoints[0].api == "openai" and settings.endpoints[0].urls == ["http://gpu:8080"]
    assert parse_settings({"endpoints": None}).endpoints == []
    with pytest.raises(SettingsError, match="urls"):
        parse_settings({"endpoints": [{"name": "team", "urls": []}]})
