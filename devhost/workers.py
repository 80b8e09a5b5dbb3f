"""Worker processes, one per function group, started on a group's first invocation and restarted when they die.

On Flex Consumption all HTTP functions form one group and every other function is a group of its own, each
scaled on its own instances (learn.microsoft.com/azure/azure-functions/flex-consumption-plan, "Per-function
scaling"); so no group can see another's memory. devhost keeps what the host keeps (catalog, HTTP front, queue
listeners, timers, output bindings, keys) and runs the app's code in a `python -m devhost.worker` child per group,
started lazily (Flex scales from zero) and at most once at a time per group.

functionTimeout: when an invocation runs past it, the host logs "A function timeout has occurred. Restarting
worker process executing invocationId '…'." and restarts that invocation's worker (azure-functions-host
src/WebJobs.Script.WebHost/WebScriptHostExceptionHandler.cs, OnTimeoutExceptionAsync ->
RestartWorkerWithInvocationIdAsync; learn.microsoft.com/azure/azure-functions/functions-host-json#functiontimeout:
"the language worker process restarts"). devhost does the same: SIGKILL at once (no `finally`, no close hook),
every invocation in flight on that worker fails (RpcFunctionInvocationDispatcher disposes the channel, failing its
executions), and the group's next invocation starts a fresh worker. A worker that dies on its own is treated the
same way.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import signal
import socket
import sys
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

from devhost.catalog import Catalog
from devhost.errors import WorkerError
from devhost.template import Spawn, fork_worker, warm
from devhost.wire import CallRequest, CallResult, Close, LoadFailed, LogLine, Ready, frame, read_frame

_log = logging.getLogger("devhost.worker")
HTTP_GROUP = "http"
WORKER_START_SECONDS = 60.0  # importing the app; a worker that takes longer is killed and the call fails
_DEVHOST_ROOT = str(Path(__file__).resolve().parents[1])  # where `python -m devhost.worker` resolves
# devhost's own environment (not an app setting): "off" starts each worker as a new process instead of forking it
# from the template process; the two differ only in start time (devhost/template.py says why).
TEMPLATE_SWITCH = "DEVHOST_WORKER_TEMPLATE"


def function_groups(catalog: Catalog) -> dict[str, str]:
    """Function name -> its group: every HTTP function in "http", every other function in "function:<name>"
    (the group names Flex's alwaysReady setting uses; learn.microsoft.com/azure/azure-functions/
    flex-consumption-plan, "Always ready instances")."""
    groups = {function.spec.name: HTTP_GROUP for function in catalog.http}
    groups.update({timer.spec.name: f"function:{timer.spec.name}" for timer in catalog.timers})
    groups.update({queue.spec.name: f"function:{queue.spec.name}" for queue in catalog.queues})
    return groups


@dataclass(frozen=True, slots=True)
class WorkerLaunch:
    """How to start a worker: the app to import, from where, and its environment (the app settings)."""

    app_reference: str
    script_root: str
    environment: Mapping[str, str] = field(repr=False)  # app settings: secrets

    def arguments(self) -> tuple[str, ...]:
        """The worker's options but its socket; it logs at devhost's current level (a test may have lowered it)."""
        level = logging.getLogger().getEffectiveLevel()
        return ("--app", self.app_reference, "--script-root", self.script_root, "--log-level", str(level))

    def command(self, fd: int) -> list[str]:
        """The worker's command line, started as a new process."""
        return [sys.executable, "-m", "devhost.worker", "--fd", str(fd), *self.arguments()]

    def spawn(self) -> Spawn:
        """The same worker, forked from the template process (devhost/template.py)."""
        return Spawn(self.arguments(), self.environment, _DEVHOST_ROOT)


def template_on() -> bool:
    """Whether workers are forked from the template process (TEMPLATE_SWITCH not "off")."""
    return os.environ.get(TEMPLATE_SWITCH, "on") != "off"


