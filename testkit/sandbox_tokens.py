"""A minimal TokenProvider for the benchmark and the BC tests: client-credentials tokens from the sandbox's Entra.

Not the product's token manager (shared/auth): a plain httpx POST to `{authority}/{tenant}/oauth2/v2.0/token`
(grant_type=client_credentials: RFC 6749 §4.4,
learn.microsoft.com/entra/identity-platform/v2-oauth2-client-creds-grant-flow), cached in memory. Test knobs
make the next token() hand out a garbage token (the 401 path) or make every token garbage (a hopeless
credential).
"""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta

import httpx

from shared.azure_clients import httpx_verify
from shared.settings import Settings
from shared.tokens import DEFAULT_MIN_VALIDITY, AccessToken

_FAR_FUTURE = timedelta(hours=1)


class SandboxTokenProvider:
    """TokenProvider over the sandbox Entra's token endpoint (client credentials)."""

    def __init__(self, settings: Settings) -> None:
        auth = settings.auth
        if not (auth.tenant_id and auth.client_id and auth.client_secret):
            raise ValueError("the sandbox env must provide BC_TENANT_ID, BC_CLIENT_ID and BC_CLIENT_SECRET")
        self._url = f"{auth.authority_host.rstrip('/')}/{auth.tenant_id}/oauth2/v2.0/token"
        self._form = {
            "grant_type": "client_credentials",
            "client_id": auth.client_id,
            "client_secret": auth.client_secret,
            "scope": auth.scope,
        }
        self._verify = httpx_verify(settings.local)
        self._current: AccessToken | None = None
        self._lock = asyncio.Lock()
        self._poison_next = 0
        self.always_garbage = False
        self.fetches = 0
        self.replacement_calls = 0

    def poison_next(self, count: int = 1) -> None:
        """The next `count` token() calls return a token BC will refuse (as if it had expired early)."""
        self._poison_next += count

    async def token(self, min_validity: timedelta = DEFAULT_MIN_VALIDITY) -> AccessToken:
        """The cached token if it lives long enough, else a new one."""
        if self.always_garbage:
            return _garbage()
        if self._poison_next:
            self._poison_next -= 1
            return _garbage()
        async with self._lock:
            if self._current is None or not self._current.valid_for(min_validity):
                self._current = await self._fetch()
            return self._current

    async def replacement_for(self, rejected: AccessToken) -> AccessToken:
        """A new token, unless one other than `rejected` is already cached."""
        self.replacement_calls += 1
        if self.always_garbage:
            return _garbage()
        async with self._lock:
            current = self._current
            if current is not None and current.value != rejected.value:
                return current
            self._current = await self._fetch()
            return self._current

    async def _fetch(self) -> AccessToken:
        self.fetches += 1
        async with httpx.AsyncClient(verify=self._verify, timeout=30) as http:
            response = await http.post(self._url, data=self._form)
        if response.status_code != httpx.codes.OK:
            raise RuntimeError(f"sandbox token endpoint answered {response.status_code}")
        body = response.json()
        expires_in = float(body.get("expires_in", 3599))
        return AccessToken(str(body["access_token"]), datetime.now(UTC) + timedelta(seconds=expires_in))


def _garbage() -> AccessToken:
    return AccessToken("not-a-jwt", datetime.now(UTC) + _FAR_FUTURE)
