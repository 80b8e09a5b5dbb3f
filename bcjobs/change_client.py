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

import json
from dataclasses import dataclass
from functools import partial
from types import TracebackType
from typing import Any, Self
from urllib.parse import urlencode

import aiohttp
import requests

from bcjobs import _flows as flows
from bcjobs.changes import ChangeEvent
from bcjobs.connections import DEFAULT_TIMEOUT, KEY_HEADER, HttpAnswer, HttpCall
from bcjobs.errors import BcJobsError


class ChangesApiError(BcJobsError):
    """The change log refused or failed a read; `status` (None: no answer), `code` and the API's message."""

    def __init__(self, message: str, *, status: int | None = None, code: str | None = None) -> None:
        self.status = status
        self.code = code
        super().__init__(message)


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
    body = _json(answer, f"reading the changes of {connection}/{entity_set}")
    events = tuple(ChangeEvent.model_validate(item) for item in body.get("changes", []))
    return ChangesPage(events, body.get("next"))


def _json(answer: HttpAnswer, doing: str) -> dict[str, Any]:
    """The 2xx body as a JSON object; ChangesApiError naming the API's error and message otherwise."""
    try:
        body = json.loads(answer.body or b"{}")
    except ValueError:
        body = None
    if not isinstance(body, dict):
        raise ChangesApiError(f"{doing}: HTTP {answer.status}, not the API's JSON", status=answer.status)
    if 200 <= answer.status < 300:
        return body
    if answer.status in {401, 403}:
        message = (
            "the function key was refused: pass the app's key (--function-key / env BCJOBS_FUNCTION_KEY)"
        )
    else:
        message = str(body.get("message") or f"HTTP {answer.status}")
    raise ChangesApiError(f"{doing}: {message}", status=answer.status, code=body.get("error"))


def _unreachable(method: str, url: str, exc: BaseException) -> ChangesApiError:
    address = url.split("?", 1)[0]
    return ChangesApiError(
        f"{method} {address} failed ({type(exc).__name__}): is the app running and --api-url right?"
    )


class ChangesClient:
    """The change log over `requests` (blocking); a context manager closing its session."""

    def __init__(
        self, api_url: str, function_key: str | None = None, *, timeout: float = DEFAULT_TIMEOUT
    ) -> None:
        self.api_url = api_url
        self._timeout = timeout
        self._session = requests.Session()
        if function_key:
            self._session.headers[KEY_HEADER] = function_key

    def _call(self, method: str, url: str, body: bytes | None) -> HttpAnswer:
        try:
            response = self._session.request(method, url, data=body, timeout=self._timeout)
        except requests.RequestException as exc:
            raise _unreachable(method, url, exc) from None
        return HttpAnswer(response.status_code, response.content)

    def changes(
        self, connection: str, entity_set: str, *, after: str | None = None, limit: int | None = None
    ) -> ChangesPage:
        """Events of `entity_set` on `connection` after the cursor `after` (from the start when None)."""
        return flows.carry_out(changes_flow(self._call, self.api_url, connection, entity_set, after, limit))

    def close(self) -> None:
        """Close the HTTP session."""
        self._session.close()

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()


class AsyncChangesClient:
    """The change log over `aiohttp`; an async context manager closing its session."""

    def __init__(
        self, api_url: str, function_key: str | None = None, *, timeout: float = DEFAULT_TIMEOUT
    ) -> None:
        self.api_url = api_url
        self._timeout = aiohttp.ClientTimeout(total=timeout)
        self._headers = {KEY_HEADER: function_key} if function_key else {}
        self._session: aiohttp.ClientSession | None = None

    async def _call(self, method: str, url: str, body: bytes | None) -> HttpAnswer:
        if self._session is None:  # built on the caller's loop, on first use
            self._session = aiohttp.ClientSession(headers=self._headers, timeout=self._timeout)
        try:
            async with self._session.request(method, url, data=body) as response:
                return HttpAnswer(response.status, await response.read())
        except (aiohttp.ClientError, TimeoutError) as exc:
            raise _unreachable(method, url, exc) from None

    async def changes(
        self, connection: str, entity_set: str, *, after: str | None = None, limit: int | None = None
    ) -> ChangesPage:
        """Events of `entity_set` on `connection` after the cursor `after` (from the start when None)."""
        flow = changes_flow(self._call, self.api_url, connection, entity_set, after, limit)
        return await flows.carry_out_async(flow)

    async def close(self) -> None:
        """Close the HTTP session."""
        if self._session is not None:
            await self._session.close()
            self._session = None

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.close()
