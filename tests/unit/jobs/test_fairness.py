"""The deferral decision of one budget's backlog in one process (shared/jobs/fairness.py)."""

from __future__ import annotations

import random
from contextlib import ExitStack
from datetime import timedelta

import pytest

from shared.bc.throttle import Share
from shared.jobs.fairness import (
    LEAD_SECONDS,
    MAX_DELAY_SECONDS,
    MIN_DELAY_SECONDS,
    ROOM_CAP,
    BudgetBacklog,
    NoBacklog,
    pool_key,
    pooled_share,
)
from testkit.clock import ManualClock


class Budget:
    """The share a process holds and whether the registry has more than one budget (both settable)."""

    def __init__(self, rate: float = 5.0, slots: int = 2, *, contended: bool = True) -> None:
        self.current = Share(rate=rate, slots=slots, members=1)
        self.contended = contended
        self.asked = 0

    def share(self) -> Share:
        return self.current

    async def is_contended(self) -> bool:
        self.asked += 1
        return self.contended


def backlog_of(budget: Budget, clock: ManualClock | None = None) -> BudgetBacklog:
    return BudgetBacklog(budget.share, budget.is_contended, clock or ManualClock(), random.Random(7))


def fill(backlog: BudgetBacklog, stack: ExitStack, count: int) -> None:
    for _ in range(count):
        stack.enter_context(backlog.running())


async def test_a_backlog_with_room_runs_the_delivery_without_asking_the_registry() -> None:
    budget = Budget(rate=5.0, slots=2)  # room: max(2, 5/s x 1 s) = 5
    backlog = backlog_of(budget)
    with ExitStack() as stack:
        fill(backlog, stack, 4)
        assert await backlog.deferral() is None
    assert budget.asked == 0


async def test_a_full_backlog_sends_the_delivery_back_while_several_budgets_share_the_queue() -> None:
    backlog = backlog_of(Budget(rate=5.0, slots=2))
    with ExitStack() as stack:
        fill(backlog, stack, 5)
        delay = await backlog.deferral()
    assert delay is not None
    assert delay >= MIN_DELAY_SECONDS


async def test_with_a_single_budget_a_full_backlog_still_runs_everything_here() -> None:
    budget = Budget(rate=10.0, slots=2, contended=False)
    backlog = backlog_of(budget)
    with ExitStack() as stack:
        fill(backlog, stack, 50)
        assert await backlog.deferral() is None
    assert budget.asked == 1


async def test_a_process_without_a_rate_leaves_the_delivery_to_the_slot_hold() -> None:
    backlog = backlog_of(Budget(rate=0.0, slots=0))
    with ExitStack() as stack:
        fill(backlog, stack, 50)
        assert await backlog.deferral() is None


async def test_the_room_is_at_least_the_shares_slots() -> None:
    backlog = backlog_of(Budget(rate=1.0, slots=3))  # 1/s x 1 s = 1: the slots win
    with ExitStack() as stack:
        fill(backlog, stack, 2)
        assert await backlog.deferral() is None
        fill(backlog, stack, 1)
        assert await backlog.deferral() is not None


async def test_jobs_sent_back_one_after_another_come_back_one_share_interval_apart() -> None:
    """A virtual schedule at the share's rate once the process served at that rate: the n-th job sent back is
    due about n / rate seconds later."""
    clock = ManualClock()
    backlog = backlog_of(Budget(rate=5.0, slots=2), clock)
    for _ in range(50):  # 5 deliveries a second over the last 10 s
        with backlog.running():
            clock.advance(timedelta(seconds=0.2))
    with ExitStack() as stack:
        fill(backlog, stack, 5)
        delays = [await backlog.deferral() for _ in range(200)]
    assert all(delay is not None for delay in delays)
    last = delays[-1]
    assert last is not None
    # Due at (5 - 5 / 2) / 5 + 200 / 5 = 40.5 s, minus the lead, plus up to 10 % jitter.
    assert 40.5 - LEAD_SECONDS <= last <= (40.5 - LEAD_SECONDS) * 1.1


