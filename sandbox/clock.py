"""The sandbox's time: real time plus an offset a test can advance (tokens expire, windows slide) without sleeping."""

from __future__ import annotations

import threading
import time


class SandboxClock:
    """Wall-clock and monotonic seconds, both shifted by `advance()`; shared by every service."""

    def __init__(self) -> None:
        self._offset = 0.0
        self._lock = threading.Lock()

    def now(self) -> float:
        """Epoch seconds as the sandbox sees them (token iat/exp, Key Vault timestamps)."""
        return time.time() + self._offset

    def monotonic(self) -> float:
        """Monotonic seconds as the sandbox sees them (rate windows, queue timeouts)."""
        return time.monotonic() + self._offset

    def advance(self, seconds: float) -> None:
        """Move the sandbox's time forward: tokens age and BC's sliding windows empty."""
        if seconds < 0:
            raise ValueError("the sandbox clock only moves forward")
        with self._lock:
            self._offset += seconds

    def reset(self) -> None:
        """Back to real time."""
        with self._lock:
            self._offset = 0.0
