"""How many CPU cores other processes leave us: the latency guard's signal that a load has left.

A rung on fewer threads keeps its speed whether or not another process is busy
(that is why the guard goes there), so its measured speed cannot say when the
load leaves.  The machine's counters can: cores busy minus the cores this
process itself used is what everyone else takes.  Linux only (``/proc/stat``);
elsewhere ``free_cores`` is None and the guard probes on its schedule instead.
"""

from __future__ import annotations

import os
import platform
import threading
import time
from collections import deque
from collections.abc import Callable
from pathlib import Path

WINDOW_S = 2.0
"""Span the estimate covers: long enough to average a scheduler's time slices, short enough to notice a load
leaving within a few seconds."""

_SAMPLE_EVERY_S = 0.25
"""Readings closer together than this are not kept (the guard asks on every request)."""


def _read_proc_stat(path: Path) -> tuple[float, float] | None:
    """(busy, total) jiffies of all cores from the aggregate ``cpu`` line; None when unreadable."""
    try:
        with path.open() as stat:
            fields = stat.readline().split()
    except OSError:
        return None
    if len(fields) < 5 or fields[0] != "cpu":
        return None
    try:
        values = [float(v) for v in fields[1:]]
    except ValueError:
        return None
    # user nice system idle iowait irq softirq steal [guest guest_nice, already counted in user/nice]
    counted = values[:8]
    idle = counted[3] + (counted[4] if len(counted) > 4 else 0.0)
    total = sum(counted)
    return total - idle, total


class CpuMonitor:
    """Estimates the cores free for this process over the last ``WINDOW_S`` seconds; thread-safe."""

    def __init__(
        self,
        stat_path: Path = Path("/proc/stat"),
        n_cpus: int | None = None,
        clock: Callable[[], float] = time.monotonic,
        own_cpu_s: Callable[[], float] | None = None,
        our_cpus: int | None = None,
    ) -> None:
        """``n_cpus``: cores the machine has (default ``os.cpu_count()``); ``our_cpus``: cores this process may
        run on (default its CPU affinity); ``own_cpu_s``: this process's CPU seconds so far (default ``os.times``).
        """
        self._stat_path = stat_path
        self._machine_cpus = float(n_cpus or os.cpu_count() or 1)
        """Cores ``/proc/stat`` counts (the whole machine)."""
        if our_cpus is None and hasattr(os, "sched_getaffinity"):
            our_cpus = len(os.sched_getaffinity(0))
        self._our_cpus = float(min(our_cpus or self._machine_cpus, self._machine_cpus))
        """Cores this process may run on."""
        self._clock = clock
        self._own_cpu_s = own_cpu_s or (lambda: sum(os.times()[:2]))
        self._samples: deque[tuple[float, float, float, float]] = deque()
        """(time, busy jiffies, total jiffies, own CPU seconds), oldest first."""
        self._lock = threading.Lock()
        self.available = _read_proc_stat(stat_path) is not None

    def free_cores(self) -> float | None:
        """Cores not taken by other processes (this one's own use counts as free); None when unknown."""
        if not self.available:
            return None
        with self._lock:
            now = self._clock()
            if not self._samples or now - self._samples[-1][0] >= _SAMPLE_EVERY_S:
                reading = _read_proc_stat(self._stat_path)
                if reading is None:
                    return None
                self._samples.append((now, reading[0], reading[1], self._own_cpu_s()))
            while len(self._samples) > 2 and now - self._samples[1][0] >= WINDOW_S:
                self._samples.popleft()
            first, last = self._samples[0], self._samples[-1]
            if last[0] - first[0] < WINDOW_S / 2:
                return None  # not enough history yet to average over
            busy, total = last[1] - first[1], last[2] - first[2]
            if total <= 0:
                return None
            busy_cores = busy / total * self._machine_cpus
            own_cores = (last[3] - first[3]) / (last[0] - first[0])
            others = max(0.0, busy_cores - own_cores)
            return max(0.0, min(self._our_cpus, self._machine_cpus - others))


def cpu_name() -> str:
    """The processor's model name and how many CPUs this process sees."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return f"{line.split(':', 1)[1].strip()}, {os.cpu_count()} CPUs"
    except OSError:
        pass
    return f"{platform.processor() or platform.machine() or 'unknown CPU'}, {os.cpu_count()} CPUs"
