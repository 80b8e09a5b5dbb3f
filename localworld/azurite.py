"""Start Azurite's queue and table services (from node_modules) on free loopback ports, and stop them.

Flags per the reference: nothing left on disk (the table service in memory, the queue service in a temporary
folder removed on stop, see `_persistence`), --skipApiVersionCheck because azure-storage-queue 12.18 sends an
x-ms-version newer than Azurite 3.35 knows, telemetry off.

`Azurite(oauth=AzuriteTls(cert, key))` serves HTTPS with that certificate and `--oauth basic`, so the SDKs can
authenticate with bearer tokens (Azurite README, "OAuth Configuration": OAuth needs HTTPS). Basic OAuth checks a
token's issuer prefix (https://sts.windows.net/...), its audience (https://storage.azure.com or the account's
service URL) and nbf/exp against the wall clock, not its signature (dist/src/queue/authentication/
QueueTokenAuthenticator.js, TableTokenAuthenticator.js); shared-key requests still work.

`Azurite(location=DIR)` keeps the data in DIR instead (`--location`, no --inMemoryPersistence), so `restart()`
(stop, then start again on the same ports) finds every queue message and Table row it had: what a reliability
run needs to restart storage under a running app. An in-memory Azurite loses everything on a restart.
"""

from __future__ import annotations

import contextlib
import shutil
import signal
import subprocess
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType

from localworld.errors import WorldError
from localworld.ports import free_port, wait_for_port
from localworld.processes import stop_process

REPO_ROOT = Path(__file__).resolve().parent.parent
# The well-known development account key (public; Azurite accepts only it).
ACCOUNT = "devstoreaccount1"
ACCOUNT_KEY = "Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw=="


@dataclass(frozen=True, slots=True)
class AzuriteEndpoints:
    """Where a running Azurite answers."""

    host: str
    queue_port: int
    table_port: int
    scheme: str = "http"  # https when started with a certificate (and OAuth)

    @property
    def queue_service_uri(self) -> str:
        """The queue service's URL (path-style account, as Azurite serves it): a `__queueServiceUri` value."""
        return f"{self.scheme}://{self.host}:{self.queue_port}/{ACCOUNT}"

    @property
    def table_service_uri(self) -> str:
        """The table service's URL: a `__tableServiceUri` value."""
        return f"{self.scheme}://{self.host}:{self.table_port}/{ACCOUNT}"

    @property
    def connection_string(self) -> str:
        """An explicit connection string both QueueServiceClient and TableServiceClient accept."""
        return (
            f"DefaultEndpointsProtocol={self.scheme};AccountName={ACCOUNT};AccountKey={ACCOUNT_KEY};"
            f"QueueEndpoint={self.queue_service_uri};TableEndpoint={self.table_service_uri};"
        )


@dataclass(frozen=True, slots=True)
class AzuriteTls:
    """The PEM certificate and key Azurite serves HTTPS with (the sandbox's: sandbox.tls.server_cert/_key)."""

    cert: Path
    key: Path


class AzuriteNotInstalledError(WorldError, RuntimeError):
    """node_modules has no Azurite: run `npm ci` (make does it)."""


class AzuriteExitedError(WorldError, RuntimeError):
    """An Azurite process exited while starting (its stderr is in the message)."""


