"""The status page opened with a key made for status_page only (a per-function key, under devhost as on the
host): the page answers, never carries that key, and its sign-in form reaches /api/auth/login with a host key."""

from __future__ import annotations

import secrets
from collections.abc import Iterator
from html.parser import HTMLParser

import httpx
import pytest

import function_app
from devhost.host import DevHost
from devhost.hostconfig import load_host_config
from shared.settings import get_settings
from tests.integration.jobs.conftest import ROOT, JobsWorld

pytestmark = pytest.mark.integration


class _Form(HTMLParser):
    """The page's sign-in form: its action, method and field names."""

    def __init__(self) -> None:
        super().__init__()
        self.action: str | None = None
        self.method: str | None = None
        self.fields: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        values = dict(attrs)
        if tag == "form":
            self.action, self.method = values.get("action"), values.get("method")
        elif tag == "input":
            self.fields.append(values.get("name") or "")


@pytest.fixture
def page_key_world(world: JobsWorld, jobs_env: dict[str, str]) -> Iterator[tuple[JobsWorld, str]]:
    """The HTTP functions under devhost in delegated mode, nobody signed in, with a key valid for status_page only."""
    page_key = secrets.token_urlsafe(16)
    settings = {
        **jobs_env,
        "BC_AUTH_MODE": "delegated",
        "BC_REDIRECT_URI": "http://127.0.0.1:1/api/auth/callback",
        "DEVHOST_FUNCTION_KEY_status_page": page_key,
    }
    get_settings.cache_clear()
    host = DevHost(
        function_app.app,
        settings,
        host_config=load_host_config(ROOT / "host.json"),
        shutdown_grace=10,
        functions=["status_page", "auth_login"],
    )
    host.start()
    world.base_url = host.base_url
    try:
        yield world, page_key
    finally:
        host.stop()
        get_settings.cache_clear()


def test_a_status_page_key_opens_the_page_and_the_form_needs_a_host_key(
    page_key_world: tuple[JobsWorld, str],
) -> None:
    """The page key opens /api/status but not the sign-in; the page holds no key; its form, submitted with the
    host key as the admin would type it, starts the sign-in (302 to Entra)."""
    world, page_key = page_key_world
    page = httpx.get(f"{world.base_url}/api/status", params={"code": page_key}, timeout=10)
    assert page.status_code == 200
    assert page_key not in page.text
    assert world.function_key not in page.text
    form = _Form()
    form.feed(page.text)
    assert (form.method, form.action, form.fields) == ("get", "/api/auth/login", ["code"])
    submit = f"{world.base_url}{form.action}"
    assert httpx.get(submit, params={"code": page_key}, timeout=10).status_code == 401
    signed_in = httpx.get(submit, params={"code": world.function_key}, timeout=10)
    assert signed_in.status_code == 302
