"""DevHost: the local stand-in for the Functions host, startable in-process on a background thread.

    with DevHost(app, settings, host_config=load_host_config(Path("host.json"))) as host:
        httpx.get(f"{host.base_url}/api/health")

The app's functions are read once here (get_functions() works only once per app) to know the routes, schedules
and queues; the functions themselves run in worker processes, one per function group (devhost/workers.py),
which import the app again by its `module:attribute` reference with the settings as their environment. The
reference is found from the app object (the module global that holds it) unless given. `functions=` serves
only those functions, as one Flex function group runs on its own instances.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import logging
import os
import socket
import sys
import threading
from collections.abc import Collection, Mapping
from pathlib import Path
from types import TracebackType

import azure.functions as func

from devhost.catalog import Catalog, build_catalog, functions_of
from devhost.environment import worker_environment
from devhost.errors import ConfigError, StartupError
from devhost.hostconfig import HostConfig
from devhost.runtime import HostRuntime
from devhost.workers import WorkerLaunch

_log = logging.getLogger("devhost")


def _listening_socket(host: str, port: int) -> socket.socket:
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((host, port))
    except OSError as exc:
        sock.close()
        raise StartupError(f"cannot listen on {host}:{port}: {exc}") from exc
    return sock


def app_reference_of(app: func.FunctionApp) -> str:
    """The "module:attribute" under which a worker process can import this app (the one module global
    holding it); ConfigError when none or several do."""
    found = sorted(
        f"{name}:{attribute}"
        for name, module in list(sys.modules.items())
        for attribute, value in list(getattr(module, "__dict__", {}).items())
        if value is app and name != "__main__"
    )
    if len(found) != 1:
        where = ", ".join(found) or "no module global"
        raise ConfigError(f"cannot tell where a worker imports this app from ({where}): pass app_reference=")
    return found[0]


def script_root(reference: str) -> str:
    """The folder the app's top-level module or package is imported from (the worker puts it on sys.path)."""
    name = reference.partition(":")[0]
    file = getattr(sys.modules.get(name), "__file__", None)
    if file is None:
        return os.getcwd()
    path = Path(file).resolve()
    depth = name.count(".") + (path.name == "__init__.py")
    return str(path.parents[depth])


def select_functions(catalog: Catalog, names: Collection[str] | None) -> Catalog:
    """Only the named functions (all when names is None); StartupError naming any the app does not have."""
    if names is None:
        return catalog
    known = {f.spec.name for f in catalog.http} | {f.spec.name for f in catalog.timers}
    known |= (
        {f.spec.name for f in catalog.queues} | {p.name for p in catalog.problems} | set(catalog.disabled)
    )
    unknown = sorted(set(names) - known)
    if unknown:
        raise StartupError(f"--functions names unknown function(s): {', '.join(unknown)}")
    return dataclasses.replace(
        catalog,
        http=tuple(f for f in catalog.http if f.spec.name in names),
        timers=tuple(f for f in catalog.timers if f.spec.name in names),
        queues=tuple(f for f in catalog.queues if f.spec.name in names),
        problems=tuple(p for p in catalog.problems if p.name in names),
        disabled=tuple(name for name in catalog.disabled if name in names),
    )


