"""A connection's notification secrets: the receiver path's `{key}` and the `clientState` BC echoes back.

Both are 32 random hex characters (`secrets.token_hex(16)`), kept together in Key Vault secret
`bc-notify-{connection}` as JSON `{"key": ..., "clientState": ...}` — never in a Table row, a log line or an answer
(the notification URL holds the key: it is shown only as `{base}/api/notifications/{connection}/…`). The key makes
the anonymous route unguessable; clientState proves a notification came from a subscription we created
(learn.microsoft.com/dynamics365/business-central/dev-itpro/api-reference/v2.0/dynamics-subscriptions: "clientState
... returned in the notification"; reference (a)).

`ensure` is called by the subscription manager only (a timer: one instance at a time, Functions' singleton lock),
so two processes never write different keys; the receiver only reads (`get`). Values are cached per process: a key
never changes once written, and a missing secret is asked for again after NEGATIVE_SECONDS.
"""

from __future__ import annotations

import json
import secrets
from dataclasses import dataclass, field
from typing import Protocol

from azure.core.exceptions import AzureError, ResourceNotFoundError
from azure.keyvault.secrets.aio import SecretClient

from shared.clock import Clock
from shared.errors import IntegrationError

SECRET_PREFIX = "bc-notify-"
NEGATIVE_SECONDS = 5.0
NOTIFICATIONS_PATH = "/api/notifications/"
# Key Vault SDK failures: service and network errors, and ValueError for a challenge it refuses (shared/auth/keyvault.py).
_SDK_FAILURES = (AzureError, ValueError)


def notify_secret_name(connection: str) -> str:
    """The Key Vault secret of a connection's notification key and clientState."""
    return f"{SECRET_PREFIX}{connection}"


@dataclass(frozen=True, slots=True)
class NotifySecret:
    """The route key and clientState of one connection (never in repr: both are credentials of a kind)."""

    key: str = field(repr=False)
    client_state: str = field(repr=False)

    @classmethod
    def new(cls) -> NotifySecret:
        """Fresh random values: 128 bits each."""
        return cls(secrets.token_hex(16), secrets.token_hex(16))

    def to_json(self) -> str:
        return json.dumps({"key": self.key, "clientState": self.client_state})

    @classmethod
    def from_json(cls, text: str) -> NotifySecret:
        body = json.loads(text)
        return cls(str(body["key"]), str(body["clientState"]))

    def matches_key(self, key: str) -> bool:
        """Constant-time comparison of a route's key."""
        return secrets.compare_digest(self.key.encode(), key.encode())

    def matches_state(self, client_state: str) -> bool:
        """Constant-time comparison of a notification's clientState."""
        return secrets.compare_digest(self.client_state.encode(), client_state.encode())


class NotifySecretsUnavailableError(IntegrationError):
    """Key Vault could not read or write a notification secret; `cause` names the SDK error's type."""

    def __init__(self, operation: str, connection: str, cause: str) -> None:
        self.cause = cause
        super().__init__(
            f"Key Vault could not {operation} the notification secret of connection '{connection}' ({cause}); "
            "check KEY_VAULT_URL and the app identity's 'Key Vault Secrets Officer' role, then retry"
        )


class NotifySecrets(Protocol):
    """A connection's notification secret: read it (receiver), or create it when missing (subscription manager)."""

    async def get(self, connection: str) -> NotifySecret | None:
        """The connection's secret; None when none was created yet."""
        ...

    async def ensure(self, connection: str) -> NotifySecret:
        """The connection's secret, created when missing."""
        ...


@dataclass
class MemoryNotifySecrets:
    """NotifySecrets in a dict: unit tests."""

    values: dict[str, NotifySecret] = field(default_factory=dict)

    async def get(self, connection: str) -> NotifySecret | None:
        return self.values.get(connection)

    async def ensure(self, connection: str) -> NotifySecret:
        return self.values.setdefault(connection, NotifySecret.new())


class KeyVaultNotifySecrets:
    """NotifySecrets over a Key Vault SecretClient, cached per process."""

    def __init__(self, client: SecretClient, clock: Clock) -> None:
        self._client = client
        self._clock = clock
        self._known: dict[str, NotifySecret] = {}
        self._missing_at: dict[str, float] = {}

    async def get(self, connection: str) -> NotifySecret | None:
        if connection in self._known:
            return self._known[connection]
        missing_at = self._missing_at.get(connection)
        if missing_at is not None and self._clock.time() - missing_at < NEGATIVE_SECONDS:
            return None
        found = await self._read(connection)
        if found is None:
            self._missing_at[connection] = self._clock.time()
        else:
            self._known[connection] = found
        return found

    async def ensure(self, connection: str) -> NotifySecret:
        self._missing_at.pop(connection, None)
        found = await self.get(connection)
        if found is not None:
            return found
        created = NotifySecret.new()
        try:
            await self._client.set_secret(
                notify_secret_name(connection),
                created.to_json(),
                content_type="application/json",
                tags={"connection": connection},
            )
        except _SDK_FAILURES as exc:
            raise NotifySecretsUnavailableError("write", connection, type(exc).__name__) from None
        self._known[connection] = created
        return created

    async def _read(self, connection: str) -> NotifySecret | None:
        try:
            secret = await self._client.get_secret(notify_secret_name(connection))
        except ResourceNotFoundError:
            return None
        except _SDK_FAILURES as exc:
            raise NotifySecretsUnavailableError("read", connection, type(exc).__name__) from None
        try:
            return NotifySecret.from_json(secret.value or "")
        except (ValueError, KeyError, TypeError):
            raise NotifySecretsUnavailableError("parse", connection, "not the expected JSON") from None


def notification_url(base: str, connection: str, secret: NotifySecret) -> str:
    """The URL BC is given: `{base}/api/notifications/{connection}/{key}`."""
    return f"{notification_prefix(base)}{connection}/{secret.key}"


def notification_prefix(base: str) -> str:
    """What every notification URL of this deployment starts with: how the manager tells ours from others'."""
    return f"{base.rstrip('/')}{NOTIFICATIONS_PATH}"