class Azurite:
    """Context manager owning two Azurite processes (queue, table)."""

    def __init__(
        self, host: str = "127.0.0.1", location: Path | None = None, oauth: AzuriteTls | None = None
    ) -> None:
        self._host = host
        self._oauth = oauth  # None: plain HTTP, shared key only (the default)
        self._location = location  # None: in memory (the default); a folder: data kept there across restarts
        self._processes: list[subprocess.Popen[bytes]] = []
        self._workdir: tempfile.TemporaryDirectory[str] | None = None
        self.endpoints: AzuriteEndpoints | None = None

    def start(self, timeout: float = 60.0) -> AzuriteEndpoints:
        """Start both services and wait until they accept connections."""
        queue_port, table_port = free_port(self._host), free_port(self._host)
        return self._start_on(queue_port, table_port, timeout)

    def restart(self, timeout: float = 60.0, down_seconds: float = 0.0) -> AzuriteEndpoints:
        """Stop both services and start them again on the same ports, `down_seconds` later (a storage outage).

        With a `location` the queues and tables survive (stop() lets Azurite save them); in memory they come
        back empty.
        """
        if self.endpoints is None:
            raise RuntimeError("Azurite is not running")
        endpoints = self.endpoints
        self.stop()
        if down_seconds > 0:
            time.sleep(down_seconds)
        return self._start_on(endpoints.queue_port, endpoints.table_port, timeout)

    def _start_on(self, queue_port: int, table_port: int, timeout: float) -> AzuriteEndpoints:
        self._workdir = tempfile.TemporaryDirectory(prefix="azurite-")
        if self._location is not None:
            self._location.mkdir(parents=True, exist_ok=True)
        self._spawn("queue", queue_port)
        self._spawn("table", table_port)
        for process, port in zip(self._processes, (queue_port, table_port), strict=True):
            self._wait_until_listening(process, port, timeout)
        scheme = "http" if self._oauth is None else "https"
        self.endpoints = AzuriteEndpoints(self._host, queue_port, table_port, scheme)
        return self.endpoints

    def _spawn(self, service: str, port: int) -> None:
        binary = REPO_ROOT / "node_modules" / ".bin" / f"azurite-{service}"
        if not binary.exists() or shutil.which("node") is None:
            raise AzuriteNotInstalledError(f"{binary} not found: run `npm ci` (make test does)")
        workdir = self._workdir.name if self._workdir else None
        command = [
            str(binary),
            f"--{service}Host",
            self._host,
            f"--{service}Port",
            str(port),
            *self._persistence(service),
            *self._oauth_options(),
            "--skipApiVersionCheck",
            "--disableTelemetry",
            "--silent",
        ]
        self._processes.append(
            subprocess.Popen(  # noqa: S603
                command, cwd=workdir, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE
            )
        )

    def _persistence(self, service: str) -> list[str]:
        """Where the service keeps its data: `location`, else the table service in memory and the queue service in
        the work folder (removed on stop, so a restart still comes back empty).

        Why not the queue in memory: there every message is an extent of its own, and the queue's garbage collector
        (every 60 s, node_modules/azurite/dist/src/queue/gc/QueueGCManager.js) removes each deleted message's extent
        with a scan of the extent collection (common/persistence/LokiExtentMetadataStore.js `deleteExtent`:
        `findAndRemove`), blocking the service meanwhile. After 5,000 messages deleted, one sweep held every queue
        request for 22.7 s; on disk, where messages share extent files, no request took over 0.01 s
        (`python -m bench.azurite_queue_gc`). Azure Storage has no such pause, and it made the bench's 6-process figure
        swing from 0.97 to 0.36 of BC's limit: the workers could neither receive nor settle messages.
        """
        if self._location is not None:
            return ["--location", str(self._location)]
        if service == "queue" and self._workdir is not None:
            return ["--location", str(Path(self._workdir.name) / "queue")]
        return ["--inMemoryPersistence"]

    def _oauth_options(self) -> list[str]:
        if self._oauth is None:
            return []
        return ["--cert", str(self._oauth.cert), "--key", str(self._oauth.key), "--oauth", "basic"]

    def _wait_until_listening(self, process: subprocess.Popen[bytes], port: int, timeout: float) -> None:
        try:
            wait_for_port(self._host, port, timeout)
        except TimeoutError:
            self.stop()
            raise
        if process.poll() is not None:
            error = process.stderr.read().decode(errors="replace") if process.stderr else ""
            self.stop()
            raise AzuriteExitedError(f"Azurite exited with {process.returncode}: {error.strip()}")

    def stop(self) -> None:
        """Terminate the processes (kill after 10 s) and remove the work folder.

        With a `location`, SIGINT first: Azurite's table service saves its data only on SIGINT (SIGTERM ends it
        without a save), the queue service on either.
        """
        for process in self._processes:
            if self._location is None:
                process.terminate()  # both at once; stop_process then waits for each
            elif process.poll() is None:
                process.send_signal(signal.SIGINT)
        for process in self._processes:
            if self._location is not None:
                with contextlib.suppress(subprocess.TimeoutExpired):
                    process.wait(timeout=10)
            stop_process(process, grace_seconds=10)
            if process.stderr is not None:
                process.stderr.close()
        self._processes.clear()
        if self._workdir is not None:
            self._workdir.cleanup()
            self._workdir = None

    def __enter__(self) -> AzuriteEndpoints:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()
