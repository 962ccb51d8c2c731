"""What the latency guard shows: ``gearshift.status``'s guard section and the shift fields of a completion's status."""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from lsp_server.wire import WireModel

Direction = Literal["up", "down"]


class ShiftRecord(WireModel):
    """One shift in the guard's history."""

    t_s: float
    """Seconds since the guard was created, rounded to 0.01."""

    from_rung: str = Field(alias="from")
    to_rung: str = Field(alias="to")
    reason: str
    direction: Direction


class ShiftStatus(WireModel):
    """The fields a completion's ``gearshift/status`` carries when it made a shift."""

    reason: str
    shift_from: str
    shift_to: str
    shift_direction: Direction


class RungState(WireModel):
    """One rung and what the guard measured on it."""

    name: str
    model: str
    n_threads: int | None
    prompt_lookup: bool
    max_tokens_scale: float
    context_scale: float
    median_tok_s: float | None
    median_ttft_ms: float | None
    reference_tok_s: float | None
    """Best median of a full window measured while the rung's cores were free: its unloaded speed."""

    samples: int
    quality: float | None
    """Measured quality score (``qualitySource``); None: not measured."""

    below_quality_floor: bool
    """The guard never shifts to it."""


class GuardState(WireModel):
    """The guard as the ``gearshift.status`` command shows it."""

    enabled: bool
    target_tok_s: float
    current: str
    top: str
    probing: str | None
    upshift_blocked_s: float | None
    quality_floor: float
    quality_source: str
    rungs: list[RungState]
    shifts: list[ShiftRecord]
    """The last 20, oldest first."""
