"""The check's BC requests: the environment list, the companies and one customer, with the connection's token.

The BC client is throttle-free on purpose: a check sends at most three requests to the environment, an admin starts
it by hand, and it must also run for a disabled connection (which has no job lane, hence no lane throttle). A 429
still ends the request after the client's bounded retries (shared.bc.retry.RetryPolicy), and is reported.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from uuid import UUID

import httpx

from shared.bc.client import BusinessCentralClient
from shared.bc.models import Company, EntitySet
from shared.bc.odata import ODataQuery
from shared.tokens import TokenProvider

ENVIRONMENTS_PATH = "/environments/v1.2"


class Unthrottled:
    """shared.bc.sender.Throttle that never waits (see the module's docstring for why the check may)."""

    @asynccontextmanager
    async def permit(self) -> AsyncIterator[None]:
        yield

    async def pause(self, seconds: float) -> None:
        del seconds


class ClientProbe:
    """BcProbe over a BC client for the connection's environment and a plain HTTP client for the list."""

    def __init__(
        self, client: BusinessCentralClient, http: httpx.AsyncClient, base_url: str, tokens: TokenProvider
    ) -> None:
        self._client = client
        self._http = http
        self._base_url = base_url.rstrip("/")
        self._tokens = tokens

    async def environments(self) -> tuple[str, ...] | None:
        """BC's environment list for the token's tenant (learn.microsoft.com/dynamics365/business-central/
        dev-itpro/webservices/api-get-environments); None when BC does not answer it with a list."""
        token = await self._tokens.token()
        headers = {"Authorization": f"Bearer {token.value}"}
        try:
            response = await self._http.get(f"{self._base_url}{ENVIRONMENTS_PATH}", headers=headers)
            body = response.json() if response.status_code == 200 else None
        except (httpx.HTTPError, ValueError):
            return None
        entries = body.get("value") if isinstance(body, dict) else None
        if not isinstance(entries, list):
            return None
        return tuple(
            str(e["name"]) for e in entries if isinstance(e, dict) and isinstance(e.get("name"), str)
        )

    async def companies(self) -> tuple[Company, ...]:
        return await self._client.companies()

    async def read_customers(self, company: UUID) -> None:
        await self._client.list(EntitySet("customers", company_id=company), ODataQuery(top=1), limit=1)

    async def aclose(self) -> None:
        """Close both HTTP clients."""
        await self._client.aclose()
        await self._http.aclose()
