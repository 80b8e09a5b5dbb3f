"""A registered connection's sign-in: its state names it, and only its own flow can finish it."""

from __future__ import annotations

import pytest

from shared.auth.errors import SignInStateUnknownError
from shared.auth.models import PendingSignIn
from shared.auth.sign_in import PendingSignIns, SignInFlow, connection_in_state
from testkit.auth_stores import MemoryRecordStore
from tests.functional.auth.fakes import World

CALLBACK = "http://127.0.0.1:7071/api/auth/callback"


def flow_of(world: World, connection: str, pending: MemoryRecordStore[PendingSignIn]) -> SignInFlow:
    """The connection's sign-in on its own pending partition (login-{name} in the auth table)."""
    return SignInFlow(PendingSignIns(pending, world.clock), world.manager(connection), named_state=True)


async def test_a_sign_in_started_for_a_names_a_and_saves_only_as_token_set() -> None:
    world = World()
    a = flow_of(world, "a", MemoryRecordStore[PendingSignIn]())
    state = (await a.start(CALLBACK)).split("state=", 1)[1]
    assert connection_in_state(state) == "a"

    await a.finish({"code": world.entra.sign_in(state), "state": state})

    assert world.tokens.peek("a") is not None
    assert world.tokens.peek("b") is None


async def test_as_state_cannot_finish_bs_sign_in_or_write_bs_token_set() -> None:
    world = World()
    a = flow_of(world, "a", MemoryRecordStore[PendingSignIn]())
    b = flow_of(world, "b", MemoryRecordStore[PendingSignIn]())
    await b.start(CALLBACK)  # b has a pending sign-in of its own
    state = (await a.start(CALLBACK)).split("state=", 1)[1]

    with pytest.raises(SignInStateUnknownError):
        await b.finish({"code": world.entra.sign_in(state), "state": state})

    assert world.tokens.peek("b") is None
    assert world.tokens.peek("a") is None
