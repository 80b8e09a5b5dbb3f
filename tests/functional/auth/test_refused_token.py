"""After BC refuses a token, a process spends one store read and at most one refresh on it, however many callers
hold it, and no caller is served it again (issue 24, point 6)."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass

import pytest

from shared.auth import (
    TokenManager,
    TokenRefreshFailedError,
    TokenStoreUnavailableError,
    TokenUnavailableError,
)
from shared.tokens import AccessToken
from tests.functional.auth.fakes import World

CALLERS = 20


@dataclass(frozen=True)
class Refusal:
    """A signed-in process whose token BC refused for several requests at once, and what it did about it."""

    world: World
    manager: TokenManager
    refused: AccessToken
    replacements: list[AccessToken]
    reads: int  # store reads the replacements took


async def _refused_by(callers: int) -> Refusal:
    """The process's token refused for `callers` requests at once."""
    world = World()
    await world.sign_in(world.manager())
    manager = world.manager()
    refused = await manager.token()
    reads = world.tokens.reads
    replacements = await asyncio.gather(*(manager.replacement_for(refused) for _ in range(callers)))
    return Refusal(world, manager, refused, list(replacements), world.tokens.reads - reads)


async def test_callers_refused_at_once_share_one_replacement_and_what_it_read() -> None:
    """20 callers of one process refused at once: one refresh, one token for all, and the store reads of a
    single caller's replacement (the refresh's own), none per waiting caller."""
    one = await _refused_by(1)
    many = await _refused_by(CALLERS)

    assert len({token.value for token in many.replacements}) == 1
    assert many.replacements[0].value != many.refused.value
    assert many.world.entra.calls["refresh_token"] == 1
    assert many.reads == one.reads


async def test_a_refused_token_is_never_served_again_though_it_has_not_expired() -> None:
    """The refused token still has most of its life by the process's clock; token() serves the replacement."""
    refusal = await _refused_by(1)

    served = [await refusal.manager.token() for _ in range(5)]

    assert {token.value for token in served} == {refusal.replacements[0].value}


async def test_a_late_caller_with_the_refused_token_takes_the_replacement_without_a_read() -> None:
    """A request that took the token before the refusal and is refused later gets the replacement at hand."""
    refusal = await _refused_by(1)
    reads = refusal.world.tokens.reads

    late = await refusal.manager.replacement_for(refusal.refused)

    assert late.value == refusal.replacements[0].value
    assert refusal.world.tokens.reads == reads
    assert refusal.world.entra.calls["refresh_token"] == 1


async def test_a_stored_replacement_bc_refuses_too_is_never_served_again() -> None:
    """Process A's cached token is refused; the store holds B's newer one, which BC refuses as well (both were
    issued before BC's clock moved): A refreshes once more, and neither refused token is served again."""
    world = World()
    await world.sign_in(world.manager())
    a, b = world.manager(), world.manager()
    first = await a.token()
    second = await b.refresh_now()

    from_store = await a.replacement_for(first)
    refreshed = await a.replacement_for(from_store)
    served = await a.token()

    assert from_store.value == second.value
    assert refreshed.value not in {first.value, second.value}
    assert served.value == refreshed.value


async def test_a_refused_token_is_not_served_while_its_replacement_cannot_be_had() -> None:
    """Entra fails (transiently) and the store is down when BC refuses the token: the replacement fails, and
    token() then raises (retry later) rather than hand out the refused token again, which BC would only refuse
    once more, and calls Entra no more before its backoff ends."""
    world = World()
    await world.sign_in(world.manager())
    manager = world.manager()
    refused = await manager.token()
    world.tokens.outage = True
    world.entra.fail_next.append(TokenRefreshFailedError("Entra unreachable"))

    with pytest.raises(TokenUnavailableError):
        await manager.replacement_for(refused)
    calls = world.entra.calls["refresh_token"]
    with pytest.raises(TokenUnavailableError) as raised:
        await manager.token()

    assert raised.value.retry_after is not None
    assert world.entra.calls["refresh_token"] == calls


async def test_after_a_refusal_a_failing_store_is_read_once_per_backoff_not_per_caller() -> None:
    """Process B's token is refused after A stored a newer set, and the store is down: B's replacement reads it
    once (and fails); B's next callers get the error with its retry-after, reading nothing until the backoff ends."""
    world = World()
    await world.sign_in(world.manager())
    a, b = world.manager(), world.manager()
    refused = await b.token()
    await a.refresh_now()
    world.tokens.outage = True
    attempts = world.tokens.read_attempts

    with pytest.raises(TokenStoreUnavailableError):
        await b.replacement_for(refused)
    for _ in range(5):
        with pytest.raises(TokenStoreUnavailableError) as raised:
            await b.token()

    assert world.tokens.read_attempts - attempts == 1
    assert raised.value.retry_after is not None


async def test_a_forced_refresh_soon_after_a_refresh_bc_refused_redeems_a_new_token() -> None:
    """The admin's check after a new consent (refresh_now) comes within a minute of the last refresh, whose token
    BC refused: it asks Entra for a new token rather than call the refused one recent and hand it back."""
    world = World()
    await world.sign_in(world.manager())
    manager = world.manager()
    refreshed = await manager.refresh_now()
    world.entra.fail_next.append(TokenRefreshFailedError("Entra unreachable"))
    with pytest.raises(TokenUnavailableError):
        await manager.replacement_for(refreshed)
    calls = world.entra.calls["refresh_token"]

    checked = await manager.refresh_now()

    assert checked.value != refreshed.value
    assert world.entra.calls["refresh_token"] == calls + 1
    assert (await manager.token()).value == checked.value
