"""Reading a FunctionApp into devhost's catalog: triggers, settings, problems, disabled functions."""

from __future__ import annotations

import azure.functions as func

from devhost.auth import AuthLevel
from devhost.catalog import build_catalog, functions_of

SETTINGS = {"JobsStorage": "UseDevelopmentStorage=true", "JOBS_QUEUE": "bc-jobs", "SCHEDULE": "0 0 * * * *"}


def _app() -> func.FunctionApp:
    app = func.FunctionApp(http_auth_level=func.AuthLevel.FUNCTION)

    @app.route(methods=["GET"])
    def status(req: func.HttpRequest) -> func.HttpResponse:
        return func.HttpResponse("ok")

    @app.timer_trigger(arg_name="timer", schedule="%SCHEDULE%", run_on_startup=True)
    async def refresh(timer: func.TimerRequest) -> None:
        return None

    @app.queue_trigger(arg_name="msg", queue_name="%JOBS_QUEUE%", connection="JobsStorage")
    @app.queue_output(arg_name="out", queue_name="%JOBS_QUEUE%-results", connection="JobsStorage")
    def process(msg: func.QueueMessage, out: func.Out[str]) -> None:
        return None

    @app.route(route="admin/authorize", auth_level=func.AuthLevel.FUNCTION)
    def authorize(req: func.HttpRequest) -> func.HttpResponse:
        return func.HttpResponse("no")

    @app.timer_trigger(arg_name="timer", schedule="%UNSET_SCHEDULE%")
    def orphan(timer: func.TimerRequest) -> None:
        return None

    @app.queue_trigger(arg_name="msg", queue_name="x", connection="JobsStorage")
    @app.blob_input(arg_name="blob", path="c/b", connection="JobsStorage")
    def with_blob(msg: func.QueueMessage, blob: str) -> None:
        return None

    return app


def test_triggers_are_sorted_and_settings_resolved() -> None:
    """HTTP route defaults to the function name with the app's auth level; %SETTINGS% are resolved."""
    catalog = build_catalog(functions_of(_app()), SETTINGS)
    [status] = catalog.http
    assert (status.route.template, status.methods, status.auth_level) == (
        "status",
        frozenset({"GET"}),
        AuthLevel.FUNCTION,
    )
    [refresh] = catalog.timers
    assert (refresh.expression, refresh.run_on_startup, refresh.spec.is_async) == ("0 0 * * * *", True, True)
    [process] = catalog.queues
    assert process.queue_name == "bc-jobs"
    assert [(o.kind, o.target) for o in process.spec.outputs] == [("queue", "bc-jobs-results")]
    assert process.spec.is_async is False


def test_functions_devhost_cannot_serve_are_reported_not_fatal() -> None:
    """/admin routes, unresolved settings and unsupported bindings become problems; the rest is served."""
    catalog = build_catalog(functions_of(_app()), SETTINGS)
    problems = {problem.name: problem.reason for problem in catalog.problems}
    assert "conflicts with one or more built in routes" in problems["authorize"]
    assert "UNSET_SCHEDULE" in problems["orphan"]
    assert "blob" in problems["with_blob"]
    assert len(catalog.http) == 1


def test_disabled_setting_removes_the_function() -> None:
    """AzureWebJobs.<name>.Disabled=true leaves the function out."""
    catalog = build_catalog(functions_of(_app()), {**SETTINGS, "AzureWebJobs.refresh.Disabled": "true"})
    assert catalog.timers == ()
    assert catalog.disabled == ("refresh",)


def test_get_functions_is_called_once_per_app() -> None:
    """functions_of() can be asked twice for the same app (get_functions() itself fails the second time)."""
    app = _app()
    assert functions_of(app) is functions_of(app)


def test_connection_strings_stay_out_of_reprs() -> None:
    """A queue function's repr does not show its connection string (it holds the account key)."""
    catalog = build_catalog(functions_of(_app()), {**SETTINGS, "JobsStorage": "AccountKey=s3cr3t"})
    assert "s3cr3t" not in repr(catalog)
