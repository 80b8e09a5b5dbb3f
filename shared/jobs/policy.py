"""Every retry, wait and validity number of the job pipeline as frozen data; those a setting gives come from it.

Retries go back to the queue with a visibility delay instead of sleeping in the function: exponential with full
jitter (AWS Architecture Blog, "Exponential Backoff And Jitter"), never shorter than BC's Retry-After, capped.
Jobs parked while an admin must act are looked at again on a slower capped schedule and do not use attempts.

One run of a job (token, BC requests, in-call retries, waits for the throttle) has a time budget far under
host.json's functionTimeout (10 min): on the real host a timeout restarts the whole worker process, failing every
other invocation in flight on it without running their `finally` blocks (azure-functions-host,
src/WebJobs.Script.WebHost/WebScriptHostExceptionHandler.cs, OnTimeoutExceptionAsync). A batch whose budget runs
out between its $batch requests continues in a new delivery: progress, so no attempt is used.
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from datetime import timedelta

from bcjobs import Job
from shared.backoff import exponential_backoff
from shared.settings import JobSettings
from shared.tokens import DEFAULT_MIN_VALIDITY

# A parked job's first look comes at most this soon (sooner only when the re-check interval itself is shorter): an
# admin who has just signed in sees the job move within half a minute, and the waits then grow to the interval.
_FIRST_AUTHORIZATION_WAIT_SECONDS = 30.0


@dataclass(frozen=True, slots=True, kw_only=True)
class JobPolicy:
    """How often and how late a job is tried again, and how long its token must last.

    The fields a setting gives (attempts, backoff, re-check, deadline, claim lease, time budget) have no default
    here: `from_settings` fills them, so each default is written once, in shared/settings/model.py.
    """

    max_attempts: int
    backoff_base_seconds: float
    backoff_cap_seconds: float
    authorization_base_seconds: float
    authorization_cap_seconds: float
    default_deadline: timedelta
    claim_lease: timedelta
    # One run's time budget (BC_JOB_TIME_BUDGET_SECONDS; why its default is 300 s: shared/settings/model.py).
    time_budget: timedelta
    # A process without a BC slot holds a delivery this long for one (a senior going idle hands its slots over),
    # then sends the job back for no_slot_delay (plus jitter). The hold bounds the extra storage calls of slot-less
    # instances (docs/architecture.md, "More instances than BC slots") and stays far below functionTimeout.
    no_slot_hold_seconds: float = 120.0
    no_slot_delay_seconds: float = 5.0
    # Token validity: enough for the slowest request, plus this much per request the job may make.
    per_request_validity: timedelta = timedelta(seconds=2)
    # What an invocation may still need after its budget: the items table, the row with the run's audit and
    # the report, each with the storage SDK's own retries.
    record_allowance: timedelta = timedelta(minutes=1)
    # A continuation's delay: short (nothing is wrong), but long enough that the copy never overtakes this run's
    # own row write (a copy that finds the job still claimed by this run is dropped as a duplicate).
    continuation_delay_seconds: float = 2.0

    @classmethod
    def from_settings(cls, settings: JobSettings) -> JobPolicy:
        """The policy the app settings ask for."""
        return cls(
            max_attempts=settings.max_attempts,
            backoff_base_seconds=settings.backoff_base_seconds,
            backoff_cap_seconds=max(settings.backoff_base_seconds, settings.backoff_cap_seconds),
            authorization_base_seconds=min(
                _FIRST_AUTHORIZATION_WAIT_SECONDS, settings.authorization_recheck_seconds
            ),
            authorization_cap_seconds=settings.authorization_recheck_seconds,
            default_deadline=timedelta(hours=settings.default_deadline_hours),
            claim_lease=timedelta(seconds=settings.claim_lease_seconds),
            time_budget=timedelta(seconds=settings.time_budget_seconds),
        )

    def retry_delay(self, attempt: int, retry_after: float | None, rng: random.Random | None = None) -> float:
        """Seconds before attempt `attempt + 1`: full jitter up to the cap, but never sooner than BC's Retry-After
        (the client caps that at an hour): BC said when to come back, and the cap only bounds our own backoff."""
        delay = exponential_backoff(
            attempt, self.backoff_base_seconds, self.backoff_cap_seconds, jitter=1.0, rng=rng
        )
        return max(delay, retry_after or 0.0)

    def authorization_delay(self, waits: int, rng: random.Random | None = None) -> float:
        """Seconds before a parked job looks again (the `waits`-th time): grows to the cap, jittered by up to half."""
        return exponential_backoff(
            waits, self.authorization_base_seconds, self.authorization_cap_seconds, jitter=0.5, rng=rng
        )

    def no_slot_delay(self, rng: random.Random | None = None) -> float:
        """Seconds a job waits in the queue when this process holds no BC slot."""
        return self.no_slot_delay_seconds * (1.0 + (rng or random.Random()).random())  # noqa: S311 - spread only

    def gives_up_after(self, attempt: int) -> bool:
        """True when attempt `attempt` was the last one allowed."""
        return attempt >= self.max_attempts

    def min_validity(self, job: Job, request_timeout: timedelta) -> timedelta:
        """How long the job's token must stay valid: one slow request plus a little per request it may send."""
        requests = _expected_requests(job)
        return max(DEFAULT_MIN_VALIDITY, request_timeout + self.per_request_validity * requests)


def _expected_requests(job: Job) -> int:
    """A rough upper bound of the BC requests a job sends (lookups, ETag reads, one per 100 batch operations)."""
    if job.operations is not None:
        return 2 + (len(job.operations) + 99) // 100 * 3
    return 4
