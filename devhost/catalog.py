"""What the app declares, as devhost serves it: one frozen spec per function, built once from get_functions().

Functions the host refuses (devhost.hostrules: names, binding names, reserved or conflicting routes) and functions
devhost cannot serve (unknown trigger or binding, unresolved %SETTING%, bad route or schedule) are reported as
problems and skipped, the way the host keeps running with a function "in error".
"""

from __future__ import annotations

import importlib
import inspect
import weakref
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any, Literal

import azure.functions as func
from azure.functions.decorators.function_app import Function

from devhost.auth import AuthLevel
from devhost.errors import ConfigError, DevHostError
from devhost.expressions import resolve_settings
from devhost.hostconfig import parse_timespan
from devhost.hostrules import host_refusals, metadata_of
from devhost.routing import RouteTemplate, compile_route
from devhost.schedule import CronSchedule, IntervalSchedule, monitor_allowed, parse_schedule
from devhost.storage import StorageConnection, storage_connection

# get_functions() may be called only once per FunctionApp (azure-functions 1.26.0: a second call raises
# ValueError, "... does not have a unique function name"); keep the result per app.
# Binding.direction holds the int value of decorators.core.BindingDirection (IN=0, OUT=1, INOUT=2).
_DIRECTIONS = {0: "input", 1: "output", 2: "inout"}
_OUT = 1
DEFAULT_HOST_ID = "devhost"
_FUNCTIONS: weakref.WeakKeyDictionary[func.FunctionApp, tuple[Function, ...]] = weakref.WeakKeyDictionary()


def functions_of(app: func.FunctionApp) -> tuple[Function, ...]:
    """app.get_functions(), called at most once per app object."""
    if app not in _FUNCTIONS:
        _FUNCTIONS[app] = tuple(app.get_functions())
    return _FUNCTIONS[app]


def load_app(reference: str) -> func.FunctionApp:
    """Import "module:attribute" (default attribute `app`) and check that it is a FunctionApp."""
    module_name, _, attribute = reference.partition(":")
    try:
        app = getattr(importlib.import_module(module_name), attribute or "app")
    except (ImportError, AttributeError) as exc:
        raise ConfigError(f"cannot load the app {reference!r}: {exc}") from exc
    if not isinstance(app, func.FunctionApp):
        raise ConfigError(f"{reference!r} is a {type(app).__name__}, not an azure.functions.FunctionApp")
    return app


def load_close_hook(reference: str) -> Callable[[], Awaitable[None]] | None:
    """The app module's optional `async def close_services()`: awaited before devhost's loop ends, so the app can
    close its SDK clients' sessions on the loop that made them (a worker process exiting would drop them)."""
    module = importlib.import_module(reference.partition(":")[0])
    hook = getattr(module, "close_services", None)
    return hook if callable(hook) else None


@dataclass(frozen=True, slots=True)
class OutputBinding:
    """A queue or table output binding, with its target resolved."""

    name: str
    kind: Literal["queue", "table"]
    target: str
    connection: StorageConnection
    partition_key: str | None = None
    row_key: str | None = None


@dataclass(frozen=True, slots=True)
class RetryPolicy:
    """@app.retry: fixed_delay or exponential_backoff (the host applies it to timer triggers here)."""

    max_retry_count: int
    delay: timedelta
    maximum: timedelta | None = None  # exponential_backoff only: delay doubles up to this

    def delay_before(self, retry: int) -> float:
        """Seconds to wait before retry number `retry` (1-based)."""
        base = self.delay.total_seconds()
        if self.maximum is None:
            return base
        return float(min(base * 2 ** (retry - 1), self.maximum.total_seconds()))


@dataclass(frozen=True, slots=True)
class FunctionSpec:
    """How to call one function: its callable, trigger parameter, outputs and extras."""

    name: str
    user_function: Callable[..., Any] = field(repr=False)
    is_async: bool
    trigger_arg: str
    outputs: tuple[OutputBinding, ...] = ()
    wants_context: bool = False
    retry: RetryPolicy | None = None


