"""Helpers driving MSAL's auth-code flow against the sandbox without a browser."""

from __future__ import annotations

import re
import ssl
from typing import Any
from urllib.parse import parse_qsl, urlsplit

import httpx
import msal

from tests.integration.sandbox.conftest import BC_SCOPE

REDIRECT = "http://localhost:53117/auth/callback"


def sign_in(ca_context: ssl.SSLContext, auth_uri: str) -> dict[str, str]:
    """Follow /authorize like a browser would, up to the callback; return the parameters it would receive."""
    with httpx.Client(verify=ca_context) as client:
        response = client.get(auth_uri)
    if response.status_code == 200:
        # response_mode=form_post: an auto-submitting form aimed at the redirect URI.
        assert f'action="{REDIRECT}"' in response.text
        return dict(re.findall(r'name="([^"]+)" value="([^"]*)"', response.text))
    assert response.status_code == 302
    location = response.headers["location"]
    assert location.startswith(REDIRECT)
    return dict(parse_qsl(urlsplit(location).query))


def start_flow(app: msal.ConfidentialClientApplication) -> dict[str, Any]:
    """initiate_auth_code_flow with form_post (MSAL warns about any other response mode)."""
    return dict(app.initiate_auth_code_flow([BC_SCOPE], redirect_uri=REDIRECT, response_mode="form_post"))


def delegated_tokens(app: msal.ConfidentialClientApplication, ca_context: ssl.SSLContext) -> dict[str, Any]:
    """Run initiate_auth_code_flow + /authorize + acquire_token_by_auth_code_flow."""
    flow = start_flow(app)
    return dict(app.acquire_token_by_auth_code_flow(flow, sign_in(ca_context, flow["auth_uri"])))
