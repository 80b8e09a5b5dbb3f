"""The timer's refresh of every connection: bounded concurrency, one connection's failure kept to itself."""

from __future__ import annotations

import asyncio
import logging

import pytest

from shared.auth import (
    CredentialsRejectedError,
    ReauthorizationRequiredError,
    ScheduledOutcome,
    TokenStoreUnavailableError,
)
from shared.auth.scheduled import RunOutcome, refresh_every_connection
from shared.connections import Connection
from shared.connections.connection import Credential, Identity

CLIENT = "11111111-2222-3333-4444-555555555555"


def connection(name: str, *, enabled: bool = True) -> Connection:
    return Connection(
        name=name, tenant_id="contoso.example", environment="production", client_id=CLIENT, enabled=enabled
    )


async def test_one_connections_refused_credentials_or_store_trouble_do_not_stop_the_others(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """Each failure ends as its own connection's outcome, logged with its name; the rest are refreshed."""
    failures: dict[str, Exception] = {
        "refused": CredentialsRejectedError("Entra refused the app (AADSTS7000215)"),
        "dead": ReauthorizationRequiredError("refresh token revoked"),
        "vault": TokenStoreUnavailableError("Key Vault could not be read for secret 'x'"),
        "bug": RuntimeError("unexpected"),
    }
    refreshed: list[str] = []

    async def refresh_one(c: Connection, identity: Identity) -> ScheduledOutcome:
        if c.name in failures:
            raise failures[c.name]
        refreshed.append(c.name)
        return ScheduledOutcome.REFRESHED

    names = ["a", "refused", "b", "dead", "vault", "bug", "c"]
    with caplog.at_level(logging.INFO, logger="shared.auth.scheduled"):
        summary = await refresh_every_connection([connection(n) for n in names], refresh_one)

    assert sorted(refreshed) == ["a", "b", "c"]
    assert summary.outcomes["refused"] is RunOutcome.ADMIN_NEEDED
    assert summary.outcomes["dead"] is RunOutcome.ADMIN_NEEDED
    assert summary.outcomes["vault"] is RunOutcome.FAILED
    assert summary.outcomes["bug"] is RunOutcome.FAILED
    assert summary.counts == {"refreshed": 3, "admin_needed": 2, "failed": 2}
    assert sorted(summary.transient) == ["bug", "vault"]
    logged = {getattr(r, "connection", None): getattr(r, "event", None) for r in caplog.records}
    assert logged["refused"] == "auth.timer_blocked"
    assert logged["vault"] == "auth.timer_failed"
    assert logged["a"] == "auth.timer"


async def test_disabled_connections_are_not_refreshed() -> None:
    seen: list[str] = []

    async def refresh_one(c: Connection, identity: Identity) -> ScheduledOutcome:
        seen.append(c.name)
        return ScheduledOutcome.NOT_DUE

    summary = await refresh_every_connection(
        [connection("on"), connection("off", enabled=False)], refresh_one
    )

    assert seen == ["on"]
    assert summary.counts == {"not_due": 1}


async def test_at_most_the_concurrency_bound_refresh_at_once() -> None:
    """With 20 connections and a bound of 3, exactly 3 are in flight until they finish."""
    in_flight = 0
    most = 0
    full = asyncio.Event()
    release = asyncio.Event()

    async def refresh_one(c: Connection, identity: Identity) -> ScheduledOutcome:
        nonlocal in_flight, most
        in_flight += 1
        most = max(most, in_flight)
        if in_flight == 3:
            full.set()
        await release.wait()
        in_flight -= 1
        return ScheduledOutcome.REFRESHED

    run = asyncio.ensure_future(
        refresh_every_connection([connection(f"c{i}") for i in range(20)], refresh_one, concurrency=3)
    )
    await asyncio.wait_for(full.wait(), timeout=5)
    for _ in range(10):  # let any task that could start do so
        await asyncio.sleep(0)
    assert in_flight == 3
    release.set()
    summary = await asyncio.wait_for(run, timeout=5)

    assert most == 3
    assert summary.counts == {"refreshed": 20}


async def test_every_identity_of_a_pool_is_refreshed_and_one_refusal_stays_its_own() -> None:
    """The primary identity under the connection's name, the others as `{connection}--{identity}`; a federated
    identity's refusal is its own outcome and the primary one is refreshed anyway."""
    pooled = connection("pooled").model_copy(
        update={
            "identities": (
                Identity(name="two", client_id="22222222-2222-3333-4444-555555555555"),
                Identity(
                    name="fed",
                    client_id="33333333-2222-3333-4444-555555555555",
                    credential=Credential.FEDERATED,
                    managed_identity_client_id="44444444-2222-3333-4444-555555555555",
                ),
            )
        }
    )
    seen: list[tuple[str, str]] = []

    async def refresh_one(c: Connection, identity: Identity) -> ScheduledOutcome:
        seen.append((c.name, identity.name))
        if identity.name == "fed":
            raise CredentialsRejectedError("Entra refused the federated credential (AADSTS70021)")
        return ScheduledOutcome.REFRESHED

    summary = await refresh_every_connection([pooled, connection("single")], refresh_one)

    assert sorted(seen) == [
        ("pooled", "fed"),
        ("pooled", "primary"),
        ("pooled", "two"),
        ("single", "primary"),
    ]
    assert summary.outcomes == {
        "pooled": RunOutcome.REFRESHED,
        "pooled--two": RunOutcome.REFRESHED,
        "pooled--fed": RunOutcome.ADMIN_NEEDED,
        "single": RunOutcome.REFRESHED,
    }
