"""A test-only Function app for devhost's integration tests: one small function per host behaviour.

devhost runs it in worker processes (one per function group), so the functions report what they see through a
file: each event is one JSON line appended to the file named by the SAMPLE_RECORD_FILE setting, with the worker's
pid, and the test reads it with a Recorder. Names come from %SETTINGS% so that every test gets its own queues and
tables. Import it as `tests.integration.devhost.sample_app:app`.
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

import azure.functions as func
from azure.functions.queue import QueueMessage

from localworld.polling import wait_until
from shared.settings import load_settings

_log = logging.getLogger("sample")
_running = 0  # `slow` messages running now in this worker process
_running_lock = threading.Lock()
_last_work = ""  # the last body `work` saw, in this process's memory only


def record(kind: str, **data: object) -> None:
    """Append an event to the record file (one write of one line: appends do not interleave)."""
    path = os.environ.get("SAMPLE_RECORD_FILE")
    if path:
        line = json.dumps({"kind": kind, "at": time.monotonic(), "pid": os.getpid(), "data": data})
        with open(path, "a", encoding="utf-8") as file:
            file.write(line + "\n")


@dataclass(frozen=True, slots=True)
class Event:
    """Something a sample function observed, and which worker process it ran in."""

    kind: str
    at: float
    pid: int
    data: dict[str, object] = field(default_factory=dict)


class Recorder:
    """The test's view of the record file, polled with a deadline."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def events(self, kind: str) -> list[Event]:
        """Events of one kind, oldest first."""
        if not self.path.exists():
            return []
        lines = [json.loads(line) for line in self.path.read_text(encoding="utf-8").splitlines()]
        return [Event(e["kind"], e["at"], e["pid"], e["data"]) for e in lines if e["kind"] == kind]

    def wait_for(self, kind: str, count: int = 1, timeout: float = 10.0) -> list[Event]:
        """Poll until `count` events of `kind` exist (TimeoutError after timeout)."""
        wait_until(
            lambda: len(self.events(kind)) >= count, timeout=timeout, what=f"{count} {kind!r} event(s)"
        )
        return self.events(kind)


def _json(data: object, status: int = 200, headers: dict[str, str] | None = None) -> func.HttpResponse:
    return func.HttpResponse(
        json.dumps(data), status_code=status, mimetype="application/json", headers=headers
    )


def _register_http(app: func.FunctionApp) -> None:
    @app.route(route="open", methods=["GET"], auth_level=func.AuthLevel.ANONYMOUS)
    def open_route(req: func.HttpRequest) -> func.HttpResponse:
        return func.HttpResponse("open")

    @app.route(route="items/{id:int}/{label?}", methods=["GET", "POST"])
    async def item(req: func.HttpRequest) -> func.HttpResponse:
        echo = {
            "method": req.method,
            "route": dict(req.route_params),
            "query": dict(req.params),
            "body": req.get_body().decode(),
            "header": req.headers.get("x-sample"),
        }
        location = {"Location": f"/api/items/{req.route_params['id']}"}
        return _json(echo, status=201 if req.method == "POST" else 200, headers=location)

    @app.route(route="ops/ping", methods=["GET"], auth_level=func.AuthLevel.ADMIN)
    def admin_ping(req: func.HttpRequest) -> func.HttpResponse:
        return func.HttpResponse("pong")

    @app.route(route="boom", methods=["GET"], auth_level=func.AuthLevel.ANONYMOUS)
    def boom(req: func.HttpRequest) -> func.HttpResponse:
        raise RuntimeError("the sample function failed on purpose")

    @app.route(route="bc-environment", methods=["GET"], auth_level=func.AuthLevel.ANONYMOUS)
    def bc_environment(req: func.HttpRequest) -> func.HttpResponse:
        # The product reads its configuration through shared.settings, i.e. from the environment devhost sets.
        return func.HttpResponse(load_settings().bc.environment)

    @app.route(route="env/{name}", methods=["GET"], auth_level=func.AuthLevel.ANONYMOUS)
    def env(req: func.HttpRequest) -> func.HttpResponse:
        return func.HttpResponse(os.environ.get(req.route_params["name"], ""))

    @app.route(route="last-work", methods=["GET"], auth_level=func.AuthLevel.ANONYMOUS)
    def last_work(req: func.HttpRequest) -> func.HttpResponse:
        # What `work` (the queue group) left in memory: on Flex, and under devhost, another process's memory.
        return func.HttpResponse(_last_work)

    @app.route(route="pid", methods=["GET"], auth_level=func.AuthLevel.ANONYMOUS)
    def pid(req: func.HttpRequest) -> func.HttpResponse:
        _log.warning("pid asked", extra={"fields": {"event": "sample_pid", "pid": os.getpid()}})
        return func.HttpResponse(str(os.getpid()))

    @app.route(route="exit", methods=["GET"], auth_level=func.AuthLevel.ANONYMOUS)
    def exit_now(req: func.HttpRequest) -> func.HttpResponse:
        os._exit(3)  # the worker process dies on its own, mid-invocation

    @app.route(route="rows/{key}", methods=["POST"], auth_level=func.AuthLevel.ANONYMOUS)
    @app.table_output(
        arg_name="row", table_name="%SAMPLE_TABLE%", connection="JobsStorage", partition_key="sample"
    )
    def add_row(req: func.HttpRequest, row: func.Out[str]) -> func.HttpResponse:
        row.set(json.dumps({"RowKey": req.route_params["key"], "note": req.get_body().decode()}))
        return func.HttpResponse(status_code=204)


