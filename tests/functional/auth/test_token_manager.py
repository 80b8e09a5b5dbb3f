"""TokenManager wired to in-memory stores and a fake Entra: caching, single refresh, failures, sign-in."""

from __future__ import annotations

import asyncio
import logging
from datetime import timedelta

import pytest

from shared.auth import (
    CredentialsRejectedError,
    Health,
    MinValidityTooLongError,
    NotAuthorizedError,
    ReauthorizationRequiredError,
    ScheduledOutcome,
    SignInStateExpiredError,
    SignInStateMissingError,
    SignInStateReplayedError,
    SignInStateUnknownError,
    TokenRefreshFailedError,
    TokenStoreUnavailableError,
)
from shared.auth.models import TokenSet
from shared.tokens import AuthMode
from tests.functional.auth.fakes import World


@pytest.fixture
def world() -> World:
    return World()


async def signed_in(world: World) -> None:
    await world.sign_in(world.manager())


async def test_token_is_served_from_memory_without_reading_the_store_again(world: World) -> None:
    """After one store read, repeated token() calls within the token's life touch neither store nor Entra."""
    await signed_in(world)
    manager = world.manager()
    reads_before = world.tokens.reads

    first = await manager.token()
    for _ in range(50):
        assert (await manager.token()).value == first.value

    assert world.tokens.reads == reads_before + 1
    assert world.entra.calls["refresh_token"] == 0


async def test_token_refreshes_when_cached_token_would_not_outlive_min_validity(world: World) -> None:
    """A token with 4 minutes left is refreshed for a caller needing 5; the new refresh token is stored."""
    await signed_in(world)
    manager = world.manager()
    old = await manager.token()
    world.clock.advance(timedelta(minutes=56))

    new = await manager.token(min_validity=timedelta(minutes=5))

    assert new.value != old.value
    assert new.valid_for(timedelta(minutes=59), world.clock.now())
    assert world.entra.calls["refresh_token"] == 1
    stored = world.tokens.peek("default")
    assert stored is not None
    assert stored.generation == 2
    assert stored.access_token == new.value


async def test_many_callers_in_three_processes_cause_exactly_one_refresh(world: World) -> None:
    """3 managers x 20 concurrent callers with a dying token: one call to Entra, everyone gets its token."""
    await signed_in(world)
    processes = [world.manager() for _ in range(3)]
    for manager in processes:
        await manager.token()
    world.clock.advance(timedelta(minutes=58))

    results = await asyncio.gather(*(m.token() for m in processes for _ in range(20)))

    assert world.entra.calls["refresh_token"] == 1
    assert len({token.value for token in results}) == 1


async def test_refresh_with_rejected_token_returns_newer_token_without_calling_entra(world: World) -> None:
    """If another process already replaced the token BC rejected, replacement_for(rejected) returns the new one."""
    await signed_in(world)
    slow, fast = world.manager(), world.manager()
    rejected = await slow.token()
    await fast.refresh_now()
    calls = world.entra.calls["refresh_token"]

    replacement = await slow.replacement_for(rejected)

    assert replacement.value != rejected.value
    assert world.entra.calls["refresh_token"] == calls


async def test_stale_process_refreshes_with_the_newest_stored_refresh_token(world: World) -> None:
    """A process whose cache holds an old generation redeems the store's newest refresh token, not its own."""
    await signed_in(world)
    stale, busy = world.manager(), world.manager()
    await stale.token()
    for _ in range(3):
        await busy.refresh_now(min_age=timedelta(0))  # back-to-back forced refreshes, no coalescing by age
    newest = world.tokens.peek("default")
    assert newest is not None
    assert newest.refresh_token is not None
    world.entra.valid_refresh_tokens = {newest.refresh_token}  # only the newest would work

    await stale.refresh_now(min_age=timedelta(0))

    stored = world.tokens.peek("default")
    assert stored is not None
    assert stored.generation == 5


