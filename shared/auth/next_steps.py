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
            "fix the app registration's secret/certificate (BC_CLIENT_SECRET, BC_CLIENT_CERTIFICATE_PATH), its "
            f"Business Central API permission or its consent, then {_REFRESH}"
        ),
    },
}


def next_step(health: Health, mode: AuthMode) -> str | None:
    """What the admin should do about `health` in this auth mode (None when nothing is needed)."""
    if health is Health.DEGRADED:
        return DEGRADED_NEXT_STEP
    return _NEXT_STEPS[mode].get(health)
