"""The soak's local world: a file-backed Azurite, an in-process sandbox and devhost worker processes.

Azurite keeps its data in the run's folder (`Azurite(location=...)`), so restarting it mid-run is a storage
outage, not a data loss. The sandbox runs in this process: its own counters (peak in flight per identity) and
records are what the soak checks the product against. Each worker is `python -m devhost` serving function_app.py
on a fixed port (a restart after SIGKILL comes back on the same one); its log lines go to a file per start.
"""

from __future__ import annotations

import contextlib
import re
import secrets
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
from azure.core.exceptions import ResourceExistsError, ResourceNotFoundError
from azure.data.tables import TableClient, TableServiceClient
from azure.storage.queue import QueueClient, QueueServiceClient

from bcjobs import JOBS_QUEUE, POISON_QUEUE, RESULTS_QUEUE
from devhost.environment import process_environment
from localworld.azurite import Azurite, AzuriteEndpoints
from localworld.instances import devhost_command
from localworld.polling import wait_until
from localworld.ports import free_port, wait_for_port
from localworld.processes import stop_process
from localworld.sign_in import authorize, submit
from sandbox import Sandbox, SandboxConfig
from soak.config import SoakConfig
from soak.plan import Seeds, seed_counts

ROOT = Path(__file__).resolve().parents[1]
_VERIFIER = re.compile(r'"code_verifier"\s*:\s*"([^"]+)"')


@dataclass
class Worker:
    """One devhost process slot: its port, the running process and the log file of every start."""

    index: int
    port: int
    process: subprocess.Popen[bytes] | None = None
    logs: list[Path] = field(default_factory=list)

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def alive(self) -> bool:
        return self.process is not None and self.process.poll() is None


@dataclass
class SignIn:
    """What the admin's sign-in handed around: secrets the sweep must never find anywhere."""

    code: str
    verifier: str
    pages: list[str]  # the app's HTTP answers during the sign-in (the callback's page)


