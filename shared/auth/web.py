"""What the admin endpoints show: plain HTML pages and JSON bodies, free of tokens, codes and secrets."""

from __future__ import annotations

import html
import secrets
from collections.abc import Mapping
from datetime import timedelta
from urllib.parse import parse_qsl

from shared.auth.errors import (
    AuthError,
    SignInFlowError,
    SignInNotSavedError,
    SignInResponseMalformedError,
    TokenUnavailableError,
)
from shared.auth.models import ConnectionStatus
from shared.auth.sign_in import check_state
from shared.errors import SettingsError
from shared.http import HTML, TEXT, Reply, json_reply
from shared.settings import InvalidSettingsError

# Caps on the anonymous callback, checked before any storage call. Entra's authorization codes are about 1-2 KB
# and a form_post response carries a handful of fields (code, state, session_state, client_info, or error and
# error_description); anything far larger is not a sign-in response.
MAX_CALLBACK_BODY_BYTES = 32 * 1024
MAX_CALLBACK_FIELD_LENGTH = 8 * 1024
MAX_CALLBACK_FIELDS = 16

# Pages: never cached, never leak the callback URL (it carries the code) through a Referer.
PAGE_HEADERS = {
    "Cache-Control": "no-store",
    "Referrer-Policy": "no-referrer",
    "X-Content-Type-Options": "nosniff",
    "Content-Security-Policy": "default-src 'none'",
}


_AGAIN = "start again at /api/auth/login"


def callback_params(method: str, query: Mapping[str, str], body: bytes) -> dict[str, str]:
    """The sign-in response: Entra form-posts it (response_mode=form_post); a GET carries it in the query.

    Refused with SignInResponseMalformedError (a 400, at once) when the body, a field or the state cannot belong
    to a sign-in response, so garbage never reaches Table Storage as a key.
    """
    params = _form_fields(body) if method.upper() == "POST" else dict(query)
    if len(params) > MAX_CALLBACK_FIELDS:
        raise SignInResponseMalformedError(
            f"the callback carries more fields than a sign-in response: {_AGAIN}"
        )
    if any(len(value) > MAX_CALLBACK_FIELD_LENGTH for value in params.values()):
        raise SignInResponseMalformedError(
            f"a field of the callback is longer than a sign-in response's ({MAX_CALLBACK_FIELD_LENGTH}): {_AGAIN}"
        )
    check_state(params.get("state"))
    return params


def _form_fields(body: bytes) -> dict[str, str]:
    """The form-posted fields, refused before parsing when the body or its field count exceeds a sign-in's."""
    if len(body) > MAX_CALLBACK_BODY_BYTES:
        raise SignInResponseMalformedError(
            f"the callback's body is larger than a sign-in response ({MAX_CALLBACK_BODY_BYTES} bytes): {_AGAIN}"
        )
    try:
        fields = parse_qsl(
            body.decode("utf-8", errors="replace"), keep_blank_values=True, max_num_fields=MAX_CALLBACK_FIELDS
        )
    except ValueError:  # more fields than max_num_fields
        raise SignInResponseMalformedError(
            f"the callback carries more fields than a sign-in response: {_AGAIN}"
        ) from None
    return dict(fields)


def new_reference() -> str:
    """A short id shown to the caller and logged with the cause, so an admin can find one in the other."""
    return secrets.token_hex(6)


def redirect(location: str) -> Reply:
    """A 302 to `location` (the sign-in's start), empty, with the page headers."""
    return Reply(302, "", {**PAGE_HEADERS, "Location": location}, TEXT)


# The admin's status page (status_page, authLevel function): the callback's pages link back to it. The link
# carries no key (the callback is anonymous and never sees one): the host asks for it, as for a bookmark.
STATUS_PAGE = "/api/status"
_BACK_TO_STATUS = (
    f"<p><a href='{STATUS_PAGE}'>Back to the status page</a> (with the function key: "
    "header x-functions-key or ?code=)</p>"
)


