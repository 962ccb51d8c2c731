"""The VS Code extension in a real VS Code (code-server) driven by Chromium, against the real server.

Runs ``editors/vscode/test/e2e/run.mjs``: it installs the packaged extension into code-server,
opens a Python file in a workspace whose path has a space and a non-ASCII character, types, and
asserts that ghost text appears, that Tab accepts it, that the status bar shows the tier and that the
Explain code action's answer opens. Skips, saying why, only when code-server, Chromium or Node are
not installed (one-time set-up: ``editors/vscode/test/e2e/setup.sh``; ``make test`` runs it).

Also checks, without any editor, that the settings the extension contributes are the server's.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from pathlib import Path

import pytest

from lsp_server.settings import GearshiftSettings

ROOT = Path(__file__).resolve().parents[2]
EXTENSION = ROOT / "editors" / "vscode"
VSIX = EXTENSION / "gearshift.vsix"
CHROMIUM = Path(os.environ.get("CHROMIUM", "/usr/bin/chromium"))
CLIENT_ONLY = {"serverPath", "pythonPath", "serverArgs", "trace"}


def find_code_server() -> str | None:
    """Same lookup as run.mjs: $CODE_SERVER, the set-up script's cache, then PATH."""
    if (env := os.environ.get("CODE_SERVER")) and Path(env).exists():
        return env
    cache = Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache"))
    cached = cache / "gearshift" / "e2e" / "node_modules" / ".bin" / "code-server"
    if cached.exists():
        return str(cached)
    return shutil.which("code-server")


def contributed_settings() -> dict[str, dict]:
    package = json.loads((EXTENSION / "package.json").read_text())
    return package["contributes"]["configuration"]["properties"]


def test_contributed_settings_are_server_settings_with_server_defaults() -> None:
    """Every `gearshift.<section>.<field>` VS Code setting exists in lsp_server/settings.py with the same default."""
    defaults = GearshiftSettings().model_dump(by_alias=True, mode="json")
    checked = 0
    for key, prop in contributed_settings().items():
        section, _, field = key.removeprefix("gearshift.").partition(".")
        if section in CLIENT_ONLY:
            continue
        assert section in defaults, f"{key}: the server has no section {section!r}"
        assert field in defaults[section], f"{key}: the server has no setting {section}.{field}"
        assert prop["default"] == defaults[section][field], f"{key}: default differs from the server's"
        checked += 1
    assert checked >= 6


def _newest_mtime(paths: list[Path]) -> float:
    return max(p.stat().st_mtime for p in paths)


def _build_vsix() -> None:
    """Package the extension when the .vsix is missing or older than its sources."""
    sources = [*EXTENSION.glob("src/*.ts"), EXTENSION / "package.json", EXTENSION / "package-lock.json"]
    if VSIX.exists() and VSIX.stat().st_mtime >= _newest_mtime(sources):
        return
    if not (EXTENSION / "node_modules" / ".package-lock.json").exists():
        subprocess.run(["npm", "ci", "--no-audit", "--no-fund"], cwd=EXTENSION, check=True, timeout=600)
    subprocess.run(["npm", "run", "package"], cwd=EXTENSION, check=True, timeout=600)


@pytest.mark.editor
@pytest.mark.e2e
@pytest.mark.model
def test_ghost_text_in_vscode(tmp_path: Path) -> None:
    if shutil.which("node") is None or shutil.which("npm") is None:
        pytest.skip("Node.js/npm not installed")
    code_server = find_code_server()
    if code_server is None:
        pytest.skip("code-server not installed (one-time: editors/vscode/test/e2e/setup.sh)")
    if not CHROMIUM.exists():
        pytest.skip(f"Chromium not installed at {CHROMIUM} (apt-get install -y chromium)")
    _build_vsix()

    artifacts = Path(os.environ.get("GEARSHIFT_E2E_ARTIFACTS", tmp_path))
    env = {**os.environ, "CODE_SERVER": code_server, "CHROMIUM": str(CHROMIUM)}
    proc = subprocess.run(
        ["node", "test/e2e/run.mjs", "--vsix", str(VSIX), "--artifacts", str(artifacts)],
        cwd=EXTENSION,
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )
    lines = [line for line in proc.stdout.splitlines() if line.startswith("{")]
    assert lines, f"run.mjs printed no result (exit {proc.returncode}):\n{proc.stdout}\n{proc.stderr}"
    result = json.loads(lines[-1])
    if proc.returncode == 2:
        pytest.skip(result.get("reason", "e2e set-up missing"))
    detail = f"{json.dumps(result, indent=2)}\n--- log ---\n{proc.stderr[-4000:]}"
    workspace = result["workspace"]
    assert " " in workspace and not workspace.isascii(), f"the workspace path is plain: {workspace}"
    assert proc.returncode == 0 and result["ok"], f"no ghost text in VS Code:\n{detail}"
    assert result["ghostText"].strip(), detail
    assert result["accepted"], f"Tab did not accept the suggestion:\n{detail}"
    assert Path(result["screenshot"]).exists()
    assert any(row.startswith("Tier") for row in result["statusQuickPick"]), (
        f"Show Status listed nothing:\n{detail}"
    )
    assert not any("0.0 tok/s" in row for row in result["statusQuickPick"]), (
        f"Show Status gives a request that generated nothing as 0.0 tok/s:\n{detail}"
    )
    assert "0.5B" in result["statusBarAfter"] or "135M" in result["statusBarAfter"], (
        f"the status bar does not show the tier:\n{detail}"
    )
    assert any("Explain selection" in row for row in result["codeActions"]), detail
    assert "(local)" in result["explainTab"], f"the answer is not labelled local:\n{detail}"
    assert "nothing left this machine" in result["explainText"], f"the answer preview is empty:\n{detail}"
    assert " · local (" not in result["explainText"], f"the answer repeats its title line:\n{detail}"
    # cloud.localOnly is set: the answer's toast says so and offers no escalation.
    assert any("the cloud is off" in n for n in result["notifications"]), detail
    assert not any("Ask the Cloud Model" in n for n in result["notifications"]), detail
    assert result["logLevels"].get("info"), f"the output channel has no info lines:\n{detail}"
    assert not result["infoLoggedAsError"], f"the server's INFO lines show as [error]:\n{detail}"
