"""pass@1 by the repository's own tests: a scratch copy, the suggestion in place, the user's tree untouched."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

from lsp_server.evaluation.sampling import Sample
from lsp_server.evaluation.test_runs import BaselineFailed, RepositoryTests

MODULE = "def double(x):\n    return x * 2\n"
CHECK = "from mod import double\nassert double(3) == 6\n"


def repository(tmp_path: Path) -> Path:
    root = tmp_path / "repo"
    root.mkdir()
    (root / "mod.py").write_text(MODULE)
    (root / "check.py").write_text(CHECK)
    return root


def masked(line: str = "    return x * 2") -> Sample:
    text = MODULE.replace(line.strip(), "")
    offset = text.index("\n", text.index("def")) + 1 + len(line) - len(line.lstrip())
    return Sample(path="mod.py", line=2, n_lines=1, language="python", text=text, offset=offset,
                  expected=line.strip())


COMMAND = f"{sys.executable} check.py"


def test_right_and_wrong_suggestions(tmp_path):
    root = repository(tmp_path)
    with RepositoryTests(root, ["mod.py", "check.py"], COMMAND) as runner:
        runner.check_baseline()
        sample = masked()
        assert runner.sample_passes(sample, "return x * 2")
        assert runner.sample_passes(sample, "return x + x")  # different text, same behaviour: pass@1 counts it
        assert not runner.sample_passes(sample, "return x * 3")
        assert not runner.sample_passes(sample, None)  # hidden: no help
        assert runner.sample_passes(sample, "return 2 * x")  # the copy was put back after each run
        copy = runner.copy
    assert (root / "mod.py").read_text() == MODULE  # the user's tree is never written
    assert not copy.exists()


def test_failing_baseline_is_refused(tmp_path):
    root = repository(tmp_path)
    (root / "check.py").write_text("raise SystemExit(1)\n")
    with RepositoryTests(root, ["mod.py", "check.py"], COMMAND) as runner, pytest.raises(BaselineFailed, match="fails"):
        runner.check_baseline()


def test_a_hanging_test_run_fails_after_its_timeout(tmp_path):
    root = repository(tmp_path)
    with RepositoryTests(root, ["mod.py", "check.py"], COMMAND, timeout_s=1.0) as runner:
        sample = masked()
        assert not runner.sample_passes(sample, "return __import__('time').sleep(30)")


def test_only_listed_files_are_copied(tmp_path):
    root = repository(tmp_path)
    (root / "big.bin").write_bytes(b"\0" * 10)
    with RepositoryTests(root, ["mod.py", "check.py"], COMMAND) as runner:
        assert sorted(p.name for p in runner.copy.iterdir()) == ["check.py", "mod.py"]
