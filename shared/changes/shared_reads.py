"""One BC read for several notifications of one entity in this process (issue 22, point 2: "several notifications
for one entity inside a short window → one read").

Single flight: while a read of an entity is in flight, a notification for it that this process received before
that read started is answered by that read. That is safe because BC posts a notification only after the change
committed (codeunit 6154 sends from a job queued by the changing transaction), so a read that started after the
notification arrived (with SKEW_MARGIN for the two instances' clocks) sees the change. A notification received after the read started gets a read of its own.
Inside one message, items of one entity are merged before any read (expansion.py).
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from datetime import datetime, timedelta

from shared.bc.errors import NotFoundError
from shared.bc.models import Entity
from shared.clock import Clock, SystemClock

# The receiving instance's clock and this one's may differ a little (both NTP-synchronised): a read shares only if it
# started this much after the notification arrived.
SKEW_MARGIN = timedelta(seconds=1)
_Flight = tuple[datetime, "asyncio.Future[Entity | None]"]


class SharedReads:
    """Reads in flight in this process and event loop, by entity (and `$select`)."""

    def __init__(self, clock: Clock | None = None) -> None:
        self._clock = clock or SystemClock()
        self._flights: dict[tuple[str, ...], _Flight] = {}
        self.shared = 0  # reads saved: notifications answered by a read already in flight

    async def read(
        self, key: tuple[str, ...], received: datetime, read: Callable[[], Awaitable[Entity]]
    ) -> Entity | None:
        """The entity (None: BC answered 404), from a read in flight that started after `received`, or a new one."""
        known = self._flights.get(key)
        if known is not None and known[0] >= received + SKEW_MARGIN:
            self.shared += 1
            return await asyncio.shield(known[1])
        future: asyncio.Future[Entity | None] = asyncio.get_running_loop().create_future()
        self._flights[key] = (self._clock.now(), future)
        try:
            entity: Entity | None = await read()
        except NotFoundError:
            entity = None
        except BaseException as exc:
            future.set_exception(exc)
            future.exception()  # retrieved here: a waiter re-raises it, no waiter is fine too
            raise
        finally:
            if self._flights.get(key, (None, None))[1] is future:
                del self._flights[key]
        future.set_result(entity)
        return entity
