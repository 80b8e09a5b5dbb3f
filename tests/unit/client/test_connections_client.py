"""The connections clients' flows without I/O: requests built, answers read, errors named, the secret only in
the PUT body; and the CLI's `put` takes the secret from stdin or a variable, never an argument."""

from __future__ import annotations

import json

import pytest
from typer.testing import CliRunner

from bcjobs import _flows as flows
from bcjobs.api_session import HttpAnswer
from bcjobs.cli import app
from bcjobs.connections import (
    ConnectionsApiError,
    ConnectionsClient,
    check_flow,
    consent_flow,
    delete_flow,
    delete_identity_flow,
    identities_flow,
    list_flow,
    put_flow,
    put_identity_flow,
    show_flow,
)

BASE = "https://bc-app.example/"
SECRET = "s3cr3t-Value~never-shown"
FABRIKAM = {
    "name": "fabrikam",
    "tenantId": "fabrikam.onmicrosoft.com",
    "environment": "production",
    "clientId": "22222222-2222-2222-2222-222222222222",
    "credential": "key_vault_secret",
    "secretName": "bc-conn-fabrikam-secret",
    "enabled": True,
    "fromSettings": False,
    "links": {"self": "https://bc-app.example/api/connections/fabrikam"},
    "health": "ok",  # a field a later version adds: kept
}


class FakeApi:
    """HttpCall answering from a table of (method, path) → (status, body); records every request."""

    def __init__(self, answers: dict[tuple[str, str], tuple[int, object]]) -> None:
        self.answers = answers
        self.requests: list[tuple[str, str, bytes | None]] = []

    def __call__(self, method: str, url: str, body: bytes | None) -> HttpAnswer:
        self.requests.append((method, url, body))
        status, value = self.answers[(method, url.removeprefix("https://bc-app.example"))]
        return HttpAnswer(status, b"" if value is None else json.dumps(value).encode())


def test_list_and_show_read_the_api_and_keep_fields_added_later() -> None:
    api = FakeApi(
        {
            ("GET", "/api/connections"): (200, {"connections": [FABRIKAM]}),
            ("GET", "/api/connections/fabrikam"): (200, FABRIKAM),
            ("GET", "/api/connections/nobody"): (404, {"error": "not_found", "message": "no connection"}),
        }
    )
    [listed] = flows.carry_out(list_flow(api, BASE))
    assert listed.name == "fabrikam"
    assert listed.model_extra == {"health": "ok"}
    assert flows.carry_out(show_flow(api, BASE, "fabrikam")) == listed
    assert flows.carry_out(show_flow(api, BASE, "nobody")) is None


async def test_the_async_client_carries_out_the_same_flows() -> None:
    api = FakeApi({("GET", "/api/connections"): (200, {"connections": [FABRIKAM]})})
    assert [c.name for c in await flows.carry_out_async(list_flow(api, BASE))] == ["fabrikam"]


def test_put_sends_the_secret_in_the_body_only_and_a_400_names_the_fix_without_it() -> None:
    refused = {
        "error": "invalid_connection",
        "message": "clientId: String should match pattern",
        "fields": [{"field": "clientId", "problem": "...", "fix": "a GUID"}],
    }
    api = FakeApi({("PUT", "/api/connections/fabrikam"): (400, refused)})
    with pytest.raises(ConnectionsApiError) as raised:
        flows.carry_out(put_flow(api, BASE, "fabrikam", {"clientId": "x"}, SECRET))
    assert raised.value.status == 400
    assert raised.value.fields == ("clientId",)
    assert "fix: clientId: a GUID" in str(raised.value)
    assert SECRET not in str(raised.value)
    _method, url, body = api.requests[0]
    assert SECRET not in url
    assert json.loads(body or b"")["clientSecret"] == SECRET


def test_delete_tells_deleted_from_disabled() -> None:
    disabled = {"disabled": True, "pendingJobs": 3, "message": "disabled, not deleted"}
    api = FakeApi(
        {
            ("DELETE", "/api/connections/gone"): (204, None),
            ("DELETE", "/api/connections/busy"): (202, disabled),
        }
    )
    assert flows.carry_out(delete_flow(api, BASE, "gone")).deleted
    busy = flows.carry_out(delete_flow(api, BASE, "busy"))
    assert (busy.deleted, busy.pending_jobs) == (False, 3)


