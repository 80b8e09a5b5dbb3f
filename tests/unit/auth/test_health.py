"""HealthRecorder: the connection record's transitions, the admin alert sent once, the probe backoff."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from shared.auth.errors import ReauthorizationRequiredError, TokenRefreshFailedError
from shared.auth.health import HealthRecorder
from shared.auth.models import ConnectionRecord, Grant, Health, TokenSet, Versioned, first_token_set
from shared.auth.notify import AdminAlert
from shared.auth.stores import compare_and_swap
from shared.tokens import AuthMode
from testkit.auth_stores import MemoryRecordStore
from testkit.clock import ManualClock

NOW = datetime(2026, 1, 5, 8, 0, tzinfo=UTC)


class Alerts:
    def __init__(self) -> None:
        self.sent: list[AdminAlert] = []

    async def notify(self, alert: AdminAlert) -> None:
        self.sent.append(alert)


def recorder() -> tuple[HealthRecorder, MemoryRecordStore[ConnectionRecord], Alerts, ManualClock]:
    store, alerts, clock = MemoryRecordStore[ConnectionRecord](), Alerts(), ManualClock(NOW)
    return HealthRecorder("c", store, clock, alerts, AuthMode.DELEGATED), store, alerts, clock


def token_set(generation: int) -> TokenSet:
    grant = Grant("at", timedelta(hours=1), (), "rt")
    return first_token_set("c", AuthMode.DELEGATED, grant, NOW, generation)


async def test_a_dead_grant_is_recorded_and_alerted_once_however_often_it_is_seen() -> None:
    """Three processes see the same dead refresh token: one alert, the record says reauthorization_required."""
    health, _, alerts, _ = recorder()
    for _ in range(3):
        await health.record_admin_needed(
            ReauthorizationRequiredError("dead", error_code="invalid_grant"), token_set(4)
        )

    record = await health.read_strict()
    assert record.health is Health.REAUTHORIZATION_REQUIRED
    assert record.failed_generation == 4
    assert len(alerts.sent) == 1


async def test_an_admin_needed_record_blocks_until_its_backoff_ends_or_a_newer_sign_in() -> None:
    """blocks() holds refreshes of the failed generation for the probe backoff; a newer generation is free."""
    health, _, _, clock = recorder()
    await health.record_admin_needed(ReauthorizationRequiredError("dead"), token_set(4))
    record = await health.read_strict()

    assert health.blocks(record, token_set(4))
    assert not health.blocks(record, token_set(5))
    clock.advance(timedelta(hours=1, seconds=1))
    assert not health.blocks(record, token_set(4))


async def test_a_transient_failure_degrades_but_never_hides_an_admin_needed_health() -> None:
    """record_transient: OK → degraded; reauthorization_required stays as it is."""
    health, _, _, _ = recorder()
    await health.record_transient(TokenRefreshFailedError("503"))
    assert (await health.read_strict()).health is Health.DEGRADED

    await health.record_admin_needed(ReauthorizationRequiredError("dead"), token_set(1))
    await health.record_transient(TokenRefreshFailedError("503"))
    assert (await health.read_strict()).health is Health.REAUTHORIZATION_REQUIRED

    await health.record_success()
    assert (await health.read_strict()).health is Health.OK


async def test_an_unreachable_record_store_reads_as_ok_and_writes_nothing() -> None:
    """read() never blocks token serving: a failing store reads as a fresh OK record; writes are dropped."""
    health, store, alerts, _ = recorder()
    store.fail_every_call = True

    assert (await health.read()).health is Health.OK
    await health.record_admin_needed(ReauthorizationRequiredError("dead"), token_set(1))
    assert alerts.sent == []


class RacedOnce(MemoryRecordStore[int]):
    """Another writer changes the record just before our first replace."""

    raced = False

    async def replace(self, key: str, value: int, etag: str) -> Versioned[int] | None:
        if not self.raced:
            self.raced = True
            current = await self.get(key)
            assert current is not None
            await super().replace(key, 100, current.etag)
        return await super().replace(key, value, etag)


async def test_compare_and_swap_applies_the_change_again_after_a_lost_race() -> None:
    """The first write loses to a concurrent one; the change is applied to the winner's value."""
    store = RacedOnce()
    await store.create("k", 1)

    assert await compare_and_swap(store, "k", lambda value: value + 1, 0) is True

    written = await store.get("k")
    assert written is not None
    assert written.value == 101


async def test_compare_and_swap_writes_nothing_when_the_change_changes_nothing() -> None:
    """An unchanged value is no write (and reports False); an absent record starts from the initial value."""
    store = MemoryRecordStore[int]()
    assert await compare_and_swap(store, "k", lambda value: value + 1, 0) is True
    assert await compare_and_swap(store, "k", lambda value: value, 0) is False
    assert store.writes == [1]


async def test_the_consent_outcome_is_recorded_and_survives_a_later_success() -> None:
    """The admin-consent callback's outcome stays on the record when a refresh then succeeds."""
    health, store, _, _ = recorder()
    assert await health.record_consent("granted")
    await health.record_transient(TokenRefreshFailedError("entra down"))
    await health.record_success()
    entry = await store.get("c")
    assert entry is not None
    assert entry.value.health is Health.OK
    assert (entry.value.consent, entry.value.consent_at) == ("granted", NOW)
    assert ConnectionRecord.from_row("c", dict(entry.value.to_row())).consent == "granted"
