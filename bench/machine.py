"""How busy this machine is: a benchmark's own CPU time, and everybody else's while it runs.

On a shared machine wall-clock figures move with other people's load; these meters let a
benchmark record it next to each figure and wait for a quiet moment before timing.
"""

from __future__ import annotations

import os
from pathlib import Path
import platform
import resource
import time

QUIET_LOAD = 0.05  # other processes' share of the machine above which timings are flagged

def _own_cpu_s() -> float:
    """User + system CPU of this process and of its reaped children (the pool workers, once the
    pool is shut down), all threads included."""
    own = resource.getrusage(resource.RUSAGE_SELF)
    children = resource.getrusage(resource.RUSAGE_CHILDREN)
    return own.ru_utime + own.ru_stime + children.ru_utime + children.ru_stime


def _machine_busy_s() -> float | None:
    """CPU seconds the whole machine has spent busy since boot (Linux), or None."""
    try:
        with open("/proc/stat", encoding="ascii") as handle:
            fields = handle.readline().split()
    except OSError:
        return None
    if not fields or fields[0] != "cpu":
        return None
    user, nice, system, _idle, _iowait, irq, softirq, steal = (int(v) for v in fields[1:9])
    return (user + nice + system + irq + softirq + steal) / os.sysconf("SC_CLK_TCK")


class CpuMeter:
    """Wall time, own CPU time and other processes' CPU time between start() and stop().

    The machine may be shared: ``other_load`` (the other processes' CPU as a share of all CPUs
    over the run) says how much a figure may be disturbed; ``cpu_s`` hardly depends on it.
    """

    def start(self) -> CpuMeter:
        self._wall, self._own, self._busy = time.perf_counter(), _own_cpu_s(), _machine_busy_s()
        return self

    def stop(self) -> dict[str, float | None]:
        wall = time.perf_counter() - self._wall
        own = _own_cpu_s() - self._own
        busy = _machine_busy_s()
        other = None if busy is None or self._busy is None else max(0.0, busy - self._busy - own)
        cpus = os.cpu_count() or 1
        return {
            "cpu_s": own,
            "other_cpu_s": other,
            "other_load": None if other is None or wall <= 0 else other / (wall * cpus),
        }


def wait_for_quiet(limit_s: float, say) -> None:
    """Wait (at most ``limit_s``) for a few seconds in which other processes leave the machine
    nearly idle, so that a timed run starts on a quiet machine. Nothing to do without /proc/stat."""
    deadline = time.monotonic() + limit_s
    while True:
        meter = CpuMeter().start()
        time.sleep(3.0)
        load = meter.stop()["other_load"]
        if load is None or load <= QUIET_LOAD:
            return
        if time.monotonic() >= deadline:
            say(f"  the machine is still busy ({100 * load:.0f} % used by other processes); timing anyway")
            return



def cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


