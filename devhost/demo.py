"""`make demo`: bring up the local world, run the product on devhost, and walk through what it does.

Azurite + the TLS sandbox + devhost running function_app.py; then the admin signs in once (delegated flow),
the token lands in Key Vault and is refreshed, and a worker calls Business Central with it under the shared
throttle, every call audited. A sequence of named steps sharing one context; each prints a line of
transcript. Cleanups run in reverse order whatever happens.
Exit code 0 when every step passed; 1 with the failing step and its reason otherwise.
"""

from __future__ import annotations

import json
import secrets
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from contextlib import ExitStack
from pathlib import Path

import httpx

from devhost.azurite import Azurite
from devhost.demo_admin import (
    admin_refreshes_now,
    admin_signs_in,
    show_status_after_sign_in,
    show_status_before_sign_in,
)
from devhost.demo_context import DemoContext, DemoError
from devhost.demo_worker import key_vault_and_entra_counters, worker_calls_business_central
from devhost.demo_world import start_sandbox
from devhost.environment import process_environment
from devhost.ports import free_port
from devhost.processes import stop_process
from devhost.waiting import wait_until

REPO_ROOT = Path(__file__).resolve().parent.parent


def start_azurite(context: DemoContext) -> str:
    """Start Azurite's queue and table services on free ports."""
    server = Azurite()
    context.azurite = server.start()
    context.cleanup.callback(server.stop)
    return f"queue :{context.azurite.queue_port}, table :{context.azurite.table_port}"


def start_devhost(context: DemoContext) -> str:
    """Run `python -m devhost` on function_app.py with a random function key for this run."""
    if context.azurite is None:
        raise DemoError("Azurite is not running")
    port = free_port()
    context.function_key = secrets.token_urlsafe(24)
    context.app_environment = {
        **context.sandbox_env,
        "AzureWebJobsStorage": context.azurite.connection_string,
        "JobsStorage": context.azurite.connection_string,
        "BC_AUTH_MODE": "delegated",
        "BC_REDIRECT_URI": f"http://127.0.0.1:{port}/api/auth/callback",
        # As in local.settings.json.example: hourly, so it does not fire during the demo.
        "BC_TOKEN_REFRESH_SCHEDULE": "0 0 * * * *",
    }
    environment = {
        **process_environment(),
        **context.app_environment,
        "DEVHOST_FUNCTION_KEY": context.function_key,
        "DEVHOST_MASTER_KEY": secrets.token_urlsafe(24),
    }
    log_dir = Path(context.cleanup.enter_context(tempfile.TemporaryDirectory(prefix="devhost-demo-")))
    context.devhost_log = log_dir / "devhost.log"
    log = context.cleanup.enter_context(context.devhost_log.open("w", encoding="utf-8"))
    command = [sys.executable, "-m", "devhost", "--port", str(port), "--app", "function_app:app"]
    context.devhost = subprocess.Popen(  # noqa: S603 - fixed argv: this interpreter running devhost
        command, cwd=REPO_ROOT, env=environment, stdout=log, stderr=log, text=True
    )
    context.cleanup.callback(stop_process, context.devhost, 30)
    context.base_url = f"http://127.0.0.1:{port}"
    _wait_until_started(context.devhost, context.devhost_log, timeout=60)
    errors = _function_errors(context.devhost_log)
    note = "".join(f"\n      function in error: {error}" for error in errors)
    return f"{context.base_url} (function key: random for this run){note}"


def _log_records(log: Path) -> list[dict[str, object]]:
    """devhost's JSON log lines so far (other lines skipped)."""
    records = []
    for line in log.read_text(encoding="utf-8", errors="replace").splitlines():
        try:
            record = json.loads(line)
        except json.JSONDecodeError:
            continue
        if isinstance(record, dict):
            records.append(record)
    return records


