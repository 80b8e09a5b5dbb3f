"""Child processes of the local world: stopping them the way every local tool here needs (SIGTERM, a grace period,
then SIGKILL) and reading their logs."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path
from typing import Any

# Where every process of the local world runs (the repository root: `python -m devhost` and friends import from it).
REPO_ROOT = Path(__file__).resolve().parent.parent


def stop_process(process: subprocess.Popen[Any], grace_seconds: float = 15.0) -> int:
    """Ask the process to stop (SIGTERM), kill it if it is still running after the grace; return its exit code."""
    if process.poll() is None:
        process.terminate()
        try:
            process.wait(timeout=grace_seconds)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
    return process.returncode


def log_records(log: Path) -> list[dict[str, Any]]:
    """devhost's JSON log lines so far (other lines skipped)."""
    records = []
    for line in log.read_text(encoding="utf-8", errors="replace").splitlines():
        try:
            record = json.loads(line)
        except json.JSONDecodeError:
            continue
        if isinstance(record, dict):
            records.append(record)
    return records


def tail(path: Path, lines: int = 20) -> str:
    """The last lines of a log file."""
    if not path.exists():
        return "(no log)"
    return "\n".join(path.read_text(encoding="utf-8", errors="replace").splitlines()[-lines:])
