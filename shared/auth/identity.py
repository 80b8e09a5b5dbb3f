"""The identity-provider seam (Entra ID through MSAL in production) and how its errors are classified.

Classification keys on the protocol `error` value, never on error_description text (Microsoft's advice,
https://learn.microsoft.com/entra/identity-platform/reference-error-codes); AADSTS codes are kept only for diagnostics (status page, logs).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Protocol

from shared.auth.errors import (
    AuthError,
    CredentialsRejectedError,
    ReauthorizationRequiredError,
    TokenRefreshFailedError,
)
from shared.auth.models import Grant, SignInStart

# The grant (refresh token / code) is dead or needs the user: AADSTS70008, 700082, 700084, 50173, 70043,
# 50089, 54005 (invalid_grant); 50076/50079 (interaction_required); 65001 (consent_required).
_NEEDS_SIGN_IN = frozenset({"invalid_grant", "interaction_required", "consent_required", "login_required"})
# The app itself is refused: wrong/expired secret (7000215, 7000222), app not in tenant (700016), bad scope.
_APP_REJECTED = frozenset(
    {"invalid_client", "unauthorized_client", "invalid_scope", "invalid_resource", "unsupported_grant_type"}
)

# A federated credential's assertion was refused (reference (d); codes as Entra and the sandbox answer them,
# sandbox/entra/federation.py): no record matches it (70021), its issuer / audience / subject matches none (700211 /
# 700212 / 700213), it has expired (700024), its signature does not validate (700027). Keyed on `error_codes`, a
# field of the protocol's answer: the `error` value alone (invalid_request for 70021) would pass for transient.
_FEDERATION_CODES = {
    70021: "no record matches the identity's token",
    700211: "the record's issuer differs",
    700212: "the record's audience differs",
    700213: "the record's subject differs",
    700024: "the identity's token expired (clock?)",
    700027: "the identity's token did not validate",
}
# Short enough that the whole message fits the status page's 300 characters (shared/auth/health.py).
FEDERATION_FIX = (
    "its record needs issuer https://login.microsoftonline.com/{tenant}/v2.0, subject = the identity's principal "
    "id, audience api://AzureADTokenExchange (az ad app federated-credential create)"
)


def error_code(error: str, codes: Sequence[int] = ()) -> str:
    """A short, secret-free label such as `invalid_grant/AADSTS700082` for logs and the status page."""
    return f"{error}/AADSTS{codes[0]}" if codes else error


def classify(error: str, codes: Sequence[int] = (), *, app_only: bool = False) -> AuthError:
    """Map a token-endpoint error to the lifecycle's error: sign-in needed, app rejected, or transient.

    `app_only`: the request was a client-credentials one, where no sign-in can help (the next step differs).
    """
    label = error_code(error, codes)
    federation = _federation_refusal(codes, label)
    if federation is not None:
        return federation
    if error in _NEEDS_SIGN_IN and app_only:
        return ReauthorizationRequiredError(
            f"Entra refused the app's token request ({label}): grant admin consent to the app registration's "
            "Business Central API permission, then POST /api/auth/refresh",
            error_code=label,
        )
    if error in _NEEDS_SIGN_IN:
        return ReauthorizationRequiredError(
            f"Entra refused the stored grant ({label}): an admin must sign in again at /api/auth/login",
            error_code=label,
        )
    if error in _APP_REJECTED:
        return CredentialsRejectedError(
            f"Entra refused the application ({label}): check the app registration, its secret or "
            "certificate (BC_CLIENT_SECRET, BC_CLIENT_CERTIFICATE_PATH), and the scope (BC_SCOPE), then "
            "POST /api/auth/refresh",
            error_code=label,
        )
    return TokenRefreshFailedError(f"Entra could not issue a token right now ({label})")


def _federation_refusal(codes: Sequence[int], label: str) -> CredentialsRejectedError | None:
    """A refused federated assertion, named with the record to fix; None for any other error."""
    reason = next((_FEDERATION_CODES[code] for code in codes if code in _FEDERATION_CODES), None)
    if reason is None:
        return None
    return CredentialsRejectedError(
        f"Entra refused the federated credential ({label}): {reason}; {FEDERATION_FIX}",
        error_code=label,
    )


class IdentityProvider(Protocol):
    """Does the OAuth2 protocol work; raises the errors `classify` produces (never returns an error dict)."""

    async def start_sign_in(self, redirect_uri: str, state: str | None = None) -> SignInStart:
        """Begin an auth-code + PKCE sign-in: where to send the admin and the flow to keep server-side; `state`
        None lets the provider make one (a registered connection's sign-in passes one naming the connection)."""
        ...

    async def finish_sign_in(self, flow: str, response: Mapping[str, str]) -> Grant:
        """Redeem the callback's code for the kept flow (raises SignInRejectedError when refused)."""
        ...

    async def redeem_refresh_token(self, refresh_token: str) -> Grant:
        """Exchange a refresh token for a new access token and a rotated refresh token."""
        ...

    async def acquire_for_client(self) -> Grant:
        """Get an app-only (client credentials) token."""
        ...
