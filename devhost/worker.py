"""A worker process: `python -m devhost.worker --fd N --app module:attr ...`, started by devhost per function group.

It plays the Python language worker's part (github.com/Azure/azure-functions-python-worker, dispatcher.py):
imports the app itself, with the app settings as its environment (devhost/environment.py worker_environment),
runs `async def` functions on its own event loop and plain ones on its thread pool (PYTHON_THREADPOOL_THREAD_COUNT,
else min(32, cpu + 4): learn.microsoft.com/azure/azure-functions/python-scale-performance-reference), builds the
`context`, collects Out values and answers each CallRequest with a CallResult. Its log records go to devhost as
LogLines, as the worker sends RpcLog to the host. On Close it awaits the app's optional close_services() and
exits; when devhost goes away (end of file on the socket) it exits at once. It ignores SIGINT: the host decides
when a worker stops (SIGKILL at functionTimeout).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import contextvars
import cProfile
import functools
import inspect
import logging
import os
import pickle
import signal
import socket
import sys
import threading
import time
import traceback
from collections.abc import Callable, Iterator, Mapping, Sequence
from concurrent.futures import Executor, ThreadPoolExecutor
from typing import Any

from devhost.catalog import functions_of, load_app, load_close_hook
from devhost.context import InvocationContext
from devhost.outputs import OutValue
from devhost.wire import CallRequest, CallResult, Close, LoadFailed, LogLine, Ready, frame, read_frame
from shared.redaction import install_redaction, redact

_STANDARD = set(vars(logging.LogRecord("", 0, "", 0, "", None, None)))


def thread_pool_size(settings: Mapping[str, str]) -> int:
    """PYTHON_THREADPOOL_THREAD_COUNT, else Python's ThreadPoolExecutor default min(32, cpu + 4)."""
    configured = settings.get("PYTHON_THREADPOOL_THREAD_COUNT", "")
    if configured.isdigit() and int(configured) > 0:
        return int(configured)
    return min(32, (os.cpu_count() or 1) + 4)


def _picklable(value: object) -> bool:
    try:
        pickle.dumps(value)
    except Exception:  # any object may refuse in its own way
        return False
    return True


def record_attributes(record: logging.LogRecord) -> dict[str, Any]:
    """A record as plain attributes that cross to devhost: message rendered, exception as text, extras kept."""
    attributes = dict(vars(record))
    attributes["msg"], attributes["args"] = record.getMessage(), None
    if record.exc_info and not record.exc_text:
        attributes["exc_text"] = logging.Formatter().formatException(record.exc_info)
    attributes["exc_info"] = None
    return attributes


def log_line(record: logging.LogRecord) -> bytes:
    """The frame that carries a record; an extra that cannot be pickled crosses as its repr."""
    attributes = record_attributes(record)
    try:
        return frame(LogLine(attributes))
    except Exception:  # any extra may refuse pickling in its own way; the common case pickles once
        for key, value in attributes.items():
            if key not in _STANDARD and not _picklable(value):
                attributes[key] = repr(value)
        return frame(LogLine(attributes))


class Channel:
    """Writes frames to devhost from the loop's thread, or from any other thread through the loop."""

    def __init__(self, writer: asyncio.StreamWriter, loop: asyncio.AbstractEventLoop) -> None:
        self._writer = writer
        self._loop = loop
        self._thread = threading.get_ident()

    def send(self, message: object) -> None:
        """Queue a message for devhost; the order of sends from one thread is kept."""
        self.send_frame(frame(message))

    def send_frame(self, data: bytes) -> None:
        """Queue an already framed message (see send)."""
        if threading.get_ident() == self._thread:
            self._writer.write(data)
        elif not self._loop.is_closed():
            self._loop.call_soon_threadsafe(self._writer.write, data)


class ForwardingHandler(logging.Handler):
    """Sends every record to devhost, which logs it again through its own logging (RpcLog)."""

    def __init__(self, channel: Channel) -> None:
        super().__init__(logging.NOTSET)
        self._channel = channel

    def emit(self, record: logging.LogRecord) -> None:
        """Forward one record."""
        try:
            self._channel.send_frame(log_line(record))
        except Exception:
            self.handleError(record)


class FunctionRunner:
    """Calls the app's functions the way the worker does and reports each call as a CallResult."""

    def __init__(self, functions: Mapping[str, Callable[..., Any]], executor: Executor) -> None:
        self._functions = dict(functions)
        self._executor = executor

    async def run(self, request: CallRequest) -> CallResult:
        """Run one invocation; a failure of the function becomes a failed result, redacted."""
        outs = {name: OutValue() for name in request.outputs}
        kwargs: dict[str, Any] = {request.trigger_arg: request.trigger_value, **outs}
        if request.wants_context:
            kwargs["context"] = InvocationContext.create(
                request.invocation_id, request.function, request.retry_count, request.max_retry_count
            )
        try:
            value = await self._call(self._functions[request.function], kwargs)
        except Exception as exc:
            return _failure(request.invocation_id, exc)
        result = CallResult(request.invocation_id, True, value, {n: o.get() for n, o in outs.items()})
        if not _picklable(result):
            cause = TypeError("its return or Out value cannot be sent to the host (not picklable)")
            return _failure(request.invocation_id, cause)
        return result

    async def _call(self, function: Callable[..., Any], kwargs: dict[str, Any]) -> Any:
        if inspect.iscoroutinefunction(function):
            return await function(**kwargs)
        call = functools.partial(contextvars.copy_context().run, function, **kwargs)
        return await asyncio.get_running_loop().run_in_executor(self._executor, call)


