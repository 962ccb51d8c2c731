"""How many threads the engine decodes with by default."""

from __future__ import annotations

import os
from pathlib import Path


def default_n_threads() -> int:
    """Physical cores among the CPUs this process may run on (hyperthreads do not speed up decoding)."""
    try:
        cpus = sorted(os.sched_getaffinity(0))
    except AttributeError:  # not Linux
        return max(1, (os.cpu_count() or 2) // 2)
    cores = set()
    for cpu in cpus:
        topology = Path(f"/sys/devices/system/cpu/cpu{cpu}/topology")
        try:
            cores.add(((topology / "physical_package_id").read_text(), (topology / "core_id").read_text()))
        except OSError:
            return max(1, len(cpus))
    return max(1, len(cores))