def page(status: int, title: str, lines: list[str], back_link: bool = False) -> Reply:
    """A minimal HTML page; every text is escaped; `back_link` adds a link to the status page."""
    items = "".join(f"<p>{html.escape(line)}</p>" for line in lines)
    back = _BACK_TO_STATUS if back_link else ""
    body = (
        "<!doctype html><html><head><meta charset='utf-8'>"
        f"<title>{html.escape(title)}</title></head><body><h1>{html.escape(title)}</h1>{items}{back}</body></html>"
    )
    return Reply(status, body, PAGE_HEADERS, HTML)


def connected_page(status: ConnectionStatus) -> Reply:
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
        back_link=True,
    )


def _reference_line(reference: str) -> str:
    return f"Reference: {reference} (the app's log has the cause under this reference)."


def refused_page(error: SignInFlowError, reference: str) -> Reply:
    """The callback's 400 page: why (SignInFlowError messages are plain sentences), and to start again."""
    lines = [str(error), "Nothing was stored.", _reference_line(reference)]
    return page(400, "Sign-in not accepted", lines, back_link=True)


_TRY_AGAIN = "Sign in again at /api/auth/login in a few minutes; if it fails again, give your administrator the reference below."
# (kind, status, title, what happened, what to do), most specific first; the last row matches every failure.
_FAILED_PAGES: list[tuple[type[Exception], int, str, str, str]] = [
    (
        SignInNotSavedError,
        503,
        "Sign-in could not be saved",
        "Entra accepted the sign-in, but the app could not store it, so the connection is not authorised.",
        _TRY_AGAIN,
    ),
    (
        TokenUnavailableError,
        503,
        "Sign-in could not be completed",
        "The sign-in service or the app's storage did not answer in time.",
        _TRY_AGAIN,
    ),
    (
        Exception,
        500,
        "Sign-in could not be completed",
        "The app could not complete the sign-in.",
        "Give your administrator the reference below; the app's log says what to fix.",
    ),
]


def callback_failed_page(error: Exception, reference: str) -> Reply:
    """The callback's page when the sign-in could not be completed or saved: plain words and a reference id.

    The callback is anonymous, so nothing of the cause (exception types, storage or network details) is shown;
    the route logs the cause under the same reference.
    """
    status, title, happened, to_do = next(row[1:] for row in _FAILED_PAGES if isinstance(error, row[0]))
    lines = [happened, "Nothing was stored.", to_do, _reference_line(reference)]
    return page(status, title, lines, back_link=True)


def status_json(status: ConnectionStatus) -> Reply:
    """GET /api/auth/status body."""
    return json_reply(200, status.to_json_dict(), PAGE_HEADERS)


def refresh_json(before: ConnectionStatus, after: ConnectionStatus, min_age: timedelta) -> Reply:
    """POST /api/auth/refresh body: the status, whether a new token set was stored, and why not when it was not."""
    body: dict[str, object] = {**after.to_json_dict(), "refreshed": after.generation != before.generation}
    if not body["refreshed"] and after.has_token:
        body["refresh_note"] = (
            f"not refreshed: the token set was refreshed less than {int(min_age.total_seconds())} s ago (refreshes "
            "within that window return it as it is, so bursts of calls cost Entra one request); POST again after "
            "that to get a new one"
        )
    return json_reply(200, body, PAGE_HEADERS)


def error_json(error: AuthError) -> Reply:
    """An AuthError as JSON: 503 when retrying later can help, 409 when an admin must act."""
    status = 503 if isinstance(error, TokenUnavailableError) else 409
    body = {"error": type(error).__name__, "message": str(error)}
    return json_reply(status, body, PAGE_HEADERS)


def settings_json(error: SettingsError) -> Reply:
    """A 500 naming the app settings to fix (names and fixes only, never a value)."""
    names = error.settings if isinstance(error, InvalidSettingsError) else []
    body = {
        "error": "settings",
        "message": str(error),
        "settings": names,
        "next_step": "fix the named app settings (see the README's settings table), then restart the app",
    }
    return json_reply(500, body, PAGE_HEADERS)