def test_a_refused_function_key_says_which_option_sets_it() -> None:
    api = FakeApi({("GET", "/api/connections"): (401, {"error": "unauthorized"})})
    with pytest.raises(ConnectionsApiError, match="BCJOBS_FUNCTION_KEY"):
        flows.carry_out(list_flow(api, BASE))


def test_the_cli_put_takes_no_secret_argument_and_says_why() -> None:
    shown = CliRunner().invoke(app, ["connections", "put", "--help"], env={"COLUMNS": "200"})
    assert "shell history" in shown.output
    refused = CliRunner().invoke(app, ["connections", "put", "fabrikam", "--client-secret", SECRET])
    assert refused.exit_code == 2


def test_the_cli_put_refuses_an_empty_secret_variable_before_calling_the_app() -> None:
    done = CliRunner().invoke(
        app,
        [
            "connections",
            "put",
            "fabrikam",
            "--client-secret-env",
            "NOT_SET_HERE",
            "--api-url",
            "http://127.0.0.1:9",
        ],
        env={"NOT_SET_HERE": ""},
    )
    assert done.exit_code == 2
    assert "no client secret on the variable NOT_SET_HERE" in done.output


CHECK_FAILED = {
    "connection": "fabrikam",
    "ok": False,
    "steps": [
        {"name": "token", "ok": True, "detail": "Entra issued a token", "fix": None},
        {
            "name": "bc-accepts-token",
            "ok": False,
            "detail": "HTTP 401 Authentication_InvalidCredentials",
            "fix": "add the app (client id x) on the Microsoft Entra Applications page of environment production",
        },
    ],
}


def test_check_posts_to_the_connections_check_route_and_reads_its_steps() -> None:
    api = FakeApi(
        {
            ("POST", "/api/connections/fabrikam/check"): (200, CHECK_FAILED),
            ("POST", "/api/connections/nobody/check"): (404, {"error": "connection", "message": "no such"}),
        }
    )
    result = flows.carry_out(check_flow(api, BASE, "fabrikam"))
    assert result is not None
    assert not result.ok
    assert [step.name for step in result.steps] == ["token", "bc-accepts-token"]
    assert api.requests[0] == ("POST", "https://bc-app.example/api/connections/fabrikam/check", None)
    assert flows.carry_out(check_flow(api, BASE, "nobody")) is None


def test_consent_reads_the_one_time_link() -> None:
    link = {
        "connection": "fabrikam",
        "consentUrl": "https://login.example/fabrikam.onmicrosoft.com/v2.0/adminconsent?state=fabrikam~x",
        "redirectUri": "https://bc-app.example/api/connections/consent/callback",
        "expiresAt": "2026-12-06T07:00:00+00:00",
    }
    api = FakeApi({("GET", "/api/connections/fabrikam/consent"): (200, link)})
    found = flows.carry_out(consent_flow(api, BASE, "fabrikam"))
    assert found is not None
    assert found.consent_url.endswith("state=fabrikam~x")


def test_the_cli_check_shows_the_failed_steps_fix_and_exits_1(monkeypatch: pytest.MonkeyPatch) -> None:
    api = FakeApi({("POST", "/api/connections/fabrikam/check"): (200, CHECK_FAILED)})
    monkeypatch.setattr(ConnectionsClient, "_call", lambda self, m, u, b: api(m, u, b))
    done = CliRunner().invoke(
        app, ["connections", "check", "fabrikam", "--api-url", BASE], env={"COLUMNS": "200"}
    )
    assert done.exit_code == 1
    assert "Microsoft Entra Applications page of environment production" in done.output
    as_json = CliRunner().invoke(app, ["connections", "check", "fabrikam", "--api-url", BASE, "--json"])
    assert json.loads(as_json.stdout)["steps"][1]["name"] == "bc-accepts-token"


SECOND = {
    "name": "second",
    "clientId": "33333333-3333-3333-3333-333333333333",
    "credential": "key_vault_secret",
    "secretName": "bc-conn-fabrikam--second-secret",
    "secretVersion": "v1",
    "primary": False,
    "nextSteps": [
        "add the app (client id 3333...) on the Microsoft Entra Applications page",
        "run the check",
    ],
    "links": {"check": "https://bc-app.example/api/connections/fabrikam/check?identity=second"},
}


