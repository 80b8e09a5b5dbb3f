"""What an admin should do next about a connection's health, worded for its auth mode.

Client-credentials mode has no sign-in (/api/auth/login answers 409 there), so none of its steps names it.
"""

from __future__ import annotations

from shared.auth.models import Health
from shared.tokens import AuthMode

DEGRADED_NEXT_STEP = (
    "none yet: the app retries by itself; if it lasts, the app's log names the cause "
    "(events auth.dependency_failed, auth.refresh_failed)"
)

_REFRESH = "POST /api/auth/refresh (function key)"
# A federated identity's record on the app registration (reference (d); docs/operations.md, federation).
_FEDERATED = (
    "issuer, subject = the managed identity's principal id, audience api://AzureADTokenExchange: "
    "`az ad app federated-credential create`, docs/operations.md"
)
_NEXT_STEPS: dict[AuthMode, dict[Health, str]] = {
    AuthMode.DELEGATED: {
        Health.NOT_AUTHORIZED: "open /api/auth/login (function key) and sign in as the BC integration user",
        Health.REAUTHORIZATION_REQUIRED: "open /api/auth/login (function key) and sign in again as the BC integration user",
        Health.CREDENTIALS_REJECTED: f"fix the app registration's secret/certificate or consent, then {_REFRESH}",
    },
    AuthMode.CLIENT_CREDENTIALS: {
        Health.NOT_AUTHORIZED: (
            f"{_REFRESH} to get the first token; if Entra refuses it, check BC_TENANT_ID, BC_CLIENT_ID and "
            "BC_CLIENT_SECRET (or BC_CLIENT_CERTIFICATE_PATH), and that the app is on BC's 'Microsoft Entra "
            "applications' page"
        ),
        Health.REAUTHORIZATION_REQUIRED: (
            f"grant admin consent to the app registration's Business Central API permission, then {_REFRESH}"
        ),
        Health.CREDENTIALS_REJECTED: (
            "fix the app registration's secret/certificate (BC_CLIENT_SECRET, BC_CLIENT_CERTIFICATE_PATH) or, with "
            f"BC_CREDENTIAL=federated, its federated credential ({_FEDERATED}), its Business Central API permission "
            f"or its consent, then {_REFRESH}"
        ),
    },
}


def next_step(health: Health, mode: AuthMode, registered: str | None = None) -> str | None:
    """What the admin should do about `health` in this auth mode (None when nothing is needed).

    `registered`: the name of a registered connection, whose steps name its own routes: /api/auth/login and
    /api/auth/refresh serve the settings' connection only."""
    if health is Health.DEGRADED:
        return DEGRADED_NEXT_STEP
    if registered is not None and health in _NEXT_STEPS[mode]:
        return _registered_step(health, mode, registered)
    return _NEXT_STEPS[mode].get(health)


def _registered_step(health: Health, mode: AuthMode, name: str) -> str:
    """A registered connection's step: its own sign-in, or its check (which names the fix and, once it passes,
    has fetched a new token: shared/onboarding)."""
    if mode is AuthMode.DELEGATED and health in (Health.NOT_AUTHORIZED, Health.REAUTHORIZATION_REQUIRED):
        return f"open /api/connections/{name}/sign-in (function key) and sign in as the connection's BC user"
    return (
        f"run its check, POST /api/connections/{name}/check (function key) or `bcjobs connections check {name}`: "
        f"it names the fix (admin consent: GET /api/connections/{name}/consent; the client secret, or the federated "
        f"credential's {_FEDERATED}; the app's Microsoft Entra Applications card) and gets a new token once it passes"
    )