async def test_revoked_refresh_token_sets_reauthorization_required_logged_and_alerted_once(
    world: World, caplog: pytest.LogCaptureFixture
) -> None:
    """invalid_grant: state visible in status, one error log, one alert, and no further calls to Entra."""
    caplog.set_level(logging.DEBUG)
    await signed_in(world)
    processes = [world.manager() for _ in range(3)]
    for manager in processes:
        await manager.token()
    world.entra.revoke_all()
    world.clock.advance(timedelta(minutes=61))

    for manager in processes:
        for _ in range(5):
            with pytest.raises(ReauthorizationRequiredError):
                await manager.token()
    for _ in range(3):
        assert await processes[0].refresh_if_due() is ScheduledOutcome.BACKING_OFF

    assert world.entra.calls["refresh_token"] == 1
    status = await processes[1].status()
    assert status.health is Health.REAUTHORIZATION_REQUIRED
    assert status.next_step is not None
    assert "/api/auth/login" in status.next_step
    errors = [r for r in caplog.records if r.levelno >= logging.ERROR]
    assert len(errors) == 1
    assert "/api/auth/login" in errors[0].getMessage()
    assert len(world.notifier.alerts) == 1


async def test_backoff_lets_one_probe_through_after_it_expires(world: World) -> None:
    """While reauthorization is required the timer backs off; after the backoff one probe reaches Entra."""
    await signed_in(world)
    manager = world.manager()
    world.entra.revoke_all()
    world.clock.advance(timedelta(minutes=61))
    with pytest.raises(ReauthorizationRequiredError):
        await manager.token()

    world.clock.advance(timedelta(minutes=30))
    assert await manager.refresh_if_due() is ScheduledOutcome.BACKING_OFF
    world.clock.advance(timedelta(minutes=31))
    with pytest.raises(ReauthorizationRequiredError):
        await manager.refresh_if_due()

    assert world.entra.calls["refresh_token"] == 2
    assert len(world.notifier.alerts) == 1


async def test_signing_in_again_clears_reauthorization_required(world: World) -> None:
    """After a new sign-in the state is ok again and tokens flow."""
    await signed_in(world)
    manager = world.manager()
    world.entra.revoke_all()
    world.clock.advance(timedelta(minutes=61))
    with pytest.raises(ReauthorizationRequiredError):
        await manager.token()

    await world.sign_in(world.manager())

    assert (await manager.status()).health is Health.OK
    assert (await manager.token()).valid_for(timedelta(minutes=5), world.clock.now())


async def test_valid_cached_token_is_served_while_a_dead_grant_is_detected(world: World) -> None:
    """A refresh refused with invalid_grant still leaves the unexpired cached token in service."""
    await signed_in(world)
    manager = world.manager()
    cached = await manager.token()
    world.entra.revoke_all()
    world.clock.advance(timedelta(minutes=57))

    assert (await manager.token()).value == cached.value
    assert (await manager.status()).health is Health.REAUTHORIZATION_REQUIRED


async def test_transient_entra_failure_serves_cached_token_and_backs_off(world: World) -> None:
    """A 5xx-like failure keeps the cached token in service and no caller retries Entra inside the gate."""
    await signed_in(world)
    manager = world.manager()
    cached = await manager.token()
    world.clock.advance(timedelta(minutes=57))
    world.entra.fail_next = [TokenRefreshFailedError("Entra unreachable")]

    for _ in range(10):
        assert (await manager.token()).value == cached.value

    assert world.entra.calls["refresh_token"] == 1
    assert (await manager.status()).health is Health.DEGRADED
    world.clock.advance(timedelta(seconds=6))
    assert (await manager.token()).value != cached.value
    assert (await manager.status()).health is Health.OK


async def test_transient_failure_after_expiry_raises_with_retry_after(world: World) -> None:
    """With nothing valid to serve, a transient failure surfaces as TokenRefreshFailedError with retry_after."""
    await signed_in(world)
    manager = world.manager()
    world.clock.advance(timedelta(minutes=61))
    world.entra.fail_next = [TokenRefreshFailedError("Entra unreachable")]

    with pytest.raises(TokenRefreshFailedError) as raised:
        await manager.token()

    assert raised.value.retry_after is not None
    assert raised.value.retry_after > world.clock.now()


async def test_store_outage_during_token_life_keeps_callers_working(world: World) -> None:
    """Key Vault down and another process stored a newer set: the cached token is still served, even when a
    refresh would otherwise be attempted."""
    await signed_in(world)
    manager = world.manager()
    cached = await manager.token()
    await world.manager().refresh_now(min_age=timedelta(0))  # the lease row names a newer generation
    world.tokens.outage = True

    assert (await manager.token()).value == cached.value
    world.clock.advance(timedelta(minutes=57))
    assert (await manager.token()).value == cached.value
    assert world.entra.calls["refresh_token"] == 1  # the other process's


