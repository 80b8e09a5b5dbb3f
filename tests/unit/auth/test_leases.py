"""The refresh lease: one holder, expiry frees it, a lost lease cannot be renewed."""

from __future__ import annotations

from datetime import timedelta

import pytest

from shared.auth.errors import RefreshTimeoutError, StaleTokenSetError
from shared.auth.leases import LeaseKeeper
from shared.auth.models import Lease
from testkit.auth_stores import MemoryRecordStore
from testkit.clock import ManualClock

TTL = timedelta(seconds=60)


def keeper() -> tuple[LeaseKeeper, ManualClock]:
    clock = ManualClock()
    return LeaseKeeper(MemoryRecordStore[Lease](), clock), clock


async def test_second_holder_is_refused_while_the_lease_is_held() -> None:
    """Only one holder at a time."""
    leases, _ = keeper()
    assert await leases.try_acquire("c", "a", TTL) is not None
    assert await leases.try_acquire("c", "b", TTL) is None


async def test_expired_lease_of_a_crashed_holder_can_be_taken() -> None:
    """After the TTL another holder takes the lease; the old holder can no longer renew it."""
    leases, clock = keeper()
    crashed = await leases.try_acquire("c", "a", TTL)
    assert crashed is not None
    clock.advance(TTL + timedelta(seconds=1))

    assert await leases.try_acquire("c", "b", TTL) is not None
    assert await leases.renew(crashed, TTL) is None


async def test_release_frees_the_lease_even_after_a_renewal() -> None:
    """Release works with the originally returned lease although renew changed the ETag."""
    leases, _ = keeper()
    held = await leases.try_acquire("c", "a", TTL)
    assert held is not None
    assert await leases.renew(held, TTL) is not None

    await leases.release(held)

    assert await leases.try_acquire("c", "b", TTL) is not None


async def test_release_by_a_former_holder_does_not_free_the_new_holders_lease() -> None:
    """A holder whose lease was taken over cannot release the new holder's lease."""
    leases, clock = keeper()
    old = await leases.try_acquire("c", "a", TTL)
    assert old is not None
    clock.advance(TTL * 2)
    assert await leases.try_acquire("c", "b", TTL) is not None

    await leases.release(old)

    assert await leases.try_acquire("c", "third", TTL) is None


async def test_waiting_gives_up_at_the_deadline_and_succeeds_once_expired() -> None:
    """wait_until_free returns False at the deadline, True once the holder's lease expires."""
    leases, clock = keeper()
    await leases.try_acquire("c", "a", TTL)
    assert not await leases.wait_until_free("c", clock.now() + timedelta(seconds=5))
    assert await leases.wait_until_free("c", clock.now() + timedelta(minutes=5))


async def test_acquire_or_wait_returns_none_once_a_busy_lease_frees_so_the_caller_can_recheck() -> None:
    """A busy lease: the call waits until it expires and returns None (not the lease) for the caller to re-check."""
    leases, clock = keeper()
    assert await leases.try_acquire("c", "a", TTL) is not None

    assert await leases.acquire_or_wait("c", "b", clock.now() + 2 * TTL) is None
    assert await leases.acquire_or_wait("c", "b", clock.now() + 2 * TTL) is not None


async def test_acquire_waiting_times_out_with_a_retry_time_while_another_holder_keeps_the_lease() -> None:
    """Past the deadline: RefreshTimeoutError, saying when to come back."""
    leases, clock = keeper()
    assert await leases.try_acquire("c", "a", TTL) is not None

    with pytest.raises(RefreshTimeoutError) as raised:
        await leases.acquire_waiting("c", "b", clock.now() + timedelta(seconds=30))
    assert raised.value.retry_after is not None
    assert raised.value.retry_after > clock.now()


async def test_renew_claims_a_newer_generation_and_refuses_an_equal_one() -> None:
    """The renew that precedes a write claims the generation (newest wins); the same generation again is stale
    and writes nothing."""
    leases, _ = keeper()
    held = await leases.try_acquire("c", "a", TTL)
    assert held is not None
    assert await leases.renew(held, TTL, generation=4) is not None

    with pytest.raises(StaleTokenSetError):
        await leases.renew(held, TTL, generation=4)
    assert await leases.stored_generation("c") == 4


async def test_acquire_and_release_carry_the_stored_generation_over() -> None:
    """Taking and giving back the lease keeps the generation the last writer claimed."""
    leases, _ = keeper()
    held = await leases.try_acquire("c", "a", TTL)
    assert held is not None
    await leases.claim("c", 2)
    await leases.release(held)
    taken = await leases.try_acquire("c", "b", TTL)

    assert taken is not None
    assert taken.value.generation == 2
    assert await leases.stored_generation("c") == 2


async def test_a_row_without_a_generation_claims_any() -> None:
    """A row written before the lease carried the generation names none: the claim is accepted."""
    leases, _ = keeper()
    assert await leases.try_acquire("c", "a", TTL) is not None
    assert await leases.stored_generation("c") is None

    await leases.claim("c", 7)

    assert await leases.stored_generation("c") == 7
