"""What the admin endpoints show: plain HTML pages and JSON bodies, free of tokens, codes and secrets."""

from __future__ import annotations

import html
import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from urllib.parse import parse_qsl, urlsplit, urlunsplit

from shared.auth.errors import AuthError, LoginFlowError, SignInNotSavedError, TokenUnavailableError
from shared.auth.models import ConnectionStatus

# Pages: never cached, never leak the callback URL (it carries the code) through a Referer.
PAGE_HEADERS = {
    "Cache-Control": "no-store",
    "Referrer-Policy": "no-referrer",
    "X-Content-Type-Options": "nosniff",
    "Content-Security-Policy": "default-src 'none'",
}


@dataclass(frozen=True, slots=True)
class WebResult:
    """A status code, a body and its media type, ready to become an HttpResponse."""

    status: int
    body: str = field(repr=False)
    mimetype: str


def callback_params(method: str, query: Mapping[str, str], body: bytes) -> dict[str, str]:
    """The sign-in response: Entra form-posts it (response_mode=form_post); a GET carries it in the query."""
    if method.upper() == "POST":
        return dict(parse_qsl(body.decode("utf-8", errors="replace"), keep_blank_values=True))
    return dict(query)


def callback_url(login_url: str) -> str:
    """The callback beside the login route, without the login request's query (it holds the function key)."""
    parts = urlsplit(login_url)
    base = parts.path.rsplit("/", 1)[0]
    return urlunsplit((parts.scheme, parts.netloc, f"{base}/callback", "", ""))


def page(status: int, title: str, lines: list[str]) -> WebResult:
    """A minimal HTML page; every text is escaped."""
    items = "".join(f"<p>{html.escape(line)}</p>" for line in lines)
    body = (
        "<!doctype html><html><head><meta charset='utf-8'>"
        f"<title>{html.escape(title)}</title></head><body><h1>{html.escape(title)}</h1>{items}</body></html>"
    )
    return WebResult(status, body, "text/html")


def connected_page(status: ConnectionStatus) -> WebResult:
    """The callback's success page: account, tenant and expiry only."""
    expires = status.expires_on.isoformat() if status.expires_on else "unknown"
    return page(
        200,
        "Business Central connected",
        [
            f"Connection: {status.connection}",
            f"Account: {status.account or 'unknown'}",
            f"Tenant: {status.tenant_id or 'unknown'}",
            f"Access token valid until: {expires}",
            "The integration refreshes the token from now on; you can close this page.",
        ],
    )


def refused_page(error: LoginFlowError) -> WebResult:
    """The callback's 400 page: why, and to start again."""
    return page(400, "Sign-in not accepted", [str(error), "Nothing was stored."])


def callback_failed_page(error: AuthError) -> WebResult:
    """The callback's 503 page when the sign-in was accepted by Entra but not completed or not saved."""
    if isinstance(error, SignInNotSavedError):
        return page(
            503,
            "Sign-in could not be saved",
            [
                "The sign-in could not be saved; the connection is not authorised.",
                "Sign in again.",
                str(error),
            ],
        )
    return page(503, "Sign-in could not be completed", [str(error), "Nothing was stored."])


def status_json(status: ConnectionStatus) -> WebResult:
    """GET /api/auth/status body."""
    return WebResult(200, json.dumps(status.to_json_dict()), "application/json")


def error_json(error: AuthError) -> WebResult:
    """An AuthError as JSON: 503 when retrying later can help, 409 when an admin must act."""
    status = 503 if isinstance(error, TokenUnavailableError) else 409
    body = {"error": type(error).__name__, "message": str(error)}
    return WebResult(status, json.dumps(body), "application/json")
