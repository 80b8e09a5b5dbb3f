"""The app side of the BC job pipeline: the v1 job contract, its wire format and the reports read back.

Importable without the Functions runtime; depends on pydantic alone (the queue/table client adds the Azure SDKs).

The names below load on first use (PEP 562 module `__getattr__`, peps.python.org/pep-0562): `import bcjobs` and
the queue names cost no pydantic model, so `import function_app` (the Functions host's indexing, at every cold
start of a Flex instance) does not build the job contract's models until a function first needs them (issue 24,
point 4). `from bcjobs import Job` works as before; type checkers read the imports under TYPE_CHECKING.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from bcjobs.errors import BcJobsError, InvalidJobError, Problem
    from bcjobs.models import (
        SCHEMA_VERSION,
        Condition,
        CustomApi,
        Job,
        Operation,
        Operator,
        Parent,
        Query,
        Step,
    )
    from bcjobs.results import TERMINAL_STATES, ErrorInfo, ItemOutcome, JobReport, JobState, ResultSummary
    from bcjobs.wire import MAX_JOB_BYTES, decode, encode

JOBS_QUEUE = "bc-jobs"
POISON_QUEUE = "bc-jobs-poison"
RESULTS_QUEUE = "bc-results"
# The change feed's queue (issue 22): here, not only in bcjobs.changes, so a trigger binds it without the models.
NOTIFICATIONS_QUEUE = "bc-notifications"

# Each lazy name and the submodule that defines it.
_LAZY = {
    **dict.fromkeys(("BcJobsError", "InvalidJobError", "Problem"), "bcjobs.errors"),
    **dict.fromkeys(
        (
            "SCHEMA_VERSION",
            "Condition",
            "CustomApi",
            "Job",
            "Operation",
            "Operator",
            "Parent",
            "Query",
            "Step",
        ),
        "bcjobs.models",
    ),
    **dict.fromkeys(
        ("TERMINAL_STATES", "ErrorInfo", "ItemOutcome", "JobReport", "JobState", "ResultSummary"),
        "bcjobs.results",
    ),
    **dict.fromkeys(("MAX_JOB_BYTES", "decode", "encode"), "bcjobs.wire"),
}


# Hidden from type checkers: they see the names through the imports above, so `from bcjobs import Jobb` stays a
# mypy error instead of an Any a module `__getattr__` would give.
if not TYPE_CHECKING:

    def __getattr__(name: str) -> Any:
        """Import the submodule that defines `name` on first use, then keep the name here (later reads are
        plain)."""
        module = _LAZY.get(name)
        if module is None:
            raise AttributeError(f"module 'bcjobs' has no attribute {name!r}")
        value = getattr(importlib.import_module(module), name)
        globals()[name] = value
        return value

    def __dir__() -> list[str]:
        return sorted({*globals(), *_LAZY})


__all__ = [
    "JOBS_QUEUE",
    "MAX_JOB_BYTES",
    "NOTIFICATIONS_QUEUE",
    "POISON_QUEUE",
    "RESULTS_QUEUE",
    "SCHEMA_VERSION",
    "TERMINAL_STATES",
    "BcJobsError",
    "Condition",
    "CustomApi",
    "ErrorInfo",
    "InvalidJobError",
    "ItemOutcome",
    "Job",
    "JobReport",
    "JobState",
    "Operation",
    "Operator",
    "Parent",
    "Problem",
    "Query",
    "ResultSummary",
    "Step",
    "decode",
    "encode",
]
