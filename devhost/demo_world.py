"""Demo steps that bring up the sandbox (Entra ID, Key Vault, BC over TLS) as its own process."""

from __future__ import annotations

import contextlib
import subprocess
import sys
import tempfile
from pathlib import Path

from devhost.demo_context import DemoContext, DemoError
from devhost.processes import stop_process
from devhost.waiting import wait_until

REPO_ROOT = Path(__file__).resolve().parent.parent


def read_env_file(path: Path) -> dict[str, str]:
    """KEY=VALUE lines (the sandbox's env file) as a dict."""
    pairs = (line.split("=", 1) for line in path.read_text(encoding="utf-8").splitlines() if "=" in line)
    return {key.strip(): value.strip() for key, value in pairs}


def start_sandbox(context: DemoContext) -> str:
    """Run `python -m sandbox` and wait for its env file (CA, Entra, Key Vault and BC URLs, app registration)."""
    folder = Path(context.cleanup.enter_context(tempfile.TemporaryDirectory(prefix="sandbox-demo-")))
    env_file = folder / "sandbox.env"
    log = context.cleanup.enter_context((folder / "sandbox.log").open("wb"))
    command = [sys.executable, "-m", "sandbox", "--env-file", str(env_file)]
    process = subprocess.Popen(command, cwd=REPO_ROOT, stdout=log, stderr=log)  # noqa: S603 - fixed argv
    context.cleanup.callback(stop_process, process)
    with contextlib.suppress(TimeoutError):  # reported below with the sandbox's log
        wait_until(lambda: env_file.exists() or process.poll() is not None, timeout=60, what="the sandbox")
    if not env_file.exists():
        raise DemoError(f"the sandbox did not start: {(folder / 'sandbox.log').read_text()[-2000:]}")
    context.sandbox_env = read_env_file(env_file)
    env = context.sandbox_env
    return (
        f"Entra {env['BC_AUTHORITY_HOST']}, Key Vault {env['KEY_VAULT_URL']}, BC {env['BC_API_BASE_URL']} "
        f"(TLS from a local CA; test user {env.get('SANDBOX_USER', '?')})"
    )
