"""The telemetry timer's work: read the job queues and the connection's token expiry into the gauges.

Once a minute (shared/triggers/telemetry_sample.py): `bc.queue.depth` and `bc.queue.oldest_age` of bc-jobs and
bc-jobs-poison, and `bc.token.expiry` of every connection from the token lifecycle's status (its cache; Key Vault
only when the cached token is close to expiry), at most SAMPLE_CONCURRENCY connections at once: the per-connection
bc-token-expiring alert needs every connection's gauge, not only the settings' one. A source that fails is logged and skipped: the gauge then goes quiet, which the queue
and token alerts do not mistake for good news (docs/operations.md).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

from shared import telemetry
from shared.ops.snapshot import ConnectionSource, QueueReading, QueueSource

logger = logging.getLogger(__name__)

SAMPLE_CONCURRENCY = (
    8  # status reads at once (a cache hit and one record read each): 100 connections, ~13 rounds
)


@dataclass(frozen=True, slots=True)
class Sample:
    """What one run read."""

    queues: tuple[QueueReading, ...]
    token_expires_on: datetime | None


async def sample(
    queues: QueueSource,
    queue_names: tuple[str, ...],
    connection: ConnectionSource,
    now: datetime,
    others: Sequence[ConnectionSource] = (),
) -> Sample:
    """Read and record every gauge (`connection`: the settings' one; `others`: the registered ones); failures
    are logged, never raised."""
    readings = [await _read_queue(queues, name, now) for name in queue_names]
    gate = asyncio.Semaphore(SAMPLE_CONCURRENCY)

    async def expiry(source: ConnectionSource) -> datetime | None:
        async with gate:
            return await _read_token_expiry(source)

    expiries = await asyncio.gather(*(expiry(source) for source in (connection, *others)))
    return Sample(tuple(reading for reading in readings if reading is not None), expiries[0])


async def _read_queue(queues: QueueSource, name: str, now: datetime) -> QueueReading | None:
    """One queue's depth and oldest age, recorded; None (logged) when it cannot be read."""
    try:
        reading = await queues.reading(name, now)
    except Exception as exc:  # noqa: BLE001 - one failed reading must not stop the others
        logger.warning(
            "telemetry sample: queue %s unreadable (%s)",
            name,
            type(exc).__name__,
            extra={"event": "telemetry.sample_failed", "source": name},
        )
        return None
    telemetry.queue_sample(reading.name, reading.depth, reading.oldest_age_seconds or 0.0)
    return reading


async def _read_token_expiry(connection: ConnectionSource) -> datetime | None:
    """The connection's token expiry, recorded when known; None (logged) when the status cannot be read."""
    try:
        status = await connection.status()
    except Exception as exc:  # noqa: BLE001 - the token lifecycle's own logs say why
        logger.warning(
            "telemetry sample: connection status unreadable (%s)",
            type(exc).__name__,
            extra={"event": "telemetry.sample_failed", "source": "connection"},
        )
        return None
    if status.expires_on is not None:
        telemetry.token_expiry(status.connection, status.expires_on)
    return status.expires_on
