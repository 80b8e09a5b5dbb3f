"""The admin's sign-in through the app's HTTP endpoints (delegated mode), the way a browser does it:

    GET /api/auth/login (function key)  -> 302 to Entra's authorize URL
    GET that URL at the sandbox         -> the test user is signed in; an auto-submitting form (form_post)
    POST the form to its action         -> the app's /api/auth/callback redeems the code: 200 and a page

`authorize` takes the first two steps and hands back the form (the soak reads the pending sign-in's row before
the code is redeemed), `submit` takes the third, `sign_in` all three. The demo, the benchmarks and the soak sign
in this way.
"""

from __future__ import annotations

import re
import ssl
from dataclasses import dataclass, field
from html.parser import HTMLParser

import httpx

from localworld.errors import WorldError


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


@dataclass(frozen=True, slots=True)
class SignInForm:
    """Entra's form_post: where it posts (the app's callback) and what (the authorization code and state)."""

    action: str
    fields: dict[str, str] = field(repr=False)  # the authorization code is a secret


def admin_client(base_url: str, function_key: str) -> httpx.Client:
    """A client for the app's admin endpoints (the function key in its header)."""
    return httpx.Client(base_url=base_url, headers={"x-functions-key": function_key}, timeout=30)


def authorize(base_url: str, function_key: str, ca_bundle: str) -> SignInForm:
    """/api/auth/login, then Entra's authorize page (the sandbox signs the test user in); its form."""
    entra = httpx.Client(verify=ssl.create_default_context(cafile=ca_bundle))
    with admin_client(base_url, function_key) as admin, entra:
        login = admin.get("/api/auth/login")
        if login.status_code != 302:
            raise WorldError(f"GET /api/auth/login answered {login.status_code} {login.text!r}")
        page = entra.get(login.headers["location"])
    form = _FormReader()
    form.feed(page.text)
    if page.status_code != 200 or not form.action:
        raise WorldError(f"Entra answered {page.status_code} without a form_post page")
    return SignInForm(form.action, form.fields)


def submit(form: SignInForm) -> httpx.Response:
    """Post the form to the app's callback; its answer (WorldError, with the page's text, unless 200)."""
    callback = httpx.post(form.action, data=form.fields, timeout=30)
    if callback.status_code != 200:
        raise WorldError(f"callback answered {callback.status_code}: {page_text(callback.text)}")
    return callback


def sign_in(base_url: str, function_key: str, ca_bundle: str) -> httpx.Response:
    """The whole sign-in; the callback's answer."""
    return submit(authorize(base_url, function_key, ca_bundle))


def page_text(html: str) -> str:
    """An HTML page's visible text on one line."""
    body = re.sub(r"(?s)<(title|style|head)>.*?</\1>", " ", html)
    return " ".join(re.sub(r"<[^>]+>", " ", body).split())
