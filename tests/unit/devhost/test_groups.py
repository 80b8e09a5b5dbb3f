"""Function groups as Flex forms them, --functions, and where a worker process imports the app from."""

from __future__ import annotations

import sys
from pathlib import Path

import azure.functions as func
import pytest

from devhost.catalog import Catalog, build_catalog
from devhost.errors import ConfigError, StartupError
from devhost.host import app_reference_of, script_root, select_functions
from devhost.workers import function_groups

SETTINGS = {"JobsStorage": "UseDevelopmentStorage=true"}


def _app() -> func.FunctionApp:
    app = func.FunctionApp(http_auth_level=func.AuthLevel.ANONYMOUS)

    @app.route(route="a")
    def http_a(req: func.HttpRequest) -> str:
        return "a"

    @app.route(route="b")
    def http_b(req: func.HttpRequest) -> str:
        return "b"

    @app.timer_trigger(arg_name="timer", schedule="0 0 * * * *")
    def hourly(timer: func.TimerRequest) -> None:
        return None

    @app.queue_trigger(arg_name="msg", queue_name="jobs", connection="JobsStorage")
    def jobs(msg: func.QueueMessage) -> None:
        return None

    return app


def _catalog() -> Catalog:
    return build_catalog(_app().get_functions(), SETTINGS)


def test_http_functions_share_one_group_and_every_other_function_has_its_own() -> None:
    """Both HTTP functions are in "http"; the timer and the queue trigger are each "function:<name>"."""
    assert function_groups(_catalog()) == {
        "http_a": "http",
        "http_b": "http",
        "hourly": "function:hourly",
        "jobs": "function:jobs",
    }


def test_functions_keeps_only_the_named_ones() -> None:
    """--functions jobs: the queue trigger only; no route, no timer."""
    selected = select_functions(_catalog(), {"jobs"})
    assert [f.spec.name for f in selected.queues] == ["jobs"]
    assert (selected.http, selected.timers) == ((), ())


def test_functions_refuses_names_the_app_does_not_have() -> None:
    """An unknown name is a startup error that names it."""
    with pytest.raises(StartupError, match="unknown function\\(s\\): nope, zzz"):
        select_functions(_catalog(), {"jobs", "nope", "zzz"})


def test_the_app_reference_is_the_module_global_holding_the_app() -> None:
    """The app object is found as module:attribute; an app no module holds is refused with what to do."""
    module = type(sys)("devhost_test_sample_module")
    module.app = _app()  # type: ignore[attr-defined]
    sys.modules[module.__name__] = module
    try:
        assert app_reference_of(module.app) == "devhost_test_sample_module:app"
    finally:
        del sys.modules[module.__name__]
    with pytest.raises(ConfigError, match="app_reference="):
        app_reference_of(_app())


def test_script_root_is_the_folder_the_top_level_package_comes_from() -> None:
    """devhost.host lives in <root>/devhost/host.py, so its script root is <root>."""
    package_file = Path(sys.modules["devhost"].__file__ or "")
    assert script_root("devhost.host:DevHost") == str(package_file.resolve().parents[1])
