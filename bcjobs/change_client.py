"""Clients of the change log (`GET /api/changes`): BC's changes, read with a cursor.

    from bcjobs.change_client import ChangesClient

    with ChangesClient("https://bc-app.azurewebsites.net", function_key) as feed:
        page = feed.changes("contoso", "customers")            # from the start of the log
        for event in page.changes:                             # bcjobs.changes.ChangeEvent, oldest first
            print(event.type, event.subject, event.bcecho)
        page = feed.changes("contoso", "customers", after=page.next)   # keep `next`: it is where you are

The queue `bc-changes` carries the same events as they are published; the log is for catching up (a new
consumer, a replay, an app that was down longer than a message lives). A row is readable once it is 15 s old
(docs/changes.md says why), so the cursor never skips one. `AsyncChangesClient` is the async twin; both carry
out the same flow (`bcjobs._flows`), over `requests` and `aiohttp`, like `bcjobs.connections`.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import partial
from urllib.parse import urlencode

from bcjobs import _flows as flows
from bcjobs.api_session import ApiError, ApiSession, AsyncApiSession, read_json
from bcjobs.changes import ChangeEvent
from bcjobs.connections import HttpCall


class ChangesApiError(ApiError):
    """The change log refused or failed a read; `status` (None: no answer), `code` and the API's message."""


@dataclass(frozen=True, slots=True)
class ChangesPage:
    """One read: events oldest first, and the cursor to pass as `after` next time."""

    changes: tuple[ChangeEvent, ...]
    next: str | None


def changes_flow(
    http: HttpCall, base_url: str, connection: str, entity_set: str, after: str | None, limit: int | None
) -> flows.Flow[ChangesPage]:
    """GET /api/changes?connection=&entitySet=&after=&limit=."""
    query = {"connection": connection, "entitySet": entity_set}
    query.update(
        {key: str(value) for key, value in (("after", after), ("limit", limit)) if value is not None}
    )
    url = f"{base_url.rstrip('/')}/api/changes?{urlencode(query)}"
    answer = yield from flows.ask(partial(http, "GET", url, None))
    body = read_json(answer, f"reading the changes of {connection}/{entity_set}", ChangesApiError)
    events = tuple(ChangeEvent.model_validate(item) for item in body.get("changes", []))
    return ChangesPage(events, body.get("next"))


class ChangesClient(ApiSession):
    """The change log over `requests` (blocking); a context manager closing its session."""

    error = ChangesApiError

    def changes(
        self, connection: str, entity_set: str, *, after: str | None = None, limit: int | None = None
    ) -> ChangesPage:
        """Events of `entity_set` on `connection` after the cursor `after` (from the start when None)."""
        return flows.carry_out(changes_flow(self._call, self.api_url, connection, entity_set, after, limit))


class AsyncChangesClient(AsyncApiSession):
    """The change log over `aiohttp`; an async context manager closing its session."""

    error = ChangesApiError

    async def changes(
        self, connection: str, entity_set: str, *, after: str | None = None, limit: int | None = None
    ) -> ChangesPage:
        """Events of `entity_set` on `connection` after the cursor `after` (from the start when None)."""
        flow = changes_flow(self._call, self.api_url, connection, entity_set, after, limit)
        return await flows.carry_out_async(flow)