def test_identities_are_listed_put_with_the_secret_in_the_body_only_and_deleted() -> None:
    listed = {"connection": "fabrikam", "identities": [{**SECOND, "health": {"health": "ok"}}]}
    api = FakeApi(
        {
            ("GET", "/api/connections/fabrikam/identities"): (200, listed),
            ("PUT", "/api/connections/fabrikam/identities/second"): (201, SECOND),
            ("DELETE", "/api/connections/fabrikam/identities/second"): (204, None),
            ("DELETE", "/api/connections/fabrikam/identities/gone"): (
                404,
                {"error": "not_found", "message": "no"},
            ),
        }
    )
    [found] = flows.carry_out(identities_flow(api, BASE, "fabrikam"))
    assert (found.name, found.health) == ("second", {"health": "ok"})
    saved = flows.carry_out(
        put_identity_flow(api, BASE, "fabrikam", "second", {"clientId": SECOND["clientId"]}, SECRET)
    )
    assert saved.next_steps[0].startswith("add the app")
    _method, url, body = api.requests[1]
    assert SECRET not in url
    assert json.loads(body or b"")["clientSecret"] == SECRET
    assert flows.carry_out(delete_identity_flow(api, BASE, "fabrikam", "second")) is True
    assert flows.carry_out(delete_identity_flow(api, BASE, "fabrikam", "gone")) is False


async def test_the_async_twin_puts_an_identity_and_checks_only_it() -> None:
    one = {**CHECK_FAILED, "identity": "second"}
    api = FakeApi(
        {
            ("PUT", "/api/connections/fabrikam/identities/second"): (200, SECOND),
            ("POST", "/api/connections/fabrikam/check?identity=second"): (200, one),
        }
    )
    saved = await flows.carry_out_async(
        put_identity_flow(api, BASE, "fabrikam", "second", {"clientId": SECOND["clientId"]}, None)
    )
    assert "clientSecret" not in json.loads(api.requests[0][2] or b"")
    assert saved.secret_version == "v1"
    result = await flows.carry_out_async(check_flow(api, BASE, "fabrikam", "second"))
    assert result is not None
    assert result.identity == "second"


def test_the_cli_identity_put_takes_its_secret_from_stdin_never_an_argument(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    refused = CliRunner().invoke(
        app,
        [
            "connections",
            "identities",
            "put",
            "fabrikam",
            "second",
            "--client-id",
            "x",
            "--client-secret",
            SECRET,
        ],
    )
    assert refused.exit_code == 2
    api = FakeApi({("PUT", "/api/connections/fabrikam/identities/second"): (201, SECOND)})
    monkeypatch.setattr(ConnectionsClient, "_call", lambda self, m, u, b: api(m, u, b))
    args = ["connections", "identities", "put", "fabrikam", "second", "--client-id", str(SECOND["clientId"])]
    done = CliRunner().invoke(app, [*args, "--client-secret-stdin", "--api-url", BASE], input=f"{SECRET}\n")
    assert done.exit_code == 0, done.output
    assert json.loads(api.requests[0][2] or b"")["clientSecret"] == SECRET
    assert SECRET not in done.output
    assert "1. add the app" in done.output


def test_the_cli_lists_the_pool_and_checks_every_identity(monkeypatch: pytest.MonkeyPatch) -> None:
    pool_check = {
        **CHECK_FAILED,
        "identities": [
            {**CHECK_FAILED, "ok": True, "steps": CHECK_FAILED["steps"][:1]},  # type: ignore[index]
            {**CHECK_FAILED, "identity": "second"},
        ],
    }
    listed = {
        "connection": "fabrikam",
        "identities": [{**SECOND, "health": {"health": "credentials_rejected"}}],
    }
    api = FakeApi(
        {
            ("GET", "/api/connections/fabrikam/identities"): (200, listed),
            ("POST", "/api/connections/fabrikam/check"): (200, pool_check),
            ("DELETE", "/api/connections/fabrikam/identities/gone"): (
                404,
                {"error": "not_found", "message": "no"},
            ),
        }
    )
    monkeypatch.setattr(ConnectionsClient, "_call", lambda self, m, u, b: api(m, u, b))
    env = {"COLUMNS": "200"}
    shown = CliRunner().invoke(
        app, ["connections", "identities", "list", "fabrikam", "--api-url", BASE], env=env
    )
    assert "credentials_rejected" in shown.output
    checked = CliRunner().invoke(app, ["connections", "check", "fabrikam", "--api-url", BASE], env=env)
    assert checked.exit_code == 1
    assert "identity second" in checked.output
    gone = CliRunner().invoke(
        app, ["connections", "identities", "delete", "fabrikam", "gone", "--api-url", BASE]
    )
    assert gone.exit_code == 4
