"""Hostile HTTP: generated requests to every route end in a clear answer (2xx/3xx or a 4xx with a reason), never a
500 or a dead worker; every function-key route refuses a request without the key; a sign-in state that is forged,
replayed or expired is refused and stores nothing.

The app runs as a devhost child process (hypothesis drives this process's `random`; a devhost thread in here would
share it), in delegated mode on the session's Azurite and sandbox, with tables of its own.
"""

from __future__ import annotations

import html
import json
import re
import secrets
import ssl
import subprocess
import sys
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from urllib.parse import quote

import httpx
import pytest
from azure.data.tables import TableClient
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import function_app
from devhost.auth import AuthLevel
from devhost.catalog import build_catalog, functions_of
from devhost.environment import process_environment
from localworld.ports import free_port, wait_for_port
from localworld.processes import stop_process
from sandbox import Sandbox

pytestmark = pytest.mark.timeout(600)
ROOT = Path(__file__).resolve().parents[3]
_FIELD = re.compile(r'name="([^"]+)" value="([^"]*)"')
GUID = "6f0b0c7e-1d2a-4c3b-9e8f-0a1b2c3d4e5f"
INJECTIONS = [
    "' or 1 eq 1 or '",
    "../../admin",
    "%00",
    "<script>x</script>",
    "\u202e\u0000",
    "$filter=1",
    "a" * 3000,
]


@dataclass
class App:
    """The app's child process and what a caller needs to reach it."""

    process: subprocess.Popen[bytes]
    base_url: str
    function_key: str = field(repr=False)
    master_key: str = field(repr=False)
    prefix: str
    connection: str
    connection_string: str = field(repr=False)
    log: Path

    def alive(self) -> bool:
        return self.process.poll() is None

    def log_text(self) -> str:
        return self.log.read_text(encoding="utf-8", errors="replace")


