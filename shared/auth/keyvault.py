"""Key Vault implementation of TokenStore: one secret per connection holding the JSON token set.

Read through the SDK at runtime (not an app-setting reference, which refreshes only every 24 h; https://learn.microsoft.com/azure/app-service/app-service-key-vault-references). The only module that constructs a SecretClient is shared.auth.compose; this one uses it.

Old versions: every write adds a secret version, and Key Vault keeps versions (with their refresh tokens, which
Entra leaves valid until they expire or are revoked) until the secret itself is deleted; a single version
cannot be deleted, only disabled, after which its value can no longer be read. So each write disables the
version before the previous one: at most two versions are readable — the current one and the one it replaced
(kept so a write that went wrong can be looked into). Each version's `previous_version` tag names the one it
replaced, so this costs one PATCH per write; a chain without that tag (versions written before this rule) is
swept once by listing the versions. A writer no longer re-reads the secret before writing (the refresh lease row
orders the writes: shared.auth.cache), so it names as previous only the version it last read or wrote, and only
when that version holds the generation right below the one it writes (then it is the current one: generations
are claimed in increasing order); otherwise it writes no tag and the next write sweeps.

Failures: every SDK failure — AzureError, and the ValueError the SDK raises for a challenge whose resource
does not match the vault (KEY_VAULT_VERIFY_CHALLENGE_RESOURCE) — becomes TokenStoreUnavailableError; its cause
is logged once per outage with the settings to check (shared.auth.causes).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

from azure.core.exceptions import AzureError, ResourceNotFoundError
from azure.keyvault.secrets.aio import SecretClient

from shared.auth.causes import FailureLog
from shared.auth.errors import TokenStoreUnavailableError
from shared.auth.models import TokenSet

logger = logging.getLogger(__name__)

SECRET_PREFIX = "bc-token-"
PREVIOUS_TAG = "previous_version"
NO_PREVIOUS = "none"  # the tag's value on the first version of a chain (tag values are never empty here)
# What to check when Key Vault fails, in the order it usually is.
CHECK = (
    "KEY_VAULT_URL (https://<vault name>.vault.azure.net/), KEY_VAULT_VERIFY_CHALLENGE_RESOURCE (false only for "
    "the local sandbox), KEY_VAULT_CREDENTIAL and the app identity's 'Key Vault Secrets Officer' role on the vault"
)
# The SDK's own failures: service and network errors, and ValueError for a challenge it refuses.
_SDK_FAILURES = (AzureError, ValueError)


def secret_name(connection: str) -> str:
    """The secret holding a connection's token set (Key Vault names: letters, digits, dashes)."""
    return f"{SECRET_PREFIX}{connection}"


@dataclass(frozen=True, slots=True)
class _Seen:
    """The current version of a secret as last read or written, and the version it replaced."""

    version: str | None
    previous: str | None  # None: the chain has no `previous_version` tag (written before it existed)
    generation: int  # of the token set in that version (0: no secret, or one holding no token set)


class KeyVaultTokenStore:
    """TokenStore over a Key Vault SecretClient (aio)."""

    def __init__(self, client: SecretClient, vault_url: str = "Key Vault") -> None:
        self._client = client
        self._failures = FailureLog(logger, f"Key Vault {vault_url}", CHECK)
        self._seen: dict[str, _Seen] = {}

    async def read(self, connection: str) -> TokenSet | None:
        """The current secret version parsed, or None when the secret does not exist."""
        name = secret_name(connection)
        try:
            secret = await self._client.get_secret(name)
        except ResourceNotFoundError:
            self._failures.succeeded()
            self._seen[connection] = _Seen(None, NO_PREVIOUS, 0)
            return None
        except _SDK_FAILURES as exc:
            raise self._unavailable(f"read secret {name}", exc) from exc
        self._failures.succeeded()
        tags = secret.properties.tags or {}
        try:
            token_set = TokenSet.from_json(secret.value) if secret.value else None
        except ValueError as exc:
            raise TokenStoreUnavailableError(
                f"secret '{name}' does not hold a token set: sign in again"
            ) from exc
        generation = token_set.generation if token_set else 0
        self._seen[connection] = _Seen(secret.properties.version, tags.get(PREVIOUS_TAG), generation)
        return token_set

    async def write(self, token_set: TokenSet) -> None:
        """A new secret version (tags show generation and expiry in the portal without the value); then the
        version before the previous one is disabled."""
        name = secret_name(token_set.connection)
        current = self._seen.get(token_set.connection)
        if current is not None and current.generation != token_set.generation - 1:
            current = None  # not known to be the current version (see the module docstring)
        tags = {"generation": str(token_set.generation), "expires_on": token_set.expires_on.isoformat()}
        if current is not None:  # unknown otherwise: no tag, so the next write sweeps instead
            tags[PREVIOUS_TAG] = current.version or NO_PREVIOUS
        try:
            written = await self._client.set_secret(
                name, token_set.to_json(), content_type="application/json", tags=tags
            )
        except _SDK_FAILURES as exc:
            raise self._unavailable(f"write secret {name}", exc) from exc
        self._failures.succeeded()
        version = written.properties.version
        self._seen[token_set.connection] = _Seen(version, tags.get(PREVIOUS_TAG), token_set.generation)
        if current is not None and current.version is not None:
            await self._retire(name, keep={version, current.version}, older=current.previous)

    async def _retire(self, name: str, keep: set[str | None], older: str | None) -> None:
        """Disable `older` (the version before the previous one), or sweep every enabled version not in `keep`
        when the chain has no tag; best effort: the write itself already succeeded."""
        try:
            if older is None:
                stale = [
                    p.version
                    async for p in self._client.list_properties_of_secret_versions(name)
                    if p.enabled and p.version not in keep
                ]
            else:
                stale = [] if older == NO_PREVIOUS else [older]
            for version in stale:
                if version is not None:
                    await self._client.update_secret_properties(name, version, enabled=False)
        except ResourceNotFoundError:
            return  # that version is gone already
        except _SDK_FAILURES as exc:
            self._failures.failed(f"disable old versions of secret {name}", exc)

    def _unavailable(self, operation: str, exc: BaseException) -> TokenStoreUnavailableError:
        self._failures.failed(operation, exc)
        return TokenStoreUnavailableError(
            f"Key Vault could not {operation.split(' ', 1)[0]} the token set ({type(exc).__name__}); "
            "the app's log names the cause and the settings to check"
        )
