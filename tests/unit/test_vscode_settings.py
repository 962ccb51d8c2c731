"""VS Code's `gearshift.*` settings (editors/vscode/package.json) agree with the server's settings schema.

The extension sends those settings to the server as they are, so a default, type, choice or bound that differs
from ``GearshiftSettings`` would be a setting that shows one value in VS Code's UI and means another, or one the
server refuses.  The schema is pydantic's own (``model_json_schema(by_alias=True)``): nothing is copied by hand.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from lsp_server.settings import GearshiftSettings

PACKAGE_JSON = Path(__file__).resolve().parents[2] / "editors" / "vscode" / "package.json"
CLIENT_ONLY = {"gearshift.serverPath", "gearshift.pythonPath", "gearshift.serverArgs", "gearshift.trace.server"}
"""Settings of the extension itself (how to start the server), never sent to it."""

BOUNDS = ("minimum", "maximum", "exclusiveMinimum", "exclusiveMaximum")


def _vscode_settings() -> dict[str, dict[str, Any]]:
    properties = json.loads(PACKAGE_JSON.read_text(encoding="utf-8"))["contributes"]["configuration"]["properties"]
    return {key: value for key, value in properties.items() if key not in CLIENT_ONLY}


def _server_field(key: str) -> dict[str, Any] | None:
    """The JSON schema of the server setting ``gearshift.<section>.<field>``, or None when there is none.

    Its default is the one a fresh ``GearshiftSettings`` has (the schema leaves out those of a default_factory).
    """
    schema = GearshiftSettings.model_json_schema(by_alias=True)
    parts = key.split(".")
    if len(parts) != 3 or parts[0] != "gearshift":
        return None
    section = schema["properties"].get(parts[1], {}).get("$ref", "").rsplit("/", 1)[-1]
    field = schema["$defs"].get(section, {}).get("properties", {}).get(parts[2])
    if field is None:
        return None
    defaults = GearshiftSettings().model_dump(mode="json", by_alias=True)
    return {**field, "default": defaults[parts[1]][parts[2]]}


def _shape(field: dict[str, Any]) -> dict[str, Any]:
    """What VS Code's UI uses of a setting's schema, in one spelling: types as a set, the choices, the bounds
    (an integer's exclusive bound as the inclusive one next to it), the items' type and the default."""
    branches = field.get("anyOf", [field])
    types = set()
    for branch in branches:
        kind = branch.get("type")
        types.update(kind if isinstance(kind, list) else [kind])
    merged: dict[str, Any] = {}
    for branch in branches:
        merged.update({k: v for k, v in branch.items() if k != "type"})
    merged.update({k: v for k, v in field.items() if k not in ("anyOf", "type")})
    enum = merged.get("enum")
    choices = None if enum is None else {*enum, *([None] if "null" in types else [])}
    bounds = {name: merged[name] for name in BOUNDS if name in merged}
    if types - {"null"} == {"integer"}:
        if "exclusiveMinimum" in bounds:
            bounds["minimum"] = bounds.pop("exclusiveMinimum") + 1
        if "exclusiveMaximum" in bounds:
            bounds["maximum"] = bounds.pop("exclusiveMaximum") - 1
    items = merged.get("items", {}).get("type")
    return {"types": types, "choices": choices, "bounds": bounds, "items": items, "default": merged.get("default")}


SETTINGS = _vscode_settings()


def test_package_json_has_server_settings() -> None:
    assert len(SETTINGS) >= 20


@pytest.mark.parametrize("key", sorted(SETTINGS), ids=sorted(SETTINGS))
def test_vscode_setting_matches_the_server(key: str) -> None:
    server = _server_field(key)
    assert server is not None, f"{key} is not a server setting (lsp_server/settings.py)"
    assert _shape(SETTINGS[key]) == _shape(server)
