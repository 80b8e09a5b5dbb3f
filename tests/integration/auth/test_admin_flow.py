"""The admin endpoints end to end: login -> sandbox /authorize -> callback -> Key Vault -> status; state attacks."""

from __future__ import annotations

import html
import json
import logging
import re
import ssl
from collections.abc import AsyncIterator, Callable
from datetime import timedelta
from typing import Any
from urllib.parse import parse_qs, urlencode, urlsplit

import azure.functions as func
import httpx
import pytest
from azure.core.exceptions import ResourceNotFoundError
from azure.data.tables.aio import TableClient

from sandbox import Sandbox
from shared.auth import close_auth_services
from shared.auth.compose import auth_table_name
from shared.auth.models import SignInStart
from shared.auth.sign_in import PendingSignIns
from shared.auth.tables import SignInCodec, TableRecordStore
from shared.settings import Settings, get_settings
from shared.triggers import auth_http
from testkit.clock import ShiftedClock
from tests.integration.auth.conftest import Audit, fingerprint, stored_token_set

pytestmark = pytest.mark.integration

APP_BASE = "http://127.0.0.1:7071/api"


@pytest.fixture
async def functions(
    app_env: dict[str, str], audit: Audit, auth_table: TableClient
) -> AsyncIterator[dict[str, Callable[..., Any]]]:
    """The admin functions as the worker calls them (a decorated name forwards to its user function)."""
    del app_env  # the environment the app reads
    table = {
        "auth_login": auth_http.auth_login,
        "auth_callback": auth_http.auth_callback,
        "auth_status": auth_http.auth_status,
        "auth_refresh": auth_http.auth_refresh,
    }
    try:
        yield table
    finally:
        await audit.add_rows(auth_table)  # every row the functions left, checked by the audit
        await close_auth_services()


def request(method: str, path: str, params: dict[str, str] | None = None) -> func.HttpRequest:
    query = "&".join(f"{k}={v}" for k, v in (params or {}).items())
    return func.HttpRequest(
        method, f"{APP_BASE}/{path}{'?' + query if query else ''}", params=params or {}, body=b""
    )


def callback_post(fields: dict[str, str]) -> func.HttpRequest:
    """The browser's form post of Entra's sign-in response to the callback."""
    return func.HttpRequest(
        "POST",
        f"{APP_BASE}/auth/callback",
        headers={"Content-Type": "application/x-www-form-urlencoded"},
        body=urlencode(fields).encode(),
    )


async def sign_in_at_sandbox(location: str, tls: ssl.SSLContext, audit: Audit) -> dict[str, str]:
    """Open the login redirect at the sandbox's /authorize; return the fields its form posts back."""
    async with httpx.AsyncClient(verify=tls, follow_redirects=False) as client:
        answer = await client.get(location)
    assert answer.status_code == 200
    action = re.search(r'action="([^"]+)"', answer.text)
    assert action is not None
    assert html.unescape(action.group(1)) == f"{APP_BASE}/auth/callback"
    fields = {
        html.unescape(k): html.unescape(v)
        for k, v in re.findall(r'name="([^"]+)" value="([^"]*)"', answer.text)
    }
    if "code" in fields:
        audit.extra_secrets.add(fields["code"])
    return fields


async def signed_in_at_entra(
    functions: dict[str, Callable[..., Any]], sandbox_tls: ssl.SSLContext, audit: Audit
) -> dict[str, str]:
    """GET /api/auth/login, then the admin signs in at the sandbox's Entra: the fields it form-posts back."""
    login = await functions["auth_login"](request("GET", "auth/login"))
    return await sign_in_at_sandbox(login.headers["Location"], sandbox_tls, audit)


async def admin_signs_in(
    functions: dict[str, Callable[..., Any]], sandbox_tls: ssl.SSLContext, audit: Audit
) -> None:
    """The whole sign-in: login, Entra, the callback."""
    await functions["auth_callback"](callback_post(await signed_in_at_entra(functions, sandbox_tls, audit)))


