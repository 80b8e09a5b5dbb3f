"""Routes the BC client's interactions to the job that caused them.

One BC client (and so one Recorder) serves every job of the process; each job run opens an `AuditBuffer` in its
own asyncio task, and the `JobRecorder` appends to the buffer of the task it is called from (a ContextVar, copied
into tasks the run starts). The buffer holds frozen Interaction values: no body, no query string, no token. The
processor hands the same buffer to the runner, which reads it (`answer_lost_before`) to tell whether a DELETE's 404
is the effect of its own earlier, unanswered DELETE.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from datetime import datetime

from bcjobs.rows import Interaction
from shared.bc import Interaction as BcInteraction
from shared.clock import Clock


class AuditBuffer:
    """One run's interactions, numbered in order; `run` is the run's number (JobRecord.runs after its claim)."""

    def __init__(self, run: int, clock: Clock) -> None:
        self.run = run
        self._clock = clock
        self.interactions: list[Interaction] = []

    def add(self, seen: BcInteraction) -> None:
        """Keep one interaction (called from the request path: cheap, never raises)."""
        self.interactions.append(_interaction(seen, self.run, len(self.interactions) + 1, self._clock.now()))

    def may_have_written(self) -> bool:
        """True when a write request of this run got no answer, or one after which BC may have acted."""
        return any(seen.method in _WRITES and _may_have_acted(seen) for seen in self.interactions)

    def answer_lost_before(self, method: str, path_end: str) -> bool:
        """True when this run already sent `method` to a path ending in `path_end` and got no answer, or one
        after which BC may have acted: a later refusal of the same request may be the effect of that one (the
        runner's AnswerTrail)."""
        return any(
            seen.method == method and seen.path.endswith(path_end) and _may_have_acted(seen)
            for seen in self.interactions
        )


_current: ContextVar[AuditBuffer | None] = ContextVar("bc_job_audit", default=None)


class JobRecorder:
    """The Recorder given to the shared BC client: forwards to the running job's buffer, if any."""

    def record(self, interaction: BcInteraction) -> None:
        """Append to the current job's buffer; interactions outside a job run are not kept."""
        buffer = _current.get()
        if buffer is not None:
            buffer.add(interaction)


# Answers after which BC may have acted: a timeout (408 runs the operation first), a server error other than 503
# (refused before running), or none at all because the connection failed after the request went out (the
# interaction's `error` names httpx's exception; a token that could not be had or a connection that never opened
# are recorded without a status too, and mean nothing was sent).
_MAY_HAVE_ACTED = frozenset({408, 500, 502, 504})
_LOST_AFTER_SENDING = frozenset(
    {"ReadError", "ReadTimeout", "WriteError", "WriteTimeout", "RemoteProtocolError", "CloseError"}
)
_WRITES = frozenset({"POST", "PATCH", "PUT", "DELETE"})


def _may_have_acted(seen: Interaction) -> bool:
    return seen.status in _MAY_HAVE_ACTED or (seen.status is None and seen.error in _LOST_AFTER_SENDING)


@contextmanager
def auditing(buffer: AuditBuffer) -> Iterator[AuditBuffer]:
    """Make `buffer` the current task's audit buffer."""
    token = _current.set(buffer)
    try:
        yield buffer
    finally:
        _current.reset(token)


def _interaction(seen: BcInteraction, run: int, sequence: int, at: datetime) -> Interaction:
    return Interaction(
        attempt=run,  # the audit row's `attempt` (column Attempt, part of its RowKey) holds the run number
        sequence=sequence,
        at=at,
        method=seen.method,
        path=seen.path,
        status=seen.status,
        duration_ms=seen.duration_ms,
        bc_error_code=seen.bc_error_code,
        client_request_id=seen.client_request_id,
        bc_request_id=seen.request_id or seen.ms_correlation_x,
        call_attempt=seen.try_number,
        error=seen.error,
    )
