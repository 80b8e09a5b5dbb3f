"""Sign-in reports success only after its token set was really written; the timer purges stale sign-ins."""

from __future__ import annotations

import logging
from datetime import timedelta

import pytest

from shared.auth import Health, SignInNotSavedError, SignInResponseMalformedError
from shared.auth.models import Lease
from shared.auth.sign_in import SIGN_IN_WINDOW
from tests.functional.auth.fakes import World

CALLBACK = "http://127.0.0.1:7071/api/auth/callback"


@pytest.fixture
def world() -> World:
    return World()


async def begin(world: World) -> tuple[str, str]:
    """Start a sign-in and let Entra sign the admin in: (state, code)."""
    auth_uri = await world.sign_in_flow(world.manager()).start(CALLBACK)
    state = auth_uri.split("state=", 1)[1]
    return state, world.entra.sign_in(state)


async def test_sign_in_whose_token_set_cannot_be_written_raises_and_is_not_ok(
    world: World, caplog: pytest.LogCaptureFixture
) -> None:
    """A vault that reads but refuses writes: the callback fails, status is not ok and holds no token."""
    manager = world.manager()
    flow = world.sign_in_flow(manager)
    state, code = await begin(world)
    world.tokens.writes_fail = True

    with caplog.at_level(logging.INFO), pytest.raises(SignInNotSavedError):
        await flow.finish({"code": code, "state": state})

    status = await manager.status()
    assert status.health is not Health.OK
    assert not status.has_token
    assert not await manager.has_token()
    assert world.tokens.peek("default") is None
    assert all(s.value.health is not Health.OK for _, s in await world.records.scan())
    assert not [r for r in caplog.records if getattr(r, "event", "") == "auth.sign_in_completed"]


async def test_sign_in_that_lost_its_lease_before_saving_raises_and_stores_nothing(world: World) -> None:
    """Another holder took the lease while the sign-in held it: nothing written, success not recorded."""
    manager = world.manager()
    flow = world.sign_in_flow(manager)
    state, code = await begin(world)
    original_read = world.tokens.read

    async def read_then_lose_lease(connection: str) -> object:
        result = await original_read(connection)
        entry = await world.leases.get(connection)
        if entry is not None:
            intruder = Lease(connection, "intruder", world.clock.now() + timedelta(minutes=5))
            await world.leases.replace(connection, intruder, entry.etag)
        return result

    world.tokens.read = read_then_lose_lease  # type: ignore[assignment,method-assign]

    with pytest.raises(SignInNotSavedError):
        await flow.finish({"code": code, "state": state})

    assert world.tokens.writes == 0
    assert (await manager.status()).health is Health.NOT_AUTHORIZED


async def test_sign_in_after_a_failed_save_succeeds_once_writes_work(world: World) -> None:
    """The admin signs in again once the vault accepts writes; then the connection is ok."""
    manager = world.manager()
    flow = world.sign_in_flow(manager)
    state, code = await begin(world)
    world.tokens.writes_fail = True
    with pytest.raises(SignInNotSavedError):
        await flow.finish({"code": code, "state": state})
    world.tokens.writes_fail = False

    state, code = await begin(world)
    await flow.finish({"code": code, "state": state})
    status = await manager.status()

    assert status.health is Health.OK
    assert status.has_token
    assert world.tokens.peek("default") is not None


async def test_the_timer_run_purges_expired_pending_sign_ins(world: World) -> None:
    """An abandoned sign-in (it holds the PKCE verifier) is deleted by the next timer run after it expired."""
    await world.sign_in(world.manager())
    abandoned, _ = await begin(world)
    world.clock.advance(SIGN_IN_WINDOW + timedelta(seconds=1))

    await world.timer_run(world.manager())

    remaining = {key: entry.value for key, entry in await world.sign_ins.scan()}
    assert abandoned not in remaining
    assert all(not pending.flow for pending in remaining.values())


async def test_the_timer_run_keeps_unexpired_sign_ins(world: World) -> None:
    """A sign-in still inside its window survives the timer and can be completed."""
    await world.sign_in(world.manager())
    state, code = await begin(world)
    world.clock.advance(SIGN_IN_WINDOW - timedelta(minutes=1))
    manager = world.manager()
    flow = world.sign_in_flow(manager)

    await world.timer_run(manager)

    await flow.finish({"code": code, "state": state})
    status = await manager.status()
    assert status.health is Health.OK


@pytest.mark.parametrize("state", ["a/b", "a#b", "</script>", "x" * 65536])
async def test_callback_with_a_malformed_state_is_refused_before_the_pending_sign_ins_are_read(
    world: World, state: str
) -> None:
    """A state no sign-in hands out is refused by the flow itself: the sign-in store is never asked."""
    flow = world.sign_in_flow(world.manager())
    await begin(world)
    world.sign_ins.fail_every_call = True  # the Table would answer 400 / time out for such a key

    with pytest.raises(SignInResponseMalformedError):
        await flow.finish({"code": "x", "state": state})

    assert world.entra.calls["authorization_code"] == 0
    assert world.tokens.writes == 0