async def test_admin_signs_in_and_status_shows_the_token(
    functions: dict[str, Callable[..., Any]],
    sandbox: Sandbox,
    sandbox_tls: ssl.SSLContext,
    settings: Settings,
    audit: Audit,
) -> None:
    """login 302 -> authorize (form post back) -> callback 200 page (account, tenant, expiry) -> stored -> status ok."""
    login = await functions["auth_login"](request("GET", "auth/login", {"code": "function-key"}))
    assert login.status_code == 302
    location = login.headers["Location"]
    assert "code_challenge=" in location
    key_forwarded = "function-key" in location  # a bool, so a failure never prints the key
    assert not key_forwarded

    callback = await functions["auth_callback"](
        callback_post(await sign_in_at_sandbox(location, sandbox_tls, audit))
    )

    page = callback.get_body().decode()
    assert callback.status_code == 200
    stored = stored_token_set(sandbox, settings)
    assert stored is not None
    assert stored["refresh_token"]
    token_on_page = stored["access_token"] in page  # a bool, first, so no failure below prints the token
    assert not token_on_page
    assert sandbox.env["SANDBOX_USER"] in page
    assert sandbox.env["BC_TENANT_ID"] in page
    assert stored["expires_on"][:16] in page
    status = json.loads((await functions["auth_status"](request("GET", "auth/status"))).get_body())
    assert status["has_token"] is True
    assert status["state"] == "ok"
    assert status["account"] == sandbox.env["SANDBOX_USER"]
    token_in_status = "access_token" in status  # a bool, so a failure never prints the token
    assert not token_in_status


async def test_refresh_endpoint_rotates_the_stored_refresh_token(
    functions: dict[str, Callable[..., Any]],
    sandbox: Sandbox,
    sandbox_tls: ssl.SSLContext,
    settings: Settings,
    audit: Audit,
) -> None:
    """POST /api/auth/refresh redeems the refresh token once and stores the next generation."""
    await admin_signs_in(functions, sandbox_tls, audit)
    first = stored_token_set(sandbox, settings)
    calls = sandbox.entra.token_calls["refresh_token"]

    answer = await functions["auth_refresh"](request("POST", "auth/refresh"))

    assert answer.status_code == 200
    second = stored_token_set(sandbox, settings)
    assert first is not None
    assert second is not None
    assert second["generation"] == first["generation"] + 1
    assert fingerprint(second["refresh_token"]) != fingerprint(first["refresh_token"])
    assert sandbox.entra.token_calls["refresh_token"] == calls + 1


async def test_a_refresh_right_after_a_refresh_says_it_returned_the_recent_token_set(
    functions: dict[str, Callable[..., Any]],
    sandbox: Sandbox,
    sandbox_tls: ssl.SSLContext,
    audit: Audit,
) -> None:
    """Two POST /api/auth/refresh in a row: the first answers refreshed, the second refreshed false with why."""
    await admin_signs_in(functions, sandbox_tls, audit)

    first = json.loads((await functions["auth_refresh"](request("POST", "auth/refresh"))).get_body())
    second = json.loads((await functions["auth_refresh"](request("POST", "auth/refresh"))).get_body())

    assert (first["refreshed"], "refresh_note" in first) == (True, False)
    assert (second["refreshed"], second["generation"]) == (False, first["generation"])
    assert "less than 30 s ago" in second["refresh_note"]


async def test_state_attacks_are_refused_with_400_and_store_nothing(
    functions: dict[str, Callable[..., Any]],
    sandbox: Sandbox,
    sandbox_tls: ssl.SSLContext,
    settings: Settings,
    azurite_connection_string: str,
    auth_table: TableClient,
    audit: Audit,
) -> None:
    """Missing, unknown, expired and replayed states get a 400 page; neither Key Vault nor the Table is written."""
    query = await signed_in_at_entra(functions, sandbox_tls, audit)
    callback = functions["auth_callback"]
    expired_state = await _start_sign_in_eleven_minutes_ago(settings, azurite_connection_string)
    before = await _row_fingerprints(auth_table)

    missing = await callback(callback_post({"code": query["code"]}))
    unknown = await callback(callback_post({**query, "state": "forged-state"}))
    expired = await callback(callback_post({**query, "state": expired_state}))

    for answer in (missing, unknown, expired):
        assert answer.status_code == 400
        assert "Nothing was stored" in answer.get_body().decode()
    assert sandbox.vault.writes == 0
    assert stored_token_set(sandbox, settings) is None
    after = await _row_fingerprints(auth_table)
    assert _written(before, after) == []  # no new or changed row (a refused state may only be removed)
    assert [key for key in after if not key[0].startswith("login-")] == []  # no connection-state or lease row

    accepted = await callback(callback_post(query))
    assert accepted.status_code == 200
    writes = sandbox.vault.writes
    before = await _row_fingerprints(auth_table)
    replayed = await callback(request("GET", "auth/callback", query))  # the same response, replayed as a GET
    assert replayed.status_code == 400
    assert "already completed" in replayed.get_body().decode()
    assert sandbox.vault.writes == writes
    assert _written(before, await _row_fingerprints(auth_table)) == []


