"""Getting jobs ready to send: validate, give each an id, encode; collect what is wrong with each, never stop early.

`prepare` runs exactly the trigger's validation (`bcjobs.wire`: the model, the size limit, then `decode` of the very
text that will be sent), so a job it accepts is never rejected by the trigger for its shape or size. The client,
the CLI and the HTTP front door all send what `prepare` returns.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from bcjobs.errors import InvalidJobError, Problem
from bcjobs.models import Job
from bcjobs.wire import claimed_job_id, decode, encode, parse


@dataclass(frozen=True, slots=True)
class PreparedJob:
    """A valid job with its id, and the queue message text that carries it (base64 JSON)."""

    job: Job
    text: str

    @property
    def job_id(self) -> str:
        """The job's id (always set once prepared)."""
        assert self.job.job_id is not None  # noqa: S101  # prepare() fills it in
        return self.job.job_id


@dataclass(frozen=True, slots=True)
class Rejection:
    """A job that cannot be sent: its position in the caller's input, its id when it had a valid one, why."""

    index: int
    job_id: str | None
    problems: tuple[Problem, ...]

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready (camelCase): index, jobId when known, problems as path + expected."""
        body: dict[str, Any] = {"index": self.index}
        if self.job_id is not None:
            body["jobId"] = self.job_id
        body["problems"] = [{"path": p.path, "expected": p.expected} for p in self.problems]
        return body


def new_job_id() -> str:
    """A fresh job id (a UUID4 in its canonical text form; matches the contract's jobId pattern)."""
    return str(uuid.uuid4())


def prepare(job: Job | Mapping[str, Any]) -> PreparedJob:
    """Validate `job` (a Job, or its JSON object with wire names), give it an id when it has none, encode it.

    Raises InvalidJobError naming each bad field, or the size limit, exactly as the trigger would.
    """
    if isinstance(job, Job):
        # Round-trip through the wire form: a Job built with model_construct() or copied with updates is
        # checked like any message would be.
        value = job
    elif isinstance(job, Mapping):
        value = parse(dict(job))
    else:
        raise InvalidJobError((Problem("", f"a JSON object (got {type(job).__name__})"),))
    if value.job_id is None:
        value = value.with_job_id(new_job_id())
    text = encode(value)
    return PreparedJob(decode(text), text)


def prepare_all(values: Iterable[object]) -> tuple[list[tuple[int, PreparedJob]], list[Rejection]]:
    """Prepare each value; (index, prepared job) for the good ones and a Rejection for each bad one."""
    good: list[tuple[int, PreparedJob]] = []
    bad: list[Rejection] = []
    for index, value in enumerate(values):
        try:
            if not isinstance(value, Job | Mapping):
                raise InvalidJobError((Problem("", f"a JSON object (got a JSON {_kind(value)})"),))
            good.append((index, prepare(value)))
        except InvalidJobError as exc:
            job_id = exc.job_id
            if job_id is None and isinstance(value, Mapping):
                job_id = claimed_job_id(dict(value))
            bad.append(Rejection(index, job_id, exc.problems))
    return good, bad


def _kind(value: object) -> str:
    names = {list: "array", str: "string", bool: "boolean", int: "number", float: "number"}
    return "null" if value is None else names.get(type(value), type(value).__name__)