def _register_timers(app: func.FunctionApp) -> None:
    @app.timer_trigger(arg_name="timer", schedule="%SAMPLE_TIMER_SCHEDULE%")
    def tick(timer: func.TimerRequest) -> None:
        record("tick", past_due=timer.past_due, wall=time.time())

    @app.timer_trigger(arg_name="timer", schedule="0 0 0 1 1 *", run_on_startup=True)
    async def on_startup(timer: func.TimerRequest) -> None:
        record("startup", past_due=timer.past_due)


def _register_retrying_timer(app: func.FunctionApp) -> None:
    @app.timer_trigger(arg_name="timer", schedule="0 0 0 1 1 *", run_on_startup=True)
    @app.retry(strategy="fixed_delay", max_retry_count="2", delay_interval="00:00:00.2")
    def flaky(timer: func.TimerRequest, context: func.Context) -> None:
        retry = context.retry_context
        record("flaky", retry_count=retry.retry_count, max_retry_count=retry.max_retry_count)
        if retry.retry_count < 2:
            raise RuntimeError("fails on the first two tries")


async def _hold(body: str) -> None:
    """Run "forever" (past functionTimeout); the `finally` records if it ever runs."""
    try:
        await asyncio.sleep(3600)
    finally:
        record("finally", body=body)


async def _slow(body: str) -> None:
    global _running  # this worker process's count of running `slow` messages
    with _running_lock:
        _running += 1
        record("slow-start", body=body, running=_running)
    await asyncio.sleep(0.4)  # the workload: what shutdown and concurrency tests wait on
    with _running_lock:
        _running -= 1
    record("slow-done", body=body)


def _register_queues(app: func.FunctionApp) -> None:
    @app.queue_trigger(arg_name="msg", queue_name="%SAMPLE_QUEUE%", connection="JobsStorage")
    @app.queue_output(arg_name="out", queue_name="%SAMPLE_OUT_QUEUE%", connection="JobsStorage")
    async def work(msg: QueueMessage, out: func.Out[str], context: func.Context) -> None:
        global _last_work  # the in-memory hand-off another group must not see
        body = msg.get_body().decode()
        _last_work = body
        record("work", body=body, dequeue_count=msg.dequeue_count, invocation_id=context.invocation_id)
        if body.startswith("fail"):
            raise ValueError(f"cannot process {body!r}")
        if body.startswith("slow"):
            await _slow(body)
        if body.startswith("hold") and msg.dequeue_count == 1:
            await _hold(body)
        if body.startswith("linger"):  # "linger-<seconds>": longer than the test's message lease
            await asyncio.sleep(float(body.split("-", 1)[1]))
        out.set(json.dumps({"done": body, "dequeue_count": msg.dequeue_count}))


def build_app() -> func.FunctionApp:
    """A fresh sample app."""
    app = func.FunctionApp(http_auth_level=func.AuthLevel.FUNCTION)
    _register_http(app)
    _register_timers(app)
    _register_retrying_timer(app)
    _register_queues(app)
    return app


# What devhost serves and its workers import: `tests.integration.devhost.sample_app:app`.
app = build_app()