class Forked:
    """A worker forked by the template process: devhost signals it by pid; the template reaps it."""

    def __init__(self, pid: int) -> None:
        self.pid = pid
        self.returncode: int | None = None  # set once its socket ended: it exited (and its pid may be reused)

    def kill(self) -> None:
        """SIGKILL, unless it has exited already."""
        if self.returncode is None:
            with contextlib.suppress(ProcessLookupError):
                os.kill(self.pid, signal.SIGKILL)

    async def wait(self) -> int:
        """Called once the worker's socket ended, which happens only when it exits (nobody else holds it)."""
        self.returncode = -1
        return self.returncode


def relog(attributes: Mapping[str, object]) -> None:
    """Log a worker's record again in devhost, through the logger it was made for (the host logs RpcLog)."""
    logger = logging.getLogger(str(attributes.get("name", "")))
    level = attributes.get("levelno")
    if isinstance(level, int) and logger.isEnabledFor(level):
        logger.handle(logging.makeLogRecord(dict(attributes)))


class WorkerProcess:
    """One worker process of one group, and the invocations in flight on it."""

    def __init__(self, group: str, launch: WorkerLaunch) -> None:
        self.group = group
        self._launch = launch
        self._process: asyncio.subprocess.Process | Forked | None = None
        self._writer: asyncio.StreamWriter | None = None
        self._reading: asyncio.Task[None] | None = None
        self._ready: asyncio.Future[int] | None = None
        self._pending: dict[str, asyncio.Future[CallResult]] = {}
        self._closing = False
        self.alive = False
        self.pid = 0

    async def start(self) -> None:
        """Start the process and wait until it has imported the app (WorkerError if it cannot)."""
        parent, child = socket.socketpair()
        with child:
            self._process = await self._start_process(child)
        self.pid, self.alive = self._process.pid, True
        reader, self._writer = await asyncio.open_unix_connection(sock=parent)
        self._ready = asyncio.get_running_loop().create_future()
        self._reading = asyncio.create_task(self._read(reader))
        try:
            await asyncio.wait_for(self._ready, WORKER_START_SECONDS)
        except TimeoutError:
            self.kill(f"the worker did not load the app within {WORKER_START_SECONDS:g}s")
            raise WorkerError(f"the {self.group} worker did not start") from None
        _log.info("Worker process %d started for function group %s", self.pid, self.group)

    async def _start_process(self, child: socket.socket) -> asyncio.subprocess.Process | Forked:
        """Forked from the template (milliseconds), or a new `python -m devhost.worker` when it is turned off."""
        if template_on():
            return Forked(await asyncio.to_thread(fork_worker, self._launch.spawn(), child))
        return await asyncio.create_subprocess_exec(
            *self._launch.command(child.fileno()),
            pass_fds=(child.fileno(),),
            env=dict(self._launch.environment),
            cwd=_DEVHOST_ROOT,
            start_new_session=True,  # Ctrl-C reaches devhost, which stops its workers itself
        )

    async def call(self, request: CallRequest, time_limit: float | None) -> CallResult:
        """Send one invocation and wait for its result; at `time_limit`, kill this worker (functionTimeout)."""
        if not self.alive or self._writer is None:
            raise WorkerError(f"the {self.group} worker process is not running")
        future: asyncio.Future[CallResult] = asyncio.get_running_loop().create_future()
        self._pending[request.invocation_id] = future
        try:
            self._writer.write(frame(request))
            return await asyncio.wait_for(future, time_limit)
        except TimeoutError:
            self._timed_out(request)
            raise WorkerError(f"functionTimeout of {time_limit:g}s exceeded") from None
        finally:
            self._pending.pop(request.invocation_id, None)

    def _timed_out(self, request: CallRequest) -> None:
        _log.warning(
            "A function timeout has occurred. Restarting worker process executing invocationId '%s'.",
            request.invocation_id,
            extra={
                "fields": {
                    "event": "function_timeout",
                    "function": request.function,
                    "invocation_id": request.invocation_id,
                    "worker_pid": self.pid,
                }
            },
        )
        self.kill(f"the worker process was restarted: invocation {request.invocation_id} timed out")

    def kill(self, reason: str) -> None:
        """SIGKILL the process now and fail every invocation in flight on it with `reason`."""
        self.alive = False
        if self._process is not None and self._process.returncode is None:
            self._process.kill()
        self._fail_pending(reason)

    def _fail_pending(self, reason: str) -> None:
        for future in self._pending.values():
            if not future.done():
                future.set_exception(WorkerError(reason))
        if self._ready is not None and not self._ready.done():
            self._ready.set_exception(WorkerError(reason))

    async def _read(self, reader: asyncio.StreamReader) -> None:
        try:
            while (message := await read_frame(reader)) is not None:
                self._receive(message)
        finally:
            self._exited()
            if self._process is not None:  # the connection ends as the process exits: reap it
                await self._process.wait()

    def _receive(self, message: object) -> None:
        if isinstance(message, LogLine):
            relog(message.attributes)
        elif isinstance(message, CallResult):
            future = self._pending.get(message.invocation_id)
            if future is not None and not future.done():
                future.set_result(message)
        elif isinstance(message, Ready) and self._ready is not None and not self._ready.done():
            self._ready.set_result(message.pid)
        elif isinstance(message, LoadFailed):
            _log.error("Worker process %d could not load the app: %s", self.pid, message.error)

    def _exited(self) -> None:
        """The connection ended: the worker exited (asked to, killed, or on its own)."""
        was_alive, self.alive = self.alive, False
        if was_alive and not self._closing:
            _log.error(
                "Worker process %d of function group %s exited; its next invocation starts a new one",
                self.pid,
                self.group,
                extra={"fields": {"event": "worker_exited", "group": self.group, "worker_pid": self.pid}},
            )
        self._fail_pending(f"the {self.group} worker process exited")
        if self._writer is not None:
            self._writer.close()

    async def close(self, grace: float) -> None:
        """Ask the worker to run close_services() and exit; kill it after `grace` seconds; reap it."""
        self._closing = True
        if self.alive and self._writer is not None:
            with contextlib.suppress(ConnectionError):
                self._writer.write(frame(Close()))
        if self._reading is not None:
            done, _ = await asyncio.wait({self._reading}, timeout=grace)
            if not done:
                self.kill("devhost stopped")
                await self._reading


