"""One log line per cloud request: what was sent, in sizes and names, never the content.

The log line is what a user (or their security team) greps to see what left
the machine: task, file name, characters sent, redactions by kind and the
model.  The last few records are also kept in memory for ``gearshift.status``.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import Counter, deque
from collections.abc import Iterable, Mapping
from pathlib import PurePath
from typing import Any

from pydantic import ConfigDict, Field

from lsp_server.cloud.redaction import Redaction
from lsp_server.wire import WireModel

log = logging.getLogger("gearshift.cloud.audit")


class AuditRecord(WireModel):
    """What one cloud request carried, in sizes and names only (camelCase in the status command)."""

    model_config = ConfigDict(frozen=True)

    task: str
    file_name: str | None
    """Base name of the file the text came from (no directories), or None for an unsaved buffer."""
    sent_chars: int
    redactions: dict[str, int] = Field(default_factory=dict)
    """Redactions by kind, e.g. ``{"aws_access_key": 1}``."""
    model: str = ""
    time: float = Field(default_factory=time.time)

    @property
    def redaction_count(self) -> int:
        return sum(self.redactions.values())


class AuditLog:
    """The last ``maxlen`` cloud requests, newest last; thread-safe."""

    def __init__(self, maxlen: int = 20) -> None:
        self._records: deque[AuditRecord] = deque(maxlen=maxlen)
        self._lock = threading.Lock()

    def append(self, record: AuditRecord) -> None:
        with self._lock:
            self._records.append(record)

    def records(self) -> list[AuditRecord]:
        with self._lock:
            return list(self._records)

    def snapshot(self) -> list[dict[str, Any]]:
        return [record.to_json() for record in self.records()]


def _redaction_counts(redactions: Iterable[Redaction] | Mapping[str, int]) -> dict[str, int]:
    if isinstance(redactions, Mapping):
        return {str(kind): int(count) for kind, count in redactions.items() if count}
    return dict(Counter(r.kind for r in redactions))


def record_cloud_request(
    logger: logging.Logger | None,
    *,
    task: str,
    file_name: str | None,
    sent_chars: int,
    redactions: Iterable[Redaction] | Mapping[str, int],
    model: str,
    history: AuditLog | None = None,
) -> AuditRecord:
    """Log one INFO line for a cloud request about to be sent, and keep it in ``history``.

    ``file_name`` may be a path or URI; only its base name is logged.
    ``redactions`` is ``RedactionResult.redactions`` or counts by kind.
    """
    base_name = PurePath(file_name.replace("\\", "/")).name if file_name else None
    record = AuditRecord(
        task=task,
        file_name=base_name,
        sent_chars=sent_chars,
        redactions=_redaction_counts(redactions),
        model=model,
    )
    by_kind = ", ".join(f"{kind}={count}" for kind, count in sorted(record.redactions.items()))
    (logger or log).info(
        "cloud request: task=%s file=%s sent_chars=%d redactions=%d%s model=%s",
        record.task,
        record.file_name or "<unsaved>",
        record.sent_chars,
        record.redaction_count,
        f" ({by_kind})" if by_kind else "",
        record.model,
    )
    if history is not None:
        history.append(record)
    return record