async def _row_fingerprints(table: TableClient) -> dict[tuple[str, str], str]:
    """(PartitionKey, RowKey) -> fingerprint of the row's properties and ETag (rows hold PKCE verifiers)."""
    rows: dict[tuple[str, str], str] = {}
    async for row in table.list_entities():
        key = (str(row["PartitionKey"]), str(row["RowKey"]))
        rows[key] = fingerprint(
            json.dumps([dict(row), row.metadata.get("etag")], sort_keys=True, default=str)
        )
    return rows


def _written(before: dict[tuple[str, str], str], after: dict[tuple[str, str], str]) -> list[tuple[str, str]]:
    """Keys of rows added or changed between two snapshots."""
    return sorted(key for key, print_ in after.items() if before.get(key) != print_)


async def test_entra_error_on_the_callback_is_a_400_and_stores_nothing(
    functions: dict[str, Callable[..., Any]],
    sandbox: Sandbox,
    sandbox_tls: ssl.SSLContext,
    settings: Settings,
    audit: Audit,
) -> None:
    """An admin who declines consent comes back with ?error=access_denied: 400, nothing stored."""
    sandbox.entra.deny_next_authorize("access_denied")
    fields = await signed_in_at_entra(functions, sandbox_tls, audit)

    refused = await functions["auth_callback"](callback_post(fields))

    assert refused.status_code == 400
    assert "access_denied" in refused.get_body().decode()
    assert stored_token_set(sandbox, settings) is None


async def _start_sign_in_eleven_minutes_ago(settings: Settings, connection_string: str) -> str:
    """A pending sign-in as /api/auth/login would have left it 11 minutes ago."""
    async with TableClient.from_connection_string(connection_string, auth_table_name(settings)) as table:
        book = PendingSignIns(
            TableRecordStore(table, f"login-{settings.auth.connection_name}", SignInCodec()),
            ShiftedClock(-timedelta(minutes=11)),
        )
        await book.remember(SignInStart("https://entra.invalid/authorize", "stale-state", "{}"))
    return "stale-state"


async def test_audit_detects_a_leaked_code_or_token(audit: Audit, sandbox: Sandbox) -> None:
    """The leak audit is able to fail: a logged client secret or JWT is reported (by description only)."""
    logging.getLogger("tests.leak").debug("collected at debug")
    assert "collected at debug" in [record.getMessage() for record in audit.records]
    # The leaking record goes to the audit only: logged for real, a failure's "Captured log" would show it.
    leaked = {"name": "tests.leak", "msg": "oops %s", "args": (sandbox.env["BC_CLIENT_SECRET"],)}
    audit.records.append(logging.makeLogRecord(leaked))
    audit.table_bodies.append('{"note": "eyJhbGciOiJSUzI1NiJ9.eyJzdWIiOiJ4eHh4eHgifQ.c2lnbmF0dXJl"}')

    problems = audit.leaks()

    assert any("JWT" in problem for problem in problems)
    assert any("secret of length" in problem for problem in problems)
    assert all(sandbox.env["BC_CLIENT_SECRET"] not in problem for problem in problems)
    audit.records.clear()
    audit.table_bodies.clear()


