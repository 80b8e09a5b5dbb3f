"""The job pipeline: `bc-jobs` messages become BC operations, with state, retries and an audit in Table Storage.

Composes shared/auth (through the token seam) and shared/bc; the contract an app writes to is bcjobs. Public
surface: the processor and its values, the dead-letter handler, the status reader and the composition root.
"""

from shared.jobs.compose import JobServices, build_job_services, close_job_services, job_services
from shared.jobs.deadletter import DeadLetters
from shared.jobs.errors import AmbiguousWriteError, JobError, JobQueueError, JobStoreError
from shared.jobs.processor import Delivery, Handled, JobProcessor
from shared.jobs.status import job_status, valid_job_id

__all__ = [
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
    "close_job_services",
    "job_services",
    "job_status",
    "valid_job_id",
]
