"""Key Vault implementation of TokenStore: one secret per connection holding the JSON token set.

Read through the SDK at runtime (not an app-setting reference, which refreshes only every 24 h; azure-
functions.md §1.5). The only module that constructs a SecretClient is shared.auth.compose; this one uses it.
"""

from __future__ import annotations

from azure.core.exceptions import AzureError, ResourceNotFoundError
from azure.keyvault.secrets.aio import SecretClient

from shared.auth.errors import TokenStoreUnavailableError
from shared.auth.models import TokenSet

SECRET_PREFIX = "bc-token-"


def secret_name(connection: str) -> str:
    """The secret holding a connection's token set (Key Vault names: letters, digits, dashes)."""
    return f"{SECRET_PREFIX}{connection}"


class KeyVaultTokenStore:
    """TokenStore over a Key Vault SecretClient (aio)."""

    def __init__(self, client: SecretClient) -> None:
        self._client = client

    async def read(self, connection: str) -> TokenSet | None:
        """The current secret version parsed, or None when the secret does not exist."""
        try:
            secret = await self._client.get_secret(secret_name(connection))
        except ResourceNotFoundError:
            return None
        except AzureError as exc:
            raise TokenStoreUnavailableError(f"Key Vault unavailable ({type(exc).__name__})") from exc
        if not secret.value:
            return None
        try:
            return TokenSet.from_json(secret.value)
        except ValueError as exc:
            raise TokenStoreUnavailableError(
                f"secret '{secret_name(connection)}' does not hold a token set: sign in again"
            ) from exc

    async def write(self, token_set: TokenSet) -> None:
        """A new secret version; tags show generation and expiry in the portal without the value."""
        try:
            await self._client.set_secret(
                secret_name(token_set.connection),
                token_set.to_json(),
                content_type="application/json",
                tags={
                    "generation": str(token_set.generation),
                    "expires_on": token_set.expires_on.isoformat(),
                },
            )
        except AzureError as exc:
            raise TokenStoreUnavailableError(f"Key Vault unavailable ({type(exc).__name__})") from exc