class DevHost:
    """Runs a FunctionApp's HTTP routes, timers and queue triggers until stop()."""

    def __init__(
        self,
        app: func.FunctionApp,
        settings: Mapping[str, str],
        *,
        host_config: HostConfig | None = None,
        host: str = "127.0.0.1",
        port: int = 0,
        shutdown_grace: float = 30.0,
        functions: Collection[str] | None = None,
        app_reference: str | None = None,
    ) -> None:
        self._settings = dict(settings)
        self._config = host_config or HostConfig()
        self._host, self._port = host, port
        self._grace = shutdown_grace
        self.catalog: Catalog = select_functions(build_catalog(functions_of(app), self._settings), functions)
        reference = app_reference or app_reference_of(app)
        self._launch = WorkerLaunch(reference, script_root(reference), worker_environment(self._settings))
        self._runtime: HostRuntime | None = None
        self._thread: threading.Thread | None = None
        self._ready = threading.Event()
        self._failure: BaseException | None = None
        self.base_url = ""

    def start(self, timeout: float = 30.0) -> DevHost:
        """Bind the port, start the loop thread and return once HTTP answers; StartupError otherwise."""
        sock = _listening_socket(self._host, self._port)
        self.base_url = f"http://{self._host}:{sock.getsockname()[1]}"
        self._runtime = HostRuntime(
            self.catalog, self._settings, self._config, sock, self._grace, self._launch
        )
        self._thread = threading.Thread(
            target=self._serve, args=(self._runtime,), name="devhost", daemon=True
        )
        self._thread.start()
        if not self._ready.wait(timeout) or self._failure is not None:
            self.stop()
            raise StartupError(f"devhost did not start: {self._failure or 'timed out'}") from self._failure
        self._announce()
        return self

    def _serve(self, runtime: HostRuntime) -> None:
        try:
            asyncio.run(runtime.run(self._ready.set))
        except BaseException as exc:  # reported to start() or logged; the thread must not die silently
            self._failure = exc
            _log.exception("devhost stopped with an error")
        finally:
            self._ready.set()

    def _announce(self) -> None:
        for function in self.catalog.http:
            methods = ",".join(sorted(function.methods)) if function.methods else "ALL"
            prefix = f"/{self._config.route_prefix}" if self._config.route_prefix else ""
            url = f"{self.base_url}{prefix}/{function.route.template}"
            _log.info("%s: [%s] %s (%s)", function.spec.name, methods, url, function.auth_level.value)
        for timer in self.catalog.timers:
            _log.info(
                "%s: timerTrigger %r%s",
                timer.spec.name,
                timer.expression,
                " (run on startup)" * timer.run_on_startup,
            )
        for queue in self.catalog.queues:
            _log.info("%s: queueTrigger %s", queue.spec.name, queue.queue_name)
        for problem in self.catalog.problems:
            _log.error(
                "The '%s' function is in error: %s",
                problem.name,
                problem.reason,
                extra={
                    "fields": {"event": "function_error", "function": problem.name, "reason": problem.reason}
                },
            )
        for name in self.catalog.disabled:
            _log.info("Function '%s' is disabled", name)
        _log.info(
            "devhost listening on %s",
            self.base_url,
            extra={"fields": {"event": "started", "url": self.base_url}},
        )

    @property
    def failed(self) -> bool:
        """Whether the host stopped because of an error rather than stop()."""
        return self._failure is not None

    @property
    def running(self) -> bool:
        """Whether the loop thread is alive."""
        return self._thread is not None and self._thread.is_alive()

    def wait(self, timeout: float | None = None) -> bool:
        """Block until the host has stopped (by stop() or a failure); True if it has."""
        if self._thread is None:
            return True
        self._thread.join(timeout)
        return not self._thread.is_alive()

    def request_stop(self) -> None:
        """Ask for a graceful stop without waiting (safe from any thread and from signal handlers)."""
        runtime = self._runtime
        if runtime is not None and runtime.loop is not None and not runtime.loop.is_closed():
            with contextlib.suppress(RuntimeError):  # the loop closed between the check and the call
                runtime.loop.call_soon_threadsafe(runtime.request_stop)

    def worker_pids(self) -> dict[str, int]:
        """The running worker process of each function group that has one (none before a group's first call)."""
        return self._runtime.workers.pids() if self._runtime is not None else {}

    def stop(self, timeout: float | None = None) -> None:
        """Stop gracefully (workers run close_services() and exit) and wait for the thread."""
        self.request_stop()
        if self._thread is not None:
            self._thread.join(timeout if timeout is not None else 2 * self._grace + 10)

    def __enter__(self) -> DevHost:
        return self.start()

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()