async def test_store_outage_when_due_refreshes_and_serves_the_set_from_memory(world: World) -> None:
    """Key Vault down, nobody stored a newer set (the lease row says so without a vault read): the due
    process refreshes, serves the new set from memory and saves it with its next refresh."""
    await signed_in(world)
    manager = world.manager()
    cached = await manager.token()
    world.tokens.outage = True
    world.clock.advance(timedelta(minutes=57))

    refreshed = await manager.token()
    world.tokens.outage = False
    saved = await manager.refresh_now(min_age=timedelta(0))

    assert refreshed.value != cached.value
    stored = world.tokens.peek("default")
    assert stored is not None
    assert stored.access_token == saved.value


async def test_store_outage_past_expiry_raises_a_clear_error(world: World) -> None:
    """Key Vault down, another process stored a newer set and the cached token expired:
    TokenStoreUnavailableError naming the situation."""
    await signed_in(world)
    manager = world.manager()
    await manager.token()
    await world.manager().refresh_now(min_age=timedelta(0))
    world.tokens.outage = True
    world.clock.advance(timedelta(minutes=61))

    with pytest.raises(TokenStoreUnavailableError, match="no unexpired cached token"):
        await manager.token()


async def test_delegated_without_sign_in_raises_not_authorized(world: World) -> None:
    """No token set stored in delegated mode: NotAuthorizedError pointing at /api/auth/login."""
    with pytest.raises(NotAuthorizedError, match="/api/auth/login"):
        await world.manager().token()
    assert (await world.manager().status()).health is Health.NOT_AUTHORIZED


async def test_min_validity_beyond_token_lifetime_is_refused_without_refreshing(world: World) -> None:
    """Asking for a token that outlives any token Entra issues fails fast instead of refreshing in a loop."""
    await signed_in(world)
    with pytest.raises(MinValidityTooLongError):
        await world.manager().token(min_validity=timedelta(hours=2))
    assert world.entra.calls["refresh_token"] == 0


async def test_client_credentials_first_token_is_acquired_and_stored() -> None:
    """client_credentials: the first token() acquires an app token and stores it as generation 1."""
    world = World(mode=AuthMode.CLIENT_CREDENTIALS)

    token = await world.manager().token()

    stored = world.tokens.peek("default")
    assert stored is not None
    assert stored.access_token == token.value
    assert stored.generation == 1
    assert stored.refresh_token is None
    assert world.entra.calls["client_credentials"] == 1


async def test_client_credentials_rejected_credentials_are_recorded_and_block_retries() -> None:
    """invalid_client: credentials_rejected state, one alert, later callers do not reach Entra."""
    world = World(mode=AuthMode.CLIENT_CREDENTIALS)
    world.entra.fail_next = [
        CredentialsRejectedError("refused (invalid_client)", error_code="invalid_client")
    ]
    manager = world.manager()

    for _ in range(3):
        with pytest.raises(CredentialsRejectedError):
            await manager.token()

    assert world.entra.calls["client_credentials"] == 1
    assert (await manager.status()).health is Health.CREDENTIALS_REJECTED
    assert len(world.notifier.alerts) == 1


async def test_refresh_if_due_skips_a_token_not_yet_due_and_refreshes_an_old_one(world: World) -> None:
    """The timer refreshes only when the stored token would not outlive its horizon."""
    await signed_in(world)
    manager = world.manager()
    world.clock.advance(timedelta(minutes=10))
    assert await manager.refresh_if_due() is ScheduledOutcome.NOT_DUE
    world.clock.advance(timedelta(minutes=50))
    assert await manager.refresh_if_due() is ScheduledOutcome.REFRESHED
    assert world.entra.calls["refresh_token"] == 1


