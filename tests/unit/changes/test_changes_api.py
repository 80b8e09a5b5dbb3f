"""GET /api/changes as a service: a page of the log and its cursor; each bad parameter named with its fix."""

from __future__ import annotations

import json

from shared.changes.api import read_changes
from shared.changes.errors import ChangeLogUnavailableError
from shared.changes.feed import MemoryChangeFeed
from shared.changes.log import ChangePage, MemoryLogReader
from shared.connections import Connection
from testkit.changes import change_event


class Registry:
    """Knows the connections named."""

    def __init__(self, *names: str) -> None:
        self.names = names

    async def find(self, name: str | None) -> Connection | None:
        if name not in self.names:
            return None
        spec = {"name": name, "tenantId": "contoso.example", "environment": "production"}
        return Connection.model_validate({**spec, "clientId": "11111111-1111-1111-1111-111111111111"})


KNOWN = Registry("contoso")


async def test_the_reply_holds_the_events_and_the_cursor_to_read_on_from() -> None:
    """Two reads with the returned cursor give every event of the entity set once, in publish order."""
    feed = MemoryChangeFeed()
    events = [change_event(f"c0a8e2b1-0000-0000-0000-00000000000{n}") for n in range(3)]
    await feed.publish([*events, change_event("c0a8e2b1-0000-0000-0000-00000000000f", entity_set="items")])
    log = MemoryLogReader(feed)
    first = json.loads(
        (
            await read_changes(log, {"connection": "contoso", "entitySet": "customers", "limit": "2"}, KNOWN)
        ).body
    )
    query = {"connection": "contoso", "entitySet": "customers", "after": first["next"]}
    rest = json.loads((await read_changes(log, query, KNOWN)).body)
    assert [c["id"] for c in first["changes"] + rest["changes"]] == [e.id for e in events]
    assert first["changes"][0]["specversion"] == "1.0"


async def test_each_bad_parameter_is_named_with_its_fix() -> None:
    """A 400 lists the connection, the entity set, the cursor and the page size when all are wrong."""
    query = {"connection": "Not OK", "entitySet": "1x", "after": "yesterday", "limit": "5000"}
    reply = await read_changes(MemoryLogReader(MemoryChangeFeed()), query, KNOWN)
    body = json.loads(reply.body)
    assert reply.status == 400
    assert [f["field"] for f in body["fields"]] == ["connection", "entitySet", "after", "limit"]
    assert all(f["fix"] for f in body["fields"])


class BrokenLog:
    async def read(self, connection: str, entity_set: str, after: str | None, limit: int) -> ChangePage:
        raise ChangeLogUnavailableError("read the log", "ServiceRequestError")


async def test_storage_trouble_is_a_503_saying_to_try_again() -> None:
    """The reader retries later; nothing of the storage error but its type reaches the answer."""
    reply = await read_changes(BrokenLog(), {"connection": "contoso", "entitySet": "customers"}, KNOWN)
    assert reply.status == 503
    assert "try again" in json.loads(reply.body)["message"]


async def test_an_unknown_connection_is_a_404_saying_how_to_list_them() -> None:
    """A misspelt connection would otherwise read an empty log forever (and --follow wait on it)."""
    query = {"connection": "contsoo", "entitySet": "customers"}
    reply = await read_changes(MemoryLogReader(MemoryChangeFeed()), query, KNOWN)
    assert reply.status == 404
    assert "bcjobs connections list" in json.loads(reply.body)["message"]


async def test_a_cursor_older_than_the_retention_is_gone_and_says_to_resync() -> None:
    """Past BC_CHANGES_RETENTION_DAYS the sweep may have deleted events after the cursor: 410, never a silent gap;
    a cursor inside the retention still reads."""
    from datetime import UTC, datetime, timedelta

    from shared.changes.log import cursor_at

    now = datetime(2026, 12, 6, 12, tzinfo=UTC)
    log = MemoryLogReader(MemoryChangeFeed())
    old = {"connection": "contoso", "entitySet": "customers", "after": cursor_at(now - timedelta(days=8))}
    reply = await read_changes(log, old, KNOWN, timedelta(days=7), now)
    assert reply.status == 410
    body = json.loads(reply.body)
    assert body["error"] == "cursor_expired"
    assert "Resync" in body["message"]
    recent = {**old, "after": cursor_at(now - timedelta(days=6))}
    assert (await read_changes(log, recent, KNOWN, timedelta(days=7), now)).status == 200
