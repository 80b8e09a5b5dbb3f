"""The token lifecycle's metrics, the telemetry timer's gauges and the status page, wired to in-memory fakes."""

from __future__ import annotations

from dataclasses import replace
from datetime import datetime, timedelta
from typing import Any

import pytest

from shared.auth import CredentialsRejectedError, Health, TokenRefreshFailedError
from shared.ops.page import render
from shared.ops.sampling import sample
from shared.ops.snapshot import QueueReading, Sources, ThrottleRow, ThrottleUsage, collect
from shared.tokens import AuthMode
from testkit.clock import START
from tests.fakes.telemetry import capture
from tests.functional.auth.fakes import World


@pytest.fixture
def world() -> World:
    return World(mode=AuthMode.CLIENT_CREDENTIALS)


async def test_refresh_outcomes_are_counted_and_the_expiry_gauge_follows_the_token(world: World) -> None:
    """refreshed (and the new expiry), failed (transient), admin_needed (credentials refused)."""
    with capture(world.clock) as captured:
        manager = world.manager()
        token = await manager.token()
        assert captured.total("bc.token.refreshes", connection="default", outcome="refreshed") == 1
        world.clock.advance(timedelta(minutes=4))  # within the reading TTL (the timer notes it every minute)
        (expiry,) = captured.points("bc.token.expiry")
        assert expiry.attributes == {"connection": "default"}
        assert expiry.value == (token.expires_on - world.clock.now()).total_seconds()

        world.entra.fail_next.append(TokenRefreshFailedError("Entra answered 503"))
        with pytest.raises(TokenRefreshFailedError):
            await world.manager().refresh_now(min_age=timedelta(0))
        assert captured.total("bc.token.refreshes", outcome="failed") == 1

        world.entra.fail_next.append(CredentialsRejectedError("invalid_client", error_code="invalid_client"))
        with pytest.raises(CredentialsRejectedError):
            await world.manager().refresh_now(min_age=timedelta(0))
        assert captured.total("bc.token.refreshes", outcome="admin_needed") == 1
        text = captured.exported_text()
    for secret in world.entra.issued:
        assert secret not in text


class FakeQueues:
    """Queue readings from a table of depths and ages; a name in `broken` fails."""

    def __init__(self, readings: dict[str, tuple[int, float | None]], broken: tuple[str, ...] = ()) -> None:
        self.readings = readings
        self.broken = broken

    async def reading(self, name: str, now: datetime) -> QueueReading:
        if name in self.broken:
            raise ConnectionError("queue service unreachable")
        depth, age = self.readings[name]
        return QueueReading(name, depth, age)


class FakeJobRows:
    """Rows of the jobs table."""

    def __init__(self, rows: list[dict[str, Any]]) -> None:
        self.rows = rows
        self.asked: list[tuple[datetime, int]] = []

    async def updated_since(self, since: datetime, limit: int) -> tuple[list[dict[str, Any]], bool]:
        self.asked.append((since, limit))
        kept = [row for row in self.rows if row["UpdatedAt"] >= since]
        return kept[:limit], len(kept) > limit


class FakeThrottle:
    async def row(self, now: datetime) -> ThrottleRow | None:
        return ThrottleRow(members=3, paused_until=None)

    def usage(self, row: ThrottleRow | None, sent_here: int, throttled_here: int) -> ThrottleUsage:
        return ThrottleUsage(
            6000, 300.0, 0.05, 5, row.members if row else None, None, sent_here, throttled_here
        )


def row(job_id: str, state: str, minutes_ago: int, error: str | None = None) -> dict[str, Any]:
    at = START - timedelta(minutes=minutes_ago)
    found: dict[str, Any] = {
        "PartitionKey": job_id,
        "State": state,
        "Operation": "create customers",
        "CreatedAt": at - timedelta(seconds=5),
        "UpdatedAt": at,
        "FinishedAt": at,
        "Attempts": 1,
    }
    if error:
        found["Error"] = error
    return found


