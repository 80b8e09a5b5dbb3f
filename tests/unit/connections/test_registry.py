"""Resolving a connection by name: the settings' one always, registered ones from a cache of bounded staleness."""

from __future__ import annotations

from datetime import timedelta

import pytest

from shared.connections import (
    Connection,
    ConnectionDisabledError,
    ConnectionRegistry,
    ConnectionUnusableError,
    MemoryRegistryStore,
    UnknownConnectionError,
)
from shared.connections.registry import STALENESS_SECONDS, UNKNOWN_RECHECK_SECONDS
from testkit.clock import ManualClock

DEFAULT = Connection(
    name="default",
    tenant_id="11111111-1111-1111-1111-111111111111",
    environment="production",
    client_id="33333333-3333-3333-3333-333333333333",
    from_settings=True,
)
CONTOSO = Connection(
    name="contoso",
    tenant_id="22222222-2222-2222-2222-222222222222",
    environment="production",
    client_id="33333333-3333-3333-3333-333333333333",
)


def registry(*registered: Connection) -> tuple[ConnectionRegistry, MemoryRegistryStore, ManualClock]:
    clock = ManualClock()
    store = MemoryRegistryStore(*registered)
    return ConnectionRegistry(DEFAULT, store, clock), store, clock


async def test_the_settings_connection_resolves_without_reading_storage() -> None:
    found, store, _ = registry(CONTOSO)
    assert await found.resolve(None) is DEFAULT
    assert await found.resolve("default") is DEFAULT
    assert store.reads == 0


async def test_lookups_within_the_staleness_cost_no_storage_call() -> None:
    found, store, clock = registry(CONTOSO)
    for _ in range(100):
        assert await found.resolve("contoso") == CONTOSO
        clock.advance(timedelta(seconds=STALENESS_SECONDS / 200))
    assert store.reads == 1


async def test_an_admins_change_reaches_a_process_within_the_staleness() -> None:
    found, store, clock = registry(CONTOSO)
    await found.resolve("contoso")
    store.rows["contoso"] = CONTOSO.model_copy(update={"enabled": False, "disabled_reason": "offboarded"})
    assert (await found.resolve("contoso")).enabled  # still the cached definition
    clock.advance(timedelta(seconds=STALENESS_SECONDS))
    with pytest.raises(ConnectionDisabledError, match="offboarded"):
        await found.resolve("contoso")


async def test_an_unknown_name_is_rechecked_at_most_every_few_seconds() -> None:
    """A connection registered a moment ago is found soon; a flood of jobs naming no connection costs few reads."""
    found, store, clock = registry()
    for _ in range(50):
        with pytest.raises(UnknownConnectionError, match="does not exist; register it"):
            await found.resolve("fabrikam")
    assert store.reads == 1
    store.rows["fabrikam"] = CONTOSO.model_copy(update={"name": "fabrikam"})
    clock.advance(timedelta(seconds=UNKNOWN_RECHECK_SECONDS))
    assert (await found.resolve("fabrikam")).name == "fabrikam"
    assert store.reads == 2


async def test_a_connection_registered_just_after_a_read_is_found_by_its_first_job() -> None:
    """The race the demo found: this process read the table (fairness, another job), the admin registers a
    connection half a second later, its first job arrives: it is looked up in a read that started after the job
    did, never rejected on the older read."""
    found, store, clock = registry(CONTOSO)
    await found.resolve("contoso")  # the table read now
    clock.advance(timedelta(seconds=0.5))
    store.rows["fabrikam"] = CONTOSO.model_copy(update={"name": "fabrikam"})
    clock.advance(timedelta(seconds=0.5))
    assert (await found.resolve("fabrikam")).name == "fabrikam"
    assert store.reads == 2


async def test_a_flood_of_jobs_naming_no_connection_costs_one_read_per_recheck_interval() -> None:
    found, store, clock = registry()
    for _ in range(100):
        with pytest.raises(UnknownConnectionError):
            await found.resolve("fabrikam")
        clock.advance(timedelta(seconds=0.1))  # ManualClock.sleep jumps: each wait is counted in `slept`
    elapsed = 100 * 0.1 + sum(clock.slept)
    assert store.reads <= elapsed / UNKNOWN_RECHECK_SECONDS + 1


async def test_all_lists_the_settings_connection_first_then_the_registered_by_name() -> None:
    other = CONTOSO.model_copy(update={"name": "adatum"})
    found, _, _ = registry(CONTOSO, other)
    assert [c.name for c in await found.all()] == ["default", "adatum", "contoso"]


async def test_the_settings_connection_cannot_be_changed_or_deleted_through_the_registry() -> None:
    found, store, _ = registry()
    with pytest.raises(ConnectionUnusableError, match="BC_CONNECTION_NAME"):
        await found.put(DEFAULT.model_copy(update={"from_settings": False}))
    with pytest.raises(ConnectionUnusableError, match="BC_CONNECTION_NAME"):
        await found.delete("default")
    assert store.rows == {}


async def test_a_registered_row_cannot_shadow_the_settings_connection() -> None:
    """A row named like the settings' connection (written before it was renamed) is ignored."""
    shadow = CONTOSO.model_copy(update={"name": "default"})
    found, _, _ = registry(shadow)
    assert await found.resolve("default") is DEFAULT
    assert [c for c in await found.all() if c.name == "default"] == [DEFAULT]
