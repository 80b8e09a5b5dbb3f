"""Fixtures for the token lifecycle against Azurite + the TLS sandbox, with a secret-leak audit.

`audit` applies the app's logging policy, then collects every log record (root handler at DEBUG) and every
Table row body the auth services send, plus the secret values seen in the test (client secret, every Key
Vault version's tokens, auth codes).
`auth_env` is the env of one connection (its own table prefix and connection name) for the app or a child.
"""

from __future__ import annotations

import hashlib
import html
import json
import logging
import re
import secrets
import ssl
import uuid
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest
from azure.core.exceptions import ResourceNotFoundError
from azure.core.pipeline.transport import AioHttpTransport
from azure.data.tables.aio import TableClient

import function_app
from devhost.host import DevHost
from devhost.hostconfig import load_host_config
from localworld.ports import free_port
from sandbox import Sandbox
from shared.auth.compose import AuthServices, auth_table_name, build_auth_services
from shared.auth.keyvault import secret_name
from shared.auth.sign_in import SignInFlow
from shared.logging_setup import configure_logging
from shared.settings import Settings, get_settings, load_settings
from testkit.clock import ShiftedClock

ROOT = Path(__file__).resolve().parents[3]
_JWT = re.compile(r"eyJ[A-Za-z0-9_-]{10,}\.[A-Za-z0-9_-]{10,}")
_WRITES = {"POST", "PUT", "PATCH", "MERGE"}
CALLBACK_URL = "http://127.0.0.1:7071/api/auth/callback"


class RecordingTransport(AioHttpTransport):  # type: ignore[misc]  # azure-core ships it untyped
    """The SDK's aiohttp transport, remembering every request body that writes a row."""

    def __init__(self, sink: list[str]) -> None:
        super().__init__()
        self._sink = sink

    async def send(self, request: Any, **kwargs: Any) -> Any:
        """Record write bodies, then send as usual."""
        if request.method in _WRITES:
            body = getattr(request, "content", None) or getattr(request, "data", None) or b""
            self._sink.append(body.decode() if isinstance(body, bytes) else str(body))
        return await super().send(request, **kwargs)


class _Collector(logging.Handler):
    def __init__(self, sink: list[logging.LogRecord]) -> None:
        super().__init__(logging.DEBUG)
        self._sink = sink

    def emit(self, record: logging.LogRecord) -> None:
        self._sink.append(record)


@dataclass
class Audit:
    """Everything the suite wrote to logs and Table rows, and the secrets that must not be in it."""

    sandbox: Sandbox
    records: list[logging.LogRecord] = field(default_factory=list)
    table_bodies: list[str] = field(default_factory=list)
    extra_secrets: set[str] = field(default_factory=set)

    async def add_rows(self, table: TableClient) -> None:
        """Add every row currently in `table` (rows written by paths without the recording transport)."""
        try:
            self.table_bodies.extend(
                [json.dumps(dict(row), default=str) async for row in table.list_entities()]
            )
        except ResourceNotFoundError:
            return  # the table was never created: nothing written

    def secrets(self) -> set[str]:
        """Client secret, codes seen, and every access/refresh token any Key Vault version ever held."""
        found = {self.sandbox.env["BC_CLIENT_SECRET"], *self.extra_secrets}
        for stored in self.sandbox.vault.secrets.values():
            for version in stored.versions:
                found.add(version.value)
                try:
                    data = json.loads(version.value)
                except ValueError:
                    continue
                found.update(str(data[k]) for k in ("access_token", "refresh_token") if data.get(k))
        return {s for s in found if len(s) >= 8}

    def texts(self) -> list[str]:
        """Rendered log messages with their extras and exception text, and row bodies."""
        texts = list(self.table_bodies)
        for record in self.records:
            texts.append(record.getMessage())
            texts.append(repr({k: v for k, v in vars(record).items() if k not in {"msg", "args"}}))
            if record.exc_info:
                texts.append(logging.Formatter().formatException(record.exc_info))
        return texts

    def leaks(self) -> list[str]:
        """Descriptions (never the values) of every secret or JWT found in logs or rows."""
        secrets = self.secrets()
        problems = []
        for index, text in enumerate(self.texts()):
            problems += [f"text #{index} contains a secret of length {len(s)}" for s in secrets if s in text]
            if _JWT.search(text):
                problems.append(f"text #{index} contains a JWT")
        return problems


@pytest.fixture
def audit(sandbox: Sandbox) -> Iterator[Audit]:
    """Collect log records and Table writes of one test; fail the test at teardown on any leak."""
    configure_logging()  # the app's logging policy, as function_app.py applies it at import
    collected = Audit(sandbox)
    handler = _Collector(collected.records)
    root = logging.getLogger()
    previous = root.level
    root.addHandler(handler)
    root.setLevel(logging.DEBUG)
    try:
        yield collected
    finally:
        root.removeHandler(handler)
        root.setLevel(previous)
    assert collected.leaks() == []


