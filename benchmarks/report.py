"""Writing a benchmark's report where ``--json`` asks."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any


def write_json(path: str | Path, report: Any) -> None:
    """``report`` as indented JSON at ``path``, its folder made if missing."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(report, indent=2))
