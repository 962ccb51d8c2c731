"""The latency guard's probing state: which higher rung is being measured, how often, and when not at all.

A downshifted guard runs one request now and then on a higher rung to see whether it would hold the target again.
Probes of a rung that looks plausible back off while they fail (to ``MAX_PROBE_BACKOFF_S``); rungs predicted too
slow are refreshed on a slower schedule (to ``MAX_REFRESH_S``).  An upshift reversed within ``FLAP_WINDOW_S``
means the load comes and goes: probing stops for a minute, doubling after each reversal in a row.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

PROBES_TO_UPSHIFT = 2
"""Consecutive fast probes needed to shift up (the second runs on the very next request), so one lucky request
(a prompt-lookup burst) does not move the guard."""

MAX_PROBE_BACKOFF_S = 8.0
"""Probes of a plausible rung back off while they fail, never beyond this: the guard notices within ~10 s that a
load left."""

MAX_REFRESH_S = 60.0
"""Rungs predicted too slow are still probed now and then (their remembered speed may date from a loaded period),
backing off to this."""

FLAP_WINDOW_S = 60.0
"""A downshift this soon after an upshift reverses it: the guard then stops probing for this long
(doubling after each reversal in a row, reset by an upshift that holds)."""

MAX_BLOCK_S = 600.0
"""Longest pause of probing after reversals in a row."""


@dataclass
class ProbeState:
    """Probing bookkeeping (the guard's lock covers it)."""

    probe_interval_s: float
    pending: int | None = None
    """Rung index handed out by probe_rung and not yet recorded."""

    plausible: bool = True
    """Whether the pending probe's rung was predicted to hold the target."""

    good: int = 0
    """Fast probes in a row on ``good_rung``."""

    good_rung: int | None = None
    last_probe: float = -math.inf
    wait_s: float = 0.0
    refresh_wait_s: float = 0.0
    last_upshift: float = -math.inf
    flaps: int = 0
    """Upshifts reversed within FLAP_WINDOW_S, in a row."""

    blocked_until: float = -math.inf

    def __post_init__(self) -> None:
        self.restart_backoff(self.probe_interval_s)

    def restart_backoff(self, probe_interval_s: float) -> None:
        self.probe_interval_s = probe_interval_s
        self.wait_s = probe_interval_s
        self.refresh_wait_s = max(probe_interval_s, MAX_PROBE_BACKOFF_S)

    def reset(self) -> None:
        self.pending = None
        self.good = 0
        self.good_rung = None

    def reset_confirmation(self) -> None:
        self.good, self.good_rung = 0, None

    def confirming(self, current: int) -> int | None:
        """The rung a fast probe is waiting to be confirmed on (above ``current``), else None."""
        if self.good and self.good_rung is not None and self.good_rung < current:
            return self.good_rung
        return None

    def hand_out(self, index: int, *, plausible: bool, now: float) -> None:
        self.pending = index
        self.plausible = plausible
        self.last_probe = now

    def fast(self, index: int) -> int:
        """Count a fast probe of rung ``index``; how many in a row it has had."""
        if self.good_rung != index:
            self.good_rung, self.good = index, 0
        self.good += 1
        return self.good

    def failed(self) -> None:
        """A probe too slow up there: probe less often while it keeps failing (capped, to notice a load leaving)."""
        self.reset_confirmation()
        if self.plausible:
            self.wait_s = min(max(self.probe_interval_s, MAX_PROBE_BACKOFF_S), 2 * self.wait_s)
        else:
            self.refresh_wait_s = min(MAX_REFRESH_S, 2 * self.refresh_wait_s)

    def after_shift(self, direction: str, now: float, *, entered_by_upshift: bool) -> str:
        """Note a shift; what to add to its reason (a pause of probing after a reversed upshift), or ""."""
        note = ""
        if direction == "down" and entered_by_upshift:
            if now - self.last_upshift < FLAP_WINDOW_S:
                # The last upshift did not hold: the load comes and goes.  Stay low a while, longer each time.
                self.flaps += 1
                hold_off = min(MAX_BLOCK_S, FLAP_WINDOW_S * 2 ** (self.flaps - 1))
                self.blocked_until = now + hold_off
                note = f"; no upshift for {hold_off:g} s (upshift reversed {self.flaps}x in a row)"
            else:
                self.flaps = 0
        elif direction == "up":
            self.last_upshift = now
        self.restart_backoff(self.probe_interval_s)
        self.reset()
        return note
