"""Demo steps an admin would take: check token health, sign in once (delegated flow), refresh now."""

from __future__ import annotations

import re
import ssl
from html.parser import HTMLParser

import httpx

from demo.context import DemoContext, DemoError


class _FormReader(HTMLParser):
    """Reads the one auto-submitting form Entra answers with under response_mode=form_post."""

    def __init__(self) -> None:
        super().__init__()
        self.action = ""
        self.fields: dict[str, str] = {}

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        values = {name: value or "" for name, value in attrs}
        if tag == "form":
            self.action = values.get("action", "")
        elif tag == "input" and values.get("name"):
            self.fields[values["name"]] = values.get("value", "")


def _admin(context: DemoContext) -> httpx.Client:
    return httpx.Client(
        base_url=context.base_url, headers={"x-functions-key": context.function_key}, timeout=30
    )


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
    entra = httpx.Client(verify=ssl.create_default_context(cafile=context.sandbox_env["LOCAL_CA_BUNDLE"]))
    with _admin(context) as admin, entra:
        login = admin.get("/api/auth/login")
        if login.status_code != 302:
            raise DemoError(f"GET /api/auth/login answered {login.status_code} {login.text!r}")
        authorize = entra.get(login.headers["location"])
        form = _FormReader()
        form.feed(authorize.text)
        if authorize.status_code != 200 or not form.action:
            raise DemoError(f"Entra answered {authorize.status_code} without a form_post page")
        callback = httpx.post(form.action, data=form.fields, timeout=30)
    body = re.sub(r"(?s)<(title|style|head)>.*?</\1>", " ", callback.text)
    text = " ".join(re.sub(r"<[^>]+>", " ", body).split())
    if callback.status_code != 200:
        raise DemoError(f"callback answered {callback.status_code}: {text}")
    return f"sign-in 302 -> Entra form_post -> callback {callback.status_code}: {text[:200]}"


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