@pytest.fixture
def auth_env(sandbox_env: dict[str, str], azurite_connection_string: str) -> dict[str, str]:
    """A delegated connection of its own (table prefix, connection name) on the sandbox + Azurite."""
    suffix = uuid.uuid4().hex[:10]
    return {
        **sandbox_env,
        "JobsStorage": azurite_connection_string,
        "BC_TABLE_PREFIX": f"t{suffix}",
        "BC_CONNECTION_NAME": f"c{suffix}",
        "BC_AUTH_MODE": "delegated",
        "BC_REDIRECT_URI": CALLBACK_URL,
    }


@pytest.fixture
def settings(auth_env: dict[str, str]) -> Settings:
    """The app's settings for that connection."""
    return load_settings(auth_env)


@pytest.fixture
def clock() -> ShiftedClock:
    """A wall clock the test can move forward."""
    return ShiftedClock()


@pytest.fixture
async def services(settings: Settings, clock: ShiftedClock, audit: Audit) -> AsyncIterator[AuthServices]:
    """The production object graph (real MSAL, Key Vault SDK, Table SDK) with a recording Table transport."""
    built = build_auth_services(settings, clock=clock, table_transport=RecordingTransport(audit.table_bodies))
    try:
        yield built
    finally:
        await built.aclose()


@pytest.fixture
def app_env(auth_env: dict[str, str], monkeypatch: pytest.MonkeyPatch) -> Iterator[dict[str, str]]:
    """Make the Function app's own get_settings() see this connection (for calling the triggers)."""
    for key, value in auth_env.items():
        monkeypatch.setenv(key, value)
    get_settings.cache_clear()
    try:
        yield auth_env
    finally:
        get_settings.cache_clear()


@pytest.fixture
def sandbox_tls(sandbox: Sandbox) -> ssl.SSLContext:
    """An SSL context trusting the sandbox CA (for httpx)."""
    return ssl.create_default_context(cafile=str(sandbox.ca_bundle))


@pytest.fixture
async def auth_table(settings: Settings, azurite_connection_string: str) -> AsyncIterator[TableClient]:
    """The connection's auth table, for reading rows directly."""
    client = TableClient.from_connection_string(azurite_connection_string, auth_table_name(settings))
    try:
        yield client
    finally:
        await client.close()


def fingerprint(value: object) -> str:
    """A short SHA-256 of a token or a token set (dicts as sorted JSON): safe in assertion output."""
    text = value if isinstance(value, str) else json.dumps(value, sort_keys=True)
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def stored_token_set(sandbox: Sandbox, settings: Settings) -> dict[str, Any] | None:
    """The connection's token set as Key Vault holds it now (read through the sandbox, not HTTP)."""
    value = sandbox.vault.peek(secret_name(settings.auth.connection_name))
    return None if value is None else dict(json.loads(value))


async def sign_in_via_sandbox(flow: SignInFlow, tls: ssl.SSLContext, audit: Audit) -> None:
    """The delegated sign-in through the flow: start, the sandbox signs the user in, finish."""
    auth_uri = await flow.start(CALLBACK_URL)
    async with httpx.AsyncClient(verify=tls, follow_redirects=False) as client:
        answer = await client.get(auth_uri)
    fields = {
        html.unescape(k): html.unescape(v)
        for k, v in re.findall(r'name="([^"]+)" value="([^"]*)"', answer.text)
    }
    audit.extra_secrets.add(fields["code"])
    await flow.finish(fields)


@dataclass
class AppHost:
    """function_app.py served by devhost (in-process) for one connection: its URL, function key and env."""

    base_url: str
    function_key: str
    env: dict[str, str]

    def headers(self) -> dict[str, str]:
        """The function key as the header (never in a URL that a failure could print)."""
        return {"x-functions-key": self.function_key}


@pytest.fixture
def app_host(auth_env: dict[str, str], audit: Audit) -> Iterator[AppHost]:
    """function_app.py on devhost (the repo's host.json) with this test's connection, callback registered."""
    del audit  # collects (and checks) every record the app logs meanwhile
    port = free_port()
    key = secrets.token_urlsafe(16)
    env = {
        **auth_env,
        "BC_REDIRECT_URI": f"http://127.0.0.1:{port}/api/auth/callback",
        "DEVHOST_FUNCTION_KEY": key,
        "DEVHOST_MASTER_KEY": secrets.token_urlsafe(16),
    }
    get_settings.cache_clear()
    host = DevHost(
        function_app.app,
        env,
        host_config=load_host_config(ROOT / "host.json"),
        port=port,
        shutdown_grace=10,
    )
    host.start()
    try:
        yield AppHost(host.base_url, key, env)
    finally:
        host.stop()
        get_settings.cache_clear()


def sign_in_over_http(app: AppHost, tls: ssl.SSLContext, audit: Audit) -> None:
    """The admin's browser: /api/auth/login -> the sandbox's sign-in page -> form post to /api/auth/callback."""
    login = httpx.get(f"{app.base_url}/api/auth/login", headers=app.headers(), timeout=30)
    assert login.status_code == 302
    page = httpx.get(login.headers["Location"], verify=tls, timeout=30)
    fields = {
        html.unescape(k): html.unescape(v)
        for k, v in re.findall(r'name="([^"]+)" value="([^"]*)"', page.text)
    }
    audit.extra_secrets.add(fields["code"])
    callback = httpx.post(f"{app.base_url}/api/auth/callback", data=fields, timeout=30)
    assert callback.status_code == 200
