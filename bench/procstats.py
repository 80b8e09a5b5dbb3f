"""CPU time and memory of another process, read from Linux's /proc (no extra dependency)."""

from __future__ import annotations

import os
from pathlib import Path

_TICKS = os.sysconf("SC_CLK_TCK")


def children(pid: int) -> list[int]:
    """The process's live child processes (/proc/<pid>/task/<tid>/children, proc(5))."""
    found: list[int] = []
    for task in Path(f"/proc/{pid}/task").glob("*"):
        try:
            found += [int(child) for child in (task / "children").read_text().split()]
        except OSError:  # the task ended meanwhile
            continue
    return found


def _stat_seconds(pid: int, fields: int) -> float:
    """The sum of /proc/<pid>/stat's first `fields` CPU fields, in seconds: utime and stime (2), then cutime and
    cstime (4: its children that ended and were waited for); 0 when the process ended meanwhile."""
    try:
        values = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:  # ended meanwhile
        return 0.0
    # After the command name: state is field 3, utime 14 ... cstime 17 (proc(5)), so indexes 11 to 14 here.
    return sum(int(value) for value in values[11 : 11 + fields]) / _TICKS


def cpu_seconds(pid: int) -> float:
    """User + system CPU seconds the process and its descendants have used so far.

    Descendants count because devhost runs each function group in a worker process of its own; a child that ended
    and was waited for is in the parent's cutime/cstime (fields 16, 17), a live one is read itself.
    """
    return _stat_seconds(pid, 4) + sum(cpu_seconds(child) for child in children(pid))


def own_cpu_seconds(pid: int) -> float:
    """User + system CPU seconds of the process alone (no descendant): devhost's own process, the part Azure's
    Functions host (.NET) does in production (polling the queue, deleting messages, dispatching invocations)."""
    return _stat_seconds(pid, 2)


def _status_kib(pid: int, key: str) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(f"{key}:"):
            return int(line.split()[1])
    return 0


def peak_rss_mib(pid: int) -> float:
    """The peak resident set size (VmHWM) of the process and its live descendants together, in MiB."""
    kib = _status_kib(pid, "VmHWM") + sum(peak_rss_mib(child) * 1024 for child in children(pid))
    return round(kib / 1024, 1)


def rss_mib(pid: int) -> float:
    """The process's resident set size now (VmRSS) in MiB."""
    return round(_status_kib(pid, "VmRSS") / 1024, 1)


def machine_cpu() -> tuple[float, float]:
    """(busy, total) CPU seconds of the whole machine since boot, every core: /proc/stat's `cpu` line (proc(5));
    idle and iowait are the idle part."""
    fields = [int(value) for value in Path("/proc/stat").read_text().splitlines()[0].split()[1:]]
    total = sum(fields[:8])  # user nice system idle iowait irq softirq steal (guest is inside user)
    return (total - fields[3] - fields[4]) / _TICKS, total / _TICKS


def busy_share(before: tuple[float, float], after: tuple[float, float]) -> float:
    """The share of the machine's CPU (all cores) that was busy between two `machine_cpu()` readings: every process,
    the workers, Azurite, the sandbox and anything else. Near 1.0, a figure below its target measures the machine."""
    total = after[1] - before[1]
    return round((after[0] - before[0]) / total, 3) if total > 0 else 0.0
