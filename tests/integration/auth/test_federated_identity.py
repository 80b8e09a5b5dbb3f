"""The federated identity provider against the sandbox's Entra and managed-identity endpoint (no devhost): MSAL
presents the identity's exchange token as the assertion; each way Entra or the host refuses it is named."""

from __future__ import annotations

import asyncio
import re
import ssl

import httpx
import pytest
from azure.identity import ManagedIdentityCredential

from sandbox import Sandbox
from sandbox.entra.federation import FederatedCredential, entra_issuer
from shared.auth.errors import CredentialsRejectedError
from shared.auth.federated import TOKEN_EXCHANGE_AUDIENCE, ManagedIdentityAssertion
from shared.auth.msal_identity import MsalConfig, MsalIdentity
from shared.settings import load_settings

pytestmark = pytest.mark.integration

UNKNOWN_IDENTITY = "99999999-9999-9999-9999-999999999999"


@pytest.fixture
def site(sandbox: Sandbox, monkeypatch: pytest.MonkeyPatch) -> Sandbox:
    """This process looks like an App Service site with the sandbox's user-assigned identity."""
    for name, value in sandbox.managed_identity_env.items():
        monkeypatch.setenv(name, value)
    return sandbox


def identity(sandbox: Sandbox, managed: str) -> tuple[MsalIdentity, ManagedIdentityAssertion]:
    """The primary app's provider with the managed identity's token as its only credential (no secret)."""
    settings = load_settings(dict(sandbox.env))
    assertion = ManagedIdentityAssertion(lambda: ManagedIdentityCredential(client_id=managed), managed)
    config = MsalConfig(
        client_id=sandbox.directory.primary.client_id,
        tenant_id=sandbox.directory.tenant_id,
        authority_host=settings.auth.authority_host,
        scope=settings.auth.scope,
        ca_bundle=settings.local.ca_bundle,
        assertion=assertion,
    )
    return MsalIdentity(config), assertion


def trust(sandbox: Sandbox, subject: str) -> None:
    """The primary app registration gets a federated credential naming `subject`."""
    record = FederatedCredential("site-identity", entra_issuer(sandbox.directory.tenant_id), subject)
    sandbox.entra.add_federated_credential(sandbox.directory.primary.client_id, record)


async def test_the_identitys_exchange_token_gets_an_app_token_and_serves_the_next_request_too(
    site: Sandbox,
) -> None:
    """Two client-credentials tokens, one managed-identity request: the assertion is cached."""
    trust(site, site.directory.identities[0].principal_id)
    provider, assertion = identity(site, site.managed_identity_client_id)
    try:
        first = await provider.acquire_for_client()
        second = await provider.acquire_for_client()
    finally:
        await provider.close()
        await assertion.close()
    assert first.access_token != second.access_token
    assert site.identity.token_calls[TOKEN_EXCHANGE_AUDIENCE] == 1
    assert assertion.fetches == 1


async def test_a_record_naming_the_client_id_instead_of_the_principal_id_is_named_as_the_subject(
    site: Sandbox,
) -> None:
    """AADSTS700213 (the common mistake: the identity's client id as subject) -> credentials rejected."""
    trust(site, site.managed_identity_client_id)
    provider, assertion = identity(site, site.managed_identity_client_id)
    try:
        with pytest.raises(CredentialsRejectedError, match="subject differs") as refused:
            await provider.acquire_for_client()
    finally:
        await provider.close()
        await assertion.close()
    assert refused.value.error_code == "invalid_client/AADSTS700213"


async def test_an_identity_the_site_does_not_have_is_named_before_entra_is_asked(site: Sandbox) -> None:
    """The host's endpoint refuses the client id: the error names the identity and how to attach it."""
    trust(site, site.directory.identities[0].principal_id)
    provider, assertion = identity(site, UNKNOWN_IDENTITY)
    try:
        with pytest.raises(CredentialsRejectedError, match=UNKNOWN_IDENTITY) as refused:
            await provider.acquire_for_client()
    finally:
        await provider.close()
        await assertion.close()
    assert refused.value.error_code == "managed_identity_unavailable"
    assert site.entra.token_calls.get("client_credentials", 0) == 0


async def test_a_delegated_sign_in_and_its_refresh_need_no_secret_either(site: Sandbox) -> None:
    """The same assertion redeems the authorization code and then the refresh token (reference (d), D1: a federated
    credential also serves the confidential client's user flows), so delegated connections need no secret."""
    trust(site, site.directory.identities[0].principal_id)
    provider, assertion = identity(site, site.managed_identity_client_id)
    try:
        start = await provider.start_sign_in("http://127.0.0.1:7071/api/auth/callback")
        page = await asyncio.to_thread(_authorize, start.auth_uri, site.env["LOCAL_CA_BUNDLE"])
        grant = await provider.finish_sign_in(start.flow, page)
        assert grant.refresh_token
        renewed = await provider.redeem_refresh_token(grant.refresh_token)
    finally:
        await provider.close()
        await assertion.close()
    assert renewed.refresh_token
    assert renewed.refresh_token != grant.refresh_token  # Entra rotates it
    assert site.entra.token_calls["authorization_code"] == site.entra.token_calls["refresh_token"] == 1


def _authorize(url: str, ca_bundle: str) -> dict[str, str]:
    """The sandbox signs its test user in and answers the form_post page: its hidden fields (code, state)."""
    page = httpx.get(url, verify=ssl.create_default_context(cafile=ca_bundle), timeout=30)
    assert page.status_code == 200, page.text[:300]
    return dict(re.findall(r'<input type="hidden" name="([^"]+)" value="([^"]*)"', page.text))


async def test_an_exchange_token_entra_finds_expired_is_renewed_for_the_next_request(site: Sandbox) -> None:
    """Clocks disagree (the sandbox's moved 9 hours, past the identity's 8-hour token): Entra's AADSTS700024 is
    named, the kept token is dropped, and the next request presents a new one and gets its app token."""
    trust(site, site.directory.identities[0].principal_id)
    provider, assertion = identity(site, site.managed_identity_client_id)
    try:
        await provider.acquire_for_client()
        site.clock.advance(9 * 3600)
        with pytest.raises(CredentialsRejectedError, match="AADSTS700024"):
            await provider.acquire_for_client()
        renewed = await provider.acquire_for_client()
    finally:
        await provider.close()
        await assertion.close()
    assert renewed.access_token
    assert assertion.fetches == 2
