"""Lanes: what one process holds to run one connection's jobs (its token provider, BC runner and slot wait).

The processor asks `Lanes.lane(job.connection)` for every delivery; a connection that does not exist or is
disabled raises ConnectionUnusableError (the job is rejected with its reason), a registry that cannot be read
raises RegistryUnavailableError (storage: the host delivers the message again). A job only ever gets its own
connection's lane, so it can never use another connection's token.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

from bcjobs import Job
from shared.connections import Connection, UnknownConnectionError
from shared.connections.connection import PRIMARY_IDENTITY
from shared.jobs.fairness import NO_BACKLOG, Backlog
from shared.jobs.runner import JobRunner
from shared.tokens import TokenProvider


class SlotWait(Protocol):
    """Whether this process holds a BC slot now or is given one within `within` seconds (SharedThrottle.await_slot)."""

    async def __call__(self, within: float) -> bool: ...


class PoolExit(Protocol):
    """Takes the lane's identity out of its connection's pool (shared/jobs/pool.py) after a job on it was refused
    for authorization; True when another identity of the pool can run the job instead of parking it."""

    async def __call__(self) -> bool: ...


async def no_other_identity() -> bool:
    """A lane outside a pool of several identities: a refused job parks (waiting_for_authorization)."""
    return False


async def always_a_slot(within: float) -> bool:
    """Without a shared throttle (tests, tools) nothing limits BC slots; compose.py always passes the throttle's."""
    del within
    return True


@dataclass(frozen=True, slots=True)
class Lane:
    """One identity's means to run a connection's job in this process."""

    connection: Connection
    runner: JobRunner
    tokens: TokenProvider
    await_slot: SlotWait = always_a_slot
    backlog: Backlog = NO_BACKLOG  # compose.py passes its pool's (one per pool per process)
    identity: str = PRIMARY_IDENTITY  # which identity of the connection's pool this lane acts as
    leave_pool: PoolExit = no_other_identity

    def refusal(self, job: Job) -> str | None:
        """Why this connection may not run the job (a custom API it is not allowed), or None."""
        return refusal_of(self.connection, job)


def refusal_of(connection: Connection, job: Job) -> str | None:
    """Why `connection` may not run the job (a custom API not in its customApis), or None; the jobs front door
    asks the same before sending."""
    steps = job.operations if job.operations is not None else [job]
    for step in steps:
        api = step.api
        name = f"{api.publisher}/{api.group}/{api.version}" if api is not None else None
        if not connection.allows_api(name):
            return (
                f"connection '{connection.name}' may not call the custom API {name}; add it to the "
                f"connection's customApis (PUT /api/connections/{connection.name})"
            )
    return None


class Lanes(Protocol):
    """The lane of each connection (built on first use); `default` names the settings' connection."""

    @property
    def default(self) -> str:
        """The name a job without `connection` runs on."""
        ...

    async def lane(self, connection: str | None) -> Lane:
        """The lane of that connection (None: the default); ConnectionUnusableError when it cannot be used."""
        ...


@dataclass(frozen=True, slots=True)
class OneLane:
    """Lanes with a single connection: tests and tools."""

    only: Lane

    @property
    def default(self) -> str:
        return self.only.connection.name

    async def lane(self, connection: str | None) -> Lane:
        if connection is None or connection == self.only.connection.name:
            return self.only
        raise UnknownConnectionError(connection)
