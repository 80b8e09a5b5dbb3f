"""The app side of the BC job pipeline: the v1 job contract, its wire format and the reports read back.

Importable without the Functions runtime; depends on pydantic alone (the queue/table client adds the Azure SDKs).
"""

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

__all__ = [
    "JOBS_QUEUE",
    "MAX_JOB_BYTES",
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
