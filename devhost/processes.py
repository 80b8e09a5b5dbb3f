"""Stopping child processes the way every local tool here needs: SIGTERM, a grace period, then SIGKILL."""

from __future__ import annotations

import subprocess
from typing import Any


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
