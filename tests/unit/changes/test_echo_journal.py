"""The echo journal never stands in a job's way: unreadable watches mean no journal row, not a failed job."""

from __future__ import annotations

from typing import Any

from shared.changes.echoes import TableEchoJournal
from shared.changes.errors import ChangeLogUnavailableError
from shared.changes.watch import Watch
from shared.jobs.journal import Written
from testkit.clock import ManualClock


class UnreadableWatches:
    async def watches(self, connection: str) -> list[Watch]:
        raise ChangeLogUnavailableError("read the watches", "ServiceRequestError")


class NoTable:
    """A table that must not be called."""

    def __getattr__(self, name: str) -> Any:
        raise AssertionError(f"the table was called: {name}")


async def test_unreadable_watches_journal_nothing_and_raise_nothing() -> None:
    """The job has written to BC already: its outcome is recorded whatever the feed's storage does."""
    journal = TableEchoJournal(NoTable(), UnreadableWatches(), ManualClock())  # type: ignore[arg-type]
    await journal.record(
        [Written("contoso", "customers", "c0a8e2b1-0000-0000-0000-000000000001", "W/1", "j1")]
    )
