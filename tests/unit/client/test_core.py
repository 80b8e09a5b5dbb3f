"""The clients' sans-I/O core, driven by hand: each flow asks for its storage calls and interprets the answers."""

from __future__ import annotations

from typing import Any

import pytest
from azure.core.exceptions import HttpResponseError, ResourceNotFoundError

from bcjobs import JobReport, JobState
from bcjobs.common import JobPage
from bcjobs.core import Call, ClientCore, Listing, Sleep, Stepper
from bcjobs.errors import JobsStorageError, WaitTimeoutError


class Recorder:
    """An SDK client stand-in: each method returns a record of its call instead of doing I/O."""

    queue_name = "bc-jobs"

    def __getattr__(self, name: str) -> Any:
        return lambda *args, **kwargs: (name, args, kwargs)


def core() -> ClientCore[Any, Any]:
    client: ClientCore[Any, Any] = ClientCore()
    client._setup(
        jobs_queue=Recorder(),
        results_queue=Recorder(),
        jobs_table=Recorder(),
        audit_table=Recorder(),
        max_concurrency=1,
    )
    return client


def outcome(stepper: Stepper[Any]) -> tuple[bool, Any]:
    """Whether the flow has returned, and what (read through a call, so mypy keeps no narrowing)."""
    return stepper.step is None, getattr(stepper, "result", None)


def test_get_asks_for_the_job_row_and_reads_a_missing_one_as_none() -> None:
    """The flow yields the get_entity call; a not-found answer thrown back in makes the result None."""
    stepper = Stepper(core()._get("job-1", interactions=False))
    assert isinstance(stepper.step, Call)
    assert stepper.step.action() == ("get_entity", ("job-1", "job"), {})
    stepper.fail(ResourceNotFoundError("gone"))
    assert outcome(stepper) == (True, None)


def test_get_of_an_id_that_cannot_exist_asks_nothing() -> None:
    """An id outside the contract's pattern is answered None without a storage call."""
    assert outcome(Stepper(core()._get("not an id!", interactions=True))) == (True, None)


def test_a_storage_failure_becomes_a_jobs_storage_error() -> None:
    stepper = Stepper(core()._get("job-1", interactions=False))
    with pytest.raises(JobsStorageError, match="reading job job-1"):
        stepper.fail(HttpResponseError("refused"))


def test_wait_polls_sleeps_and_times_out_with_the_last_report() -> None:
    """Between polls the flow asks to sleep; at the deadline it raises WaitTimeoutError with the last report."""
    running = {"PartitionKey": "job-1", "RowKey": "job", "State": "running"}
    stepper = Stepper(core()._wait("job-1", timeout=0.0, poll=0.5, max_poll=1.0, on_poll=None))
    with pytest.raises(WaitTimeoutError) as caught:
        stepper.answer(running)
    assert caught.value.last is not None
    assert caught.value.last.state is JobState.RUNNING
    stepper = Stepper(core()._wait("job-1", timeout=60.0, poll=0.5, max_poll=1.0, on_poll=None))
    stepper.answer(running)
    assert stepper.step == Sleep(0.5)


def test_listing_stops_at_the_limit_without_asking_for_another_page() -> None:
    reports = [JobReport(job_id=f"j-{i}", state=JobState.RUNNING) for i in range(3)]
    listing = Listing(4)
    assert [r.job_id for r in listing.take(JobPage(reports, "next"))] == ["j-0", "j-1", "j-2"]
    assert listing.more
    assert listing.token == "next"
    assert [r.job_id for r in listing.take(JobPage(reports, "again"))] == ["j-0"]
    assert (listing.more, listing.token) == (False, "again")
    assert not Listing(None).take(JobPage([], None))
