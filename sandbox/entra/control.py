"""Entra's state (auth codes, refresh tokens), its knobs and its counters; reachable as `sandbox.entra`."""

from __future__ import annotations

import base64
import dataclasses
import hashlib
import random
import secrets
import threading
from collections import Counter, deque
from dataclasses import dataclass

from sandbox.clock import SandboxClock
from sandbox.config import SandboxConfig
from sandbox.entra.directory import Directory
from sandbox.entra.errors import EntraProtocolError
from sandbox.entra.federation import FederatedCredential, check_new, entra_issuer


@dataclass(slots=True)
class AuthCode:
    """An issued authorization code, redeemable once within its lifetime."""

    client_id: str
    redirect_uri: str
    scopes: tuple[str, ...]
    code_challenge: str | None
    code_challenge_method: str
    nonce: str | None
    user_oid: str
    issued_at: float
    redeemed: bool = False
    tenant_id: str = ""  # the signed-in user's tenant (the tokens' tid); "" = the primary tenant


@dataclass(slots=True)
class RefreshGrant:
    """A refresh token's grant: bound to user + client, not to a resource
    (learn.microsoft.com/entra/identity-platform/refresh-tokens)."""

    user_oid: str
    client_id: str
    issued_at: float
    last_used_at: float
    tenant_id: str = ""  # the user's tenant; "" = the primary tenant


@dataclass(frozen=True, slots=True)
class InjectedFailure:
    """One forced failure of the token endpoint."""

    status: int
    retry_after: int | None


