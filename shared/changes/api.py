"""`GET /api/changes?connection=&entitySet=&after=&limit=`: the change log read with a cursor (function key).

The answer is `{"changes": [event, ...], "next": cursor}`: events oldest first, in the CloudEvents JSON of the
queue; pass `next` as `after` to read on (it moves past what was read, and past the settle time when a page
came back short, so a poll never reads an event twice). 400 names the parameter and its fix; 404 an unknown
connection; 410 a cursor older than the retention (the sweep may have deleted events after it: shared/changes/
retention.py, so reading on would skip them silently); 503 on storage trouble (try again).
"""

from __future__ import annotations

import json
import logging
import re
from collections.abc import Mapping
from datetime import UTC, datetime, timedelta
from typing import Protocol

from bcjobs.models import IDENTIFIER_PATTERN
from shared.changes.errors import ChangeLogUnavailableError
from shared.changes.log import CURSOR_PATTERN, MAX_PAGE, ChangeLog
from shared.connections import Connection
from shared.connections.errors import RegistryUnavailableError
from shared.http import Reply, json_reply

logger = logging.getLogger(__name__)
DEFAULT_PAGE = 100
_CONNECTION = re.compile(r"^[a-z0-9-]{1,40}$")
_ENTITY_SET = re.compile(IDENTIFIER_PATTERN)
_FIXES = {
    "connection": "the connection's name (1-40 characters of a-z 0-9 -): bcjobs connections list shows them",
    "entitySet": "a watched entity set's name, e.g. customers",
    "after": "a cursor as returned in `next`; leave it out to read from the start",
    "limit": f"a whole number from 1 to {MAX_PAGE}",
}


class KnownConnections(Protocol):
    """Finds a connection by name (shared.connections.ConnectionRegistry: cached, no storage call per read)."""

    async def find(self, name: str | None) -> Connection | None:
        """The connection, enabled or not; None when there is none of that name."""
        ...


async def read_changes(
    log: ChangeLog,
    query: Mapping[str, str],
    connections: KnownConnections,
    retention: timedelta | None = None,
    now: datetime | None = None,
) -> Reply:
    """200 with a page of the log; 400 naming each bad parameter; 404 for an unknown connection (a typo would
    otherwise read an empty log forever); 410 for a cursor older than `retention`; 503 when storage failed."""
    problems = _problems(query)
    if problems:
        fields = [{"field": name, "fix": _FIXES[name]} for name in problems]
        message = "; ".join(f"{name}: {_FIXES[name]}" for name in problems)
        return json_reply(400, {"error": "invalid_request", "message": message, "fields": fields})
    if retention is not None and _expired(query.get("after"), retention, now or datetime.now(UTC)):
        return json_reply(410, {"error": "cursor_expired", "message": _expired_message(retention)})
    limit = int(query.get("limit") or DEFAULT_PAGE)
    try:
        if await connections.find(query["connection"]) is None:
            message = f"no connection '{query['connection']}': bcjobs connections list shows them"
            return json_reply(404, {"error": "unknown_connection", "message": message})
        page = await log.read(query["connection"], query["entitySet"], query.get("after") or None, limit)
    except (ChangeLogUnavailableError, RegistryUnavailableError) as exc:
        logger.warning("change log read failed: %s", exc, extra={"event": "changes.read_failed"})
        return json_reply(503, {"error": "storage_unavailable", "message": f"{exc}: try again shortly"})
    changes = [json.loads(event.to_json()) for event in page.changes]
    return json_reply(200, {"changes": changes, "next": page.next})


def _problems(query: Mapping[str, str]) -> list[str]:
    """The parameters that are missing or malformed, in the order of _FIXES."""
    checks = {
        "connection": bool(_CONNECTION.match(query.get("connection", ""))),
        "entitySet": bool(_ENTITY_SET.match(query.get("entitySet", ""))),
        "after": not query.get("after") or bool(CURSOR_PATTERN.match(query["after"])),
        "limit": not query.get("limit") or _page_size(query["limit"]),
    }
    return [name for name, ok in checks.items() if not ok]


def _expired(after: str | None, retention: timedelta, now: datetime) -> bool:
    """Whether the cursor's moment (its first 23 characters: shared.changes.log.cursor_at) is past the retention."""
    if not after:
        return False
    moment = datetime.strptime(after[:23], "%Y%m%dT%H%M%S.%fZ").replace(tzinfo=UTC)
    return moment < now - retention


def _expired_message(retention: timedelta) -> str:
    days = retention.total_seconds() / 86400
    return (
        f"this cursor is older than the change log keeps events ({days:g} days, BC_CHANGES_RETENTION_DAYS): "
        "events after it may be gone. Resync the entity set from BC (a list job), then read again without `after`"
    )


def _page_size(text: str) -> bool:
    return text.isdigit() and 1 <= int(text) <= MAX_PAGE