async def test_store_write_failure_keeps_the_new_token_in_memory_and_saves_it_later(world: World) -> None:
    """Refreshed while Key Vault rejects writes: served from memory; the next refresh stores the newer chain."""
    await signed_in(world)
    manager = world.manager()
    world.clock.advance(timedelta(minutes=58))
    original_write = world.tokens.write

    async def failing_write(token_set: TokenSet) -> None:
        raise TokenStoreUnavailableError("Key Vault unavailable (simulated write failure)")

    world.tokens.write = failing_write  # type: ignore[method-assign]
    token = await manager.token()
    assert world.tokens.peek("default").generation == 1  # type: ignore[union-attr]
    world.tokens.write = original_write  # type: ignore[method-assign]

    await manager.refresh_now()

    stored = world.tokens.peek("default")
    assert stored is not None
    assert stored.generation == 3
    assert stored.access_token != token.value


async def test_sign_in_state_attacks_are_refused_and_store_nothing(world: World) -> None:
    """Missing, unknown, expired and replayed states are refused; the token store is never written."""
    flow = world.sign_in_flow(world.manager())
    auth_uri = await flow.start("http://127.0.0.1/api/auth/callback")
    state = auth_uri.split("state=", 1)[1]
    code = world.entra.sign_in(state)

    with pytest.raises(SignInStateMissingError):
        await flow.finish({"code": code})
    with pytest.raises(SignInStateUnknownError):
        await flow.finish({"code": code, "state": "forged"})
    world.clock.advance(timedelta(minutes=11))
    with pytest.raises(SignInStateExpiredError):
        await flow.finish({"code": code, "state": state})
    assert world.tokens.writes == 0

    fresh_uri = await flow.start("http://127.0.0.1/api/auth/callback")
    fresh_state = fresh_uri.split("state=", 1)[1]
    await flow.finish({"code": world.entra.sign_in(fresh_state), "state": fresh_state})
    writes = world.tokens.writes
    with pytest.raises(SignInStateReplayedError):
        await flow.finish({"code": world.entra.sign_in(fresh_state), "state": fresh_state})
    assert world.tokens.writes == writes


async def test_sign_in_starts_a_newer_generation_than_the_stored_chain(world: World) -> None:
    """A second sign-in stores generation n+1 so it wins over the previous refresh chain."""
    await signed_in(world)
    manager = world.manager()
    await manager.refresh_now()

    await world.sign_in(manager)

    stored = world.tokens.peek("default")
    assert stored is not None
    assert stored.generation == 3


async def test_client_credentials_status_points_at_refresh_not_at_the_sign_in() -> None:
    """Client credentials, nothing stored yet: status says not_authorized and the next step is a refresh."""
    world = World(mode=AuthMode.CLIENT_CREDENTIALS)

    status = await world.manager().status()

    assert status.health is Health.NOT_AUTHORIZED
    assert status.next_step is not None
    assert "/api/auth/login" not in status.next_step
    assert "POST /api/auth/refresh" in status.next_step


async def test_client_credentials_rejection_alert_names_the_fix_not_the_sign_in(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """invalid_client in client-credentials mode: the one error log and the status never say /api/auth/login."""
    world = World(mode=AuthMode.CLIENT_CREDENTIALS)
    manager = world.manager()
    world.entra.fail_next = [
        CredentialsRejectedError("refused (invalid_client)", error_code="invalid_client")
    ]

    with caplog.at_level(logging.ERROR), pytest.raises(CredentialsRejectedError):
        await manager.token()

    status = await manager.status()
    assert status.health is Health.CREDENTIALS_REJECTED
    assert "/api/auth/login" not in (status.next_step or "")
    errors = [r for r in caplog.records if getattr(r, "event", "") == "auth.admin_needed"]
    assert len(errors) == 1
    assert "/api/auth/login" not in errors[0].getMessage()
    assert "they wait" in errors[0].getMessage()  # jobs wait for the sign-in, they do not fail
    assert world.notifier.alerts[0].next_step == status.next_step


async def test_status_degrades_instead_of_failing_when_the_stores_are_down(world: World) -> None:
    """Key Vault and the state table unreachable: status() answers degraded with the cause, it does not raise."""
    manager = world.manager()
    await world.sign_in(manager)
    world.clock.advance(
        timedelta(minutes=58)
    )  # the cache is no longer comfortably valid: status reads the store
    world.tokens.outage = True
    world.records.fail_every_call = True

    status = await manager.status()

    assert status.health is Health.DEGRADED
    assert status.has_token  # the cached token is still valid for 2 minutes
    assert status.last_error_code == "TokenStoreUnavailableError"
    assert status.next_step is not None
