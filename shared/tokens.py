"""The seam between the token lifecycle (shared/auth) and its consumers (shared/bc and shared/jobs).

shared/auth implements TokenProvider; its consumers only ever see this Protocol and AccessToken. The Protocol
holds what consumers call: a token up front, and a replacement after BC answered 401. Refreshing on demand
(`TokenManager.refresh_now`, the admin's POST /api/auth/refresh) is not a consumer's business. AuthMode, how tokens
are obtained, lives here too: the settings, shared/auth, shared/bc (whose budget a request spends) and the
status page all need it, and this is the one module all of them may import.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from enum import StrEnum
from typing import ClassVar, Protocol

from shared.errors import IntegrationError

DEFAULT_MIN_VALIDITY = timedelta(minutes=5)


@dataclass(frozen=True, slots=True)
class AccessToken:
    """A bearer token and when it dies. The value never appears in repr, logs or errors."""

    value: str = field(repr=False)
    expires_on: datetime

    def remaining(self, now: datetime | None = None) -> timedelta:
        """How long the token stays valid from now (negative once expired)."""
        return self.expires_on - (now or datetime.now(UTC))

    def valid_for(self, duration: timedelta, now: datetime | None = None) -> bool:
        """True when the token outlives `duration` from now."""
        return self.remaining(now) > duration


class TokenProviderError(IntegrationError):
    """What a TokenProvider raises when it cannot hand out a token.

    `transient` tells consumers (who cannot know the provider's own error types) whether the same call may
    succeed later on its own (Entra or Key Vault briefly unreachable) or needs someone to act first (an admin
    must sign in again, the app registration's secret was rejected).
    """

    transient: ClassVar[bool] = False


class TokenProvider(Protocol):
    """Hands out BC bearer tokens; implemented by shared.auth.TokenManager."""

    async def token(self, min_validity: timedelta = DEFAULT_MIN_VALIDITY) -> AccessToken:
        """A token valid for at least `min_validity`, refreshing first if the current one is too short-lived.

        Raises TokenProviderError (or a subclass) when no such token can be had.
        """
        ...

    async def replacement_for(self, rejected: AccessToken) -> AccessToken:
        """A token other than `rejected` (one BC answered 401 to): a newer one already at hand if there is
        one (several callers hit the same 401), else a refreshed one.

        Raises TokenProviderError (or a subclass) when no such token can be had.
        """
        ...


class AuthMode(StrEnum):
    """How the integration obtains BC tokens (the BC_AUTH_MODE setting)."""

    CLIENT_CREDENTIALS = "client_credentials"  # S2S: Microsoft's recommended mode for unattended integrations
    DELEGATED = "delegated"  # auth code + PKCE once by an admin, then refresh-token rotation


class RefusedTokens:
    """Access tokens BC answered 401 to, remembered by a digest (never the token) so none is served or sent
    again; the newest `capacity` are kept (a refused token is replaced within seconds, so a few suffice)."""

    def __init__(self, capacity: int = 16) -> None:
        self._capacity = capacity
        self._digests: dict[str, None] = {}  # insertion-ordered: the oldest is dropped first

    def note(self, token: AccessToken | str) -> None:
        """Remember that BC refused `token`."""
        digest = token_digest(token)
        self._digests.pop(digest, None)
        self._digests[digest] = None
        while len(self._digests) > self._capacity:
            del self._digests[next(iter(self._digests))]

    def __contains__(self, token: AccessToken | str) -> bool:
        """True when BC refused `token` (it is among the remembered ones)."""
        return bool(self._digests) and token_digest(token) in self._digests

    def __len__(self) -> int:
        return len(self._digests)

    def digests(self) -> frozenset[str]:
        """The remembered digests, as a frozen value (a demand made now keeps what was known now)."""
        return frozenset(self._digests)


def token_digest(token: AccessToken | str) -> str:
    """A one-way digest of an access token: enough to recognise it again, useless to anyone who reads it."""
    value = token.value if isinstance(token, AccessToken) else token
    return hashlib.sha256(value.encode("utf-8")).hexdigest()
