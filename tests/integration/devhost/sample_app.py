"""A test-only Function app for devhost's integration tests: one small function per host behaviour.

build_app(recorder) makes a fresh FunctionApp each time (get_functions() works once per app); what the
functions see is written to the recorder so tests can wait for it. Names come from %SETTINGS% so that every
test gets its own queues and tables.
"""

from __future__ import annotations

import asyncio
import json
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field

import azure.functions as func
from azure.functions.queue import QueueMessage

from shared.settings import load_settings


@dataclass(frozen=True, slots=True)
class Event:
    """Something a sample function observed."""

    kind: str
    at: float
    data: dict[str, object] = field(default_factory=dict)


class Recorder:
    """Thread-safe event log that tests poll with a deadline."""

    def __init__(self) -> None:
        self._events: list[Event] = []
        self._changed = threading.Condition()
        self._running = 0
        self.max_running = 0

    def record(self, kind: str, **data: object) -> None:
        """Append an event and wake waiters."""
        with self._changed:
            self._events.append(Event(kind, time.monotonic(), data))
            self._changed.notify_all()

    def events(self, kind: str) -> list[Event]:
        """Events of one kind, oldest first."""
        with self._changed:
            return [event for event in self._events if event.kind == kind]

    def wait_for(self, kind: str, count: int = 1, timeout: float = 10.0) -> list[Event]:
        """Block until `count` events of `kind` exist (AssertionError after timeout)."""
        deadline = time.monotonic() + timeout
        with self._changed:
            while len(matching := [e for e in self._events if e.kind == kind]) < count:
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    raise AssertionError(f"only {len(matching)} {kind!r} event(s) after {timeout}s")
                self._changed.wait(remaining)
            return matching

    def enter(self) -> None:
        """Count a running invocation."""
        with self._changed:
            self._running += 1
            self.max_running = max(self.max_running, self._running)

    def leave(self) -> None:
        """Uncount a running invocation."""
        with self._changed:
            self._running -= 1


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

    @app.route(route="rows/{key}", methods=["POST"], auth_level=func.AuthLevel.ANONYMOUS)
    @app.table_output(
        arg_name="row", table_name="%SAMPLE_TABLE%", connection="JobsStorage", partition_key="sample"
    )
    def add_row(req: func.HttpRequest, row: func.Out[str]) -> func.HttpResponse:
        row.set(json.dumps({"RowKey": req.route_params["key"], "note": req.get_body().decode()}))
        return func.HttpResponse(status_code=204)


def _register_timers(app: func.FunctionApp, recorder: Recorder) -> None:
    @app.timer_trigger(arg_name="timer", schedule="%SAMPLE_TIMER_SCHEDULE%")
    def tick(timer: func.TimerRequest) -> None:
        recorder.record("tick", past_due=timer.past_due, wall=time.time())

    @app.timer_trigger(arg_name="timer", schedule="0 0 0 1 1 *", run_on_startup=True)
    async def on_startup(timer: func.TimerRequest) -> None:
        recorder.record("startup", past_due=timer.past_due)


def _register_retrying_timer(app: func.FunctionApp, recorder: Recorder) -> None:
    @app.timer_trigger(arg_name="timer", schedule="0 0 0 1 1 *", run_on_startup=True)
    @app.retry(strategy="fixed_delay", max_retry_count="2", delay_interval="00:00:00.2")
    def flaky(timer: func.TimerRequest, context: func.Context) -> None:
        retry = context.retry_context
        recorder.record("flaky", retry_count=retry.retry_count, max_retry_count=retry.max_retry_count)
        if retry.retry_count < 2:
            raise RuntimeError("fails on the first two tries")


def _register_queues(app: func.FunctionApp, recorder: Recorder) -> None:
    @app.queue_trigger(arg_name="msg", queue_name="%SAMPLE_QUEUE%", connection="JobsStorage")
    @app.queue_output(arg_name="out", queue_name="%SAMPLE_OUT_QUEUE%", connection="JobsStorage")
    async def work(msg: QueueMessage, out: func.Out[str], context: func.Context) -> None:
        body = msg.get_body().decode()
        recorder.record(
            "work", body=body, dequeue_count=msg.dequeue_count, invocation_id=context.invocation_id
        )
        if body.startswith("fail"):
            raise ValueError(f"cannot process {body!r}")
        if body.startswith("slow"):
            recorder.enter()
            await asyncio.sleep(0.4)  # the workload: what shutdown and concurrency tests wait on
            recorder.leave()
            recorder.record("slow-done", body=body)
        out.set(json.dumps({"done": body, "dequeue_count": msg.dequeue_count}))


def build_app(
    recorder: Recorder, register: Callable[[func.FunctionApp], None] | None = None
) -> func.FunctionApp:
    """A fresh sample app whose functions report to recorder."""
    app = func.FunctionApp(http_auth_level=func.AuthLevel.FUNCTION)
    _register_http(app)
    _register_timers(app, recorder)
    _register_retrying_timer(app, recorder)
    _register_queues(app, recorder)
    if register is not None:
        register(app)
    return app


# For `python -m devhost --app tests.integration.devhost.sample_app:app` (the CLI test).
app = build_app(Recorder())
