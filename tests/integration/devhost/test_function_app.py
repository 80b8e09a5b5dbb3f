"""function_app.py under `python -m devhost` as a process: the cold-start settings check, health, the routes'
answers to bad settings, the default refresh schedule, and a stop that leaves no unclosed SDK session."""

from __future__ import annotations

import json
import secrets
import signal
import subprocess
import sys
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

from devhost.environment import process_environment
from localworld.azurite import AzuriteEndpoints
from localworld.ports import free_port, wait_for_port

pytestmark = pytest.mark.integration

REPO_ROOT = Path(__file__).resolve().parents[3]
# Settings the test decides; anything of them in the test runner's own environment is dropped.
_PREFIXES = ("BC_", "KEY_VAULT_", "LOCAL_CA_BUNDLE", "JobsStorage", "AzureWebJobs", "DEVHOST_", "WEBSITE_")


@dataclass
class Running:
    """A devhost process serving function_app.py."""

    process: subprocess.Popen[str]
    base_url: str
    key: str

    def get(self, path: str) -> httpx.Response:
        return httpx.get(f"{self.base_url}{path}", headers={"x-functions-key": self.key}, timeout=30)

    def post(self, path: str) -> httpx.Response:
        return httpx.post(f"{self.base_url}{path}", headers={"x-functions-key": self.key}, timeout=30)

    def stop(self) -> tuple[int, str]:
        """SIGTERM; the exit code and everything it wrote to stderr."""
        self.process.send_signal(signal.SIGTERM)
        _, stderr = self.process.communicate(timeout=60)
        return self.process.returncode, stderr


StartApp = Callable[[dict[str, str]], Running]


@pytest.fixture
def run_app(tmp_path: Path) -> Iterator[StartApp]:
    """Start `python -m devhost` on function_app.py with exactly the given settings (no local.settings.json)."""
    started: list[subprocess.Popen[str]] = []

    def start(settings: dict[str, str]) -> Running:
        port = free_port()
        key = secrets.token_urlsafe(16)
        environment = {
            **{k: v for k, v in process_environment().items() if not k.startswith(_PREFIXES)},
            **settings,
            "DEVHOST_FUNCTION_KEY": key,
        }
        command = [
            sys.executable, "-m", "devhost", "--port", str(port), "--app", "function_app:app",
            "--settings", str(tmp_path / "absent.json"), "--host-json", str(REPO_ROOT / "host.json"),
        ]  # fmt: skip
        process = subprocess.Popen(
            command,
            cwd=REPO_ROOT,
            env=environment,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            text=True,
        )
        started.append(process)
        wait_for_port("127.0.0.1", port, timeout=60)
        return Running(process, f"http://127.0.0.1:{port}", key)

    yield start
    for process in started:
        if process.poll() is None:
            process.kill()
            process.communicate()


def _records(stderr: str) -> list[dict[str, object]]:
    return [json.loads(line) for line in stderr.splitlines() if line.startswith("{")]


def _workers_started(records: list[dict[str, object]]) -> int:
    return sum(
        1
        for r in records
        if str(r["message"]).startswith("Worker process ") and "started" in str(r["message"])
    )


def test_bad_settings_are_named_at_cold_start_in_health_and_by_the_routes(
    run_app: StartApp, azurite: AzuriteEndpoints, tmp_path: Path
) -> None:
    """No BC_TENANT_ID, a malformed KEY_VAULT_URL, a stale LOCAL_CA_BUNDLE, delegated without BC_REDIRECT_URI:
    one ERROR at start naming each; health says degraded with the same reasons; the auth routes answer 500 with
    a JSON body naming the settings; no BC_TOKEN_REFRESH_SCHEDULE and the timer still indexes (the default)."""
    stale = tmp_path / "bc-sandbox-old" / "sandbox-ca.pem"
    app = run_app(
        {
            "JobsStorage": azurite.connection_string,
            "BC_AUTH_MODE": "delegated",
            "BC_CLIENT_ID": "client",
            "BC_CLIENT_SECRET": "s3cr3t-value",
            "KEY_VAULT_URL": "my vault",
            "LOCAL_CA_BUNDLE": str(stale),
        }
    )
    expected = ["BC_TENANT_ID", "KEY_VAULT_URL", "LOCAL_CA_BUNDLE", "BC_REDIRECT_URI"]

    health = httpx.get(f"{app.base_url}/api/health", timeout=30).json()
    status = app.get("/api/auth/status")
    refresh = app.post("/api/auth/refresh")
    login = app.get("/api/auth/login")
    code, stderr = app.stop()

    assert health["status"] == "degraded"
    assert health["settings"] == expected
    assert any(str(stale) in problem for problem in health["problems"])
    for answer in (status, refresh):
        assert answer.status_code == 500
        assert answer.json()["settings"] == expected[:3]  # sign-in's setting is not theirs
    assert login.status_code == 500
    assert login.json()["settings"] == expected
    assert code == 0
    records = _records(stderr)
    cold_start = [r for r in records if r["logger"] == "shared.settings" and r["level"] == "ERROR"]
    # Once per process that imports the app: devhost itself (to read its functions) and each worker process.
    assert len(cold_start) == 1 + _workers_started(records)
    assert all(name in str(record["message"]) for record in cold_start for name in expected)
    in_error = [r.get("function") for r in records if r.get("event") == "function_error"]
    assert "token_refresh" not in in_error
    assert "s3cr3t-value" not in stderr


def test_an_invalid_value_is_named_at_cold_start_and_by_the_routes(
    run_app: StartApp, azurite: AzuriteEndpoints
) -> None:
    """BC_AUTH_MODE=foo: the cold-start ERROR and the routes' 500 name BC_AUTH_MODE and the values it takes."""
    app = run_app({"JobsStorage": azurite.connection_string, "BC_AUTH_MODE": "foo"})

    health = httpx.get(f"{app.base_url}/api/health", timeout=30).json()
    status = app.get("/api/auth/status")
    code, stderr = app.stop()

    assert health["settings"] == ["BC_AUTH_MODE"]
    assert status.status_code == 500
    assert status.json()["settings"] == ["BC_AUTH_MODE"]
    assert "set it to client_credentials or delegated" in status.json()["message"]
    records = _records(stderr)
    cold_start = [r for r in records if r["logger"] == "shared.settings" and r["level"] == "ERROR"]
    assert len(cold_start) == 1 + _workers_started(records)
    assert all("BC_AUTH_MODE is invalid" in str(record["message"]) for record in cold_start)
    assert code == 0


def test_stop_after_auth_calls_leaves_no_unclosed_session(
    run_app: StartApp, azurite: AzuriteEndpoints, sandbox_env: dict[str, str]
) -> None:
    """After the auth routes used Key Vault, Table Storage and Entra, SIGTERM exits 0 without aiohttp's
    "Unclosed client session" / "Exception ignored ... ClientSession.__del__" noise (close_services ran)."""
    app = run_app(
        {
            **sandbox_env,
            "JobsStorage": azurite.connection_string,
            "BC_AUTH_MODE": "client_credentials",
            "BC_TABLE_PREFIX": f"s{secrets.token_hex(4)}",
        }
    )

    assert app.post("/api/auth/refresh").status_code == 200  # client credentials: Entra, Key Vault, the table
    assert app.get("/api/auth/status").json()["has_token"] is True
    code, stderr = app.stop()

    assert code == 0
    for noise in ("Unclosed client session", "Unclosed connector", "Exception ignored"):
        assert noise not in stderr
    assert _records(stderr)[-1].get("event") == "stopped"
