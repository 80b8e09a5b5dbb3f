"""processor.FINISHED: the explicit map from the state a delivery finishes a job in to what the delivery did."""

from __future__ import annotations

from bcjobs import JobState
from shared.jobs.processor import FINISHED


def test_every_state_a_delivery_can_finish_a_job_in_has_an_answer() -> None:
    """Every terminal state but `dead_lettered` (written only by the poison handler) maps to a Handled."""
    assert set(FINISHED) == {state for state in JobState if state.terminal} - {JobState.DEAD_LETTERED}


def test_each_answer_names_the_state_the_job_finished_in() -> None:
    """The delivery log's `handled` value for a finished job is the job's state, as it was before the map."""
    assert all(handled.value == state.value for state, handled in FINISHED.items())
