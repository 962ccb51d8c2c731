"""What this machine offers a model: RAM (within this process's cgroup), GPUs, memory read bandwidth, our RSS."""

from __future__ import annotations

import os
import resource
import shutil
import subprocess
import time
from pathlib import Path

from pydantic import Field

from lsp_server.wire import WireModel

BANDWIDTH_BYTES = 256 << 20


class GpuMemory(WireModel):
    index: int
    name: str
    total_bytes: int
    free_bytes: int


class MachineMemory(WireModel):
    ram_total_bytes: int | None
    ram_available_bytes: int | None
    """MemAvailable, lowered to the cgroup's remaining limit when this process runs in a smaller one."""

    gpus: list[GpuMemory] = Field(default_factory=list)
    gpu_offload: bool = False
    """llama.cpp here was built with a GPU backend, so a model may live in VRAM instead of RAM."""


def _meminfo() -> dict[str, int]:
    values: dict[str, int] = {}
    try:
        with open("/proc/meminfo") as handle:
            for line in handle:
                key, _, rest = line.partition(":")
                parts = rest.split()
                if parts and parts[0].isdigit():
                    values[key] = int(parts[0]) * (1024 if parts[1:2] == ["kB"] else 1)
    except OSError:
        pass
    return values


def _cgroup_room() -> int | None:
    """Bytes this cgroup may still allocate (v2, then v1), or None without a limit."""
    for limit_file, usage_file in (
        ("/sys/fs/cgroup/memory.max", "/sys/fs/cgroup/memory.current"),
        ("/sys/fs/cgroup/memory/memory.limit_in_bytes", "/sys/fs/cgroup/memory/memory.usage_in_bytes"),
    ):
        try:
            limit_text = Path(limit_file).read_text().strip()
            usage = int(Path(usage_file).read_text().strip())
        except (OSError, ValueError):
            continue
        if limit_text == "max" or not limit_text.isdigit() or int(limit_text) >= 1 << 60:
            return None
        return max(int(limit_text) - usage, 0)
    return None


def available_ram_bytes(meminfo: dict[str, int] | None = None) -> int | None:
    """RAM a new allocation can have now: MemAvailable, lowered to the cgroup's room; None when unknown."""
    available = (meminfo if meminfo is not None else _meminfo()).get("MemAvailable")
    room = _cgroup_room()
    if room is not None:
        available = room if available is None else min(available, room)
    return available


def nvidia_gpus() -> list[GpuMemory]:
    """Memory of each NVIDIA GPU from nvidia-smi; empty when there is none (or no driver)."""
    exe = shutil.which("nvidia-smi")
    if exe is None:
        return []
    try:
        out = subprocess.run(
            [exe, "--query-gpu=index,name,memory.total,memory.free", "--format=csv,noheader,nounits"],
            capture_output=True,
            text=True,
            timeout=10,
            check=True,
        ).stdout
    except (OSError, subprocess.SubprocessError):
        return []
    return parse_nvidia_smi(out)


def parse_nvidia_smi(out: str) -> list[GpuMemory]:
    """Rows of ``index, name, memory.total, memory.free`` (MiB, csv, noheader, nounits); bad rows skipped."""
    gpus = []
    for line in out.splitlines():
        fields = [f.strip() for f in line.rsplit(",", 2)]
        head = fields[0].split(",", 1) if fields else []
        if len(fields) != 3 or len(head) != 2:
            continue
        try:
            gpus.append(GpuMemory(index=int(head[0]), name=head[1].strip(), total_bytes=int(fields[1]) << 20,
                                  free_bytes=int(fields[2]) << 20))
        except ValueError:
            continue
    return gpus


def machine_memory() -> MachineMemory:
    info = _meminfo()
    gpus = nvidia_gpus()
    return MachineMemory(
        ram_total_bytes=info.get("MemTotal"), ram_available_bytes=available_ram_bytes(info), gpus=gpus,
        gpu_offload=bool(gpus) and _llama_gpu_offload(),
    )


def _llama_gpu_offload() -> bool:
    try:
        import llama_cpp
    except Exception:  # no llama.cpp, or one that fails to load: then it cannot use the GPU either
        return False
    return bool(llama_cpp.llama_supports_gpu_offload())


def measure_read_bandwidth(n_bytes: int = BANDWIDTH_BYTES, repeats: int = 5) -> float:
    """Memory read bandwidth in bytes/s: the best of ``repeats`` sums over an array of ``n_bytes`` (one thread)."""
    import numpy as np

    array = np.ones(
        n_bytes // 8, dtype=np.float64
    )  # ones, not empty: the pages must be resident before timing
    best = float("inf")
    for _ in range(repeats):
        started = time.perf_counter()
        array.sum()
        best = min(best, time.perf_counter() - started)
    return array.nbytes / best


def rss_bytes() -> int:
    """Resident set size of this process now (file-backed pages of memory-mapped weights included)."""
    try:
        with open("/proc/self/statm") as handle:
            return int(handle.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")
    except (OSError, ValueError, IndexError):
        return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