class World:
    """Starts and stops everything the soak runs against; owns the chaos levers on storage and workers."""

    def __init__(self, config: SoakConfig, run_id: str, work_dir: Path) -> None:
        self.config = config
        self.run_id = run_id
        self.work_dir = work_dir
        self.azurite = Azurite(location=work_dir / "azurite")
        self.sandbox = Sandbox(
            SandboxConfig(
                seed=config.seed,
                token_lifetime_seconds=config.token_lifetime_seconds,
                bc_rate_limit=config.bc_rate_limit,
                bc_latency_ms=config.bc_latency_ms,
                bc_latency_jitter_ms=config.bc_latency_jitter_ms,
                **seed_counts(config),  # type: ignore[arg-type]
            )
        )
        self.endpoints: AzuriteEndpoints | None = None
        self.function_key = secrets.token_urlsafe(24)
        self.master_key = secrets.token_urlsafe(24)
        self.prefix = f"s{run_id}"
        self.connection = f"soak-{run_id}"
        self.workers = [Worker(index, free_port()) for index in range(config.workers)]
        # Absent on purpose: devhost then reads no local.settings.json (a developer's file stays out of the run).
        self._settings_file = work_dir / "no-local-settings.json"

    # -- lifecycle -------------------------------------------------------------------------------------------

    def start(self) -> None:
        """Azurite, the sandbox, the queues, then every worker (each answering /api/health)."""
        self.endpoints = self.azurite.start()
        self.sandbox.start()
        with QueueServiceClient.from_connection_string(self.connection_string) as service:
            for name in (JOBS_QUEUE, POISON_QUEUE, RESULTS_QUEUE):
                with contextlib.suppress(ResourceExistsError):
                    service.create_queue(name)
        for worker in self.workers:
            self._first_start(worker)

    def _first_start(self, worker: Worker) -> None:
        """Start a worker on a port chosen now, not at construction (Azurite and the sandbox took ports since), and
        on another one if some process took it before devhost bound it: free_port only knows it was free a moment
        ago. Restarts keep the port: worker 0's is in every worker's redirect URI."""
        for _ in range(3):
            worker.port = free_port()
            try:
                self.start_worker(worker)
                return
            except RuntimeError:
                if worker.alive or "cannot listen on" not in _log_tail(worker):
                    raise
        raise RuntimeError(f"worker {worker.index} found no free port in 3 tries: {_log_tail(worker)}")

    def stop(self) -> None:
        """Workers first (SIGTERM: in-flight invocations finish), then the sandbox and Azurite."""
        for worker in self.workers:
            if worker.process is not None:
                stop_process(worker.process, grace_seconds=20)
        self.sandbox.stop()
        self.azurite.stop()

    @property
    def connection_string(self) -> str:
        if self.endpoints is None:
            raise RuntimeError("the world is not started")
        return self.endpoints.connection_string

    def environment(self) -> dict[str, str]:
        """What every worker gets: the sandbox's settings, storage, delegated mode and a fast retry policy."""
        config = self.config
        return {
            **process_environment(),
            **self.sandbox.env,
            "JobsStorage": self.connection_string,
            "BC_TABLE_PREFIX": self.prefix,
            "BC_CONNECTION_NAME": self.connection,
            "BC_AUTH_MODE": "delegated",
            "BC_REDIRECT_URI": f"{self.workers[0].base_url}/api/auth/callback",
            "BC_TOKEN_REFRESH_SCHEDULE": "0 0 * * * *",
            "BC_RATE_LIMIT_REQUESTS": str(config.bc_rate_limit),
            "BC_JOB_MAX_ATTEMPTS": str(config.max_attempts),
            "BC_JOB_BACKOFF_BASE_SECONDS": str(config.backoff_base_seconds),
            "BC_JOB_BACKOFF_CAP_SECONDS": str(config.backoff_cap_seconds),
            "BC_JOB_AUTHORIZATION_RECHECK_SECONDS": "5",
            "BC_JOB_CLAIM_LEASE_SECONDS": str(config.claim_lease_seconds),
            "DEVHOST_MESSAGE_LEASE_SECONDS": str(config.message_lease_seconds),
            "DEVHOST_FUNCTION_KEY": self.function_key,
            "DEVHOST_MASTER_KEY": self.master_key,
        }

    def start_worker(self, worker: Worker) -> None:
        """Start (or restart) a worker on its port; returns once /api/health answers."""
        log = self.work_dir / f"worker-{worker.index}-{len(worker.logs)}.log"
        worker.logs.append(log)
        command = devhost_command(
            worker.port,
            "function_app:app",
            "--settings",
            str(self._settings_file),
            "--host-json",
            str(ROOT / "host.json"),
        )
        with log.open("ab") as sink:
            worker.process = subprocess.Popen(  # noqa: S603 - our own interpreter and module
                command, cwd=ROOT, env=self.environment(), stdout=sink, stderr=sink
            )
        wait_for_port("127.0.0.1", worker.port, timeout=60)
        wait_until(lambda: _healthy(worker), timeout=60, what=f"worker {worker.index} to answer /api/health")

    def kill_worker(self, worker: Worker) -> None:
        """SIGKILL: no shutdown, no settling of its messages, its claims left to expire."""
        if worker.process is not None:
            worker.process.kill()
            worker.process.wait(timeout=30)

    def restart_azurite(self, down_seconds: float) -> None:
        """Stop Azurite (it saves its data) and start it again on the same ports `down_seconds` later."""
        self.endpoints = self.azurite.restart(down_seconds=down_seconds)

    def live_workers(self) -> list[Worker]:
        return [worker for worker in self.workers if worker.alive]

    # -- the admin's sign-in ---------------------------------------------------------------------------------

    def sign_in(self) -> SignIn:
        """/api/auth/login on worker 0 → the sandbox's sign-in page → the form post to /api/auth/callback.

        Before the callback, the pending sign-in's row is read for its PKCE verifier (a secret to sweep for).
        """
        worker = self.workers[0]
        form = authorize(worker.base_url, self.function_key, str(self.sandbox.ca_bundle))
        verifiers = [
            match
            for row in self.rows("auth")
            for value in row.values()
            if isinstance(value, str)
            for match in _VERIFIER.findall(value)
        ]
        callback = submit(form)
        if not verifiers:
            raise RuntimeError("the pending sign-in row holds no PKCE verifier to sweep for")
        return SignIn(code=form.fields["code"], verifier=verifiers[0], pages=[callback.text])

    # -- reading storage -------------------------------------------------------------------------------------

    def table(self, suffix: str) -> TableClient:
        return TableClient.from_connection_string(self.connection_string, f"{self.prefix}{suffix}")

    def queue(self, name: str) -> QueueClient:
        return QueueClient.from_connection_string(self.connection_string, name)

    def rows(self, suffix: str, query: str | None = None) -> list[dict[str, Any]]:
        """Rows of one of the app's tables (all, or those matching an OData filter); [] if it does not exist."""
        with self.table(suffix) as table:
            try:
                found = table.query_entities(query) if query else table.list_entities()
                return [dict(row) for row in found]
            except ResourceNotFoundError:
                return []

    def every_table_row(self) -> Iterator[tuple[str, dict[str, Any]]]:
        """(table name, row) of every table in the account."""
        with TableServiceClient.from_connection_string(self.connection_string) as service:
            names = [table.name for table in service.list_tables()]
        for name in names:
            with TableClient.from_connection_string(self.connection_string, name) as table:
                for row in table.list_entities():
                    yield name, dict(row)

    def seeds(self) -> Seeds:
        """The seeded records the plan acts on."""
        bc = self.sandbox.bc
        customers = sorted(bc.records("customers"), key=lambda row: str(row["number"]))
        items = sorted(bc.records("items"), key=lambda row: str(row["number"]))
        invoices = [row for row in bc.records("salesInvoices") if row.get("status") == "Draft"]
        return Seeds(
            customers=[str(row["id"]) for row in customers],
            customer_numbers=[str(row["number"]) for row in customers],
            items=[str(row["id"]) for row in items],
            item_numbers=[str(row["number"]) for row in items],
            vendors=[str(row["id"]) for row in bc.records("vendors")],
            invoices=[str(row["id"]) for row in invoices],
        )


def _healthy(worker: Worker) -> bool:
    if not worker.alive:
        raise RuntimeError(
            f"worker {worker.index} exited with {worker.process and worker.process.returncode}; "
            f"the end of its log:\n{_log_tail(worker)}"
        )
    try:
        return httpx.get(f"{worker.base_url}/api/health", timeout=5).status_code == 200
    except httpx.HTTPError:
        return False


def _log_tail(worker: Worker, lines: int = 40) -> str:
    """The last lines of the worker's latest log (devhost's own errors land there); "" before it has one."""
    if not worker.logs or not worker.logs[-1].exists():
        return ""
    return "\n".join(worker.logs[-1].read_text(errors="replace").splitlines()[-lines:])
