"""The only code that touches the Authorization header: bearer tokens from the TokenProvider, one refresh on 401.

httpx drives the flow (Auth.async_auth_flow, see httpx docs "advanced/authentication"): set the header, send;
on a 401 ask the provider for a newer token than the rejected one and resend once. A second 401 is returned
to the caller, which maps it to AuthenticationError. The rejected 401 is kept in `response.history`, so the
client can record it and charge the throttle for the extra request.
"""

from __future__ import annotations

from collections.abc import AsyncGenerator, Generator
from datetime import timedelta

import httpx

from shared.tokens import DEFAULT_MIN_VALIDITY, TokenProvider


class BearerAuth(httpx.Auth):
    """httpx auth that asks a TokenProvider for BC tokens."""

    requires_request_body = True  # the body is resent after a 401

    def __init__(self, tokens: TokenProvider, min_validity: timedelta = DEFAULT_MIN_VALIDITY) -> None:
        self._tokens = tokens
        self._min_validity = min_validity

    def sync_auth_flow(self, request: httpx.Request) -> Generator[httpx.Request, httpx.Response, None]:
        """The BC client is async only."""
        raise RuntimeError("BearerAuth needs httpx.AsyncClient")

    async def async_auth_flow(self, request: httpx.Request) -> AsyncGenerator[httpx.Request, httpx.Response]:
        """Send with the current token; after a 401, once more with a refreshed one."""
        await request.aread()
        token = await self._tokens.token(self._min_validity)
        request.headers["Authorization"] = f"Bearer {token.value}"
        response = yield request
        if response.status_code != httpx.codes.UNAUTHORIZED:
            return
        fresh = await self._tokens.refresh(rejected=token)
        request.headers["Authorization"] = f"Bearer {fresh.value}"
        yield request
