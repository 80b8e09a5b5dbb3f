"""IdentityPool: a job goes to the identity with the most budget left, round-robin among equals; a refused identity
leaves the pool and rejoins once its token manager got a token again (shared/jobs/pool.py)."""

from __future__ import annotations

import logging
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from typing import cast

import pytest

from shared.auth import ConnectionStatus, Health
from shared.errors import IntegrationError
from shared.jobs.lanes import Lane
from shared.jobs.pool import HEALTH_TTL_SECONDS, IdentityPool, PoolMember
from shared.jobs.runner import JobRunner
from shared.tokens import AuthMode, TokenProvider
from testkit.clock import ManualClock
from testkit.lanes import TEST_CONNECTION

START = datetime(2026, 12, 6, 9, 0, tzinfo=UTC)


@dataclass
class FakeHeadroom:
    """A throttle's spare(): settable free slots and wait."""

    free: int = 5
    wait: float = 0.0

    def spare(self) -> tuple[int, float]:
        return self.free, self.wait


@dataclass
class FakeHealth:
    """An identity's TokenManager.status(): a settable health and last refresh; counts the reads."""

    health: Health = Health.OK
    last_refresh_at: datetime | None = None
    reads: int = 0
    broken: bool = False

    probes: int = 0
    clock: ManualClock | None = None

    async def probe(self) -> None:
        """refresh_if_due: a due refresh succeeds (the token manager got a token) when a clock is given."""
        self.probes += 1
        if self.clock is not None:
            self.last_refresh_at = self.clock.now()

    async def status(self) -> ConnectionStatus:
        self.reads += 1
        if self.broken:
            raise IntegrationError("the auth table cannot be read")
        return ConnectionStatus(
            "default--x", AuthMode.CLIENT_CREDENTIALS, self.health, True, None, None, None, 1,
            self.last_refresh_at, None, None, None, None, None,
        )  # fmt: skip


def lane(identity: str) -> Lane:
    return Lane(TEST_CONNECTION, cast(JobRunner, None), cast(TokenProvider, None), identity=identity)


def pool_of(*names: str) -> tuple[IdentityPool, dict[str, FakeHeadroom], dict[str, FakeHealth], ManualClock]:
    clock = ManualClock(START)
    rooms = {name: FakeHeadroom() for name in names}
    healths = {name: FakeHealth() for name in names}
    members = [
        PoolMember(lane(name), rooms[name], healths[name].status, healths[name].probe) for name in names
    ]
    return IdentityPool(members, clock), rooms, healths, clock


async def chosen(pool: IdentityPool, times: int) -> list[str]:
    return [(await pool.choose()).identity for _ in range(times)]


async def test_equal_budgets_take_turns() -> None:
    pool, _, _, _ = pool_of("primary", "second", "third")
    assert await chosen(pool, 6) == ["primary", "second", "third", "primary", "second", "third"]


async def test_the_identity_with_the_most_free_slots_gets_the_job() -> None:
    pool, rooms, _, _ = pool_of("primary", "second", "third")
    rooms["primary"].free, rooms["second"].free, rooms["third"].free = 1, 4, 2
    assert await chosen(pool, 3) == ["second"] * 3


async def test_a_shorter_wait_for_the_pace_breaks_a_tie_of_free_slots() -> None:
    pool, rooms, _, _ = pool_of("primary", "second")
    rooms["primary"].wait, rooms["second"].wait = 0.5, 0.05
    assert await chosen(pool, 2) == ["second", "second"]


async def test_jobs_running_on_an_identity_count_against_it() -> None:
    """Jobs that start together spread before any of them asked its throttle for a permit."""
    pool, _, _, _ = pool_of("primary", "second")
    first = await pool.choose()
    with first.backlog.running():
        assert [(await pool.choose()).identity for _ in range(3)] == ["second"] * 3
    assert first.identity == "primary"


