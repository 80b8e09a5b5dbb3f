"""The processor tells the write journal what a successful write job produced (the change feed's echoes), and
a job that only read tells it nothing; a write whose answer was lost is marked ambiguous before its retry is
queued, and the mark is cleared when the job ends (after its version was recorded, if it wrote)."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import timedelta

from shared.bc import RequestTimeoutError, RequestValidationError
from shared.jobs import Delivery, Handled
from shared.jobs.errors import AmbiguousWriteError
from shared.jobs.journal import AMBIGUOUS_HOLD, AmbiguousWrite, Written
from tests.functional.jobs.conftest import Pipeline
from tests.functional.jobs.fakes import wire
from tests.functional.jobs.test_processor import CREATE, CREATED, GET, GUID, KEYED_CREATE

LOST = AmbiguousWriteError(RequestTimeoutError("no answer", status=504))
UPDATE = {
    "jobId": "update-1",
    "operation": "update",
    "entitySet": "customers",
    "id": GUID.upper(),
    "data": {"phoneNumber": "1"},
}


class RecordingJournal:
    def __init__(self, pipeline: Pipeline | None = None) -> None:
        self.pipeline = pipeline
        self.written: list[Written] = []
        self.calls: list[tuple[str, AmbiguousWrite | Written, int]] = []  # with the retries queued by then

    def _queued(self) -> int:
        return len(self.pipeline.queues.requeued) if self.pipeline else 0

    async def record(self, writes: Sequence[Written]) -> None:
        self.written.extend(writes)
        self.calls.extend(("record", write, self._queued()) for write in writes)

    async def mark_ambiguous(self, write: AmbiguousWrite) -> None:
        self.calls.append(("mark", write, self._queued()))

    async def clear_ambiguous(self, write: AmbiguousWrite) -> None:
        self.calls.append(("clear", write, self._queued()))


async def deliver(pipeline: Pipeline, journal: RecordingJournal, text: str, message_id: str) -> Handled:
    processor = pipeline.processor()
    processor.journal = journal
    return await processor.handle(Delivery(message_id, text))


async def deliver_copy(pipeline: Pipeline, journal: RecordingJournal, message_id: str) -> Handled:
    copy = pipeline.queues.requeued[-1]
    pipeline.clock.advance(timedelta(seconds=copy.delay_seconds))
    return await deliver(pipeline, journal, copy.text, message_id)


async def test_a_created_record_is_journaled_under_the_job() -> None:
    """The create's id and ETag, on the lane's connection, named by the job id."""
    pipeline, journal = Pipeline(), RecordingJournal()
    pipeline.runner.script(CREATED)
    processor = pipeline.processor()
    processor.journal = journal
    assert await processor.handle(Delivery("m1", wire(CREATE))) is Handled.SUCCEEDED
    connection = processor.lanes.default
    assert journal.written == [Written(connection, "customers", GUID, 'W/"1"', "create-1")]


async def test_a_read_journals_nothing() -> None:
    """A get writes no version: the journal is not even asked."""
    pipeline, journal = Pipeline(), RecordingJournal()
    processor = pipeline.processor()
    processor.journal = journal
    assert await processor.handle(Delivery("m1", wire(GET))) is Handled.SUCCEEDED
    assert journal.written == []


async def test_a_lost_answer_marks_the_write_ambiguous_before_the_retry_and_the_retry_clears_it() -> None:
    """A keyed create's answer is lost: marked (any entity of the set: its id is unknown) before the retry is
    queued; the retry records the version it found, then clears the mark."""
    pipeline = Pipeline()
    journal = RecordingJournal(pipeline)
    pipeline.runner.script(LOST, CREATED)
    assert await deliver(pipeline, journal, wire(KEYED_CREATE), "m1") is Handled.RETRY_SCHEDULED
    connection = pipeline.processor().lanes.default
    row = pipeline.row("create-1")
    until = min(row.deadline, row.updated_at + AMBIGUOUS_HOLD)
    mark = AmbiguousWrite(connection, "customers", None, "create-1", until)
    assert journal.calls == [("mark", mark, 0)]
    assert await deliver_copy(pipeline, journal, "m2") is Handled.SUCCEEDED
    assert [(kind, n) for kind, _, n in journal.calls] == [("mark", 0), ("record", 1), ("clear", 1)]
    assert journal.calls[1][1] == Written(connection, "customers", GUID, 'W/"1"', "create-1")
    cleared = journal.calls[2][1]
    assert isinstance(cleared, AmbiguousWrite)
    assert (cleared.entity_set, cleared.entity_id, cleared.job_id) == ("customers", None, "create-1")


async def test_an_ambiguous_update_that_then_fails_clears_its_mark_without_recording() -> None:
    """The update's mark names its entity (lowercase, as BC's notifications do); its rerun fails: cleared."""
    pipeline = Pipeline()
    journal = RecordingJournal(pipeline)
    pipeline.runner.script(LOST, RequestValidationError("bad field", status=400))
    assert await deliver(pipeline, journal, wire(UPDATE), "m1") is Handled.RETRY_SCHEDULED
    assert await deliver_copy(pipeline, journal, "m2") is Handled.FAILED
    assert [(kind, getattr(w, "entity_id", None)) for kind, w, _ in journal.calls] == [
        ("mark", GUID),
        ("clear", GUID),
    ]


async def test_a_write_that_retries_for_a_reason_that_is_not_a_lost_answer_is_not_marked() -> None:
    """A 504 before anything ran: the retry needs no mark, and the success clears none."""
    pipeline = Pipeline()
    journal = RecordingJournal(pipeline)
    pipeline.runner.script(RequestTimeoutError("gateway", status=504), CREATED)
    assert await deliver(pipeline, journal, wire(KEYED_CREATE), "m1") is Handled.RETRY_SCHEDULED
    assert await deliver_copy(pipeline, journal, "m2") is Handled.SUCCEEDED
    assert [kind for kind, _, _ in journal.calls] == ["record"]
