"""This process's identity, as it names itself in shared rows (a job's claim, the token refresh lease)."""

from __future__ import annotations

import os
import socket


def process_id() -> str:
    """`{hostname}:{pid}`: the instance and its worker process. Read at each call, so a forked process names
    itself; callers that need one name per component add their own suffix (a message id, a random tag)."""
    return f"{socket.gethostname()}:{os.getpid()}"
