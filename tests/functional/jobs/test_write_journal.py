"""The processor tells the write journal what a successful write job produced (the change feed's echoes), and
a job that only read tells it nothing."""

from __future__ import annotations

from collections.abc import Sequence

from shared.jobs import Delivery, Handled
from shared.jobs.journal import Written
from tests.functional.jobs.conftest import Pipeline
from tests.functional.jobs.fakes import wire
from tests.functional.jobs.test_processor import CREATE, CREATED, GET, GUID


class RecordingJournal:
    def __init__(self) -> None:
        self.written: list[Written] = []

    async def record(self, writes: Sequence[Written]) -> None:
        self.written.extend(writes)


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
