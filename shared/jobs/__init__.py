"""The job pipeline: `bc-jobs` messages become BC operations, with state, retries and an audit in Table Storage.

Composes shared/auth (through the token seam) and shared/bc; the contract an app writes to is bcjobs. Public
surface: the processor and its values, the dead-letter handler, the HTTP front door (shared/jobs/front_door.py:
submit, list, one job's status) and the composition root.
"""

from shared.jobs.compose import JobServices, build_job_services, close_job_services, job_services
from shared.jobs.deadletter import DeadLetters
from shared.jobs.errors import AmbiguousWriteError, JobError, JobQueueError, JobStoreError
from shared.jobs.front_door import (
    close_front_door,
    job_status,
    list_jobs,
    status_body,
    submit_jobs,
    valid_job_id,
)
from shared.jobs.processor import SELF_LOGGED, Delivery, Handled, JobProcessor

__all__ = [
    "SELF_LOGGED",
    "AmbiguousWriteError",
    "DeadLetters",
    "Delivery",
    "Handled",
    "JobError",
    "JobProcessor",
    "JobQueueError",
    "JobServices",
    "JobStoreError",
    "build_job_services",
    "close_front_door",
    "close_job_services",
    "job_services",
    "job_status",
    "list_jobs",
    "status_body",
    "submit_jobs",
    "valid_job_id",
]