async def test_a_process_serving_slower_than_its_share_spaces_the_jobs_it_sends_back_wider() -> None:
    """A busy CPU served 3 a second of a 5/s share: jobs sent back at 5/s would come back faster than served."""
    clock = ManualClock()
    backlog = backlog_of(Budget(rate=5.0, slots=2), clock)
    for _ in range(30):
        with backlog.running():
            clock.advance(timedelta(seconds=1 / 3))
    with ExitStack() as stack:
        fill(backlog, stack, 5)
        delays = [await backlog.deferral() for _ in range(200)]
    last = delays[-1]
    assert last is not None
    # At 3/s, probed 25 % higher: due at (5 - 5 / 2) / 3.75 + 200 / 3.75 = 54 s, minus the lead, plus jitter.
    assert 54 - LEAD_SECONDS <= last <= (54 - LEAD_SECONDS) * 1.1


async def test_without_a_record_of_what_it_served_the_schedule_assumes_half_the_share() -> None:
    backlog = backlog_of(Budget(rate=5.0, slots=2))
    with ExitStack() as stack:
        fill(backlog, stack, 5)
        delays = [await backlog.deferral() for _ in range(200)]
    last = delays[-1]
    assert last is not None
    # At 2.5/s: due at (5 - 5 / 2) / 2.5 + 200 / 2.5 = 81 s.
    assert 81 - LEAD_SECONDS <= last <= (81 - LEAD_SECONDS) * 1.1


async def test_the_schedule_starts_again_from_now_once_the_jobs_sent_back_are_due() -> None:
    clock = ManualClock()
    backlog = backlog_of(Budget(rate=5.0, slots=2), clock)
    with ExitStack() as stack:
        fill(backlog, stack, 5)
        for _ in range(100):
            await backlog.deferral()
        clock.advance(timedelta(minutes=5))
        again = await backlog.deferral()
    assert again == MIN_DELAY_SECONDS  # due in 1.4 s, less the lead, plus jitter: as soon as a delay may be


async def test_the_room_never_exceeds_the_hosts_new_batch_threshold() -> None:
    backlog = backlog_of(Budget(rate=100.0, slots=5))
    with ExitStack() as stack:
        fill(backlog, stack, ROOM_CAP - 1)
        assert await backlog.deferral() is None
        fill(backlog, stack, 1)
        assert await backlog.deferral() is not None


async def test_a_delay_never_exceeds_its_cap() -> None:
    backlog = backlog_of(Budget(rate=0.01, slots=1))
    with ExitStack() as stack:
        fill(backlog, stack, 1)
        delays = [await backlog.deferral() for _ in range(20)]
    assert max(delay or 0.0 for delay in delays) == MAX_DELAY_SECONDS


async def test_the_backlog_counts_a_delivery_until_it_ends_even_when_it_fails() -> None:
    backlog = backlog_of(Budget())
    sizes: list[int] = []

    def failing_run() -> None:
        with backlog.running():
            sizes.append(backlog.size)
            raise RuntimeError("the run failed")

    with pytest.raises(RuntimeError):
        failing_run()
    assert sizes == [1]
    assert backlog.size == 0


async def test_without_a_budget_backlog_nothing_is_ever_sent_back() -> None:
    backlog = NoBacklog()
    with backlog.running():
        assert await backlog.deferral() is None


def test_a_pools_backlog_is_sized_by_the_sum_of_its_identities_shares() -> None:
    """Identity pools (issue 23): the pool's jobs go to whichever identity has room, so its backlog holds what all
    its identities' shares serve; one identity keeps its own share and budget key, as before pools."""
    first, second = Share(rate=6.0, slots=3, members=2), Share(rate=9.0, slots=2, members=3, fallback=True)
    pooled = pooled_share([lambda: first, lambda: second])()
    assert pooled == Share(rate=15.0, slots=5, members=3, fallback=True)
    only = pooled_share([lambda: first])
    assert only() == first
    assert pool_key(["env-app-b", "env-app-a", "env-app-b"]) == "env-app-a+env-app-b"
    assert pool_key(["env-app-a"]) == "env-app-a"
    backlog = BudgetBacklog(
        pooled_share([lambda: first, lambda: second]), Budget().is_contended, ManualClock()
    )
    assert backlog.room(pooled) == min(ROOM_CAP, 15)
