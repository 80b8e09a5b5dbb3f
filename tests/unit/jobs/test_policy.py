"""JobPolicy: retry and authorization delays, attempts, token validity, and the policy the settings ask for."""

from __future__ import annotations

import random
from dataclasses import replace
from datetime import timedelta
from typing import Any

import pytest

from bcjobs import Job
from shared.jobs.policy import JobPolicy
from shared.settings import JobSettings
from shared.tokens import DEFAULT_MIN_VALIDITY

GUID = "6f0b0c7e-1d2a-4c3b-9e8f-0a1b2c3d4e5f"


def policy_with(**changes: Any) -> JobPolicy:
    """The default settings' policy with `changes` (the numbers a test pins)."""
    return replace(JobPolicy.from_settings(JobSettings()), **changes)


def batch(size: int) -> Job:
    return Job.model_validate(
        {
            "operation": "batch",
            "operations": [{"operation": "delete", "entitySet": "customers", "id": GUID}] * size,
        }
    )


def test_the_retry_delay_is_full_jitter_below_the_exponential_nominal() -> None:
    """attempt n waits base·2^(n-1)·(1-u): the same seeded draw gives the same delay."""
    policy = policy_with(backoff_base_seconds=5.0, backoff_cap_seconds=900.0)
    u = random.Random(7).random()
    assert policy.retry_delay(3, None, random.Random(7)) == pytest.approx(20.0 * (1 - u))


def test_full_jitter_spreads_retries_over_the_whole_window() -> None:
    """Across many draws the delays cover [0, nominal] (no floor that would herd the retries)."""
    policy = policy_with(backoff_base_seconds=5.0, backoff_cap_seconds=900.0)
    rng = random.Random(1234)
    delays = [policy.retry_delay(4, None, rng) for _ in range(500)]
    assert all(0.0 <= delay <= 40.0 for delay in delays)
    assert min(delays) < 4.0
    assert max(delays) > 36.0


def test_the_retry_delay_is_never_shorter_than_retry_after() -> None:
    """BC's Retry-After is a floor under the jitter."""
    policy = policy_with(backoff_base_seconds=5.0, backoff_cap_seconds=900.0)
    rng = random.Random(5)
    assert all(policy.retry_delay(1, 120.0, rng) >= 120.0 for _ in range(200))


def test_the_backoff_never_exceeds_the_cap() -> None:
    """However late the attempt, our own backoff stays at or under the cap."""
    policy = policy_with(backoff_base_seconds=5.0, backoff_cap_seconds=900.0)
    rng = random.Random(9)
    delays = [policy.retry_delay(40, None, rng) for _ in range(200)]
    assert all(delay <= 900.0 for delay in delays)
    assert max(delays) > 800.0


def test_the_authorization_delay_grows_to_its_cap_jittered_by_up_to_half() -> None:
    """A parked job looks again after base·2^(w-1), shortened by up to half; never beyond the cap."""
    policy = policy_with(authorization_base_seconds=30.0, authorization_cap_seconds=300.0)
    rng = random.Random(3)
    first = [policy.authorization_delay(1, rng) for _ in range(200)]
    late = [policy.authorization_delay(20, rng) for _ in range(200)]
    assert all(15.0 <= delay <= 30.0 for delay in first)
    assert all(150.0 <= delay <= 300.0 for delay in late)
    u = random.Random(11).random()
    assert policy.authorization_delay(2, random.Random(11)) == pytest.approx(60.0 * (1 - 0.5 * u))


def test_the_no_slot_delay_is_spread_between_one_and_two_times_its_setting() -> None:
    """Jobs sent back for want of a BC slot do not all return at the same moment."""
    policy = policy_with(no_slot_delay_seconds=5.0)
    rng = random.Random(2)
    delays = [policy.no_slot_delay(rng) for _ in range(200)]
    assert all(5.0 <= delay < 10.0 for delay in delays)
    assert max(delays) - min(delays) > 4.0


def test_the_last_allowed_attempt_gives_up() -> None:
    """With max_attempts 3, attempts 1 and 2 retry and attempt 3 is the last."""
    policy = policy_with(max_attempts=3)
    assert [policy.gives_up_after(attempt) for attempt in (1, 2, 3, 4)] == [False, False, True, True]


def test_min_validity_grows_with_a_batchs_size() -> None:
    """A token must outlive one slow request plus a little per request: larger batches ask for more."""
    policy = policy_with(per_request_validity=timedelta(seconds=2))
    timeout = timedelta(minutes=5)
    single = Job.model_validate({"operation": "delete", "entitySet": "customers", "id": GUID})
    validities = [policy.min_validity(job, timeout) for job in (single, batch(1), batch(150), batch(1000))]
    assert validities == sorted(validities)
    assert validities[-1] > validities[1]
    # 1000 operations: 10 $batch requests of 100, 3 requests each, plus 2 lookups.
    assert validities[-1] == timeout + timedelta(seconds=2) * 32


def test_min_validity_is_never_below_the_token_seams_default() -> None:
    """A short request timeout still asks for at least DEFAULT_MIN_VALIDITY."""
    policy = policy_with()
    job = Job.model_validate({"operation": "list", "entitySet": "customers"})
    assert policy.min_validity(job, timedelta(seconds=10)) == DEFAULT_MIN_VALIDITY


def settings(**values: Any) -> JobSettings:
    return JobSettings.model_validate(values)


def test_the_policy_follows_the_settings() -> None:
    """Attempts, backoff, authorization re-check, deadline and lease come from the app settings."""
    policy = JobPolicy.from_settings(
        settings(
            BC_JOB_MAX_ATTEMPTS=3,
            BC_JOB_BACKOFF_BASE_SECONDS=2,
            BC_JOB_BACKOFF_CAP_SECONDS=60,
            BC_JOB_AUTHORIZATION_RECHECK_SECONDS=600,
            BC_JOB_DEFAULT_DEADLINE_HOURS=2,
            BC_JOB_CLAIM_LEASE_SECONDS=120,
        )
    )
    assert policy.max_attempts == 3
    assert (policy.backoff_base_seconds, policy.backoff_cap_seconds) == (2.0, 60.0)
    assert (policy.authorization_base_seconds, policy.authorization_cap_seconds) == (30.0, 600.0)
    assert policy.default_deadline == timedelta(hours=2)
    assert policy.claim_lease == timedelta(seconds=120)


def test_a_cap_below_the_base_is_raised_to_the_base() -> None:
    """BC_JOB_BACKOFF_CAP_SECONDS below the base cannot make retries shorter than the base."""
    policy = JobPolicy.from_settings(settings(BC_JOB_BACKOFF_BASE_SECONDS=10, BC_JOB_BACKOFF_CAP_SECONDS=3))
    assert policy.backoff_cap_seconds == 10.0


def test_a_short_authorization_recheck_also_shortens_the_first_wait() -> None:
    """A re-check interval under 30 s is both the first wait and the cap."""
    policy = JobPolicy.from_settings(settings(BC_JOB_AUTHORIZATION_RECHECK_SECONDS=1))
    assert (policy.authorization_base_seconds, policy.authorization_cap_seconds) == (1.0, 1.0)
    assert policy.authorization_delay(5, random.Random(0)) <= 1.0


def test_a_policy_cannot_be_built_without_the_settings_numbers() -> None:
    """Unset app settings mean the documented defaults, and those live only in the settings: the policy has none
    of its own for what a setting gives (tests/unit/core/test_single_defaults.py checks every policy)."""
    with pytest.raises(TypeError, match="missing"):
        JobPolicy()  # type: ignore[call-arg]