def _failure(invocation_id: str, exc: BaseException) -> CallResult:
    stack = "".join(traceback.format_exception(exc))
    return CallResult(invocation_id, False, error=redact(f"{type(exc).__name__}: {exc}"), stack=redact(stack))


def _arguments(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m devhost.worker")
    parser.add_argument("--fd", type=int, required=True, help="this end of devhost's socketpair")
    parser.add_argument("--app", required=True, help="module:attribute of the FunctionApp")
    parser.add_argument("--script-root", required=True, help="folder the app module is imported from")
    parser.add_argument("--log-level", type=int, default=logging.INFO, help="lowest level forwarded")
    return parser.parse_args(argv)


def _load(reference: str) -> tuple[dict[str, Callable[..., Any]], Callable[[], Any] | None]:
    """The app's functions by name and its optional close hook (the worker indexes the app itself)."""
    functions = {
        f.get_function_name() or "": f.get_user_function() for f in functions_of(load_app(reference))
    }
    return functions, load_close_hook(reference)


async def _serve(sock: socket.socket, args: argparse.Namespace) -> bool:
    """Serve until Close (True: close_services ran) or until devhost is gone or the app failed to load."""
    reader, writer = await asyncio.open_unix_connection(sock=sock)
    channel = Channel(writer, asyncio.get_running_loop())
    root = logging.getLogger()
    root.handlers[:] = [ForwardingHandler(channel)]
    root.setLevel(args.log_level)
    try:
        functions, close_hook = _load(args.app)
    except BaseException as exc:  # an app that fails to import may raise anything, SystemExit included
        channel.send(LoadFailed(redact(f"{type(exc).__name__}: {exc}")))
        await writer.drain()
        return False
    channel.send(Ready(os.getpid()))
    pool = ThreadPoolExecutor(thread_pool_size(os.environ), thread_name_prefix="devhost-worker")
    with _profiled(os.environ.get("BENCH_PROFILE_DIR", "")):
        closing = await _dispatch(reader, channel, FunctionRunner(functions, pool))
    if not closing:
        # devhost is gone (killed): die with it at once, as a worker does when its host's channel breaks.
        # Returning would let asyncio.run cancel the invocations in flight and run their `finally` blocks and
        # except-handlers (job rows written after the instance "died"), which a crashed instance never does.
        _exit_now()
    if closing and close_hook is not None:
        await _close_app(close_hook)
    pool.shutdown(wait=False, cancel_futures=True)
    await writer.drain()
    return closing


@contextlib.contextmanager
def _profiled(folder: str) -> Iterator[None]:
    """Opt-in for the benches (BENCH_PROFILE_DIR set): a cProfile of the serving, not the import, written to
    `<folder>/worker-<pid>.prof` when devhost closes the worker. The invocations are coroutines on this thread, which
    is the one cProfile sees (Python 3.11 profiles the enabling thread only); a setting no real host knows.
    Timed by this thread's CPU clock, not cProfile's default wall clock: on a shared machine a socket send that wakes
    another process is often where this one is preempted, and wall time would charge the wait to the send."""
    if not folder:
        yield
        return
    profiler = cProfile.Profile(time.thread_time)
    profiler.enable()
    try:
        yield
    finally:
        profiler.disable()
        profiler.dump_stats(os.path.join(folder, f"worker-{os.getpid()}.prof"))


async def _dispatch(reader: asyncio.StreamReader, channel: Channel, runner: FunctionRunner) -> bool:
    """Run requests as they come until Close (True) or the host is gone (False)."""
    running: set[asyncio.Task[None]] = set()

    async def answer(request: CallRequest) -> None:
        channel.send(await runner.run(request))

    while (message := await read_frame(reader)) is not None:
        if isinstance(message, Close):
            return True
        if isinstance(message, CallRequest):
            task = asyncio.create_task(answer(message))
            running.add(task)
            task.add_done_callback(running.discard)
    return False


async def _close_app(hook: Callable[[], Any]) -> None:
    """The app's own clean-up (its SDK clients' sessions), on the loop they were made on."""
    try:
        await hook()
    except Exception:
        logging.getLogger("devhost.worker").exception("The app's close_services() failed")


def main(argv: Sequence[str] | None = None) -> int:
    """Serve devhost until Close or until devhost goes away."""
    args = _arguments(argv)
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    sys.path.insert(0, args.script_root)
    install_redaction()  # before the app's import: its records are redacted at creation, as in devhost
    if not asyncio.run(_serve(socket.socket(fileno=args.fd), args)):
        # The app did not load: leave now rather than outlive the host. After Close, exit normally: atexit
        # hooks (telemetry exporters' final flush) run as in a worker that is shut down.
        _exit_now()
    return 0


def _exit_now() -> None:
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(0)


if __name__ == "__main__":
    sys.exit(main())