class WorkerPool:
    """Routes each invocation to its group's worker process, starting or restarting that worker as needed."""

    def __init__(self, groups: Mapping[str, str], launch: WorkerLaunch, timeout: float | None) -> None:
        self._groups = dict(groups)
        self._launch = launch
        self._timeout = timeout
        self._workers: dict[str, WorkerProcess] = {}
        self._starting: dict[str, asyncio.Lock] = {}
        if template_on():
            warm(_DEVHOST_ROOT)

    async def call(self, request: CallRequest) -> CallResult:
        """Run the request on its group's worker (FunctionCaller)."""
        worker = await self._worker(self._groups[request.function])
        return await worker.call(request, self._timeout)

    async def _worker(self, group: str) -> WorkerProcess:
        async with self._starting.setdefault(group, asyncio.Lock()):
            current = self._workers.get(group)
            if current is None or not current.alive:
                current = WorkerProcess(group, self._launch)
                self._workers[group] = current
                await current.start()
            return current

    def pids(self) -> dict[str, int]:
        """The running worker process of each group that has one."""
        return {group: worker.pid for group, worker in self._workers.items() if worker.alive}

    async def close(self, grace: float) -> None:
        """Stop every worker (close_services, exit; killed after the grace)."""
        await asyncio.gather(*(worker.close(grace) for worker in self._workers.values()))
