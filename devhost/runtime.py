"""Everything devhost runs on its one event loop: the HTTP server, timer loops, queue listeners and the worker
processes the functions run in (devhost/workers.py).

Shutdown (request_stop): stop accepting HTTP connections, stop polling queues and scheduling timers, let
in-flight invocations finish within the grace period (then cancel them), ask each worker process to run the
app's close_services() and exit (killed after the grace), close the storage clients.
"""

from __future__ import annotations

import asyncio
import logging
import socket
from collections.abc import Callable, Coroutine, Mapping
from typing import Any

import uvicorn

from devhost.auth import HostKeys
from devhost.catalog import Catalog
from devhost.hostconfig import HostConfig
from devhost.http_app import HttpFront
from devhost.invoker import Invoker
from devhost.outputs import OutputWriter
from devhost.queues import MESSAGE_LEASE_SECONDS, QueueListener, QueueWatcher
from devhost.storage import StorageClients
from devhost.timers import TimerRunner
from devhost.workers import WorkerLaunch, WorkerPool, function_groups

_log = logging.getLogger("devhost")


def _report_failure(task: asyncio.Task[None]) -> None:
    """Log a timer or queue loop that died, when it dies (the rest of the host keeps running)."""
    if not task.cancelled() and task.exception() is not None:
        _log.error("A trigger loop stopped with an error", exc_info=task.exception())


def message_lease_seconds(settings: Mapping[str, str]) -> int:
    """How long a received message stays invisible while it runs (DEVHOST_MESSAGE_LEASE_SECONDS, else 600)."""
    value = settings.get("DEVHOST_MESSAGE_LEASE_SECONDS", "")
    return int(value) if value.isdigit() and int(value) > 0 else MESSAGE_LEASE_SECONDS


class HostRuntime:
    """Owns the loop-side components for one run."""

    def __init__(
        self,
        catalog: Catalog,
        settings: Mapping[str, str],
        config: HostConfig,
        listening_socket: socket.socket,
        shutdown_grace: float,
        launch: WorkerLaunch,
    ) -> None:
        self._catalog = catalog
        self._settings = dict(settings)
        self._config = config
        self._socket = listening_socket
        self._grace = shutdown_grace
        self._stopping: asyncio.Event | None = None
        self.loop: asyncio.AbstractEventLoop | None = None
        timeout = config.function_timeout.total_seconds() if config.function_timeout else None
        self.workers = WorkerPool(function_groups(catalog), launch, timeout)

    def request_stop(self) -> None:
        """Begin a graceful shutdown; call on the loop's thread (DevHost uses call_soon_threadsafe)."""
        if self._stopping is not None:
            self._stopping.set()

    async def run(self, on_ready: Callable[[], None]) -> None:
        """Serve until request_stop(), then drain; on_ready is called once HTTP accepts connections."""
        self.loop = asyncio.get_running_loop()
        self._stopping = asyncio.Event()
        storage = StorageClients()
        watcher = QueueWatcher()
        invoker = Invoker(
            self.workers, OutputWriter(storage, self._config.queues.message_encoding, watcher.notify)
        )
        try:
            server, server_task = await self._start_http(invoker)
            triggers = await self._start_triggers(invoker, storage, watcher, self._stopping)
            on_ready()
            await self._stopping.wait()
            _log.info("Stopping: no new requests, polls or timer runs; waiting for in-flight invocations")
            server.should_exit = True
            await self._drain([server_task, *triggers])
        finally:
            self._socket.close()
            await self.workers.close(self._grace)
            await storage.close()
        _log.info("Stopped", extra={"fields": {"event": "stopped"}})

    async def _start_http(self, invoker: Invoker) -> tuple[uvicorn.Server, asyncio.Task[None]]:
        front = HttpFront(
            self._catalog.http, invoker, HostKeys.from_settings(self._settings), self._config.route_prefix
        )
        config = uvicorn.Config(
            front.asgi_app(),
            log_config=None,
            access_log=False,  # devhost logs requests itself, without the query string (?code=)
            lifespan="off",
            timeout_graceful_shutdown=int(self._grace),
        )
        server = uvicorn.Server(config)
        task = asyncio.create_task(server.serve(sockets=[self._socket]))
        while not server.started:
            if task.done():
                task.result()  # re-raise why the server did not start
                raise RuntimeError("HTTP server exited during startup")
            await asyncio.sleep(0.01)
        return server, task

    async def _start_triggers(
        self, invoker: Invoker, storage: StorageClients, watcher: QueueWatcher, stopping: asyncio.Event
    ) -> list[asyncio.Task[None]]:
        listeners = [
            QueueListener(
                queue, storage, invoker, self._config.queues, watcher, message_lease_seconds(self._settings)
            )
            for queue in self._catalog.queues
        ]
        # One attempt each before start() returns, so a reachable account's queues exist and a caller may enqueue
        # right away; a listener whose attempt failed retries in its run() while HTTP serves (QueueListener.prepare).
        await asyncio.gather(*(listener.prepare() for listener in listeners))
        runs: list[Coroutine[Any, Any, None]] = [listener.run(stopping) for listener in listeners]
        runs += [
            TimerRunner(timer, invoker, stopping, storage=storage).run() for timer in self._catalog.timers
        ]
        tasks = [asyncio.create_task(run) for run in runs]
        for task in tasks:
            task.add_done_callback(_report_failure)
        return tasks

    async def _drain(self, tasks: list[asyncio.Task[None]]) -> None:
        _, pending = await asyncio.wait(tasks, timeout=self._grace + 1)
        for task in pending:
            task.cancel()
        if pending:
            _log.warning(
                "Cancelled %d task(s) still running after the %gs grace period", len(pending), self._grace
            )
            await asyncio.gather(*pending, return_exceptions=True)
