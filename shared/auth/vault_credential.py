"""A registered connection's app credential: a client secret kept in Key Vault, read when first needed.

The registry names the secret (`secretName`), never holds it. Reading it on first use, not when the connection's
services are built, keeps a Key Vault outage a token problem the manager already handles (transient, recorded on
the connection record) instead of a failure to build; a missing secret is the admin's to fix (credentials
rejected, with the secret's name).
"""

from __future__ import annotations

import asyncio
import dataclasses
from collections.abc import Mapping

from azure.core.exceptions import AzureError, ResourceNotFoundError
from azure.keyvault.secrets.aio import SecretClient

from shared.auth.errors import CredentialsRejectedError, TokenStoreUnavailableError
from shared.auth.models import Grant, SignInStart
from shared.auth.msal_identity import MsalConfig, MsalIdentity


class VaultSecretIdentity:
    """IdentityProvider: an MsalIdentity whose client secret is the Key Vault secret `secret_name`."""

    def __init__(self, config: MsalConfig, secrets: SecretClient, secret_name: str, connection: str) -> None:
        self._config = config
        self._secrets = secrets
        self._secret_name = secret_name
        self._connection = connection
        self._inner: MsalIdentity | None = None
        self._lock = asyncio.Lock()

    async def start_sign_in(self, redirect_uri: str, state: str | None = None) -> SignInStart:
        return await (await self._identity()).start_sign_in(redirect_uri, state)

    async def finish_sign_in(self, flow: str, response: Mapping[str, str]) -> Grant:
        return await (await self._identity()).finish_sign_in(flow, response)

    async def redeem_refresh_token(self, refresh_token: str) -> Grant:
        return await (await self._identity()).redeem_refresh_token(refresh_token)

    async def acquire_for_client(self) -> Grant:
        return await (await self._identity()).acquire_for_client()

    async def close(self) -> None:
        """Close MSAL's session, if one was built."""
        if self._inner is not None:
            await self._inner.close()

    async def _identity(self) -> MsalIdentity:
        async with self._lock:
            if self._inner is None:
                secret = await self._read_secret()
                self._inner = MsalIdentity(dataclasses.replace(self._config, client_secret=secret))
            return self._inner

    async def _read_secret(self) -> str:
        try:
            secret = await self._secrets.get_secret(self._secret_name)
        except ResourceNotFoundError:
            raise CredentialsRejectedError(
                f"connection '{self._connection}': Key Vault has no secret '{self._secret_name}'; register the "
                f"client secret again (PUT /api/connections/{self._connection} with clientSecret)"
            ) from None
        except (AzureError, ValueError) as exc:
            raise TokenStoreUnavailableError(
                f"Key Vault could not be read for secret '{self._secret_name}' ({type(exc).__name__})"
            ) from exc
        if not secret.value:
            raise CredentialsRejectedError(f"Key Vault secret '{self._secret_name}' is empty")
        return secret.value
