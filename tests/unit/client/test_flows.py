"""The clients' flows, driven by hand: each flow asks for its storage calls and interprets the answers."""

from __future__ import annotations

from typing import Any

import pytest
from azure.core.exceptions import HttpResponseError, ResourceNotFoundError

from bcjobs import JobReport, JobState
from bcjobs import _flows as flows
from bcjobs._flows import Driver, Listing, SdkCall, Sleep, StorageClients
from bcjobs.common import JobPage
from bcjobs.errors import JobsStorageError, WaitTimeoutError


class Recorder:
    """An SDK client stand-in: each method returns a record of its call instead of doing I/O."""

    queue_name = "bc-jobs"

    def __getattr__(self, name: str) -> Any:
        return lambda *args, **kwargs: (name, args, kwargs)


def storage() -> StorageClients:
    return StorageClients(
        jobs_queue=Recorder(),
        results_queue=Recorder(),
        jobs_table=Recorder(),
        audit_table=Recorder(),
    )


def outcome(driver: Driver[Any]) -> tuple[bool, Any]:
    """Whether the flow has returned, and what (read through a call, so mypy keeps no narrowing)."""
    return driver.instruction is None, getattr(driver, "result", None)


def answer(driver: Driver[Any], value: Any) -> None:
    """Carry out the flow's SDK call by hand: `value` is what the SDK returned."""
    assert isinstance(driver.instruction, SdkCall)
    driver.instruction.answer = value
    driver.resume()


def test_get_asks_for_the_job_row_and_reads_a_missing_one_as_none() -> None:
    """The flow asks for the get_entity call; a not-found answer thrown back in makes the result None."""
    driver = Driver(flows.get(storage(), "job-1", with_interactions=False))
    assert isinstance(driver.instruction, SdkCall)
    assert driver.instruction.action() == ("get_entity", ("job-1", "job"), {})
    driver.fail(ResourceNotFoundError("gone"))
    assert outcome(driver) == (True, None)


def test_get_of_an_id_that_cannot_exist_asks_nothing() -> None:
    """An id outside the contract's pattern is answered None without a storage call."""
    assert outcome(Driver(flows.get(storage(), "not an id!", with_interactions=True))) == (True, None)


def test_a_storage_failure_becomes_a_jobs_storage_error() -> None:
    driver = Driver(flows.get(storage(), "job-1", with_interactions=False))
    with pytest.raises(JobsStorageError, match="reading job job-1"):
        driver.fail(HttpResponseError("refused"))


def test_wait_polls_sleeps_and_times_out_with_the_last_report() -> None:
    """Between polls the flow asks to sleep; at the deadline it raises WaitTimeoutError with the last report."""
    running = {"PartitionKey": "job-1", "RowKey": "job", "State": "running"}
    driver = Driver(flows.wait(storage(), "job-1", timeout=0.0, poll=0.5, max_poll=1.0, on_poll=None))
    with pytest.raises(WaitTimeoutError) as caught:
        answer(driver, running)
    assert caught.value.last is not None
    assert caught.value.last.state is JobState.RUNNING
    driver = Driver(flows.wait(storage(), "job-1", timeout=60.0, poll=0.5, max_poll=1.0, on_poll=None))
    answer(driver, running)
    assert driver.instruction == Sleep(0.5)


def test_listing_stops_at_the_limit_without_asking_for_another_page() -> None:
    reports = [JobReport(job_id=f"j-{i}", state=JobState.RUNNING) for i in range(3)]
    listing = Listing(4)
    assert [r.job_id for r in listing.take(JobPage(reports, "next"))] == ["j-0", "j-1", "j-2"]
    assert listing.more
    assert listing.token == "next"
    assert [r.job_id for r in listing.take(JobPage(reports, "again"))] == ["j-0"]
    assert (listing.more, listing.token) == (False, "again")
    assert not Listing(None).take(JobPage([], None))
