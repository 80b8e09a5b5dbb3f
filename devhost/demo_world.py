"""The local world as processes: the sandbox (Entra ID, Key Vault, BC over TLS) and devhost workers.

Used by the demo's steps and by the benchmarks (bench/), which start the same processes with other knobs:
`SandboxProcess` runs `python -m sandbox` and talks to its admin endpoints; `WorkerPool` runs N
`python -m devhost` processes on one app (one process = one worker sharing the BC throttle through Table Storage).
"""

from __future__ import annotations

import contextlib
import json
import secrets
import ssl
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx

from devhost.demo_context import DemoContext, DemoError
from devhost.environment import process_environment
from devhost.infra_settings import undecided
from devhost.ports import free_port
from devhost.processes import stop_process
from devhost.waiting import wait_until

REPO_ROOT = Path(__file__).resolve().parent.parent


def read_env_file(path: Path) -> dict[str, str]:
    """KEY=VALUE lines (the sandbox's env file) as a dict."""
    pairs = (line.split("=", 1) for line in path.read_text(encoding="utf-8").splitlines() if "=" in line)
    return {key.strip(): value.strip() for key, value in pairs}


def log_records(log: Path) -> list[dict[str, Any]]:
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


def tail(path: Path, lines: int = 20) -> str:
    """The last lines of a log file."""
    if not path.exists():
        return "(no log)"
    return "\n".join(path.read_text(encoding="utf-8", errors="replace").splitlines()[-lines:])


class SandboxProcess:
    """`python -m sandbox` with extra CLI flags; its env file, admin endpoints and log."""

    def __init__(self, folder: Path, flags: Sequence[str] = ()) -> None:
        self.folder = folder
        self.flags = list(flags)
        self.env_file = folder / "sandbox.env"
        self.log = folder / "sandbox.log"
        self.env: dict[str, str] = {}
        self.process: subprocess.Popen[bytes] | None = None
        self._admin: httpx.Client | None = None

    def start(self, timeout: float = 60) -> dict[str, str]:
        """Start it and wait for its env file; the env (CA, URLs, app registration, admin URL)."""
        command = [sys.executable, "-m", "sandbox", "--env-file", str(self.env_file), *self.flags]
        with self.log.open("wb") as sink:
            self.process = subprocess.Popen(command, cwd=REPO_ROOT, stdout=sink, stderr=sink)  # noqa: S603
        process = self.process
        with contextlib.suppress(TimeoutError):  # reported below with the sandbox's log
            wait_until(
                lambda: self.env_file.exists() or process.poll() is not None, timeout=timeout, what="sandbox"
            )
        if not self.env_file.exists():
            self.stop()
            raise DemoError(f"the sandbox did not start: {tail(self.log)}")
        self.env = read_env_file(self.env_file)
        verify = ssl.create_default_context(cafile=self.env["LOCAL_CA_BUNDLE"])
        self._admin = httpx.Client(
            base_url=self.env["SANDBOX_ADMIN_URL"].rstrip("/"), verify=verify, timeout=30
        )
        return self.env

    @property
    def pid(self) -> int:
        """The sandbox's process id."""
        if self.process is None:
            raise DemoError("the sandbox is not running")
        return self.process.pid

    def admin(self, path: str, payload: dict[str, Any] | None = None) -> dict[str, Any]:
        """GET (no payload) or POST one of the admin endpoints (sandbox/admin.py); its JSON answer."""
        if self._admin is None:
            raise DemoError("the sandbox is not running")
        response = self._admin.get(path) if payload is None else self._admin.post(path, json=payload)
        if response.status_code != 200:
            raise DemoError(f"sandbox admin {path} answered {response.status_code}: {response.text[:300]}")
        answer: dict[str, Any] = response.json()
        return answer

    def stats(self) -> dict[str, Any]:
        """Counters of Entra, Key Vault and BC."""
        return self.admin("/stats")

    def stop(self) -> None:
        """SIGTERM, then SIGKILL after the grace."""
        if self._admin is not None:
            self._admin.close()
            self._admin = None
        if self.process is not None:
            stop_process(self.process)


