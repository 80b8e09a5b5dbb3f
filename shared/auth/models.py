"""Value objects of the token lifecycle. Secrets are excluded from every repr; JSON is only for the stores."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from enum import StrEnum
from typing import Generic, TypeVar

from shared.clock import iso_utc, parse_iso_utc
from shared.tokens import AccessToken, AuthMode

_SCHEMA = 1
T = TypeVar("T")


@dataclass(frozen=True, slots=True)
class Grant:
    """What Entra returned for one token request (before it becomes a TokenSet)."""

    access_token: str = field(repr=False)
    expires_in: timedelta
    scopes: tuple[str, ...]
    refresh_token: str | None = field(default=None, repr=False)
    account: str | None = None
    tenant_id: str | None = None


@dataclass(frozen=True, slots=True)
class TokenSet:
    """The tokens of one connection as kept in Key Vault: newest `generation` wins."""

    connection: str
    mode: AuthMode
    access_token: str = field(repr=False)
    expires_on: datetime
    obtained_at: datetime
    generation: int
    scopes: tuple[str, ...] = ()
    refresh_token: str | None = field(default=None, repr=False)
    account: str | None = None
    tenant_id: str | None = None
    # How Entra issued it: authorization_code (an admin's sign-in), refresh_token or client_credentials.
    grant_type: str = "refresh_token"

    @property
    def access(self) -> AccessToken:
        """The access token as the seam type shared.bc consumes."""
        return AccessToken(self.access_token, self.expires_on)

    @property
    def lifetime(self) -> timedelta:
        """How long the access token lived when it was issued."""
        return self.expires_on - self.obtained_at

    def is_newer_than(self, other: TokenSet | None) -> bool:
        """True when this set supersedes `other` (higher generation; same generation never wins)."""
        return other is None or self.generation > other.generation

    def successor(self, grant: Grant, now: datetime) -> TokenSet:
        """The next generation after redeeming this set; keeps the refresh token if Entra sent none."""
        return TokenSet(
            connection=self.connection,
            mode=self.mode,
            access_token=grant.access_token,
            expires_on=now + grant.expires_in,
            obtained_at=now,
            generation=self.generation + 1,
            scopes=grant.scopes or self.scopes,
            refresh_token=grant.refresh_token or self.refresh_token,
            account=grant.account or self.account,
            tenant_id=grant.tenant_id or self.tenant_id,
            grant_type=_repeat_grant(self.mode),
        )

    @property
    def from_sign_in(self) -> bool:
        """True for the set an admin's sign-in stored (not yet refreshed)."""
        return self.grant_type == "authorization_code"

    def to_json(self) -> str:
        """Serialise for the token store (contains secrets: only ever goes to Key Vault)."""
        return json.dumps(
            {
                "schema": _SCHEMA,
                "connection": self.connection,
                "mode": self.mode.value,
                "access_token": self.access_token,
                "expires_on": iso_utc(self.expires_on),
                "obtained_at": iso_utc(self.obtained_at),
                "generation": self.generation,
                "scopes": list(self.scopes),
                "refresh_token": self.refresh_token,
                "account": self.account,
                "tenant_id": self.tenant_id,
                "grant_type": self.grant_type,
            },
            sort_keys=True,
        )

    @classmethod
    def from_json(cls, text: str) -> TokenSet:
        """Parse what to_json wrote; raises ValueError (without the text) on anything else."""
        try:
            data = json.loads(text)
            mode = AuthMode(data["mode"])
            return cls(
                connection=str(data["connection"]),
                mode=mode,
                access_token=str(data["access_token"]),
                expires_on=datetime.fromisoformat(data["expires_on"]).astimezone(UTC),
                obtained_at=datetime.fromisoformat(data["obtained_at"]).astimezone(UTC),
                generation=int(data["generation"]),
                scopes=tuple(str(s) for s in data.get("scopes", [])),
                refresh_token=data.get("refresh_token"),
                account=data.get("account"),
                tenant_id=data.get("tenant_id"),
                grant_type=str(data.get("grant_type") or _repeat_grant(mode)),
            )
        except (ValueError, KeyError, TypeError) as exc:
            raise ValueError(f"stored token set is malformed ({type(exc).__name__})") from None


def _repeat_grant(mode: AuthMode) -> str:
    """The grant type that renews a set of this mode."""
    return "client_credentials" if mode is AuthMode.CLIENT_CREDENTIALS else "refresh_token"


def first_token_set(
    connection: str, mode: AuthMode, grant: Grant, now: datetime, generation: int
) -> TokenSet:
    """A token set starting a new grant chain (sign-in or first client-credentials token)."""
    return TokenSet(
        connection=connection,
        mode=mode,
        access_token=grant.access_token,
        expires_on=now + grant.expires_in,
        obtained_at=now,
        generation=generation,
        scopes=grant.scopes,
        refresh_token=grant.refresh_token,
        account=grant.account,
        tenant_id=grant.tenant_id,
        grant_type="authorization_code" if mode is AuthMode.DELEGATED else "client_credentials",
    )


class Health(StrEnum):
    """Where a connection stands, as shown by /api/auth/status."""

    OK = "ok"
    NOT_AUTHORIZED = "not_authorized"  # nothing stored yet
    DEGRADED = "degraded"  # transient refresh failures; the cached token is still being served
    REAUTHORIZATION_REQUIRED = "reauthorization_required"  # refresh token dead: an admin signs in again
    CREDENTIALS_REJECTED = "credentials_rejected"  # client secret/cert or app registration refused


