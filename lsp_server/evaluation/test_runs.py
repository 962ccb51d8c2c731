"""pass@1 for a private eval: the repository's own tests run with each suggestion in place, in a scratch copy.

The repository is copied once (the files git tracks, so no build outputs or virtual environments) into a
temporary folder; for each sample its file there is rewritten with the suggestion at the cursor, the user's test
command runs with a timeout, and the file is put back.  The user's working tree is never written.  First the
command runs on the untouched copy: tests that fail already say nothing about a suggestion, so pass@1 is then
not measured (``BaselineFailed``).  A hidden suggestion is a failed sample: it helped no one.
"""

from __future__ import annotations

import shutil
import subprocess
import tempfile
from pathlib import Path

from lsp_server.errors import GearshiftError
from lsp_server.evaluation.sampling import Sample

DEFAULT_TIMEOUT_S = 120.0
"""Longest one run of the test command may take; a run that takes longer fails."""


class BaselineFailed(GearshiftError):
    """The test command fails on the unchanged repository."""


class RepositoryTests:
    """Runs ``command`` (a shell command line, the user's own) in a scratch copy of the repository at ``root``."""

    def __init__(self, root: Path, files: list[str], command: str, timeout_s: float = DEFAULT_TIMEOUT_S) -> None:
        """``files``: paths relative to ``root`` to copy (``git ls-files``)."""
        self.command = command
        self.timeout_s = timeout_s
        self._scratch = tempfile.TemporaryDirectory(prefix="gearshift-eval-tests-")
        self.copy = Path(self._scratch.name)
        for name in files:
            source = root / name
            if source.is_file() and not source.is_symlink():
                target = self.copy / name
                target.parent.mkdir(parents=True, exist_ok=True)
                shutil.copy2(source, target)

    def __enter__(self) -> RepositoryTests:
        return self

    def __exit__(self, *_exc: object) -> None:
        self.close()

    def close(self) -> None:
        self._scratch.cleanup()

    def passes(self) -> bool:
        """Whether the command succeeds on the copy as it is now."""
        try:
            done = subprocess.run(
                self.command, shell=True, cwd=self.copy, capture_output=True, timeout=self.timeout_s,
                stdin=subprocess.DEVNULL,
            )
        except subprocess.TimeoutExpired:
            return False
        return done.returncode == 0

    def check_baseline(self) -> None:
        if not self.passes():
            raise BaselineFailed(
                f"the test command `{self.command}` fails on the unchanged repository (or takes over "
                f"{self.timeout_s:g} s): pass@1 would say nothing about the suggestions; fix the tests or choose "
                "another command"
            )

    def sample_passes(self, sample: Sample, suggestion: str | None) -> bool:
        """Whether the tests pass with ``suggestion`` inserted at ``sample``'s cursor (False when hidden)."""
        if suggestion is None:
            return False
        target = self.copy / sample.path
        original = target.read_bytes()
        try:
            program = sample.text[: sample.offset] + suggestion + sample.text[sample.offset :]
            target.write_text(program, encoding="utf-8")
            return self.passes()
        finally:
            target.write_bytes(original)
