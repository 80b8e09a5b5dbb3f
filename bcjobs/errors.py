"""Errors of the app-side package. Messages never echo a job's values, only field paths and what was expected.

BcJobsError
 └── InvalidJobError        a job (or a queue message) breaks the v1 contract; `problems` lists each field
"""

from __future__ import annotations

from dataclasses import dataclass


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