def _wait_until_started(process: subprocess.Popen[str], log: Path, timeout: float) -> None:
    """Poll devhost's log for its "started" line; fail early if it exits first."""

    def started() -> bool:
        return any(record.get("event") == "started" for record in _log_records(log))

    try:
        wait_until(lambda: started() or process.poll() is not None, timeout=timeout, what="devhost to start")
    except TimeoutError as exc:
        raise DemoError(f"{exc}; its log:\n{_tail(log)}") from None
    if process.poll() is not None:
        raise DemoError(f"devhost exited with {process.returncode}; its log:\n{_tail(log)}")


def _function_errors(log: Path) -> list[str]:
    """The "function is in error" lines devhost logged at start."""
    return [
        f"{record.get('function')}: {record.get('reason')}"
        for record in _log_records(log)
        if record.get("event") == "function_error"
    ]


def call_health(context: DemoContext) -> str:
    """GET /api/health and expect 200 {"status": "ok"}."""
    response = httpx.get(f"{context.base_url}/api/health", timeout=10)
    if response.status_code != 200 or response.json() != {"status": "ok"}:
        raise DemoError(f"health answered {response.status_code} {response.text!r}")
    return f"GET /api/health -> {response.status_code} {response.text}"


def stop_devhost(context: DemoContext) -> str:
    """SIGTERM devhost and expect a clean exit (code 0)."""
    if context.devhost is None:
        raise DemoError("devhost is not running")
    stop_process(context.devhost, 30)
    if context.devhost.returncode != 0:
        log = _tail(context.devhost_log) if context.devhost_log else ""
        raise DemoError(f"devhost exited with {context.devhost.returncode}; its log:\n{log}")
    return "exited 0 after finishing in-flight work"


def logs_hold_no_secrets(context: DemoContext) -> str:
    """devhost's log (every function invocation above) holds no client secret, JWT or auth code."""
    if context.devhost_log is None:
        raise DemoError("devhost has no log")
    text = context.devhost_log.read_text(encoding="utf-8", errors="replace")
    secret = context.sandbox_env.get("BC_CLIENT_SECRET", "")
    leaks = [
        name
        for name, found in (("client secret", secret and secret in text), ("JWT", "eyJ" in text))
        if found
    ]
    if leaks:
        raise DemoError(f"devhost's log contains: {', '.join(leaks)}")
    return f"{len(text.splitlines())} log lines checked: no client secret, no JWT"


STEPS: list[Callable[[DemoContext], str]] = [
    start_azurite,
    start_sandbox,
    start_devhost,
    call_health,
    show_status_before_sign_in,
    admin_signs_in,
    show_status_after_sign_in,
    admin_refreshes_now,
    worker_calls_business_central,
    key_vault_and_entra_counters,
    logs_hold_no_secrets,
    stop_devhost,
]


def _tail(path: Path, lines: int = 20) -> str:
    if not path.exists():
        return "(no log)"
    return "\n".join(path.read_text(encoding="utf-8", errors="replace").splitlines()[-lines:])


def run(steps: list[Callable[[DemoContext], str]], out: Callable[[str], None] = print) -> int:
    """Run the steps in order, print a transcript, clean up; 0 if all passed."""
    out("demo: Azurite + TLS sandbox (Entra ID, Key Vault, BC) + devhost running function_app.py")
    with ExitStack() as cleanup:
        context = DemoContext(cleanup)
        for number, step in enumerate(steps, start=1):
            title = (step.__doc__ or step.__name__).splitlines()[0]
            started = time.monotonic()
            try:
                outcome = step(context)
            except Exception as exc:
                out(f"[{number}/{len(steps)}] {step.__name__}: FAILED - {exc}")
                out(f"demo failed at step '{step.__name__}' ({title})")
                return 1
            out(f"[{number}/{len(steps)}] {step.__name__} ({time.monotonic() - started:.1f}s): {outcome}")
    out(
        "demo passed: signed in, token in Key Vault and refreshed, BC called under the throttle, shut down cleanly"
    )
    return 0


if __name__ == "__main__":
    sys.exit(run(STEPS))