@dataclass(frozen=True, slots=True)
class HttpFunction:
    """An HTTP-triggered function."""

    spec: FunctionSpec
    route: RouteTemplate
    methods: frozenset[str] | None
    auth_level: AuthLevel


@dataclass(frozen=True, slots=True)
class TimerFunction:
    """A timer-triggered function."""

    spec: FunctionSpec
    expression: str
    schedule: CronSchedule | IntervalSchedule
    run_on_startup: bool
    use_monitor: bool = False  # as the host applies it: declared (default true) and not a sub-minute schedule
    status_store: StorageConnection | None = None  # AzureWebJobsStorage, where the schedule status is kept
    host_id: str = DEFAULT_HOST_ID


@dataclass(frozen=True, slots=True)
class QueueFunction:
    """A queue-triggered function."""

    spec: FunctionSpec
    queue_name: str
    connection: StorageConnection


@dataclass(frozen=True, slots=True)
class FunctionProblem:
    """A function devhost skips, and why."""

    name: str
    reason: str


@dataclass(frozen=True, slots=True)
class Catalog:
    """Everything devhost serves, plus what it skipped."""

    http: tuple[HttpFunction, ...] = ()
    timers: tuple[TimerFunction, ...] = ()
    queues: tuple[QueueFunction, ...] = ()
    problems: tuple[FunctionProblem, ...] = ()
    disabled: tuple[str, ...] = ()


def _retry_policy(function: Function) -> RetryPolicy | None:
    settings = function.get_settings_dict("retry_policy")
    if not settings:
        return None
    count = int(settings["max_retry_count"])
    if settings["strategy"] == "fixed_delay":
        return RetryPolicy(count, parse_timespan(settings["delay_interval"]))
    return RetryPolicy(
        count, parse_timespan(settings["minimum_interval"]), parse_timespan(settings["maximum_interval"])
    )


def _output(binding: Any, settings: Mapping[str, str]) -> OutputBinding:
    connection = storage_connection(getattr(binding, "connection", None), settings, binding.type)
    if binding.type == "queue":
        return OutputBinding(
            binding.name, "queue", resolve_settings(binding.queue_name, settings), connection
        )
    return OutputBinding(
        binding.name,
        "table",
        resolve_settings(binding.table_name, settings),
        connection,
        binding.partition_key and resolve_settings(binding.partition_key, settings),
        binding.row_key and resolve_settings(binding.row_key, settings),
    )


def _spec(function: Function, settings: Mapping[str, str]) -> FunctionSpec:
    trigger: Any = function.get_trigger()
    name = function.get_function_name() or ""
    user_function = function.get_user_function()
    parameters = inspect.signature(user_function).parameters
    outputs = []
    for binding in function.get_bindings():
        if binding is trigger or (binding.type == "http" and binding.direction == _OUT):
            continue
        if binding.direction == _OUT and binding.type in ("queue", "table"):
            outputs.append(_output(binding, settings))
        else:
            direction = _DIRECTIONS.get(binding.direction, "?")
            raise DevHostError(f"devhost does not support {direction} binding type {binding.type!r}")
    missing = [n for n in [trigger.name, *(o.name for o in outputs)] if n not in parameters]
    if missing:
        raise DevHostError(f"bindings {missing} have no parameter of that name in {name}()")
    return FunctionSpec(
        name=name,
        user_function=user_function,
        is_async=inspect.iscoroutinefunction(user_function),
        trigger_arg=trigger.name,
        outputs=tuple(outputs),
        wants_context="context" in parameters,
        retry=_retry_policy(function),
    )


def _http(function: Function, spec: FunctionSpec) -> HttpFunction:
    trigger: Any = function.get_trigger()
    template = trigger.route or spec.name  # reserved /admin and /runtime routes: devhost.hostrules
    methods = frozenset(str(m.value if hasattr(m, "value") else m).upper() for m in trigger.methods or ())
    level = trigger.auth_level
    return HttpFunction(
        spec,
        compile_route(template),
        methods or None,
        AuthLevel(str(level.value if hasattr(level, "value") else level or "function").lower()),
    )