@dataclass
class WorkerPool:
    """N devhost processes running one app with the same settings (each its own port and log)."""

    settings: dict[str, str] = field(repr=False)  # app settings (secrets among them)
    log_dir: Path
    count: int = 1
    # The platform's environment beside the settings (IDENTITY_ENDPOINT/HEADER, SSL_CERT_FILE for a managed identity).
    platform: dict[str, str] = field(default_factory=dict, repr=False)
    # True: the runner's own values of what a production-settings run decides (infra_settings.DECIDED_PREFIXES, e.g.
    # a JobsStorage exported in the shell) stay out, so the workers get exactly the settings given.
    production: bool = False
    app: str = "function_app:app"
    functions: tuple[str, ...] = ()  # serve only these (devhost --functions), e.g. one Flex function group
    function_key: str = field(default_factory=lambda: secrets.token_urlsafe(24), repr=False)
    ports: list[int] = field(default_factory=list)
    logs: list[Path] = field(default_factory=list)
    processes: list[subprocess.Popen[bytes]] = field(default_factory=list)
    _master_key: str = field(default_factory=lambda: secrets.token_urlsafe(24), repr=False)

    def reserve_ports(self) -> list[int]:
        """Pick the ports first (the delegated redirect URI names the first worker's)."""
        if not self.ports:
            self.ports = [free_port() for _ in range(self.count)]
        return self.ports

    def environment(self) -> dict[str, str]:
        """A worker process's environment: the runner's, the platform's, the app settings, devhost's keys."""
        runner = process_environment()
        return {
            **(undecided(runner) if self.production else runner),
            **self.platform,
            **self.settings,
            "DEVHOST_FUNCTION_KEY": self.function_key,
            "DEVHOST_MASTER_KEY": self._master_key,
        }

    def start(self, timeout: float = 60) -> WorkerPool:
        """Start every worker at once; return when each logged "started" (DemoError with its log otherwise)."""
        environment = self.environment()
        for index, port in enumerate(self.reserve_ports()):
            log = self.log_dir / f"worker-{index + 1}.log"
            command = [sys.executable, "-m", "devhost", "--port", str(port), "--app", self.app]
            command += ["--functions", ",".join(self.functions)] if self.functions else []
            with log.open("wb") as sink:
                process = subprocess.Popen(  # noqa: S603 - fixed argv: this interpreter running devhost
                    command, cwd=REPO_ROOT, env=environment, stdout=sink, stderr=sink
                )
            self.processes.append(process)
            self.logs.append(log)
        for process, log in zip(self.processes, self.logs, strict=True):
            _wait_until_started(process, log, timeout)
        return self

    @property
    def base_url(self) -> str:
        """The first worker's HTTP address (any worker serves the app's routes)."""
        return f"http://127.0.0.1:{self.reserve_ports()[0]}"

    @property
    def pids(self) -> list[int]:
        """Process ids of the running workers."""
        return [process.pid for process in self.processes]

    def function_errors(self) -> list[str]:
        """The "function is in error" lines the workers logged at start."""
        return sorted(
            {
                f"{record.get('function')}: {record.get('reason')}"
                for log in self.logs
                for record in log_records(log)
                if record.get("event") == "function_error"
            }
        )

    def stop(self, grace: float = 30) -> list[int]:
        """SIGTERM every worker at once (in-flight work finishes), SIGKILL after the grace; their exit codes."""
        for process in self.processes:
            if process.poll() is None:
                process.terminate()
        deadline = time.monotonic() + grace
        for process in self.processes:
            try:  # once: a second SIGTERM would cut the first one's graceful stop short
                process.wait(timeout=max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
        return [process.returncode for process in self.processes]


def _wait_until_started(process: subprocess.Popen[bytes], log: Path, timeout: float) -> None:
    """Poll devhost's log for its "started" line; fail early if it exits first."""

    def started() -> bool:
        return any(record.get("event") == "started" for record in log_records(log))

    try:
        wait_until(lambda: started() or process.poll() is not None, timeout=timeout, what="devhost to start")
    except TimeoutError as exc:
        raise DemoError(f"{exc}; its log:\n{tail(log)}") from None
    if process.poll() is not None:
        raise DemoError(f"devhost exited with {process.returncode}; its log:\n{tail(log)}")


def start_sandbox(context: DemoContext) -> str:
    """Run `python -m sandbox` (BC latency, a fixed token lifetime) and wait for its env file."""
    folder = Path(context.cleanup.enter_context(tempfile.TemporaryDirectory(prefix="sandbox-demo-")))
    sandbox = SandboxProcess(folder, context.options.sandbox_flags())
    context.cleanup.callback(sandbox.stop)
    context.sandbox_env = sandbox.start()
    context.sandbox = sandbox
    env = context.sandbox_env
    return (
        f"Entra {env['BC_AUTHORITY_HOST']}, Key Vault {env['KEY_VAULT_URL']}, BC {env['BC_API_BASE_URL']} "
        f"(TLS from a local CA; test user {env.get('SANDBOX_USER', '?')}; {' '.join(sandbox.flags)})"
    )
