"""How a job travels: UTF-8 JSON, base64-encoded, as one Azure Storage queue message.

Azure Storage queue messages hold at most 64 KiB of text (learn.microsoft.com/rest/api/storageservices/put-message);
base64 turns 3 bytes into 4, so a job's JSON may use at most 48 KiB, less a reserve for the fields the product adds
when it re-enqueues a retry (`jobId`). `decode` is exactly what the product's trigger runs, and `encode` exactly
what the client sends, so a job the client accepts is never rejected by the trigger for its shape or size.
"""

from __future__ import annotations

import base64
import binascii
import json
import re
from typing import Any

from pydantic import ValidationError

from bcjobs.errors import InvalidJobError, Problem
from bcjobs.models import JOB_ID_PATTERN, SCHEMA_VERSION, Job

QUEUE_MESSAGE_LIMIT = 64 * 1024  # characters of stored text per message
RESERVE_BYTES = 512  # for what the product adds to a retry copy
MAX_JOB_BYTES = QUEUE_MESSAGE_LIMIT // 4 * 3 - RESERVE_BYTES
MAX_NESTING = 32


def encode(job: Job) -> str:
    """The queue message text for `job` (base64 of compact JSON); refuses a job that would not fit."""
    raw = job_json(job)
    if len(raw) > MAX_JOB_BYTES:
        raise InvalidJobError(
            (Problem("", f"at most {MAX_JOB_BYTES} bytes of JSON (got {len(raw)}); split the job"),),
            job_id=job.job_id,
        )
    return base64.b64encode(raw).decode("ascii")


def job_json(job: Job) -> bytes:
    """The job as compact UTF-8 JSON with its wire (camelCase) names, leaving out what is unset."""
    return job.model_dump_json(by_alias=True, exclude_none=True, exclude_defaults=False).encode("utf-8")


def decode(text: str) -> Job:
    """The job a queue message holds, or InvalidJobError saying precisely what is wrong."""
    return parse(payload(text))


def payload(text: str) -> dict[str, Any]:
    """The JSON object inside a message's text (base64 → UTF-8 → JSON object)."""
    try:
        raw = base64.b64decode(text.strip(), validate=True)
    except (binascii.Error, ValueError):
        hint = " (it looks like plain JSON)" if text.lstrip().startswith(("{", "[")) else ""
        raise _invalid(f"base64-encoded UTF-8 JSON{hint}; encode the message text with base64") from None
    if len(raw) > MAX_JOB_BYTES + RESERVE_BYTES:
        raise _invalid(f"at most {MAX_JOB_BYTES} bytes of JSON (got {len(raw)})")
    try:
        value = json.loads(raw.decode("utf-8"))
    except UnicodeDecodeError:
        raise _invalid("UTF-8 text after base64 decoding") from None
    except RecursionError:
        raise _invalid(f"JSON nested at most {MAX_NESTING} levels deep") from None
    except json.JSONDecodeError as exc:
        raise _invalid(f"a JSON document (not valid at line {exc.lineno}, column {exc.colno})") from None
    except ValueError:
        raise _invalid("a JSON document") from None
    if not isinstance(value, dict):
        raise _invalid(f"a JSON object (got a JSON {_kind(value)})")
    if _depth(value) > MAX_NESTING:
        raise _invalid(f"JSON nested at most {MAX_NESTING} levels deep")
    return value


def parse(value: dict[str, Any]) -> Job:
    """Validate a job's JSON object against the v1 contract."""
    job_id = claimed_job_id(value)
    version = value.get("schemaVersion", SCHEMA_VERSION)
    if version != SCHEMA_VERSION or isinstance(version, bool):
        shown = version if isinstance(version, int) else f"a {_kind(version)}"
        raise InvalidJobError(
            (Problem("schemaVersion", f"1 (version {shown} is not supported; send schemaVersion 1)"),),
            job_id=job_id,
        )
    try:
        return Job.model_validate(value)
    except ValidationError as exc:
        raise InvalidJobError(problems_of(exc), job_id=job_id) from None


def claimed_job_id(value: dict[str, Any]) -> str | None:
    """The message's `jobId` when it is a valid one (so a rejection can be found under it), else None."""
    job_id = value.get("jobId")
    if isinstance(job_id, str) and re.fullmatch(JOB_ID_PATTERN, job_id):
        return job_id
    return None


def problems_of(exc: ValidationError) -> tuple[Problem, ...]:
    """pydantic's errors as field paths and expectations (pydantic's `input` is never shown)."""
    return tuple(Problem(_path(error["loc"]), _expected(error)) for error in exc.errors(include_url=False))


# pydantic messages that would quote part of the input are replaced by what was expected.
_EXPECTED = {
    "extra_forbidden": "not a field of the v1 contract (check the spelling: names are camelCase)",
    "missing": "required",
    "uuid_parsing": "a GUID such as 6f0b0c7e-1d2a-4c3b-9e8f-0a1b2c3d4e5f",
    "uuid_type": "a GUID such as 6f0b0c7e-1d2a-4c3b-9e8f-0a1b2c3d4e5f",
    "datetime_parsing": "an ISO-8601 date-time with an offset, e.g. 2026-12-31T23:00:00Z",
    "datetime_from_date_parsing": "an ISO-8601 date-time with an offset, e.g. 2026-12-31T23:00:00Z",
    "timezone_aware": "an ISO-8601 date-time with an offset, e.g. 2026-12-31T23:00:00Z",
}


def _expected(error: Any) -> str:
    known = _EXPECTED.get(str(error["type"]))
    return known or str(error["msg"]).removeprefix("Value error, ")


def _path(location: tuple[int | str, ...]) -> str:
    path = ""
    for part in location:
        if isinstance(part, int):
            path += f"[{part}]"
        else:
            name = part if len(part) <= 40 else f"{part[:40]}…"  # a key may be input: keep it short
            path += f".{name}" if path else name
    return path


def _invalid(expected: str) -> InvalidJobError:
    return InvalidJobError((Problem("", f"the message must be {expected}"),))


def _kind(value: object) -> str:
    names = {
        list: "array",
        str: "string",
        bool: "boolean",
        int: "number",
        float: "number",
        type(None): "null",
    }
    return names.get(type(value), type(value).__name__)


def _depth(value: object, level: int = 0) -> int:
    if level > MAX_NESTING:
        return level
    if isinstance(value, dict):
        return max((_depth(item, level + 1) for item in value.values()), default=level + 1)
    if isinstance(value, list):
        return max((_depth(item, level + 1) for item in value), default=level + 1)
    return level
