"""devhost instances as processes: `InstancePool` runs N `python -m devhost` processes on one app (one process
= one worker sharing the BC throttle through Table Storage), each on its own port with its own log.

Used by the demo's steps and by the benchmarks (bench/), which start the same processes with other knobs.
"""

from __future__ import annotations

import secrets
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

from devhost.environment import process_environment
from localworld.errors import WorldError
from localworld.infra_settings import undecided
from localworld.polling import wait_until
from localworld.ports import free_port
from localworld.processes import REPO_ROOT, log_records, tail


def devhost_command(port: int, app: str = "function_app:app", *options: str) -> list[str]:
    """The command line of one devhost instance: this interpreter running `python -m devhost` on `app`."""
    return [sys.executable, "-m", "devhost", "--port", str(port), "--app", app, *options]


@dataclass
class InstancePool:
    """N devhost instances (`python -m devhost` processes) running one app with the same settings (each its own
    port and log)."""

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

    def start(self, timeout: float = 60) -> InstancePool:
        """Start every worker at once; return when each logged "started" (WorldError with its log otherwise)."""
        environment = self.environment()
        for index, port in enumerate(self.reserve_ports()):
            log = self.log_dir / f"worker-{index + 1}.log"
            functions = ["--functions", ",".join(self.functions)] if self.functions else []
            command = devhost_command(port, self.app, *functions)
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
        raise WorldError(f"{exc}; its log:\n{tail(log)}") from None
    if process.poll() is not None:
        raise WorldError(f"devhost exited with {process.returncode}; its log:\n{tail(log)}")