async def test_a_refused_identity_leaves_and_its_job_moves_to_another(
    caplog: pytest.LogCaptureFixture,
) -> None:
    pool, _, _, _ = pool_of("primary", "second")
    refused = await pool.choose()
    with caplog.at_level(logging.ERROR, logger="shared.jobs.pool"):
        assert await refused.leave_pool() is True
    assert pool.is_out("primary")
    assert await chosen(pool, 3) == ["second"] * 3
    [record] = [r for r in caplog.records if getattr(r, "event", None) == "jobs.identity_left"]
    assert (getattr(record, "connection", None), getattr(record, "identity", None)) == ("default", "primary")
    assert "POST /api/connections/default/check" in record.getMessage()


async def test_with_every_identity_out_the_job_gets_the_primary_and_parks() -> None:
    pool, _, _, _ = pool_of("primary", "second")
    assert await (await pool.choose()).leave_pool() is True
    assert await (await pool.choose()).leave_pool() is False  # nobody left: the processor parks the job
    assert (await pool.choose()).identity == "primary"


async def test_an_identity_whose_record_needs_an_admin_leaves_at_the_next_reading() -> None:
    pool, _, healths, clock = pool_of("primary", "second")
    await pool.choose()
    healths["second"].health = Health.CREDENTIALS_REJECTED
    assert await chosen(pool, 2) == ["second", "primary"]  # read less than HEALTH_TTL_SECONDS ago
    clock.advance(timedelta(seconds=HEALTH_TTL_SECONDS))
    assert await chosen(pool, 3) == ["primary"] * 3
    assert healths["second"].reads == 2


async def test_a_refused_identity_rejoins_once_its_token_manager_got_a_token_again() -> None:
    pool, _, healths, clock = pool_of("primary", "second")
    await (await pool.choose()).leave_pool()  # primary refused at START
    clock.advance(timedelta(seconds=HEALTH_TTL_SECONDS))
    healths["primary"].last_refresh_at = START - timedelta(minutes=5)  # healthy record, but no newer token
    assert await chosen(pool, 2) == ["second", "second"]
    healths["primary"].last_refresh_at = clock.now()  # the check or the refresh timer got one
    clock.advance(timedelta(seconds=HEALTH_TTL_SECONDS))
    assert sorted(await chosen(pool, 2)) == ["primary", "second"]
    assert not pool.is_out("primary")


async def test_an_unreadable_health_keeps_what_is_known() -> None:
    pool, _, healths, clock = pool_of("primary", "second")
    healths["second"].broken = True
    assert await chosen(pool, 2) == ["primary", "second"]
    clock.advance(timedelta(seconds=HEALTH_TTL_SECONDS))
    assert await chosen(pool, 2) == ["primary", "second"]


async def test_one_identity_is_its_lane_as_before_pools() -> None:
    """No health read, and a refusal parks the job (no alert: bc-admin-needed covers one identity)."""
    pool, _, healths, _ = pool_of("primary")
    only = await pool.choose()
    assert only == lane("primary")
    assert await only.leave_pool() is False
    assert healths["primary"].reads == 0
    assert not pool.is_out("primary")


def test_a_lane_is_the_primary_identity_unless_told() -> None:
    plain = Lane(TEST_CONNECTION, cast(JobRunner, None), cast(TokenProvider, None))
    assert plain.identity == "primary"
    assert replace(plain, identity="second").identity == "second"


async def test_an_identity_that_is_out_is_probed_and_rejoins_once_a_due_refresh_succeeds() -> None:
    """No job asks an out identity for a token: each health reading first asks its manager for the due refresh the
    timer would make (where no timer runs, it still comes back)."""
    pool, _, healths, clock = pool_of("primary", "second")
    await pool.choose()
    second = await pool.choose()
    await second.leave_pool()
    assert healths["primary"].probes == 0  # in the pool: never probed
    clock.advance(timedelta(seconds=HEALTH_TTL_SECONDS))
    await pool.choose()
    assert healths["second"].probes == 1
    assert pool.is_out("second")  # the refresh was not due: no newer token
    healths["second"].clock = clock
    clock.advance(timedelta(seconds=HEALTH_TTL_SECONDS))
    await pool.choose()
    assert not pool.is_out("second")
    assert healths["primary"].probes == 0
