"""Entra's token-endpoint error shape: error, error_description with an AADSTS code, error_codes, ids, timestamp.

Shape and codes from learn.microsoft.com/entra/identity-platform/reference-error-codes and the auth-code and
client-credentials flow pages (learn.microsoft.com/entra/identity-platform/v2-oauth2-auth-code-flow,
learn.microsoft.com/entra/identity-platform/v2-oauth2-client-creds-grant-flow). Clients must key on `error`,
never on the description text.
"""

from __future__ import annotations

import uuid
from datetime import UTC, datetime

from starlette.responses import JSONResponse

from sandbox.errors import SandboxError

# AADSTS code -> (default `error`, description), descriptions paraphrased from the Entra error reference.
AADSTS: dict[int, tuple[str, str]] = {
    50011: (
        "invalid_request",
        "The redirect URI specified in the request does not match the redirect URIs configured for the application.",
    ),
    50173: (
        "invalid_grant",
        "The provided grant has expired due to it being revoked, a fresh auth token is needed.",
    ),
    54005: (
        "invalid_grant",
        "OAuth2 Authorization code was already redeemed, please retry with a new valid code or use an existing refresh token.",
    ),
    65004: ("access_denied", "User declined to consent to access the app."),
    70003: ("unsupported_grant_type", "The app returned an unsupported grant type."),
    70008: (
        "invalid_grant",
        "The provided authorization code or refresh token has expired due to inactivity. Send a new interactive authorization request for this user and resource.",
    ),
    70011: (
        "invalid_scope",
        "The provided request must include a 'scope' input parameter or the provided value for the input parameter 'scope' is not valid.",
    ),
    90002: (
        "invalid_request",
        "Tenant not found. Check to make sure you have the correct tenant ID and are signing into the correct cloud.",
    ),
    90014: ("invalid_request", "The request body must contain the following parameter."),
    90033: ("temporarily_unavailable", "A transient error has occurred. Please try again."),
    90055: (
        "temporarily_unavailable",
        "The tenant is throttled: too many requests. Retry after the Retry-After interval.",
    ),
    500011: ("invalid_resource", "The resource principal was not found in the tenant."),
    65001: (
        "invalid_grant",
        "The user or administrator has not consented to use the application for this resource.",
    ),
    7000218: (
        "invalid_client",
        "The request body must contain the following parameter: 'client_assertion' or 'client_secret'.",
    ),
    700016: (
        "unauthorized_client",
        "Application was not found in the directory. The app may not be installed by the tenant administrator.",
    ),
    700082: (
        "invalid_grant",
        "The refresh token has expired due to inactivity. The token was issued before the inactivity window.",
    ),
    501481: (
        "invalid_grant",
        "The Code_Verifier does not match the code_challenge supplied in the authorization request.",
    ),
    1002012: (
        "invalid_scope",
        "The provided value for scope is not valid. Client credential flows must have a scope value with /.default suffixed to the resource identifier (application ID URI).",
    ),
    28000: (
        "invalid_scope",
        "Provided value for the input parameter scope is not valid because it contains more than one resource.",
    ),
    700027: ("invalid_client", "Client assertion failed signature validation or is not valid."),
    # Federated credentials (sandbox/entra/federation.py cites the sources of each).
    70021: ("invalid_request", "No matching federated identity record found for presented assertion."),
    700024: ("invalid_client", "Client assertion is not within its valid time range."),
    700211: ("invalid_client", "No matching federated identity record found for presented assertion issuer."),
    700212: (
        "invalid_client",
        "No matching federated identity record found for presented assertion audience.",
    ),
    700213: (
        "invalid_client",
        "No matching federated identity record found for presented assertion subject.",
    ),
    7000215: (
        "invalid_client",
        "Invalid client secret provided. Ensure the secret being sent in the request is the client secret value, not the client secret ID.",
    ),
    9002313: ("invalid_grant", "Invalid request. Request is malformed or invalid."),
}


class EntraProtocolError(SandboxError):
    """An error the token endpoint answers with (status + AADSTS code)."""

    def __init__(
        self,
        code: int,
        status: int = 400,
        detail: str = "",
        headers: dict[str, str] | None = None,
        message: str | None = None,
    ) -> None:
        self.code = code
        self.status = status
        self.error, self.description = AADSTS[code]
        if message is not None:  # Entra's own wording for this case (names the app and the tenant)
            self.description = message
        if detail:
            self.description = f"{self.description} {detail}"
        self.headers = headers or {}
        super().__init__(f"AADSTS{code}")


def error_body(code: int, error: str, description: str) -> dict[str, object]:
    """The JSON body Entra sends for a failed token request."""
    trace_id, correlation_id = str(uuid.uuid4()), str(uuid.uuid4())
    stamp = datetime.now(UTC).strftime("%Y-%m-%d %H:%M:%SZ")
    return {
        "error": error,
        "error_description": (
            f"AADSTS{code}: {description}\r\nTrace ID: {trace_id}\r\nCorrelation ID: {correlation_id}\r\nTimestamp: {stamp}"
        ),
        "error_codes": [code],
        "timestamp": stamp,
        "trace_id": trace_id,
        "correlation_id": correlation_id,
        "error_uri": f"https://login.microsoftonline.com/error?code={code}",
    }


def error_response(exc: EntraProtocolError) -> JSONResponse:
    """The HTTP response for an EntraProtocolError."""
    headers = {"Cache-Control": "no-store, no-cache", "Pragma": "no-cache", **exc.headers}
    return JSONResponse(
        error_body(exc.code, exc.error, exc.description), status_code=exc.status, headers=headers
    )
