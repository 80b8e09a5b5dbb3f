"""Errors of the app-side package. Messages never echo a job's values, only field paths and what was expected.

BcJobsError
 ├── InvalidJobError        a job (or a queue message) breaks the v1 contract; `problems` lists each field
 ├── JobsStorageError       the client could not reach storage or was refused (network, role, missing queue/table)
 ├── WaitTimeoutError       `wait()` saw no terminal state before its deadline; `last` is the last report seen
 └── ResultNotCompletedError a results message could not be deleted (its visibility timeout had run out)
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from bcjobs.results import JobReport


@dataclass(frozen=True, slots=True)
class Problem:
    """One thing wrong with a job: where (a JSON path such as `operations[3].id`) and what was expected."""

    path: str
    expected: str

    def __str__(self) -> str:
        return f"{self.path}: {self.expected}" if self.path else self.expected


class BcJobsError(Exception):
    """Root of every error this package raises on purpose."""


class InvalidJobError(BcJobsError):
    """The job cannot be accepted as it is; fix the fields named in `problems` and send it again."""

    def __init__(self, problems: tuple[Problem, ...], *, job_id: str | None = None) -> None:
        self.problems = problems
        self.job_id = job_id
        shown = "; ".join(str(problem) for problem in problems[:10])
        more = f" (and {len(problems) - 10} more)" if len(problems) > 10 else ""
        super().__init__(f"invalid job: {shown}{more}")

    @property
    def reason(self) -> str:
        """The whole explanation, one line."""
        return str(self)


class JobsStorageError(BcJobsError):
    """A queue or table call failed: storage unreachable, the identity lacks a role, or a queue/table is missing.

    The message names the operation, the HTTP status and the storage error code, never a URL or key.
    """

    def __init__(self, message: str, *, status: int | None = None, error_code: str | None = None) -> None:
        self.status = status
        self.error_code = error_code
        super().__init__(message)


class WaitTimeoutError(BcJobsError):
    """The job reached no terminal state before the deadline (`last` is its last report, None if never seen)."""

    def __init__(self, job_id: str, timeout: float, last: JobReport | None) -> None:
        self.job_id = job_id
        self.timeout = timeout
        self.last = last
        seen = f"last state {last.state.value}" if last is not None else "no job row seen yet"
        super().__init__(f"job {job_id} not finished after {timeout:g} s ({seen})")


class ResultNotCompletedError(BcJobsError):
    """Deleting a handed-out result failed: its visibility timeout ran out, so it may be handed out again."""
