"""DevHost: the local stand-in for the Functions host, startable in-process on a background thread.

    with DevHost(app, settings, host_config=load_host_config(Path("host.json"))) as host:
        httpx.get(f"{host.base_url}/api/health")

The app's functions are read once (get_functions() works only once per app). While running, the settings are
exported to os.environ (the app reads its configuration from there, as under the real host) and restored on stop.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import socket
import threading
from collections.abc import Awaitable, Callable, Mapping
from types import TracebackType

import azure.functions as func

from devhost.catalog import Catalog, build_catalog, functions_of
from devhost.environment import EnvironmentOverlay
from devhost.errors import StartupError
from devhost.hostconfig import HostConfig
from devhost.runtime import HostRuntime

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
        on_stop: Callable[[], Awaitable[None]] | None = None,
    ) -> None:
        self._on_stop = on_stop
        self._settings = dict(settings)
        self._config = host_config or HostConfig()
        self._host, self._port = host, port
        self._grace = shutdown_grace
        self.catalog: Catalog = build_catalog(functions_of(app), self._settings)
        self._environment = EnvironmentOverlay(self._settings)
        self._runtime: HostRuntime | None = None
        self._thread: threading.Thread | None = None
        self._ready = threading.Event()
        self._failure: BaseException | None = None
        self.base_url = ""

    def start(self, timeout: float = 30.0) -> DevHost:
        """Bind the port, start the loop thread and return once HTTP answers; StartupError otherwise."""
        sock = _listening_socket(self._host, self._port)
        self.base_url = f"http://{self._host}:{sock.getsockname()[1]}"
        self._environment.apply()
        self._runtime = HostRuntime(
            self.catalog, self._settings, self._config, sock, self._grace, on_stop=self._on_stop
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

    def stop(self, timeout: float | None = None) -> None:
        """Stop gracefully, wait for the thread, restore the environment."""
        self.request_stop()
        if self._thread is not None:
            self._thread.join(timeout if timeout is not None else self._grace + 10)
        self._environment.restore()

    def __enter__(self) -> DevHost:
        return self.start()

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()