@pytest.mark.parametrize(
    "state",
    ["a/b", "a#b", "a?b", "a\\b", "a\x01b", "</script>", "x" * 65536],
    ids=["slash", "hash", "question", "backslash", "control", "markup", "64k"],
)
async def test_callback_with_a_malformed_state_answers_400_and_stores_nothing(
    functions: dict[str, Callable[..., Any]],
    sandbox: Sandbox,
    settings: Settings,
    auth_table: TableClient,
    state: str,
) -> None:
    """A state Table keys refuse (or 64 KB of one) is a 400 page, not a 503 after SDK retries; nothing stored."""
    answer = await functions["auth_callback"](callback_post({"state": state, "code": "x"}))

    body = answer.get_body().decode()
    assert answer.status_code == 400
    assert "Nothing was stored" in body
    assert "</script>" not in body
    assert stored_token_set(sandbox, settings) is None
    with pytest.raises(ResourceNotFoundError):  # the auth table was never even created
        await auth_table.get_table_access_policy()


async def test_callback_that_cannot_save_shows_a_reference_and_logs_the_cause_under_it(
    functions: dict[str, Callable[..., Any]],
    sandbox: Sandbox,
    sandbox_tls: ssl.SSLContext,
    audit: Audit,
) -> None:
    """Key Vault down during the callback: a plain 503 page with a reference id; the log holds the cause."""
    fields = await signed_in_at_entra(functions, sandbox_tls, audit)
    sandbox.vault.outage = True

    answer = await functions["auth_callback"](callback_post(fields))

    page = answer.get_body().decode()
    assert answer.status_code == 503
    assert "Sign-in could not be saved" in page
    assert "Error" not in page
    reference = re.search(r"Reference: ([0-9a-f]{12})", page)
    assert reference is not None
    logged = [r for r in audit.records if getattr(r, "reference", None) == reference.group(1)]
    assert len(logged) == 1
    assert logged[0].levelno == logging.ERROR
    assert "SignInNotSavedError" in logged[0].getMessage()
    assert "TokenStoreUnavailableError" in logged[0].getMessage()


def forged_host_login() -> func.HttpRequest:
    """GET /api/auth/login as an attacker sends it: the Host header (so the request URL) names their site."""
    return func.HttpRequest(
        "GET",
        "http://evil.example/api/auth/login",
        headers={"Host": "evil.example"},
        params={},
        body=b"",
    )


async def test_login_never_takes_the_redirect_uri_from_the_host_header(
    functions: dict[str, Callable[..., Any]], monkeypatch: pytest.MonkeyPatch, settings: Settings
) -> None:
    """BC_REDIRECT_URI unset (delegated): 500 naming the setting instead of sending evil.example to Entra."""
    monkeypatch.delenv("BC_REDIRECT_URI")
    get_settings.cache_clear()

    answer = await functions["auth_login"](forged_host_login())

    body = json.loads(answer.get_body())
    assert answer.status_code == 500
    assert "Location" not in answer.headers
    assert body["settings"] == ["BC_REDIRECT_URI"]
    assert "evil.example" not in answer.get_body().decode()


async def test_login_uses_the_platform_host_name_when_no_redirect_uri_is_set(
    functions: dict[str, Callable[..., Any]], monkeypatch: pytest.MonkeyPatch
) -> None:
    """With WEBSITE_HOSTNAME (set by the platform, not the caller) the callback is https://{it}/api/auth/callback."""
    monkeypatch.delenv("BC_REDIRECT_URI")
    monkeypatch.setenv("WEBSITE_HOSTNAME", "bc-func.azurewebsites.net")
    get_settings.cache_clear()

    answer = await functions["auth_login"](forged_host_login())

    assert answer.status_code == 302
    redirect = parse_qs(urlsplit(answer.headers["Location"]).query)["redirect_uri"]
    assert redirect == ["https://bc-func.azurewebsites.net/api/auth/callback"]


async def test_login_with_the_setting_ignores_a_forged_host(
    functions: dict[str, Callable[..., Any]], settings: Settings
) -> None:
    """BC_REDIRECT_URI set: whatever Host the request names, Entra gets the setting."""
    answer = await functions["auth_login"](forged_host_login())

    assert answer.status_code == 302
    redirect = parse_qs(urlsplit(answer.headers["Location"]).query)["redirect_uri"]
    assert redirect == [settings.auth.redirect_uri]
