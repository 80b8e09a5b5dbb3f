"""One delivery of a `bc-jobs` message, start to finish: validate → claim → token → BC → record → report.

The queue is at-least-once; this is what makes one BC effect per job out of it:
- the job row is claimed by ETag with a lease naming this delivery; a finished job is never run again, a live
  claim by another message's delivery is left alone (that message is still in the queue if its run dies), while
  a redelivery of the claim's own message takes over (the host redelivers it only after that run ended);
- a claim taken over from a run that never recorded its end (crash, storage failure) marks a write job
  ambiguous, so the next run reconciles instead of writing again;
- retries go back to the queue as a delayed copy *before* the row says `retry_scheduled`, so a row never points
  at a copy that does not exist; an early duplicate of a scheduled job is dropped, the copy will run it;
- a run's audit is kept whatever becomes of its row write: in that write (one storage call for both: the row's
  Audit column, or audit rows in a transaction with it), or alone when the claim was lost (the write wrote
  nothing) or the run raised first;
- terminal rows name the message that finished them: if the report could not be sent, that message's
  redelivery sends it (and nothing else does);
- a run never gets near host.json's functionTimeout (which restarts the whole worker, failing every job in flight
  on it): the token and the BC work run inside the run's time budget (JobPolicy.time_budget) and are cut off at
  its end, handled as a BC timeout (a write's answer counts as lost: ambiguous). A batch sends its next $batch
  request only while the budget has room for it; otherwise the items done so far are recorded and the rest
  continues in a new delivery (a delayed copy, like a retry) without using an attempt. Each continuation has
  finished more items than the last, and none is scheduled past the job's deadline.
Storage failures raise: the host delivers the message again (and, after maxDequeueCount, poison records it).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Mapping, Sequence
from contextvars import ContextVar
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta
from enum import StrEnum
from types import MappingProxyType

from bcjobs import ErrorInfo, InvalidJobError, ItemOutcome, Job, JobState, Operation, ResultSummary
from bcjobs.rows import AuditedInteraction
from bcjobs.wire import decode
from shared import telemetry
from shared.bc import RequestTimeoutError
from shared.clock import Clock
from shared.connections import ConnectionUnusableError
from shared.jobs.audit import AuditBuffer, AuditLog, auditing
from shared.jobs.errors import AmbiguousWriteError, JobError, items_known
from shared.jobs.journal import NoJournal, WriteJournal, ambiguous_write, writes_of
from shared.jobs.lanes import Lane, Lanes
from shared.jobs.outcomes import TIME_BUDGET_SPENT, Decision, Verdict, decide, item_error
from shared.jobs.policy import JobPolicy
from shared.jobs.queues import JobQueues
from shared.jobs.records import AUDIT_ROOM, JobRecord, JobStore, bounded, needs_bounding, request_hash
from shared.jobs.runner import Budget, EarlierRuns
from shared.process import process_id

logger = logging.getLogger(__name__)
CLAIM_TRIES = 4  # the first try inserts; the others read, then compare-and-swap
# The scheduled copy itself may arrive a little before the row's `next_attempt_at`: its visibility is counted by the
# storage service's clock from the send, the row's time by this instance's (NTP-synced) clock. Taking that copy for
# an early duplicate would drop the job's only message; 2 s covers the skew, and a duplicate that arrives within it
# merely runs the job a little early (the copy then finds it claimed or finished).
EARLY_TOLERANCE = timedelta(seconds=2)
# The audit of the run in this task that no storage call has kept yet: the run's row write keeps it (one call for
# both: issue 24, JobStore.replace), whichever path (finish, retry, park...) writes the row.
_unkept_audit: ContextVar[AuditBuffer | None] = ContextVar("bc_job_unkept_audit", default=None)


@dataclass(frozen=True, slots=True)
class Delivery:
    """One queue message as the trigger got it (the stored text: base64 of the job's JSON)."""

    message_id: str
    text: str
    dequeue_count: int = 1

    @property
    def derived_job_id(self) -> str:
        """The job id of a message without one: the message id, the same on every redelivery."""
        return f"msg-{self.message_id}"


class Handled(StrEnum):
    """What one delivery did (a job's state says where the job is; FINISHED maps the states a delivery ends in)."""

    SUCCEEDED = "succeeded"
    FAILED = "failed"
    REJECTED = "rejected"
    EXPIRED = "expired"
    RETRY_SCHEDULED = "retry_scheduled"
    WAITING_FOR_AUTHORIZATION = "waiting_for_authorization"
    ALREADY_FINISHED = "already_finished"  # a redelivered or duplicate message of a finished job
    CLAIMED_ELSEWHERE = "claimed_elsewhere"  # another delivery is running it right now
    EARLY_DUPLICATE = "early_duplicate"  # the job's scheduled copy will run it
    NO_SLOT = "no_slot"  # this process got no BC slot within the hold: the job went back to the queue
    CONTINUED = "continued"  # the run's time budget ran out: the rest of the batch goes on in a new delivery
    DEFERRED = "deferred"  # its budget's backlog in this process was full: the job went back to the queue


# The deliveries the processor logs itself, at INFO or above: `jobs.finished` or `jobs.claim_lost`,
# `jobs.retry_scheduled` or `jobs.identity_moved`, `jobs.continued`, `jobs.waiting_for_authorization`. The
# trigger's own `jobs.delivery` line is DEBUG for these, so a job's usual path writes one trace, not two: each is an
# Application Insights record the customer pays for, and a frame the worker sends to the host. The functional
# tests' Pipeline.deliver checks that every such delivery did log.
SELF_LOGGED: frozenset[Handled] = frozenset(
    {
        Handled.SUCCEEDED,
        Handled.FAILED,
        Handled.EXPIRED,
        Handled.RETRY_SCHEDULED,
        Handled.CONTINUED,
        Handled.WAITING_FOR_AUTHORIZATION,
    }
)


# The job states a delivery can finish a job in, and what the delivery reports for each. Spelled out rather than
# `Handled(state.value)`: the two enums share strings today, and a new state must choose its answer here.
# `dead_lettered` is missing on purpose: only the poison handler (deadletter.py) writes it.
FINISHED: Mapping[JobState, Handled] = MappingProxyType(
    {
        JobState.SUCCEEDED: Handled.SUCCEEDED,
        JobState.FAILED: Handled.FAILED,
        JobState.EXPIRED: Handled.EXPIRED,
        JobState.REJECTED: Handled.REJECTED,
    }
)


@dataclass
class JobProcessor:
    """Runs deliveries; one per process, shared by every invocation."""

    store: JobStore
    audit: AuditLog
    queues: JobQueues
    lanes: Lanes
    policy: JobPolicy
    clock: Clock
    request_timeout: timedelta
    process_id: str = field(default_factory=process_id)  # at construction: a forked worker has its own pid
    journal: WriteJournal = field(default_factory=NoJournal)  # what write jobs produced: the feed's echoes

    async def handle(self, delivery: Delivery) -> Handled:
        """Process one delivery; raises only when storage failed (the host then redelivers)."""
        with telemetry.job_scope(message_id=delivery.message_id):  # log records of the run carry the job
            return await self._handle(delivery)

    async def _handle(self, delivery: Delivery) -> Handled:
        try:
            job = decode(delivery.text)
        except InvalidJobError as invalid:
            return await self._reject(delivery, invalid)
        job = job if job.job_id else job.with_job_id(delivery.derived_job_id)
        telemetry.note_job(
            job_id=job.job_id, correlation_id=job.correlation_id, operation=job.operation.value
        )
        telemetry.note_job(connection=job.connection or self.lanes.default)  # logs and metrics split by it
        try:
            lane = await self.lanes.lane(job.connection)  # once per run: every request of it on one identity
        except ConnectionUnusableError as unusable:
            return await self._refuse(job, delivery, unusable.reason)
        telemetry.note_job(identity=lane.identity)  # which identity of the pool ran it (shared/jobs/pool.py)
        refusal = lane.refusal(job)
        if refusal is not None:
            return await self._refuse(job, delivery, refusal)
        sent_back = await self._hold_or_send_back(job, lane)
        if sent_back is not None:
            return sent_back
        with lane.backlog.running():
            claimed = await self._claim(job, delivery, lane.connection.name, lane.identity)
            if isinstance(claimed, Handled):
                return claimed
            return await self._run(job, claimed, delivery, lane)

    async def _hold_or_send_back(self, job: Job, lane: Lane) -> Handled | None:
        """None: run the delivery here. Else the job went back to the queue (no attempt used, row untouched).

        More instances than BC slots: hold the delivery (its host pulls no more meanwhile) rather than send it
        back at once; only after the hold does it go back (docs/architecture.md). A budget whose backlog in this
        process is full sends it back behind the ones it sent back before (shared/jobs/fairness.py), so its flood
        does not hold the invocations another connection's jobs need. A job whose row says it finished needs no
        BC: it is never sent back, its claim answers.
        """
        if not await lane.await_slot(self.policy.no_slot_hold_seconds):
            delay, handled = self.policy.no_slot_delay(), Handled.NO_SLOT
        elif (deferral := await lane.backlog.deferral()) is not None:
            delay, handled = deferral, Handled.DEFERRED
        else:
            return None
        current = await self.store.get(str(job.job_id))
        if current is not None and _runs_here(current, handled):
            return None
        await self.queues.requeue(job, delay)
        return handled

    # ----- claim --------------------------------------------------------------------------------------

    async def _claim(
        self, job: Job, delivery: Delivery, connection: str, identity: str | None = None
    ) -> JobRecord | Handled:
        """Take the job's row (`identity`: the pool's identity this run uses, kept on the row)."""
        holder = f"{self.process_id}:{delivery.message_id}"
        for claim_try in range(CLAIM_TRIES):
            now = self.clock.now()
            # Most deliveries bring a new job: insert first, read only when the row exists (one call saved).
            current = None if claim_try == 0 else await self.store.get(str(job.job_id))
            if current is None:
                fresh = JobRecord.new(job, str(job.job_id), now, self._deadline(job, now), connection)
                claim = fresh.claimed(holder, now, self.policy.claim_lease)
                claimed = await self.store.insert(replace(claim, identity=identity))
            else:
                verdict = await self._admission(current, job, delivery, now)
                if verdict is not None:
                    return verdict
                claim = current.claimed(holder, now, self.policy.claim_lease)
                claimed = await self.store.replace(replace(claim, identity=identity or claim.identity))
            if claimed is not None:
                return claimed
        return Handled.CLAIMED_ELSEWHERE

    async def _admission(
        self, current: JobRecord, job: Job, delivery: Delivery, now: datetime
    ) -> Handled | None:
        """Why this delivery must not run the job now (None: claim it)."""
        if current.state.terminal and current.finished_by == delivery.message_id:
            await self.queues.publish(current.report())  # its first delivery may not have sent it
            return Handled.ALREADY_FINISHED
        if current.request_hash != request_hash(job):
            reason = (
                f"jobId {current.job_id} already belongs to another job (state {current.state.value}); "
                "a job id is used once: send this job under a new jobId"
            )
            return await self._reject(delivery, InvalidJobError((), job_id=None), reason=reason)
        if current.state.terminal:
            return Handled.ALREADY_FINISHED
        if (
            current.state is JobState.RUNNING
            and current.leased_at(now)
            and not _own_message(current, delivery)
        ):
            return Handled.CLAIMED_ELSEWHERE
        scheduled = current.state in (JobState.RETRY_SCHEDULED, JobState.WAITING_FOR_AUTHORIZATION)
        if scheduled and current.next_attempt_at and current.next_attempt_at > now + EARLY_TOLERANCE:
            return Handled.EARLY_DUPLICATE
        return None

    def _deadline(self, job: Job, now: datetime) -> datetime:
        return job.deadline or now + self.policy.default_deadline

    # ----- run ----------------------------------------------------------------------------------------

    async def _run(self, job: Job, record: JobRecord, delivery: Delivery, lane: Lane) -> Handled:
        handled = await self._run_once(job, record, delivery, lane)
        if record.ambiguous and handled in FINISHED.values():  # after recording what it wrote, if it did
            mark = ambiguous_write(job, lane.connection.name, self.clock.now(), record.deadline)
            if mark is not None:
                await self.journal.clear_ambiguous(mark)
        return handled

    async def _run_once(self, job: Job, record: JobRecord, delivery: Delivery, lane: Lane) -> Handled:
        telemetry.note_job(attempt=record.attempts + 1)
        now = self.clock.now()
        if now >= record.deadline:
            expired = ErrorInfo(code="deadline_passed", message=_deadline_message(record))
            return await self._finish(record, JobState.EXPIRED, delivery, error=expired)
        if record.ambiguous and not _reconcilable_on_rerun(job):
            return await self._finish(
                record, JobState.FAILED, delivery, error=_unfinished_write(), attempted=True
            )
        buffer = AuditBuffer(record.runs, self.clock)  # this run's number: `runs` counted its claim
        unkept = _unkept_audit.set(buffer)
        try:
            return await self._run_audited(job, record, delivery, lane, buffer)
        finally:
            # No row write took it: the run raised before one (kept even when the failure is a bug).
            if _unkept_audit.get() is not None:
                await self._keep_audit(record.job_id, buffer.interactions)
            _unkept_audit.reset(unkept)

    async def _run_audited(
        self, job: Job, record: JobRecord, delivery: Delivery, lane: Lane, buffer: AuditBuffer
    ) -> Handled:
        """The BC work and what follows it; the row write after it keeps the run's audit in the same call."""
        try:
            with auditing(buffer):
                summary = await self._bc_work(job, record, lane, buffer)
        except Exception as failure:  # noqa: BLE001 - decide() re-raises what is not a job outcome
            decision = decide(failure, reconcilable=_reconcilable_on_rerun(job), now=self.clock.now())
            if not decision.ambiguous and buffer.may_have_written():
                # The last error says nothing ran, but an earlier in-request try (an idempotent DELETE is repeated
                # after a lost answer) may have: the next run reconciles.
                decision = replace(decision, ambiguous=True)
            return await self._after_failure(job, record, delivery, decision, failure, lane)
        if job.is_write:  # before the row: BC's notification comes after its 30 s debounce, never before this
            await self.journal.record(
                writes_of(job.with_job_id(record.job_id), lane.connection.name, summary)
            )
        error = item_error(summary)
        state = JobState.FAILED if error else JobState.SUCCEEDED
        return await self._finish(record, state, delivery, result=summary, error=error, attempted=True)

    def _budget(self) -> Budget:
        """This run's time: it ends `time_budget` from now; a batch request needs one request timeout of it."""
        ends_at = self.clock.time() + self.policy.time_budget.total_seconds()
        return Budget(self.clock, ends_at, reserve=self.request_timeout.total_seconds())

    async def _bc_work(self, job: Job, record: JobRecord, lane: Lane, trail: AuditBuffer) -> ResultSummary:
        """The token first (valid long enough for the whole job), then the BC work; both cut off when the budget
        ends (by the event loop's timer: the host's functionTimeout is wall-clock time too)."""
        budget = self._budget()
        cut = asyncio.timeout(max(0.0, budget.left()))
        try:
            async with cut:
                await lane.tokens.token(self.policy.min_validity(job, self.request_timeout))
                items = _items_by_index(record.result)
                if record.result is not None and record.result.items_truncated:  # the row kept only some
                    items = {item.index: item for item in await self.audit.read_items(record.job_id)}
                earlier = EarlierRuns(ambiguous=record.ambiguous, items=items)
                return await lane.runner.run(job, earlier, budget, trail)
        except TimeoutError:
            if not cut.expired():
                raise  # not ours: a bug or a library's own timeout, left to the host
            raise _cut_off(job, budget, self.policy.time_budget) from None

    async def _keep_audit(self, job_id: str, interactions: Sequence[AuditedInteraction]) -> None:
        """Audit rows alone (when no row write can carry them); a failed audit write is logged, never allowed to
        lose the job's outcome."""
        if not interactions:
            return
        try:
            await self.audit.append(job_id, interactions)
        except JobError as exc:
            logger.error(
                "audit rows of job %s were not written: %s",
                job_id,
                exc,
                extra={"event": "jobs.audit_failed", "job_id": job_id},
            )

    async def _after_failure(
        self,
        job: Job,
        record: JobRecord,
        delivery: Delivery,
        decision: Decision,
        failure: Exception,
        lane: Lane,
    ) -> Handled:
        partial = items_known(failure)
        record = replace(record, ambiguous=record.ambiguous or decision.ambiguous)
        if partial is not None:
            record = replace(record, result=ResultSummary(count=len(job.steps), items=_ordered(partial)))
        if decision.verdict is Verdict.WAIT_FOR_AUTHORIZATION:
            if await lane.leave_pool():  # its identity is out; another of the pool takes the job
                return await self._move_identity(job, record, delivery, decision, lane.identity)
            return await self._park(job, record, decision)
        if decision.verdict is Verdict.FAIL:
            return await self._finish(record, JobState.FAILED, delivery, error=decision.error, attempted=True)
        if decision.verdict is Verdict.CONTINUE:
            return await self._continue(job, record, delivery, decision.error)
        return await self._retry(job, record, delivery, decision)

    async def _retry(self, job: Job, record: JobRecord, delivery: Delivery, decision: Decision) -> Handled:
        attempt = record.attempts + 1
        if self.policy.gives_up_after(attempt):
            error = decision.error.model_copy(
                update={"message": f"gave up after {attempt} attempts: {decision.error.message}"}
            )
            return await self._finish(record, JobState.FAILED, delivery, error=error, attempted=True)
        delay = self.policy.retry_delay(attempt, decision.retry_after)
        next_at = self.clock.now() + timedelta(seconds=delay)
        if next_at >= record.deadline:
            return await self._expire(record, delivery, decision.error)
        connection = record.connection or self.lanes.default
        mark = ambiguous_write(job, connection, self.clock.now(), record.deadline)
        if record.ambiguous and mark is not None:  # the feed holds BC's notification of it until the retry
            await self.journal.mark_ambiguous(mark)
        await self.queues.requeue(job, delay)
        telemetry.job_retry(record.operation, decision.error.code)
        _log_retry(record, attempt, delay, decision.error)
        moved = record.moved(
            JobState.RETRY_SCHEDULED,
            self.clock.now(),
            attempts=attempt,
            next_attempt_at=next_at,
            error=decision.error,
        )
        await self._write_row(moved)
        return Handled.RETRY_SCHEDULED

    async def _continue(self, job: Job, record: JobRecord, delivery: Delivery, error: ErrorInfo) -> Handled:
        """The rest of a batch in a new delivery, with the items done so far on the row: progress, not failure,
        so no attempt is used (each continuation finished more items; the deadline bounds them all)."""
        delay = self.policy.continuation_delay_seconds
        next_at = self.clock.now() + timedelta(seconds=delay)
        if next_at >= record.deadline:
            return await self._expire(record, delivery, error)
        message = (
            f"{error.message}; the rest continues in a new delivery at {next_at.isoformat()} "
            "(a continuation uses no attempt)"
        )
        error = error.model_copy(update={"message": message})
        await self.queues.requeue(job, delay)  # before the row says so, as for a retry
        moved = record.moved(JobState.RETRY_SCHEDULED, self.clock.now(), next_attempt_at=next_at, error=error)
        await self._write_row(moved)
        _log_continued(record, error)
        return Handled.CONTINUED

    async def _move_identity(
        self, job: Job, record: JobRecord, delivery: Delivery, decision: Decision, identity: str
    ) -> Handled:
        """The job's identity was refused and left the pool: the job runs again soon on another identity, using no
        attempt (nothing is wrong with the job). A write whose answer was lost is already marked ambiguous on the
        record, so the next run reconciles it or fails it, as any rerun would (outcomes.py)."""
        delay = self.policy.continuation_delay_seconds  # long enough never to overtake this run's row write
        next_at = self.clock.now() + timedelta(seconds=delay)
        if next_at >= record.deadline:
            return await self._expire(record, delivery, decision.error)
        message = (
            f"identity '{identity}' was refused ({decision.error.message}); the job runs on another identity"
        )
        error = decision.error.model_copy(update={"message": message})
        await self.queues.requeue(job, delay)  # before the row says so, as for a retry
        moved = record.moved(JobState.RETRY_SCHEDULED, self.clock.now(), next_attempt_at=next_at, error=error)
        await self._write_row(moved)
        logger.warning(
            "job %s moves off identity '%s', refused: %s",
            record.job_id,
            identity,
            decision.error.code,
            extra={"event": "jobs.identity_moved", "job_id": record.job_id, "identity": identity},
        )
        return Handled.RETRY_SCHEDULED

    async def _expire(self, record: JobRecord, delivery: Delivery, error: ErrorInfo) -> Handled:
        """The job's next try would start after its deadline: `expired`, with the last error."""
        message = f"{_deadline_message(record)}; last error: {error.message}"
        expired = error.model_copy(update={"message": message})
        return await self._finish(record, JobState.EXPIRED, delivery, error=expired, attempted=True)

    async def _park(self, job: Job, record: JobRecord, decision: Decision) -> Handled:
        # Runs that used no attempt (this one included) are the job's parks so far, plus any continuations or
        # crashed runs: the admin's wait grows with them, without the park using an attempt of its own.
        runs_without_attempt = max(1, record.runs - record.attempts)
        delay = self.policy.authorization_delay(runs_without_attempt)
        next_at = self.clock.now() + timedelta(seconds=delay)
        await self.queues.requeue(job, delay)
        moved = record.moved(
            JobState.WAITING_FOR_AUTHORIZATION,
            self.clock.now(),
            next_attempt_at=next_at,
            error=decision.error,
        )
        await self._write_row(moved)
        logger.warning(
            "job %s waits for an admin: %s",
            record.job_id,
            decision.error.code,
            extra={"event": "jobs.waiting_for_authorization", "job_id": record.job_id},
        )
        return Handled.WAITING_FOR_AUTHORIZATION

    async def _finish(
        self,
        record: JobRecord,
        state: JobState,
        delivery: Delivery,
        *,
        result: ResultSummary | None = None,
        error: ErrorInfo | None = None,
        attempted: bool = False,
    ) -> Handled:
        finished = record.moved(
            state,
            self.clock.now(),
            attempts=record.attempts + (1 if attempted else 0),
            next_attempt_at=None,
            finished_by=delivery.message_id,
            result=result or record.result,
            error=error,
        )
        written = await self._write_row(finished)
        if written is not None:
            await self.queues.publish(written.report())
            _log_finished(written)
        return FINISHED[state]

    async def _write_row(self, record: JobRecord) -> JobRecord | None:
        """Write the job's row over the claimed one (its result bounded first) with the run's audit, one storage
        call (JobStore.replace); None when the claim was lost (the audit is kept)."""
        if needs_bounding(record.result) and record.result is not None:
            # Too large for the row and the report: the full item list first (a row that says `itemsTruncated`
            # always has it behind it; a failure here raises like a failed row write), then the bounded row.
            await self.audit.keep_items(record.job_id, record.result.items or [])
            record = replace(record, result=bounded(record.result))
        run = _unkept_audit.get()
        interactions = run.interactions if run is not None else []
        earlier, last = interactions[:-AUDIT_ROOM], interactions[-AUDIT_ROOM:]
        await self._keep_audit(record.job_id, earlier)  # more than a transaction holds: the earliest first
        written = await self.store.replace(record, last)
        # Kept by the write, or just below; a raise above leaves it to _run_once's finally.
        _unkept_audit.set(None)
        if written is None:
            await self._keep_audit(record.job_id, last)  # nothing was written: the audit goes alone
            logger.warning(
                "job %s was taken over by another delivery; this run's outcome is dropped",
                record.job_id,
                extra={"event": "jobs.claim_lost", "job_id": record.job_id},
            )
        return written

    # ----- rejection ----------------------------------------------------------------------------------

    async def _refuse(self, job: Job, delivery: Delivery, reason: str) -> Handled:
        """`rejected` because of its connection (unknown, disabled, an API it may not call): claimed first, so a
        job parked before its connection was disabled ends too, with the reason."""
        connection = job.connection or self.lanes.default
        claimed = await self._claim(job, delivery, connection)
        if isinstance(claimed, Handled):
            return claimed
        error = ErrorInfo(code="connection_unusable", message=reason)
        return await self._finish(claimed, JobState.REJECTED, delivery, error=error)

    async def _reject(
        self, delivery: Delivery, invalid: InvalidJobError, *, reason: str | None = None
    ) -> Handled:
        """A `rejected` row with the reason, under the message's job id (or one derived from the message)."""
        now = self.clock.now()
        error = ErrorInfo(code="invalid_job", message=reason or invalid.reason)
        for job_id in dict.fromkeys(filter(None, (invalid.job_id, delivery.derived_job_id))):
            record = JobRecord.ended_unread(job_id, JobState.REJECTED, now, error, delivery.message_id)
            inserted = await self.store.insert(record)
            if inserted is not None:
                await self.queues.publish(inserted.report())
                _log_finished(inserted)
                return Handled.REJECTED
            existing = await self.store.get(job_id)
            if existing is not None and existing.finished_by == delivery.message_id:
                await self.queues.publish(existing.report())  # a redelivery of the rejected message
                return Handled.REJECTED
        return Handled.REJECTED  # only reachable when both ids are taken: the derived one is this message's


def _runs_here(current: JobRecord, sending_back: Handled) -> bool:
    """Whether a delivery must be admitted even though it was to go back to the queue: a finished job needs no BC
    (its claim answers), and a claimed one is never deferred: if its claim is this message's crashed run, this
    message is the job's only one and must take over (a copy would find the lease live and be dropped)."""
    claimed = sending_back is Handled.DEFERRED and current.state is JobState.RUNNING
    return current.state.terminal or claimed


def _reconcilable(job: Job) -> bool:
    """A lost write can be looked up again: create or upsert with a natural key."""
    return job.operation in (Operation.CREATE, Operation.UPSERT) and job.natural_key is not None


def _reconcilable_on_rerun(job: Job) -> bool:
    """After a run that may have written, a rerun is safe: reads, natural-key lookups, and update/delete (whose
    rerun compares fields after a stale ETag, or takes 404 as done). A create without a natural key, a bound
    action and a batch could apply twice."""
    return not job.is_write or _reconcilable(job) or job.operation in (Operation.UPDATE, Operation.DELETE)


def _cut_off(job: Job, budget: Budget, limit: timedelta) -> Exception:
    """A run cut off at the end of its time budget, as a BC request that timed out (outcomes.py): a write job's
    request may have reached BC, so its answer counts as lost; a batch keeps the items known so far."""
    timeout = RequestTimeoutError(
        f"the run's time budget of {limit.total_seconds():.0f} s ran out before BC answered",
        code=TIME_BUDGET_SPENT,
        request_sent=True,
    )
    if not job.is_write:
        return timeout
    return AmbiguousWriteError(timeout, items=dict(budget.items) if job.operations is not None else None)


def _unfinished_write() -> ErrorInfo:
    return ErrorInfo(
        code="ambiguous_write",
        message=(
            "an earlier run of this job stopped without recording its outcome (the worker crashed or storage "
            "failed) after it may have written to BC. Check in BC whether the change is there before sending "
            "it again under a new jobId; give the job a naturalKey so the product can reconcile such a write."
        ),
    )


def _items_by_index(result: ResultSummary | None) -> dict[int, ItemOutcome]:
    """The batch items a row's result holds, by operation index (empty without a result or items)."""
    return {item.index: item for item in (result.items or [])} if result is not None else {}


def _ordered(items: dict[int, ItemOutcome]) -> list[ItemOutcome]:
    return [items[index] for index in sorted(items)]


def _own_message(record: JobRecord, delivery: Delivery) -> bool:
    """Whether the live claim was taken by an earlier delivery of this same message (on any process).

    The host delivers a message again only once its earlier invocation ended (failed, or its worker or instance
    died: the lease is renewed while it runs), so that claim's run is over. Leaving the job to it would delete
    the job's only message and strand the job; this delivery takes over instead (a write becomes ambiguous and is
    reconciled, as after any takeover)."""
    holder = record.lease_holder or ""
    return holder.rsplit(":", 1)[-1] == delivery.message_id


def _deadline_message(record: JobRecord) -> str:
    return f"the job's deadline {record.deadline.isoformat()} passed before it could finish"


def _log_retry(record: JobRecord, attempt: int, delay: float, error: ErrorInfo) -> None:
    logger.info(
        "job %s: retry %d in %.0fs after %s",
        record.job_id,
        attempt + 1,
        delay,
        error.code,
        extra={"event": "jobs.retry_scheduled", "error_code": error.code, **_bc_ids(error)},
    )


def _log_continued(record: JobRecord, error: ErrorInfo) -> None:
    logger.info(
        "job %s continues in a new delivery: %s",
        record.job_id,
        error.message,
        extra={"event": "jobs.continued", "job_id": record.job_id, "error_code": error.code},
    )


def _bc_ids(error: ErrorInfo | None) -> dict[str, str | int | None]:
    """BC's side of an error: its code, the HTTP status and the request ids BC support asks for."""
    if error is None:
        return {}
    return {
        "bc_code": error.bc_code,
        "status": error.status,
        "client_request_id": error.client_request_id,
        "bc_request_id": error.bc_request_id,
    }


def _log_finished(record: JobRecord) -> None:
    if record.finished_at is not None:
        telemetry.job_finished(record.state.value, record.operation, record.created_at, record.finished_at)
    logger.info(
        "job %s %s after %d attempts",
        record.job_id,
        record.state.value,
        record.attempts,
        extra={
            "event": "jobs.finished",
            "job_id": record.job_id,
            "state": record.state.value,
            "operation": record.operation,
            "attempts": record.attempts,
            "correlation_id": record.correlation_id,
            "error_code": record.error.code if record.error else None,
            **_bc_ids(record.error),
        },
    )
