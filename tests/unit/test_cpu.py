"""CpuMonitor: cores other processes leave free, from /proc/stat counters (a file we write) and our own CPU time."""

from __future__ import annotations

import os
import time
from pathlib import Path

import pytest

from lsp_server.inference.cpu import WINDOW_S, CpuMonitor


class Machine:
    """A two-core machine's /proc/stat, advanced by hand: jiffies at 100 per core-second."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.now = 0.0
        self.busy = 0.0
        self.idle = 0.0
        self.own_cpu_s = 0.0
        self.write()

    def write(self) -> None:
        # user nice system idle iowait irq softirq steal guest guest_nice
        self.path.write_text(f"cpu  {self.busy:.0f} 0 0 {self.idle:.0f} 0 0 0 0 0 0\ncpu0 0 0 0 0 0 0 0 0 0 0\n")

    def run(self, seconds: float, others_cores: float, own_cores: float) -> None:
        busy = others_cores + own_cores
        self.busy += busy * seconds * 100
        self.idle += (2 - busy) * seconds * 100
        self.own_cpu_s += own_cores * seconds
        self.now += seconds
        self.write()


def monitor_of(machine: Machine) -> CpuMonitor:
    return CpuMonitor(
        machine.path, n_cpus=2, clock=lambda: machine.now, own_cpu_s=lambda: machine.own_cpu_s, our_cpus=2
    )


@pytest.mark.parametrize(
    "others, own, free",
    [
        pytest.param(1.0, 1.0, 1.0, id="a-hog-on-one-core-while-we-decode-on-the-other"),
        pytest.param(0.0, 2.0, 2.0, id="our-own-threads-count-as-free"),
        pytest.param(0.0, 0.0, 2.0, id="idle-machine"),
        pytest.param(2.0, 0.0, 0.0, id="two-hogs"),
    ],
)
def test_free_cores_are_the_machine_minus_what_others_use(tmp_path, others, own, free):
    machine = Machine(tmp_path / "stat")
    monitor = monitor_of(machine)
    assert monitor.free_cores() is None  # no history to average over yet
    for _ in range(12):
        machine.run(0.25, others, own)
        reading = monitor.free_cores()
    assert reading == pytest.approx(free, abs=0.01)


def test_a_load_that_leaves_is_seen_within_the_window(tmp_path):
    machine = Machine(tmp_path / "stat")
    monitor = monitor_of(machine)
    for _ in range(40):
        machine.run(0.25, 1.0, 1.0)
        monitor.free_cores()
    for _ in range(int(WINDOW_S / 0.25) + 2):
        machine.run(0.25, 0.0, 1.0)
        reading = monitor.free_cores()
    assert reading == pytest.approx(2.0, abs=0.01)


@pytest.mark.parametrize("content", ["", "intr 1 2 3\n", "cpu  a b c d e\n"])
def test_an_unreadable_or_odd_stat_file_means_unknown(tmp_path, content):
    path = tmp_path / "stat"
    path.write_text(content)
    assert CpuMonitor(path).free_cores() is None
    assert CpuMonitor(tmp_path / "missing").free_cores() is None


def test_this_machine_gives_a_reading_between_zero_and_its_cores():
    monitor = CpuMonitor()
    if not monitor.available:
        pytest.skip("no /proc/stat here")
    deadline = time.monotonic() + 1.5
    reading = None
    while time.monotonic() < deadline and reading is None:
        time.sleep(0.3)
        reading = monitor.free_cores()
    assert reading is not None and 0.0 <= reading <= (os.cpu_count() or 1)
