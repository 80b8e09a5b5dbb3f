"""Real clients pointed at the sandbox: MSAL, azure-identity + SecretClient, httpx."""

from __future__ import annotations

import ssl
from collections.abc import Callable, Iterator
from typing import Any

import httpx
import msal
import pytest
import requests

from sandbox import Sandbox

BC_SCOPE = "https://api.businesscentral.dynamics.com/.default"


class CaSession(requests.Session):
    """A requests session that passes `verify` per request.

    requests lets REQUESTS_CA_BUNDLE / CURL_CA_BUNDLE override `Session.verify` (psf/requests#3829), and MSAL's
    `verify=` only sets `Session.verify`; per-request `verify` wins over the environment.
    """

    def __init__(self, ca_bundle: str) -> None:
        super().__init__()
        self._ca_bundle = ca_bundle

    def request(self, method: str | bytes, url: str | bytes, *args: Any, **kwargs: Any) -> requests.Response:
        kwargs.setdefault("verify", self._ca_bundle)
        return super().request(method, url, *args, **kwargs)  # type: ignore[arg-type]


@pytest.fixture
def msal_app(sandbox: Sandbox) -> Iterator[Callable[..., msal.ConfidentialClientApplication]]:
    """A factory of fresh MSAL confidential clients for the sandbox tenant (fresh = no shared throttle cache)."""
    sessions: list[CaSession] = []

    def make(client_id: str | None = None, secret: str | None = None) -> msal.ConfidentialClientApplication:
        env = sandbox.env
        session = CaSession(env["LOCAL_CA_BUNDLE"])
        sessions.append(session)
        return msal.ConfidentialClientApplication(
            client_id or env["BC_CLIENT_ID"],
            client_credential=secret or env["BC_CLIENT_SECRET"],
            authority=f"{env['BC_AUTHORITY_HOST']}/{env['BC_TENANT_ID']}",
            instance_discovery=False,
            http_client=session,
        )

    yield make
    for session in sessions:
        session.close()


@pytest.fixture
def app_token(msal_app: Callable[..., msal.ConfidentialClientApplication]) -> str:
    """A BC access token for the primary app (client credentials)."""
    result = msal_app().acquire_token_for_client(scopes=[BC_SCOPE])
    assert "access_token" in result, result.get("error")
    return str(result["access_token"])


@pytest.fixture
def ca_context(sandbox: Sandbox) -> ssl.SSLContext:
    """An SSL context trusting only the sandbox CA."""
    return ssl.create_default_context(cafile=str(sandbox.ca_bundle))


@pytest.fixture
def api_root(sandbox: Sandbox) -> str:
    """The BC API v2.0 root for the sandbox tenant and environment."""
    env = sandbox.env
    return f"{env['BC_API_BASE_URL']}/v2.0/{env['BC_TENANT_ID']}/{env['BC_ENVIRONMENT']}/api/v2.0"


@pytest.fixture
def company_url(sandbox: Sandbox, api_root: str) -> str:
    """The demo company's URL."""
    return f"{api_root}/companies({sandbox.env['BC_COMPANY_ID']})"


@pytest.fixture
async def bc(ca_context: ssl.SSLContext, app_token: str) -> Any:
    """An httpx AsyncClient sending the app's bearer token."""
    async with httpx.AsyncClient(
        verify=ca_context, headers={"Authorization": f"Bearer {app_token}"}, timeout=30
    ) as client:
        yield client
