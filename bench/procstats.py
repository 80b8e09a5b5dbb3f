"""CPU time and memory of another process, read from Linux's /proc (no extra dependency)."""

from __future__ import annotations

import os
from pathlib import Path

_TICKS = os.sysconf("SC_CLK_TCK")


def cpu_seconds(pid: int) -> float:
    """User + system CPU seconds the process has used so far."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    # After the command name: state is field 3, utime 14 and stime 15 (proc(5)), so indexes 11 and 12 here.
    return (int(fields[11]) + int(fields[12])) / _TICKS


def _status_kib(pid: int, key: str) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(f"{key}:"):
            return int(line.split()[1])
    return 0


def peak_rss_mib(pid: int) -> float:
    """The process's peak resident set size (VmHWM) in MiB."""
    return round(_status_kib(pid, "VmHWM") / 1024, 1)


def rss_mib(pid: int) -> float:
    """The process's resident set size now (VmRSS) in MiB."""
    return round(_status_kib(pid, "VmRSS") / 1024, 1)
