"""Where a private eval's report is kept, and how it is written (atomically, no document text in it).

One file per repository, ``$XDG_CACHE_HOME/gearshift/eval/<repo-hash>.json`` (default ``~/.cache/...``), named
by a hash of the repository's path so that the path itself is not in the name.  A tier measured by an earlier
run and not by this one is kept, with its own sample set and date, so ``gearshift fit`` can read every tier
measured here.
"""

from __future__ import annotations

import hashlib
import json
import os
import tempfile
from pathlib import Path
from typing import Any

REPORT_VERSION = 1


def eval_cache_dir() -> Path:
    """``$XDG_CACHE_HOME/gearshift/eval``, by default ``~/.cache/gearshift/eval``."""
    cache = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(cache).expanduser() / "gearshift" / "eval"


def repository_key(root: Path) -> str:
    """A stable short name for the repository at ``root``."""
    return hashlib.sha256(str(root.resolve()).encode("utf-8", "surrogateescape")).hexdigest()[:16]


def report_path(root: Path) -> Path:
    return eval_cache_dir() / f"{repository_key(root)}.json"


def load_report(path: Path) -> dict[str, Any] | None:
    """The report at ``path``, or None when there is none or it cannot be read (an older or broken file)."""
    try:
        report = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return report if isinstance(report, dict) and report.get("version") == REPORT_VERSION else None


def merged(previous: dict[str, Any] | None, report: dict[str, Any]) -> dict[str, Any]:
    """``report`` plus the tiers only ``previous`` measured."""
    if not previous or not isinstance(previous.get("tiers"), dict):
        return report
    tiers = {name: tier for name, tier in previous["tiers"].items() if name not in report["tiers"]}
    return {**report, "tiers": {**tiers, **report["tiers"]}}


def write_json(path: Path, data: dict[str, Any]) -> None:
    """Write ``data`` to ``path`` whole or not at all (a temporary file beside it, renamed)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    handle, temporary = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".partial")
    try:
        with os.fdopen(handle, "w", encoding="utf-8") as out:
            json.dump(data, out, indent=2)
            out.write("\n")
        os.replace(temporary, path)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise


def save_report(root: Path, report: dict[str, Any]) -> Path:
    """Keep ``report`` in the user cache (merged with the tiers an earlier run measured); returns its path."""
    path = report_path(root)
    write_json(path, merged(load_report(path), report))
    return path
