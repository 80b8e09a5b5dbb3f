"""Demo steps an admin would take: check token health, sign in once (delegated flow), refresh now."""

from __future__ import annotations

import httpx

from demo.context import DemoContext, DemoError
from localworld.sign_in import admin_client, page_text, sign_in


def _admin(context: DemoContext) -> httpx.Client:
    return admin_client(context.base_url, context.function_key)


def _status_line(status: dict[str, object]) -> str:
    keys = ("health", "mode", "has_token", "account", "expires_on", "generation", "last_refresh_at")
    return ", ".join(f"{key}={status[key]}" for key in keys if key in status)


def show_status_before_sign_in(context: DemoContext) -> str:
    """GET /api/auth/status: no token yet, and the answer says so instead of failing."""
    with _admin(context) as admin:
        response = admin.get("/api/auth/status")
    if response.status_code != 200 or response.json().get("has_token") is not False:
        raise DemoError(f"status before sign-in answered {response.status_code} {response.text!r}")
    return f"GET /api/auth/status -> {response.status_code} {_status_line(response.json())}"


def admin_signs_in(context: DemoContext) -> str:
    """GET /api/auth/login -> Entra (sandbox signs the test user in) -> form_post to the callback -> page."""
    callback = sign_in(context.base_url, context.function_key, context.sandbox_env["LOCAL_CA_BUNDLE"])
    return (
        f"sign-in 302 -> Entra form_post -> callback {callback.status_code}: {page_text(callback.text)[:200]}"
    )


def show_status_after_sign_in(context: DemoContext) -> str:
    """GET /api/auth/status: a token, who it belongs to and when it expires (never the token itself)."""
    with _admin(context) as admin:
        response = admin.get("/api/auth/status")
    status = response.json()
    if response.status_code != 200 or status.get("has_token") is not True:
        raise DemoError(f"status after sign-in answered {response.status_code} {response.text!r}")
    return f"GET /api/auth/status -> {response.status_code} {_status_line(status)}"


def admin_refreshes_now(context: DemoContext) -> str:
    """POST /api/auth/refresh: the refresh token is redeemed, rotated, and the new set written to Key Vault."""
    with _admin(context) as admin:
        response = admin.post("/api/auth/refresh")
    if response.status_code != 200 or response.json().get("has_token") is not True:
        raise DemoError(f"refresh answered {response.status_code} {response.text!r}")
    return f"POST /api/auth/refresh -> {response.status_code} {_status_line(response.json())}"