@pytest.fixture(scope="module")
def app(
    sandbox_session: Sandbox, azurite_connection_string_session: str, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[App]:
    """function_app.py under `python -m devhost`, delegated mode, its callback registered."""
    port = free_port()
    suffix = uuid.uuid4().hex[:10]
    settings_file = tmp_path_factory.mktemp("hostile") / "absent.json"
    log = settings_file.with_name("app.log")
    app = App(
        process=None,  # type: ignore[arg-type]
        base_url=f"http://127.0.0.1:{port}",
        function_key=secrets.token_urlsafe(16),
        master_key=secrets.token_urlsafe(16),
        prefix=f"h{suffix}",
        connection=f"h{suffix}",
        connection_string=azurite_connection_string_session,
        log=log,
    )
    environment = {
        **process_environment(),
        **sandbox_session.env,
        "JobsStorage": app.connection_string,
        "BC_TABLE_PREFIX": app.prefix,
        "BC_CONNECTION_NAME": app.connection,
        "BC_AUTH_MODE": "delegated",
        "BC_REDIRECT_URI": f"{app.base_url}/api/auth/callback",
        "BC_TOKEN_REFRESH_SCHEDULE": "0 0 * * * *",
        "DEVHOST_FUNCTION_KEY": app.function_key,
        "DEVHOST_MASTER_KEY": app.master_key,
    }
    command = [sys.executable, "-m", "devhost", "--port", str(port), "--app", "function_app:app"]
    command += ["--settings", str(settings_file), "--host-json", str(ROOT / "host.json")]
    with log.open("ab") as sink:
        app.process = subprocess.Popen(command, cwd=ROOT, env=environment, stdout=sink, stderr=sink)
    try:
        wait_for_port("127.0.0.1", port, timeout=60)
        yield app
    finally:
        stop_process(app.process, grace_seconds=20)
        # This module's tests use the session's sandbox without the `sandbox` fixture (which resets it after each
        # test): reset it here, or the next test on this worker counts this module's Key Vault reads and Entra calls
        # as its own (test_managed_identity.py's `callers` saw 30 reads by the BC app, CI stop 30).
        sandbox_session.reset()


@pytest.fixture(scope="module")
def azurite_connection_string_session(azurite: Any) -> str:
    """The session Azurite's connection string, for module-scoped fixtures."""
    return str(azurite.connection_string)


def http_functions() -> list[tuple[str, frozenset[str] | None, AuthLevel]]:
    """(route, methods, auth level) of every HTTP function the app registers."""
    catalog = build_catalog(functions_of(function_app.app), {"BC_TOKEN_REFRESH_SCHEDULE": "0 0 * * * *"})
    return [(f.route.template, f.methods, f.auth_level) for f in catalog.http]


def server_error(response: httpx.Response) -> str | None:
    """Why an answer is not a clear one (None when it is)."""
    if response.status_code >= 500 and response.status_code != 503:
        return f"{response.status_code} {response.text[:200]}"
    return None


# -- generated requests ----------------------------------------------------------------------------------------

text = st.one_of(st.sampled_from(INJECTIONS), st.text(max_size=60))
# What an HTTP client can send at all (h11 refuses surrounding whitespace and control characters).
header_value = st.from_regex(r"[!-~]([ -~]{0,78}[!-~])?", fullmatch=True)
headers = st.dictionaries(
    st.sampled_from(
        [
            "content-type",
            "accept",
            "x-ms-client-request-id",
            "traceparent",
            "x-forwarded-host",
            "cookie",
            "range",
        ]
    ),
    header_value,
    max_size=4,
)
query = st.dictionaries(
    st.sampled_from(
        ["state", "since", "pageSize", "continuationToken", "partial", "code_verifier", "x", "$filter"]
    ),
    text,
    max_size=4,
)
job_like = st.fixed_dictionaries(
    {"operation": st.sampled_from(["get", "list", "create", "batch", "nope"])},
    optional={
        "jobId": text,
        "entitySet": text,
        "id": st.sampled_from([GUID, "x"]) | text,
        "data": st.dictionaries(text, text, max_size=2),
        "query": st.dictionaries(text, text, max_size=2),
        "operations": st.lists(st.dictionaries(text, text, max_size=2), max_size=3),
    },
)
bodies = st.one_of(
    st.binary(max_size=300),
    st.just(b""),
    job_like.map(lambda job: json.dumps(job).encode()),
    st.lists(job_like, max_size=5).map(lambda jobs: json.dumps(jobs).encode()),
    st.integers(1, 300).map(lambda depth: ("[" * depth + "]" * depth).encode()),
    st.just(json.dumps([{"operation": "list", "entitySet": "customers"}] * 101).encode()),
)
job_ids = st.one_of(st.sampled_from(["x", "soak-1", "a" * 101, "..", "%2e%2e", "msg-1"]), text)


def _request(app: App, method: str, path: str, **kwargs: Any) -> httpx.Response:
    return httpx.request(method, f"{app.base_url}{path}", timeout=30, **kwargs)


@settings(max_examples=300, deadline=None, suppress_health_check=list(HealthCheck))
@given(st.sampled_from(["GET", "POST"]), job_ids, query, headers, bodies, st.booleans())
def test_no_generated_request_to_a_job_route_gets_a_server_error(
    app: App, method: str, job_id: str, params: dict[str, str], head: dict[str, str], body: bytes, one: bool
) -> None:
    """POST/GET /api/jobs and GET /api/jobs/{jobId} with generated ids, queries, headers and bodies (with the key):
    a 2xx or a 4xx with a JSON reason, never a 5xx (but 503), and the worker lives on."""
    path = "/api/jobs/" + quote(job_id, safe="") if one and method == "GET" else "/api/jobs"
    answer = _request(
        app, method, path, params={**params, "code": app.function_key}, headers=head, content=body
    )
    assert server_error(answer) is None
    if answer.status_code >= 400 and answer.headers.get("content-type", "").startswith("application/json"):
        assert answer.json().get("error"), answer.text[:200]
    assert app.alive()


def other_routes() -> list[tuple[str, str]]:
    """(method, path) of every HTTP route but the job routes: sign-in, callback, status, refresh, health, ..."""
    return sorted(
        (method, "/api/" + route)
        for route, methods, _ in http_functions()
        if not route.startswith("jobs")
        for method in sorted(methods or {"GET", "POST"})
    )


@settings(max_examples=300, deadline=None, suppress_health_check=list(HealthCheck))
@given(st.sampled_from(other_routes()), query, headers, bodies, st.booleans())
def test_no_generated_request_to_any_other_route_gets_a_server_error(
    app: App, route: tuple[str, str], params: dict[str, str], head: dict[str, str], body: bytes, keyed: bool
) -> None:
    """Every other route (sign-in, callback, auth status, refresh, status page, health) with generated queries,
    headers and bodies, with and without the key: never a 5xx (but 503), and the worker lives on."""
    method, path = route
    key = {"code": app.function_key} if keyed else {}
    answer = _request(app, method, path, params={**params, **key}, headers=head, content=body)
    assert server_error(answer) is None, (method, path)
    assert app.alive()


def test_every_function_key_route_refuses_a_request_without_the_right_key(app: App) -> None:
    """Every route above anonymous answers 401 without a key, with a wrong or near-miss one, in the query or the
    header. Anonymous routes are only health and the places Entra or BC call back, which cannot carry our key:
    the sign-in and admin-consent callbacks (each protected by its one-time state) and BC's notification receiver
    (its unguessable path key and clientState, checked in the expansion; it never answers 4xx)."""
    functions = http_functions()
    anonymous = {route for route, _, level in functions if level is AuthLevel.ANONYMOUS}
    assert anonymous == {
        "health",
        "auth/callback",
        "connections/consent/callback",
        "notifications/{connection}/{key}",
    }
    key = app.function_key
    wrong: list[tuple[str, dict[str, str], dict[str, str]]] = [
        ("no key", {}, {}),
        ("an empty code", {"code": ""}, {}),
        ("the key cut short", {"code": key[:-1]}, {}),
        ("the key with a character more", {"code": key + "x"}, {}),
        ("the key in upper case", {"code": key.upper()}, {}),
        ("the key as `Code`", {"Code": key}, {}),
        ("the key after a space", {"code": f" {key}"}, {}),
        ("a wrong x-functions-key", {}, {"x-functions-key": "nope"}),
        ("the key in a misspelt header", {}, {"x-function-key": key}),
        ("the key as a bearer token", {}, {"authorization": f"Bearer {key}"}),
    ]
    checked = 0
    for route, methods, level in functions:
        if level is AuthLevel.ANONYMOUS:
            continue
        path = "/api/" + route.replace("{jobId}", "some-job")
        for method in sorted(methods or {"GET"}):
            for what, params, head in wrong:
                answer = _request(app, method, path, params=params, headers=head)
                assert answer.status_code == 401, f"{method} {path} with {what}: {answer.status_code}"
                checked += 1
            if level is AuthLevel.ADMIN:
                assert _request(app, method, path, params={"code": key}).status_code == 401
            assert _request(app, method, path, params={"code": key}).status_code != 401, f"{method} {path}"
    assert checked >= 6 * len(wrong)


# -- sign-in states ---------------------------------------------------------------------------------------------


def start_sign_in(app: App, sandbox: Sandbox) -> dict[str, str]:
    """/api/auth/login, then the sandbox's sign-in page: the form fields Entra would post to the callback."""
    login = _request(app, "GET", "/api/auth/login", params={"code": app.function_key})
    assert login.status_code == 302, login.text
    tls = ssl.create_default_context(cafile=str(sandbox.ca_bundle))
    page = httpx.get(login.headers["Location"], verify=tls, timeout=30)
    return {html.unescape(k): html.unescape(v) for k, v in _FIELD.findall(page.text)}


def token_set(app: App, sandbox: Sandbox) -> str | None:
    return sandbox.vault.peek(f"bc-token-{app.connection}")


def test_a_replayed_sign_in_response_is_refused_and_changes_nothing(
    app: App, sandbox_session: Sandbox
) -> None:
    """The callback's exact form posted again: 400, the stored token set untouched, the code shown nowhere."""
    fields = start_sign_in(app, sandbox_session)
    first = _request(app, "POST", "/api/auth/callback", data=fields)
    assert first.status_code == 200, first.text
    stored = token_set(app, sandbox_session)
    assert stored is not None
    again = _request(app, "POST", "/api/auth/callback", data=fields)
    assert again.status_code == 400
    assert fields["code"] not in again.text
    assert token_set(app, sandbox_session) == stored
    query = _request(app, "GET", "/api/auth/callback", params=fields)
    assert query.status_code == 400
    assert token_set(app, sandbox_session) == stored


@settings(max_examples=60, deadline=None, suppress_health_check=list(HealthCheck))
@given(
    st.one_of(
        st.text(
            st.sampled_from("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"), min_size=16, max_size=16
        ),
        st.text(max_size=300),
        st.sampled_from(INJECTIONS),
    )
)
def test_a_forged_sign_in_state_is_refused_and_stores_nothing(
    app: App, sandbox_session: Sandbox, state: str
) -> None:
    """A state this app never handed out (MSAL's shape, any text, injection text), with a real code: 400, nothing
    stored, the real sign-in still usable afterwards."""
    before = token_set(app, sandbox_session)
    answer = _request(app, "POST", "/api/auth/callback", data={"code": "1.A" + "x" * 200, "state": state})
    assert answer.status_code == 400, answer.text[:300]
    assert token_set(app, sandbox_session) == before


def test_an_expired_sign_in_state_is_refused_and_stores_nothing(app: App, sandbox_session: Sandbox) -> None:
    """A sign-in started more than 10 minutes ago (its row's expiry moved to the past, as time would): 400 with
    the reason, no new token set, Entra's code not redeemed."""
    fields = start_sign_in(app, sandbox_session)
    with TableClient.from_connection_string(app.connection_string, f"{app.prefix}auth") as table:
        rows = [
            row for row in table.list_entities() if row.get("flow") and fields["state"] in str(row["RowKey"])
        ]
        assert len(rows) == 1
        row = rows[0]
        past = datetime.now(UTC) - timedelta(minutes=1)
        row["expires_at"] = past.isoformat()
        row["created_at"] = (past - timedelta(minutes=10)).isoformat()
        table.update_entity(row)
    before = token_set(app, sandbox_session)
    codes_before = sandbox_session.entra.token_calls["authorization_code"]
    answer = _request(app, "POST", "/api/auth/callback", data=fields)
    assert answer.status_code == 400
    assert "10 minutes" in answer.text
    assert token_set(app, sandbox_session) == before
    assert sandbox_session.entra.token_calls["authorization_code"] == codes_before


def test_the_worker_logged_no_failed_http_invocation_while_being_fuzzed(app: App) -> None:
    """After everything above: no HTTP function invocation failed (an unhandled exception) and no answer was 500."""
    lines = [json.loads(line) for line in app.log_text().splitlines() if line.startswith("{")]
    failed = [
        line.get("function")
        for line in lines
        if line.get("event") == "invocation"
        and line.get("trigger") == "http"
        and line.get("outcome") != "Succeeded"
    ]
    assert failed == []
    assert [
        line.get("path") for line in lines if line.get("event") == "http" and line.get("status") == 500
    ] == []
    assert app.alive()
