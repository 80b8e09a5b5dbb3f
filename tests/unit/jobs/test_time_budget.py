"""The time budget's numbers against host.json's functionTimeout, the claim lease and the token's validity, and the
settings check that refuses values that cannot fit."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from shared.jobs.errors import TimeBudgetSpentError
from shared.jobs.outcomes import Verdict, decide
from shared.jobs.policy import JobPolicy
from shared.settings import (
    FUNCTION_TIMEOUT_SECONDS,
    INVOCATION_RESERVE_SECONDS,
    BcSettings,
    JobSettings,
    check_settings,
    load_settings,
)
from shared.tokens import DEFAULT_MIN_VALIDITY

HOST_JSON = Path(__file__).resolve().parents[3] / "host.json"
BUDGET_SETTINGS = {"BC_REQUEST_TIMEOUT_SECONDS", "BC_JOB_TIME_BUDGET_SECONDS"}


def function_timeout() -> timedelta:
    """host.json's functionTimeout ("hh:mm:ss")."""
    hours, minutes, seconds = json.loads(HOST_JSON.read_text(encoding="utf-8"))["functionTimeout"].split(":")
    return timedelta(hours=int(hours), minutes=int(minutes), seconds=float(seconds))


def default_policy() -> JobPolicy:
    return JobPolicy.from_settings(JobSettings())


def test_the_settings_know_host_json_function_timeout() -> None:
    """The limit the settings check uses is the one the host enforces."""
    assert function_timeout() == timedelta(seconds=FUNCTION_TIMEOUT_SECONDS)


def test_a_whole_invocation_fits_safely_inside_function_timeout() -> None:
    """Slot hold + budget + one request timeout + recording the outcome stay under functionTimeout by a minute."""
    policy = default_policy()
    request = timedelta(seconds=BcSettings().request_timeout_seconds)
    hold = timedelta(seconds=policy.no_slot_hold_seconds)
    invocation = hold + policy.time_budget + request + policy.record_allowance
    assert invocation <= function_timeout() - timedelta(minutes=1)


def test_the_settings_reserve_covers_the_slot_hold_and_recording() -> None:
    """What check_settings keeps back from functionTimeout is at least what the pipeline needs besides the run."""
    policy = default_policy()
    needed = timedelta(seconds=policy.no_slot_hold_seconds) + policy.record_allowance
    assert timedelta(seconds=INVOCATION_RESERVE_SECONDS) >= needed


def test_a_live_run_outlasts_no_claim_lease() -> None:
    """The lease outlives the longest run and its recording, and functionTimeout itself: a run that is still
    alive is never taken over, and one the host killed is taken over once its lease ends."""
    policy = default_policy()
    request = timedelta(seconds=BcSettings().request_timeout_seconds)
    assert policy.claim_lease > policy.time_budget + request + policy.record_allowance
    assert policy.claim_lease > function_timeout()


def test_the_token_a_run_starts_with_lasts_the_whole_budget() -> None:
    """Every job asks for a token valid at least DEFAULT_MIN_VALIDITY, which is no shorter than the budget."""
    assert default_policy().time_budget <= DEFAULT_MIN_VALIDITY


def test_the_budget_leaves_bc_s_own_limits_to_bc() -> None:
    """BC cuts an operation off after 8 minutes and a request after 10: our budget ends well before either."""
    assert default_policy().time_budget < timedelta(minutes=8)


def test_the_time_budget_setting_reaches_the_policy() -> None:
    """BC_JOB_TIME_BUDGET_SECONDS becomes JobPolicy.time_budget."""
    settings = JobSettings.model_validate({"BC_JOB_TIME_BUDGET_SECONDS": "4"})
    assert JobPolicy.from_settings(settings).time_budget == timedelta(seconds=4)


def budget_problems(**environ: str) -> dict[str, str]:
    problems = check_settings(load_settings(environ))
    return {problem.setting: str(problem) for problem in problems if problem.setting in BUDGET_SETTINGS}


def test_the_defaults_and_a_short_test_budget_pass_the_check() -> None:
    """300 s with 60 s requests (Azure), and 3 s with 1 s requests (a test), are both fine."""
    assert budget_problems() == {}
    assert budget_problems(BC_JOB_TIME_BUDGET_SECONDS="3", BC_REQUEST_TIMEOUT_SECONDS="1") == {}


@pytest.mark.parametrize("request_timeout", ["300", "400"])
def test_a_request_timeout_that_cannot_finish_inside_the_budget_is_refused(request_timeout: str) -> None:
    """A request as long as the budget would be cut off every time: the check names the request timeout."""
    problems = budget_problems(BC_REQUEST_TIMEOUT_SECONDS=request_timeout)
    assert list(problems) == ["BC_REQUEST_TIMEOUT_SECONDS"]
    assert "BC_JOB_TIME_BUDGET_SECONDS" in problems["BC_REQUEST_TIMEOUT_SECONDS"]


def test_a_budget_that_leaves_function_timeout_too_little_is_refused() -> None:
    """400 s + 60 s leaves under 3 minutes of the 10 for the slot hold and recording: named with the limit."""
    problems = budget_problems(BC_JOB_TIME_BUDGET_SECONDS="400")
    assert list(problems) == ["BC_JOB_TIME_BUDGET_SECONDS"]
    assert "420 s" in problems["BC_JOB_TIME_BUDGET_SECONDS"]


@pytest.mark.parametrize(("progressed", "verdict"), [(True, Verdict.CONTINUE), (False, Verdict.RETRY)])
def test_a_spent_budget_continues_only_after_progress(progressed: bool, verdict: Verdict) -> None:
    """Progress continues without an attempt; a run that finished nothing is retried as an attempt."""
    spent = TimeBudgetSpentError("the run's time budget ran out", items={}, progressed=progressed)
    decision = decide(spent, reconcilable=False, now=datetime(2026, 1, 5, tzinfo=UTC))
    assert (decision.verdict, decision.error.code, decision.ambiguous) == (
        verdict,
        "time_budget_spent",
        False,
    )