NEEDS_ADMIN = frozenset({Health.REAUTHORIZATION_REQUIRED, Health.CREDENTIALS_REJECTED})


@dataclass(frozen=True, slots=True)
class ConnectionRecord:
    """The connection record: its health and refresh bookkeeping, shared by all instances (a Table row);
    never holds a secret."""

    connection: str
    health: Health = Health.OK
    last_refresh_at: datetime | None = None
    last_error_code: str | None = None
    last_error_message: str | None = None
    last_error_at: datetime | None = None
    consecutive_failures: int = 0
    backoff_until: datetime | None = None
    failed_generation: int | None = None  # the token-set generation whose grant died
    # The last admin-consent callback (shared.onboarding.consent): "granted", or Entra's error code; and when.
    consent: str | None = None
    consent_at: datetime | None = None

    def to_row(self) -> dict[str, str | int | None]:
        """Flat fields for the auth table's connection-record row (the store adds its keys)."""
        return {
            "health": self.health.value,
            "last_refresh_at": iso_utc(self.last_refresh_at),
            "last_error_code": self.last_error_code,
            "last_error_message": self.last_error_message,
            "last_error_at": iso_utc(self.last_error_at),
            "consecutive_failures": self.consecutive_failures,
            "backoff_until": iso_utc(self.backoff_until),
            "failed_generation": self.failed_generation,
            "consent": self.consent,
            "consent_at": iso_utc(self.consent_at),
        }

    @classmethod
    def from_row(cls, connection: str, row: dict[str, object]) -> ConnectionRecord:
        """Inverse of to_row; tolerates missing fields (older rows)."""

        def text(key: str) -> str | None:
            value = row.get(key)
            return None if value is None else str(value)

        failed = row.get("failed_generation")
        return cls(
            connection=connection,
            health=Health(text("health") or Health.OK.value),
            last_refresh_at=parse_iso_utc(text("last_refresh_at")),
            last_error_code=text("last_error_code"),
            last_error_message=text("last_error_message"),
            last_error_at=parse_iso_utc(text("last_error_at")),
            consecutive_failures=int(str(row.get("consecutive_failures") or 0)),
            backoff_until=parse_iso_utc(text("backoff_until")),
            failed_generation=None if failed is None else int(str(failed)),
            consent=text("consent"),
            consent_at=parse_iso_utc(text("consent_at")),
        )


@dataclass(frozen=True, slots=True)
class Versioned(Generic[T]):
    """A stored value together with the ETag that guards its next compare-and-swap write."""

    value: T
    etag: str


@dataclass(frozen=True, slots=True)
class Lease:
    """The right to refresh one connection until `expires_at` (a crashed holder blocks nobody after it)."""

    name: str
    holder: str  # "" once released
    expires_at: datetime
    # The newest token-set generation a holder claimed for the token store (shared.auth.cache: the stored
    # generation); None on a row written before the lease carried it, which sends readers to the store.
    generation: int | None = None

    def is_free(self, now: datetime) -> bool:
        """True when nobody holds the lease (released or expired)."""
        return not self.holder or self.expires_at <= now


@dataclass(frozen=True, slots=True)
class PendingSignIn:
    """An admin sign-in started by /api/auth/login, waiting for its callback (one use, 10 minutes)."""

    state: str  # the OAuth state parameter: the key of the pending sign-in
    flow: str = field(repr=False)  # MSAL's auth-code-flow dict as JSON (holds the PKCE verifier)
    created_at: datetime
    expires_at: datetime
    consumed_at: datetime | None = None


@dataclass(frozen=True, slots=True)
class SignInStart:
    """Where to send the admin, and the flow to keep server-side until the callback."""

    auth_uri: str = field(repr=False)
    state: str  # the OAuth state parameter: the key of the pending sign-in
    flow: str = field(repr=False)


@dataclass(frozen=True, slots=True)
class ConnectionStatus:
    """Token health for admins and monitors: never the token itself."""

    connection: str
    mode: AuthMode
    health: Health
    has_token: bool
    expires_on: datetime | None
    account: str | None
    tenant_id: str | None
    generation: int | None
    last_refresh_at: datetime | None
    last_error_code: str | None
    last_error_message: str | None
    last_error_at: datetime | None
    backoff_until: datetime | None
    next_step: str | None

    def to_json_dict(self) -> dict[str, str | int | bool | None]:
        """A JSON-ready mapping for the status endpoint."""
        return {
            "connection": self.connection,
            "mode": self.mode.value,
            "health": self.health.value,
            # Deprecated alias of "health" (its name until 2026-12), kept for monitors that read it.
            "state": self.health.value,
            "has_token": self.has_token,
            "expires_on": iso_utc(self.expires_on),
            "account": self.account,
            "tenant_id": self.tenant_id,
            "generation": self.generation,
            "last_refresh_at": iso_utc(self.last_refresh_at),
            "last_error_code": self.last_error_code,
            "last_error_message": self.last_error_message,
            "last_error_at": iso_utc(self.last_error_at),
            "backoff_until": iso_utc(self.backoff_until),
            "next_step": self.next_step,
        }
