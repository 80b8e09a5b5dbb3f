"""JobRecorder: one shared Recorder routes each BC interaction to the buffer of the job run that caused it."""

from __future__ import annotations

import asyncio
from datetime import timedelta

from shared.bc import Interaction as BcInteraction
from shared.jobs.audit import AuditBuffer, JobRecorder, auditing
from testkit.clock import START, ManualClock


def seen(path: str, *, request_id: str | None = None, correlation: str | None = None) -> BcInteraction:
    return BcInteraction(
        method="GET",
        path=path,
        status=200,
        duration_ms=12.5,
        try_number=1,
        client_request_id=f"cr-{path}",
        request_id=request_id,
        ms_correlation_x=correlation,
    )


async def test_two_concurrent_runs_each_get_only_their_own_interactions() -> None:
    """Interleaved requests of two job tasks land in the buffer of the task that made them."""
    clock = ManualClock()
    recorder = JobRecorder()
    first, second = AuditBuffer(1, clock), AuditBuffer(3, clock)
    turns = [asyncio.Event() for _ in range(4)]  # a, b, a, b: each request hands over to the other task

    async def run(buffer: AuditBuffer, name: str, mine: tuple[int, int]) -> None:
        with auditing(buffer):
            for step, turn in enumerate(mine, start=1):
                await turns[turn].wait()
                recorder.record(seen(f"{name}/{step}"))
                if turn + 1 < len(turns):
                    turns[turn + 1].set()

    tasks = asyncio.gather(run(first, "a", (0, 2)), run(second, "b", (1, 3)))
    turns[0].set()
    await asyncio.wait_for(tasks, 1)
    assert [item.path for item in first.interactions] == ["a/1", "a/2"]
    assert [item.path for item in second.interactions] == ["b/1", "b/2"]
    assert {item.attempt for item in first.interactions} == {1}
    assert {item.attempt for item in second.interactions} == {3}


async def test_a_task_started_inside_a_run_records_into_that_runs_buffer() -> None:
    """The buffer is copied into tasks the run starts (e.g. a client's concurrent page reads)."""
    recorder = JobRecorder()
    buffer = AuditBuffer(2, ManualClock())

    async def child() -> None:
        recorder.record(seen("child"))

    with auditing(buffer):
        await asyncio.create_task(child())
    assert [item.path for item in buffer.interactions] == ["child"]


def test_interactions_outside_a_job_run_are_not_kept() -> None:
    """No current buffer (e.g. the token refresh timer's requests): the interaction is dropped quietly."""
    recorder = JobRecorder()
    buffer = AuditBuffer(1, ManualClock())
    recorder.record(seen("before"))
    with auditing(buffer):
        recorder.record(seen("during"))
    recorder.record(seen("after"))
    assert [item.path for item in buffer.interactions] == ["during"]


def test_the_buffer_numbers_interactions_and_keeps_the_correlation_ids() -> None:
    """Sequence 1, 2, …; the time from the clock; BC's request id, or its ms-correlation-x when absent."""
    clock = ManualClock()
    buffer = AuditBuffer(4, clock)
    buffer.add(seen("one", request_id="bc-1", correlation="corr-1"))
    clock.advance(timedelta(seconds=2))
    buffer.add(seen("two", correlation="corr-2"))
    first, second = buffer.interactions
    assert (first.attempt, first.sequence, first.at) == (4, 1, START)
    assert (second.attempt, second.sequence, second.at) == (4, 2, START + timedelta(seconds=2))
    assert (first.bc_request_id, second.bc_request_id) == ("bc-1", "corr-2")
    assert first.client_request_id == "cr-one"
    assert (first.method, first.status, first.duration_ms) == ("GET", 200, 12.5)
