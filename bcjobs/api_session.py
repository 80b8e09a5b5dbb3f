"""The HTTP session the app-side API clients share (connections, watches, changes): one blocking (`requests`) and
one async (`aiohttp`) base, each a context manager closing its session, each turning a transport failure into the
client's own error with the next step. The flows (`bcjobs/_flows.py`) call `_call`; the clients add the methods.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from types import TracebackType
from typing import Any, ClassVar, Self
from urllib.parse import urlsplit

import aiohttp
import requests

from bcjobs.errors import BcJobsError

KEY_HEADER = "x-functions-key"
DEFAULT_TIMEOUT = 30.0


@dataclass(frozen=True, slots=True)
class HttpAnswer:
    """An HTTP response as the flows read it."""

    status: int
    body: bytes


class ApiError(BcJobsError):
    """The app's API refused or failed a request; `status` (None: no answer), `code`, `fields` and its message."""

    def __init__(
        self,
        message: str,
        *,
        status: int | None = None,
        code: str | None = None,
        fields: tuple[str, ...] = (),
    ) -> None:
        self.status = status
        self.code = code
        self.fields = fields
        super().__init__(message)


def read_json(answer: HttpAnswer, doing: str, error: type[ApiError]) -> dict[str, Any]:
    """The 2xx body as a JSON object; `error` naming the API's error, message and fixes otherwise."""
    try:
        body = json.loads(answer.body or b"{}")
    except ValueError:
        body = None
    if not isinstance(body, dict):
        raise error(f"{doing}: HTTP {answer.status}, not the API's JSON", status=answer.status)
    if 200 <= answer.status < 300:
        return body
    if answer.status in {401, 403}:
        message = (
            "the function key was refused: pass the app's key (--function-key / env BCJOBS_FUNCTION_KEY)"
        )
    else:
        message = str(body.get("message") or f"HTTP {answer.status}")
    listed = [f for f in body.get("fields", []) if isinstance(f, dict)]
    details = "; ".join(f"{f.get('field')}: {f.get('fix')}" for f in listed if f.get("fix"))
    text = f"{doing}: {message}" + (f" (fix: {details})" if details else "")
    fields = tuple(str(f.get("field")) for f in listed)
    raise error(text, status=answer.status, code=body.get("error"), fields=fields)


def _headers(body: bytes | None) -> dict[str, str]:
    return {"Content-Type": "application/json"} if body is not None else {}


def _unreachable(error: type[BcJobsError], method: str, url: str, exc: BaseException) -> BcJobsError:
    parts = urlsplit(url)  # never the query: it may hold a cursor or a key
    return error(
        f"{method} {parts.scheme}://{parts.netloc}{parts.path} failed ({type(exc).__name__}): is the app running "
        "and --api-url right?"
    )


class ApiSession:
    """A `requests` session with the function key; subclasses name their error (`error`)."""

    error: ClassVar[type[BcJobsError]] = BcJobsError

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
            response = self._session.request(
                method, url, data=body, headers=_headers(body), timeout=self._timeout
            )
        except requests.RequestException as exc:
            raise _unreachable(self.error, method, url, exc) from None
        return HttpAnswer(response.status_code, response.content)

    def close(self) -> None:
        """Close the HTTP session."""
        self._session.close()

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()


class AsyncApiSession:
    """An `aiohttp` session with the function key, built on the caller's loop at first use."""

    error: ClassVar[type[BcJobsError]] = BcJobsError

    def __init__(
        self, api_url: str, function_key: str | None = None, *, timeout: float = DEFAULT_TIMEOUT
    ) -> None:
        self.api_url = api_url
        self._timeout = aiohttp.ClientTimeout(total=timeout)
        self._headers = {KEY_HEADER: function_key} if function_key else {}
        self._session: aiohttp.ClientSession | None = None

    async def _call(self, method: str, url: str, body: bytes | None) -> HttpAnswer:
        if self._session is None:
            self._session = aiohttp.ClientSession(headers=self._headers, timeout=self._timeout)
        try:
            async with self._session.request(method, url, data=body, headers=_headers(body)) as response:
                return HttpAnswer(response.status, await response.read())
        except (aiohttp.ClientError, TimeoutError) as exc:
            raise _unreachable(self.error, method, url, exc) from None

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