class EntraControl:
    """Knobs and counters of the sandbox Entra, plus the grant store its endpoints use."""

    def __init__(self, config: SandboxConfig, directory: Directory, clock: SandboxClock) -> None:
        self._config = config
        self.directory = directory
        self._clock = clock
        self._lock = threading.Lock()
        self._rng = random.Random(config.seed)
        self._codes: dict[str, AuthCode] = {}
        self._refresh: dict[str, RefreshGrant] = {}
        self.token_calls: Counter[str] = Counter()
        self.token_errors: Counter[str] = Counter()
        self.authorize_calls = 0
        self.token_lifetime_seconds: float | None = config.token_lifetime_seconds
        self._revoked_before: dict[str, float] = {}
        self._failures: deque[InjectedFailure] = deque()
        self._denials: deque[str] = deque()
        self._admin_denials: deque[str] = deque()
        self.admin_consent_calls = 0
        self._consents: set[tuple[str, str]] = self._default_consents()
        self._federated: dict[str, list[FederatedCredential]] = self._default_federated()

    def _default_consents(self) -> set[tuple[str, str]]:
        """Every app consented in the primary tenant, and in the customer tenants when the config says so."""
        tenants = self.directory.tenants if self._config.consent_extra_tenants else self.directory.tenants[:1]
        return {(t.tenant_id.lower(), app.client_id) for t in tenants for app in self.directory.apps}

    def _default_federated(self) -> dict[str, list[FederatedCredential]]:
        """The records config.federated_credentials asks for: app N trusts managed identity M."""
        records: dict[str, list[FederatedCredential]] = {app.client_id: [] for app in self.directory.apps}
        for fic in self._config.federated_credentials:
            app = self.directory.apps[fic.app]
            subject = self.directory.identities[fic.identity].principal_id
            record = FederatedCredential(fic.name, entra_issuer(self.directory.tenant_id), subject)
            check_new(records[app.client_id], record)
            records[app.client_id].append(record)
        return records

    # --- federated identity credentials (per app registration; sandbox/entra/federation.py) ---------------------
    def add_federated_credential(self, client_id: str, record: FederatedCredential) -> FederatedCredential:
        """Create a record on the app as Graph's POST .../federatedIdentityCredentials does (GraphRequestError)."""
        if self.directory.app(client_id) is None:
            raise ValueError(f"no app registration {client_id!r} in the sandbox")
        with self._lock:
            check_new(self._federated[client_id], record)
            self._federated[client_id].append(record)
        return record

    def remove_federated_credential(self, client_id: str, name: str) -> None:
        """Delete the app's record of that name (Graph's DELETE); an unknown name is a ValueError."""
        with self._lock:
            records = self._federated.get(client_id, [])
            kept = [record for record in records if record.name != name]
            if len(kept) == len(records):
                raise ValueError(f"app {client_id!r} has no federated identity credential named {name!r}")
            self._federated[client_id] = kept

    def federated_credentials(self, client_id: str) -> tuple[FederatedCredential, ...]:
        """The app's records, in creation order."""
        with self._lock:
            return tuple(self._federated.get(client_id, ()))

    # --- consent (per tenant and client id: the app's service principal in that tenant) -----------------------
    def grant_consent(self, tenant_id: str, client_id: str) -> None:
        """An admin of `tenant_id` consents to the app: its service principal exists there from now on."""
        self._known(tenant_id, client_id)
        with self._lock:
            self._consents.add((tenant_id.lower(), client_id))

    def revoke_consent(self, tenant_id: str, client_id: str) -> None:
        """The admin removes the app from the tenant: new tokens and that tenant's refresh tokens are refused."""
        self._known(tenant_id, client_id)
        with self._lock:
            self._consents.discard((tenant_id.lower(), client_id))

    def consented(self, tenant_id: str, client_id: str) -> bool:
        """Whether the app is consented (has a service principal) in the tenant."""
        with self._lock:
            return (tenant_id.lower(), client_id) in self._consents

    def _known(self, tenant_id: str, client_id: str) -> None:
        if self.directory.tenant(tenant_id) is None:
            raise ValueError(f"no tenant {tenant_id!r} in the sandbox (see SANDBOX_TENANTS)")
        if self.directory.app(client_id) is None:
            raise ValueError(f"no app registration {client_id!r} in the sandbox")

    def deny_next_admin_consent(self, error: str = "access_denied", count: int = 1) -> None:
        """Make the next `count` admin-consent requests redirect back with `error` (the admin declined)."""
        with self._lock:
            self._admin_denials.extend(error for _ in range(count))

    def next_admin_consent_denial(self) -> str | None:
        """Count an admin-consent request; return the error to redirect with, if one was asked for."""
        with self._lock:
            self.admin_consent_calls += 1
            return self._admin_denials.popleft() if self._admin_denials else None

    # --- knobs -----------------------------------------------------------------------------------------
    def revoke_refresh_tokens(self, user_oid: str | None = None) -> None:
        """Revoke every refresh token of the user (default: the test user) issued so far (AADSTS50173 on use)."""
        with self._lock:
            self._revoked_before[user_oid or self.directory.user.oid] = self._clock.now() + 1e-6

    def fail_next_token_calls(self, count: int, status: int = 503, retry_after: int | None = 0) -> None:
        """Make the next `count` token requests fail with `status` (429 or 5xx).

        retry_after=0 keeps MSAL's per-app throttle cache from replaying the failure; None sends no Retry-After,
        and MSAL then replays the failure for 5 s (confidential clients) to the same app instance.
        """
        with self._lock:
            self._failures.extend(InjectedFailure(status, retry_after) for _ in range(count))

    def deny_next_authorize(self, error: str = "access_denied", count: int = 1) -> None:
        """Make the next `count` /authorize requests redirect back with `error` (e.g. the user declined consent)."""
        with self._lock:
            self._denials.extend(error for _ in range(count))

    def reset(self) -> None:
        """Restore knobs and counters (issued codes and refresh tokens stay valid)."""
        with self._lock:
            self.token_calls.clear()
            self.token_errors.clear()
            self.authorize_calls = 0
            self.token_lifetime_seconds = self._config.token_lifetime_seconds
            self._revoked_before.clear()
            self._failures.clear()
            self._denials.clear()
            self._admin_denials.clear()
            self.admin_consent_calls = 0
            self._consents = self._default_consents()
            self._federated = self._default_federated()

    def snapshot(self) -> dict[str, object]:
        """Counters and knobs as JSON for the admin endpoint."""
        with self._lock:
            return {
                "token_calls": dict(self.token_calls),
                "token_errors": dict(self.token_errors),
                "authorize_calls": self.authorize_calls,
                "token_lifetime_seconds": self.token_lifetime_seconds,
                "pending_failures": len(self._failures),
                "refresh_tokens_issued": len(self._refresh),
                "admin_consent_calls": self.admin_consent_calls,
                "consents": sorted(f"{tenant}/{client}" for tenant, client in self._consents),
                "federated_credentials": {
                    client: [dataclasses.asdict(record) for record in records]
                    for client, records in self._federated.items()
                    if records
                },
            }

    # --- used by the endpoints --------------------------------------------------------------------------
    def access_token_lifetime(self) -> float:
        """The lifetime of the next access token: the knob, or Entra's random 60-90 minutes."""
        with self._lock:
            if self.token_lifetime_seconds is not None:
                return self.token_lifetime_seconds
            return float(self._rng.randint(3600, 5400))

    def count_token_call(self, grant_type: str) -> InjectedFailure | None:
        """Count a token request; return the forced failure to answer with, if any."""
        with self._lock:
            self.token_calls[grant_type] += 1
            return self._failures.popleft() if self._failures else None

    def count_token_error(self, error: str) -> None:
        """Count a token request that ended in an error response."""
        with self._lock:
            self.token_errors[error] += 1

    def next_authorize_denial(self) -> str | None:
        """Count an /authorize request; return the error to redirect with, if one was asked for."""
        with self._lock:
            self.authorize_calls += 1
            return self._denials.popleft() if self._denials else None

    def issue_code(self, code: AuthCode) -> str:
        """Store an authorization code and return its value."""
        value = "1.A" + secrets.token_urlsafe(96)
        with self._lock:
            self._codes[value] = code
        return value

    def redeem_code(
        self, value: str, client_id: str, redirect_uri: str | None, verifier: str | None
    ) -> AuthCode:
        """Redeem a code once: client, redirect URI, PKCE verifier and lifetime are checked."""
        with self._lock:
            code = self._codes.get(value)
            if code is None or code.client_id != client_id:
                raise EntraProtocolError(9002313, detail="The authorization code is not valid.")
            if code.redeemed:
                raise EntraProtocolError(54005)
            if self._clock.now() - code.issued_at > self._config.auth_code_lifetime_seconds:
                raise EntraProtocolError(70008)
            if redirect_uri != code.redirect_uri:
                raise EntraProtocolError(
                    50011, detail="The redirect_uri differs from the one of the authorization request."
                )
            if code.code_challenge is not None and not _pkce_matches(code, verifier):
                raise EntraProtocolError(501481)
            code.redeemed = True
            return code

    def issue_refresh_token(self, user_oid: str, client_id: str, tenant_id: str = "") -> str:
        """A new refresh token for user + client (in the user's tenant)."""
        value = "0.A" + secrets.token_urlsafe(180)
        now = self._clock.now()
        with self._lock:
            self._refresh[value] = RefreshGrant(user_oid, client_id, now, now, tenant_id)
        return value

    def use_refresh_token(self, value: str, client_id: str) -> RefreshGrant:
        """Check a refresh token: known, same client, not revoked, not inactive too long. It stays valid after use."""
        now = self._clock.now()
        with self._lock:
            grant = self._refresh.get(value)
            if grant is None or grant.client_id != client_id:
                raise EntraProtocolError(9002313, detail="The refresh token is malformed or not valid.")
            if grant.issued_at < self._revoked_before.get(grant.user_oid, float("-inf")):
                raise EntraProtocolError(50173)
            if now - grant.last_used_at > self._config.refresh_token_max_inactive_seconds:
                raise EntraProtocolError(700082)
            tenant = (grant.tenant_id or self.directory.tenant_id).lower()
            if (tenant, client_id) not in self._consents:
                # Consent removed after the token was issued: Entra answers invalid_grant AADSTS65001
                # (learn.microsoft.com/entra/identity-platform/reference-error-codes, DelegationDoesNotExist).
                raise EntraProtocolError(65001, message=_no_consent(client_id))
            grant.last_used_at = now
            return grant


def _no_consent(client_id: str) -> str:
    return (
        f"The user or administrator has not consented to use the application with ID '{client_id}'. "
        "Send an interactive authorization request for this user and resource."
    )


def _pkce_matches(code: AuthCode, verifier: str | None) -> bool:
    if not verifier:
        return False
    if code.code_challenge_method == "plain":
        return secrets.compare_digest(verifier, code.code_challenge or "")
    digest = hashlib.sha256(verifier.encode("ascii")).digest()
    expected = base64.urlsafe_b64encode(digest).decode().rstrip("=")
    return secrets.compare_digest(expected, code.code_challenge or "")
