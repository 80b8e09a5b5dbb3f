"""One-connection lanes for tests that build a JobProcessor by hand."""

from __future__ import annotations

from shared.connections import Connection
from shared.jobs.fairness import NO_BACKLOG, Backlog
from shared.jobs.lanes import Lane, OneLane, SlotWait, always_a_slot
from shared.jobs.runner import JobRunner
from shared.tokens import TokenProvider

TEST_CONNECTION = Connection(
    name="default",
    tenant_id="00000000-0000-0000-0000-00000000000a",
    environment="production",
    client_id="00000000-0000-0000-0000-00000000000c",
    from_settings=True,
)


def one_lane(
    runner: JobRunner,
    tokens: TokenProvider,
    await_slot: SlotWait = always_a_slot,
    connection: Connection = TEST_CONNECTION,
    backlog: Backlog = NO_BACKLOG,
) -> OneLane:
    """Lanes serving one connection (`default`, as a deployment's settings name it when unset)."""
    return OneLane(Lane(connection, runner, tokens, await_slot, backlog))
