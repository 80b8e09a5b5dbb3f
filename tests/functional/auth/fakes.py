"""Fakes behind shared.auth's own Protocols: a small Entra, a recording notifier."""

from __future__ import annotations

import asyncio
import itertools
import json
from collections import Counter
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import timedelta

from shared.auth.errors import AuthError, ReauthorizationRequiredError, SignInRejectedError
from shared.auth.health import HealthRecorder
from shared.auth.leases import LeaseKeeper
from shared.auth.manager import Collaborators, ScheduledOutcome, TokenManager
from shared.auth.models import ConnectionRecord, Grant, Lease, PendingSignIn, SignInStart
from shared.auth.notify import AdminAlert
from shared.auth.sign_in import PendingSignIns, SignInFlow
from shared.clock import Clock
from shared.tokens import AuthMode
from testkit.auth_stores import MemoryRecordStore, MemoryTokenStore
from testkit.clock import ManualClock

SCOPE = "https://api.businesscentral.dynamics.com/.default"


class FakeEntra:
    """An IdentityProvider that issues opaque tokens, rotates refresh tokens and can revoke or fail."""

    def __init__(self, lifetime: timedelta = timedelta(hours=1)) -> None:
        self.lifetime = lifetime
        self.calls: Counter[str] = Counter()
        self.valid_refresh_tokens: set[str] = set()
        self.issued: list[str] = []  # every secret value handed out (tokens, refresh tokens, codes)
        self.fail_next: list[AuthError] = []
        self._codes: dict[str, str] = {}
        self._n = itertools.count(1)

    async def start_sign_in(self, redirect_uri: str, state: str | None = None) -> SignInStart:
        """A sign-in with a fresh state (or the one given); the flow records the redirect URI like MSAL's dict."""
        state = state or f"state{next(self._n)}"
        flow = json.dumps(
            {"state": state, "redirect_uri": redirect_uri, "code_verifier": f"verifier-{state}"}
        )
        return SignInStart(auth_uri=f"https://entra.test/authorize?state={state}", state=state, flow=flow)

    def sign_in(self, state: str) -> str:
        """What Entra does when the admin signs in: a code for that state."""
        code = self._secret("code")
        self._codes[code] = state
        return code

    async def finish_sign_in(self, flow: str, response: Mapping[str, str]) -> Grant:
        """Redeem a code issued for the flow's state."""
        await asyncio.sleep(0)
        self.calls["authorization_code"] += 1
        if self._codes.pop(response.get("code", ""), None) != json.loads(flow)["state"]:
            raise SignInRejectedError("Entra refused the sign-in (invalid_grant)")
        return self._grant(with_refresh=True)

    async def redeem_refresh_token(self, refresh_token: str) -> Grant:
        """Rotate: a new refresh token each time; old ones stay valid (as in Entra) unless revoked."""
        await asyncio.sleep(0)
        self.calls["refresh_token"] += 1
        if self.fail_next:
            raise self.fail_next.pop(0)
        if refresh_token not in self.valid_refresh_tokens:
            raise ReauthorizationRequiredError(
                "refused (invalid_grant/AADSTS50173)", error_code="invalid_grant/AADSTS50173"
            )
        return self._grant(with_refresh=True)

    async def acquire_for_client(self) -> Grant:
        """An app-only token."""
        await asyncio.sleep(0)
        self.calls["client_credentials"] += 1
        if self.fail_next:
            raise self.fail_next.pop(0)
        return self._grant(with_refresh=False)

    def revoke_all(self) -> None:
        """Revoke every refresh token (password reset, admin revocation)."""
        self.valid_refresh_tokens.clear()

    def _grant(self, with_refresh: bool) -> Grant:
        refresh = self._secret("rt") if with_refresh else None
        if refresh:
            self.valid_refresh_tokens.add(refresh)
        return Grant(
            access_token=self._secret("at"),
            expires_in=self.lifetime,
            scopes=(SCOPE,),
            refresh_token=refresh,
            account="admin@contoso.test",
            tenant_id="tenant-1",
        )

    def _secret(self, kind: str) -> str:
        value = f"{kind}-secret-{next(self._n):04d}"
        self.issued.append(value)
        return value


@dataclass
class RecordingNotifier:
    """Collects alerts."""

    alerts: list[AdminAlert] = field(default_factory=list)

    async def notify(self, alert: AdminAlert) -> None:
        """Record the alert."""
        self.alerts.append(alert)


@dataclass
class World:
    """Shared stores + fake Entra: several TokenManagers on it behave like several processes."""

    mode: AuthMode = AuthMode.DELEGATED
    clock: ManualClock = field(default_factory=ManualClock)
    entra: FakeEntra = field(default_factory=FakeEntra)
    tokens: MemoryTokenStore = field(default_factory=MemoryTokenStore)
    leases: MemoryRecordStore[Lease] = field(default_factory=MemoryRecordStore)
    sign_ins: MemoryRecordStore[PendingSignIn] = field(default_factory=MemoryRecordStore)
    records: MemoryRecordStore[ConnectionRecord] = field(default_factory=MemoryRecordStore)
    notifier: RecordingNotifier = field(default_factory=RecordingNotifier)
    _holders: itertools.count[int] = field(default_factory=lambda: itertools.count(1))

    def manager(self, connection: str = "default") -> TokenManager:
        """A new 'process': its own cache, the shared stores."""
        clock: Clock = self.clock
        return TokenManager(
            Collaborators(
                connection=connection,
                mode=self.mode,
                identity=self.entra,
                tokens=self.tokens,
                leases=LeaseKeeper(self.leases, clock),
                health=HealthRecorder(connection, self.records, clock, self.notifier, self.mode),
                clock=clock,
                holder=f"process-{next(self._holders)}",
            )
        )

    def sign_in_flow(self, manager: TokenManager) -> SignInFlow:
        """The admin's sign-in beside `manager` (its process), on the shared pending sign-ins."""
        return SignInFlow(PendingSignIns(self.sign_ins, self.clock), manager)

    async def timer_run(self, manager: TokenManager) -> ScheduledOutcome:
        """What the token_refresh timer does in `manager`'s process: purge expired sign-ins, refresh if due."""
        await self.sign_in_flow(manager).purge_expired()
        return await manager.refresh_if_due()

    async def sign_in(self, manager: TokenManager) -> None:
        """The admin flow beside the manager: start, Entra signs in, callback finishes."""
        flow = self.sign_in_flow(manager)
        auth_uri = await flow.start("http://127.0.0.1:7071/api/auth/callback")
        state = auth_uri.split("state=", 1)[1]
        await flow.finish({"code": self.entra.sign_in(state), "state": state})