async def test_the_timer_records_queue_gauges_and_the_token_expiry(world: World) -> None:
    """Depth and oldest age per queue; the connection's remaining validity; a broken queue is skipped."""
    manager = world.manager()
    await manager.token()
    queues = FakeQueues({"bc-jobs": (12, 95.0), "bc-jobs-poison": (1, None)}, broken=("bc-results",))
    with capture(world.clock) as captured:
        done = await sample(queues, ("bc-jobs", "bc-jobs-poison", "bc-results"), manager, world.clock.now())
        depth = {p.attributes["queue"]: p.value for p in captured.points("bc.queue.depth")}
        age = {p.attributes["queue"]: p.value for p in captured.points("bc.queue.oldest_age")}
        (expiry,) = captured.points("bc.token.expiry")
        (failed,) = captured.events("telemetry.sample_failed")
    assert depth == {"bc-jobs": 12.0, "bc-jobs-poison": 1.0}
    assert age == {"bc-jobs": 95.0, "bc-jobs-poison": 0.0}
    assert expiry.value > 0
    assert done.token_expires_on is not None
    assert failed["source"] == "bc-results"


class RegisteredStatus:
    """A registered connection's status source: the settings' manager's status under another name, or broken."""

    def __init__(self, inner: Any, name: str, *, broken: bool = False) -> None:
        self.inner = inner
        self.name = name
        self.broken = broken

    async def status(self) -> Any:
        if self.broken:
            raise TimeoutError("Key Vault did not answer")
        found = await self.inner.status()
        return replace(found, connection=self.name)


async def test_the_timer_records_every_connections_token_expiry_and_skips_an_unreadable_one(
    world: World,
) -> None:
    """The per-connection bc-token-expiring alert needs a gauge for each registered connection too."""
    manager = world.manager()
    await manager.token()
    others = [RegisteredStatus(manager, "contoso"), RegisteredStatus(manager, "broken", broken=True)]
    with capture(world.clock) as captured:
        done = await sample(FakeQueues({}), (), manager, world.clock.now(), others)
        gauges = {p.attributes["connection"] for p in captured.points("bc.token.expiry")}
        (failed,) = captured.events("telemetry.sample_failed")
    assert gauges == {"default", "contoso"}
    assert done.token_expires_on is not None
    assert failed["source"] == "connection"


async def test_the_status_page_shows_each_connection_state(world: World) -> None:
    """Not authorized before a token, ok after one, credentials_rejected after Entra refuses the app."""
    error = '{"code": "bc_validation", "message": "Customer exists", "bcCode": "Internal_ValidationFailed", "status": 400, "clientRequestId": "cr-1", "bcRequestId": "bc-1"}'
    rows = FakeJobRows(
        [
            row("a", "succeeded", 5),
            row("b", "failed", 30, error),
            row("c", "succeeded", 300),
            row("d", "dead_lettered", 600),
        ]
    )
    manager = world.manager()

    async def page() -> str:
        sources = Sources(manager, rows, FakeQueues({"bc-jobs": (0, None)}), FakeThrottle(), ("bc-jobs",))
        return render(await collect(sources, world.clock.now(), (17, 2)))

    world.mode = AuthMode.DELEGATED
    delegated = world.manager()
    sources = Sources(delegated, rows, FakeQueues({"bc-jobs": (0, None)}), FakeThrottle(), ("bc-jobs",))
    not_signed_in = render(await collect(sources, world.clock.now(), (0, 0)))
    assert f">{Health.NOT_AUTHORIZED.value}</span>" in not_signed_in
    assert "action='/api/auth/login'" in not_signed_in  # a form asking for a host key: the page holds no key

    await manager.token()
    healthy = await page()
    assert f">{Health.OK.value}</span>" in healthy
    assert "auth/login" not in healthy
    assert "<td>failed</td><td class='n'>1</td><td class='n'>1</td>" in healthy
    assert "<td>succeeded</td><td class='n'>1</td><td class='n'>2</td>" in healthy
    assert "Internal_ValidationFailed" in healthy
    assert "ours <code>cr-1</code><br>BC <code>bc-1</code>" in healthy
    assert "17 in the last 300 s (2 got 429)" in healthy
    assert rows.asked[-1][0] == world.clock.now() - timedelta(days=1)

    world.entra.fail_next.append(CredentialsRejectedError("invalid_client", error_code="invalid_client"))
    with pytest.raises(CredentialsRejectedError):
        await manager.refresh_now(min_age=timedelta(0))
    rejected = await page()
    assert f">{Health.CREDENTIALS_REJECTED.value}</span>" in rejected
    for secret in world.entra.issued:
        assert secret not in rejected
