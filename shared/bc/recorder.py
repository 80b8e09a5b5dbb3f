"""The interaction hook: every BC request/response is handed to a Recorder as a frozen Interaction.

An Interaction holds no body, no query string and no header value other than correlation ids, so nothing
secret (a token, customer data from a filter) can reach the job's audit log through it.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol


@dataclass(frozen=True, slots=True)
class Interaction:
    """One HTTP exchange with BC (status is None when no answer came; `error` then names what happened)."""

    method: str
    path: str
    status: int | None
    duration_ms: float
    attempt: int
    client_request_id: str
    request_id: str | None = None
    ms_correlation_x: str | None = None
    bc_error_code: str | None = None
    error: str | None = None


class Recorder(Protocol):
    """Receives interactions; must be cheap and must not raise (it runs on the request path)."""

    def record(self, interaction: Interaction) -> None:
        """Take one interaction."""
        ...


class NullRecorder:
    """Drops everything (the default)."""

    def record(self, interaction: Interaction) -> None:
        """Ignore the interaction."""


class MemoryRecorder:
    """Keeps interactions in a list (tests, and the job layer's per-job audit buffer)."""

    def __init__(self) -> None:
        self.interactions: list[Interaction] = []

    def record(self, interaction: Interaction) -> None:
        """Append the interaction."""
        self.interactions.append(interaction)
