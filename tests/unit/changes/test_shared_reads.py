"""One BC read for notifications of one entity that arrived before a read of it started; a later one reads again."""

from __future__ import annotations

import asyncio
from datetime import timedelta

import pytest

from shared.bc.errors import NotFoundError, ServiceUnavailableError
from shared.bc.models import Entity
from shared.changes.shared_reads import SKEW_MARGIN, SharedReads
from testkit.clock import ManualClock

KEY = ("contoso", "company", "v2.0", "customers", "id")


async def test_a_notification_received_before_a_read_started_shares_it() -> None:
    clock, gate, calls = ManualClock(), asyncio.Event(), []
    reads = SharedReads(clock)

    async def read() -> Entity:
        calls.append(clock.now())
        await gate.wait()
        return Entity({"id": "id"}, 'W/"2"')

    early = clock.now() - SKEW_MARGIN - timedelta(seconds=1)
    first = asyncio.create_task(reads.read(KEY, early, read))
    await asyncio.sleep(0)
    second = asyncio.create_task(reads.read(KEY, early, read))  # arrived before the read started: shares it
    late = asyncio.create_task(reads.read(KEY, clock.now(), read))  # arrived as it started: reads again
    await asyncio.sleep(0)
    gate.set()
    results = await asyncio.gather(first, second, late)
    assert [entity.etag if entity else None for entity in results] == ['W/"2"'] * 3
    assert (len(calls), reads.shared) == (2, 1)


async def test_a_404_is_none_for_everyone_and_a_failure_raises_for_everyone() -> None:
    clock, gate = ManualClock(), asyncio.Event()
    reads = SharedReads(clock)
    early = clock.now() - timedelta(minutes=1)

    async def gone() -> Entity:
        await gate.wait()
        raise NotFoundError("gone (test)")

    async def down() -> Entity:
        raise ServiceUnavailableError("down (test)")

    first = asyncio.create_task(reads.read(KEY, early, gone))
    await asyncio.sleep(0)
    second = asyncio.create_task(reads.read(KEY, early, gone))
    await asyncio.sleep(0)
    gate.set()
    assert list(await asyncio.gather(first, second)) == [None, None]
    with pytest.raises(ServiceUnavailableError):
        await reads.read(KEY, early, down)