def _status_store(settings: Mapping[str, str]) -> StorageConnection | None:
    try:
        return storage_connection(None, settings, "table")
    except ConfigError:  # the timer runs unmonitored; devhost.timers says so at start
        return None


def host_id(settings: Mapping[str, str]) -> str:
    """The host ID that scopes a timer's schedule status: AzureFunctionsWebHost__hostid, else the site name cut
    to 32 characters, lower case (learn.microsoft.com/azure/azure-functions/functions-app-settings,
    "AzureFunctionsWebHost__hostid"), else "devhost"."""
    explicit = settings.get("AzureFunctionsWebHost__hostid") or settings.get("WEBSITE_SITE_NAME")
    return (explicit or DEFAULT_HOST_ID).lower()[:32]


def _timer(function: Function, spec: FunctionSpec, settings: Mapping[str, str]) -> TimerFunction:
    trigger: Any = function.get_trigger()
    expression = resolve_settings(trigger.schedule, settings)
    schedule = parse_schedule(expression)
    # useMonitor defaults to true (TimerTriggerAttribute.cs); the library leaves it out of the JSON when unset.
    monitored = trigger.use_monitor is not False and monitor_allowed(schedule, datetime.now(UTC))
    return TimerFunction(
        spec,
        expression,
        schedule,
        bool(trigger.run_on_startup),
        use_monitor=monitored,
        status_store=_status_store(settings) if monitored else None,
        host_id=host_id(settings),
    )


def _queue(function: Function, spec: FunctionSpec, settings: Mapping[str, str]) -> QueueFunction:
    trigger: Any = function.get_trigger()
    queue_name = resolve_settings(trigger.queue_name, settings)
    return QueueFunction(spec, queue_name, storage_connection(trigger.connection, settings, "queue"))


def _is_disabled(name: str, settings: Mapping[str, str]) -> bool:
    return settings.get(f"AzureWebJobs.{name}.Disabled", "").lower() in ("true", "1")


def _entry(function: Function, settings: Mapping[str, str]) -> HttpFunction | TimerFunction | QueueFunction:
    """The function as devhost serves it; DevHostError when devhost cannot."""
    trigger_type = getattr(function.get_trigger(), "type", None)
    spec = _spec(function, settings)
    if trigger_type == "httpTrigger":
        return _http(function, spec)
    if trigger_type == "timerTrigger":
        return _timer(function, spec, settings)
    if trigger_type == "queueTrigger":
        return _queue(function, spec, settings)
    raise DevHostError(f"devhost does not support trigger type {trigger_type!r}")


def build_catalog(functions: Sequence[Function], settings: Mapping[str, str]) -> Catalog:
    """Sort the app's functions by trigger; the host's refusals (devhost.hostrules) and what devhost cannot
    serve become problems instead of failing the whole app."""
    refused = {r.name: r.reason for r in host_refusals(metadata_of(functions))}
    entries: list[HttpFunction | TimerFunction | QueueFunction] = []
    problems: list[FunctionProblem] = []
    disabled: list[str] = []
    for function in functions:
        name = function.get_function_name() or "?"
        if name in refused:
            problems.append(FunctionProblem(name, refused.pop(name)))
        elif _is_disabled(name, settings):
            disabled.append(name)
        else:
            try:
                entries.append(_entry(function, settings))
            except DevHostError as exc:
                problems.append(FunctionProblem(name, str(exc)))
    return Catalog(
        tuple(e for e in entries if isinstance(e, HttpFunction)),
        tuple(e for e in entries if isinstance(e, TimerFunction)),
        tuple(e for e in entries if isinstance(e, QueueFunction)),
        tuple(problems),
        tuple(disabled),
    )
