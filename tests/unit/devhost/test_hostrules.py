"""The host's refusals (devhost.hostrules), each shown on a small probe app that devhost then leaves out."""

from __future__ import annotations

import azure.functions as func

from devhost.catalog import Catalog, build_catalog, functions_of
from devhost.hostrules import FunctionMetadata, host_refusals


def _catalog(app: func.FunctionApp) -> Catalog:
    return build_catalog(functions_of(app), {})


def _problems(catalog: Catalog) -> dict[str, str]:
    return {problem.name: problem.reason for problem in catalog.problems}


def _served(catalog: Catalog) -> list[str]:
    return [function.spec.name for function in catalog.http]


def _ok(req: func.HttpRequest) -> func.HttpResponse:
    return func.HttpResponse("ok")


def _app(*routes: tuple[str, str | None, list[str] | None]) -> func.FunctionApp:
    """One anonymous HTTP function per (name, route, methods)."""
    app = func.FunctionApp(http_auth_level=func.AuthLevel.ANONYMOUS)
    for name, route, methods in routes:
        app.function_name(name)(app.route(route=route, methods=methods)(_ok))
    return app


def test_function_names_the_host_rejects_are_in_error() -> None:
    """A name not matching ^[a-z][a-z0-9_-]{0,127}$ (ignoring case) or equal to 'host' is refused; 'Health' is not."""
    catalog = _catalog(
        _app(("9lives", "a", None), ("HOST", "b", None), ("Health", "c", None), ("x" * 129, "d", None))
    )
    problems = _problems(catalog)
    assert problems["9lives"] == "'9lives' is not a valid function name."
    assert problems["HOST"] == "'HOST' is not a valid function name."
    assert "x" * 129 in problems
    assert _served(catalog) == ["Health"]


def test_binding_names_with_a_double_underscore_are_in_error() -> None:
    """Binding names may be snake_case (host >= 4.1038) but may not contain '__'."""
    app = func.FunctionApp(http_auth_level=func.AuthLevel.ANONYMOUS)

    @app.route(route="dunder", trigger_arg_name="my__req")
    def dunder(my__req: func.HttpRequest) -> func.HttpResponse:
        return func.HttpResponse("no")

    @app.route(route="snake", trigger_arg_name="_my_req")
    def snake(_my_req: func.HttpRequest) -> func.HttpResponse:
        return func.HttpResponse("ok")

    catalog = _catalog(app)
    assert _problems(catalog) == {
        "dunder": "The binding name my__req is invalid. Please assign a valid name to the binding."
    }
    assert _served(catalog) == ["snake"]


def test_routes_under_admin_or_runtime_are_in_error() -> None:
    """The host reserves every route starting with 'admin' or 'runtime' (any case, outer '/' ignored)."""
    catalog = _catalog(
        _app(("info", "/Runtime/info", None), ("adm", "administration", None), ("rt", "rt/x", None))
    )
    reason = "The specified route conflicts with one or more built in routes."
    assert _problems(catalog) == {"info": reason, "adm": reason}
    assert _served(catalog) == ["rt"]


def test_a_second_function_on_the_same_route_with_a_shared_method_is_in_error() -> None:
    """Same route ignoring case and '/', overlapping methods: the later function is in error, the first serves."""
    catalog = _catalog(
        _app(
            ("list_a", "items", ["GET"]),
            ("list_b", "/Items/", ["GET", "POST"]),
            ("put_items", "items", ["PUT"]),
            ("any_items", "items", None),
        )
    )
    assert _problems(catalog) == {
        "list_b": "The route specified conflicts with the route defined by function 'list_a'.",
        "any_items": "The route specified conflicts with the route defined by function 'list_a'.",
    }
    assert _served(catalog) == ["list_a", "put_items"]


def test_a_route_defaults_to_the_function_name_when_checking_conflicts() -> None:
    """A function without a route is routed at its name, so another function's explicit 'ping' conflicts."""
    catalog = _catalog(_app(("ping", None, None), ("pong", "PING", ["GET"])))
    assert _problems(catalog) == {
        "pong": "The route specified conflicts with the route defined by function 'ping'."
    }


def test_duplicate_binding_names_and_a_missing_trigger_are_refused() -> None:
    """Binding names are unique ignoring case; a function needs a trigger; $return must be an output."""
    http = {"type": "httpTrigger", "direction": "IN", "name": "req"}
    refusals = host_refusals(
        [
            FunctionMetadata("twice", ({**http}, {"type": "queue", "direction": "OUT", "name": "REQ"})),
            FunctionMetadata("untriggered", ({"type": "queue", "direction": "OUT", "name": "out"},)),
            FunctionMetadata("returns_in", (http, {"type": "http", "direction": "IN", "name": "$return"})),
        ]
    )
    assert [(r.name, r.reason) for r in refusals] == [
        ("twice", "Multiple bindings with name 'REQ' discovered. Binding names must be unique."),
        ("untriggered", "No trigger binding specified. A function must have a trigger input binding."),
        ("returns_in", "$return bindings must specify a direction of 'out'."),
    ]
