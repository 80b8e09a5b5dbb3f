"""Route templates and route selection, as the Functions host matches them."""

from __future__ import annotations

import pytest

from devhost.errors import FunctionLoadError
from devhost.routing import RouteEntry, Router, compile_route


def test_parameters_are_extracted_from_the_path() -> None:
    """{name} captures one segment; literals match case-insensitively; a trailing slash is ignored."""
    route = compile_route("orders/{orderId}/lines/{lineId}")
    assert route.match("Orders/o-1/LINES/7/") == {"orderId": "o-1", "lineId": "7"}
    assert route.match("orders/o-1/lines") is None


def test_int_constraint_rejects_non_numbers() -> None:
    """{id:int} matches digits only."""
    route = compile_route("items/{id:int}")
    assert route.match("items/-12") == {"id": "-12"}
    assert route.match("items/abc") is None


@pytest.mark.parametrize(
    ("template", "path", "expected"),
    [
        ("f/{flag:bool}", "f/TRUE", {"flag": "TRUE"}),
        ("f/{name:alpha}", "f/abc1", None),
        (
            "f/{id:guid}",
            "f/0f8fad5b-d9cb-469f-a165-70867728950e",
            {"id": "0f8fad5b-d9cb-469f-a165-70867728950e"},
        ),
        ("f/{n:min(3)}", "f/2", None),
        ("f/{n:range(1,5)}", "f/5", {"n": "5"}),
        ("f/{s:maxlength(3)}", "f/abcd", None),
        ("f/{s:regex(^a+$)}", "f/aaa", {"s": "aaa"}),
        ("f/{name}.{ext}", "f/report.pdf", {"name": "report", "ext": "pdf"}),
    ],
)
def test_constraints_and_complex_segments(template: str, path: str, expected: dict[str, str] | None) -> None:
    """ASP.NET route constraints decide whether a segment matches."""
    assert compile_route(template).match(path) == expected


def test_optional_parameter_may_be_missing() -> None:
    """{label?} matches with or without its segment; {x=dflt} fills its default."""
    assert compile_route("items/{id}/{label?}").match("items/1") == {"id": "1"}
    assert compile_route("items/{id}/{label?}").match("items/1/red") == {"id": "1", "label": "red"}
    assert compile_route("items/{id}/{view=full}").match("items/1") == {"id": "1", "view": "full"}


def test_catch_all_takes_the_rest_of_the_path() -> None:
    """{*rest} captures every remaining segment, slashes included."""
    assert compile_route("files/{*rest}").match("files/a/b/c.txt") == {"rest": "a/b/c.txt"}


def test_unknown_constraint_is_a_load_error() -> None:
    """A constraint devhost does not know is reported, not silently ignored."""
    with pytest.raises(FunctionLoadError, match="nonsense"):
        compile_route("items/{id:nonsense}")


def test_router_prefers_literal_segments_over_parameters() -> None:
    """items/special wins over items/{id}, whichever was registered first."""
    router = Router(
        [
            RouteEntry(compile_route("items/{id}"), None, "by-id"),
            RouteEntry(compile_route("items/special"), None, "special"),
        ]
    )
    assert router.match("GET", "items/special") == ("special", {})
    assert router.match("GET", "items/9") == ("by-id", {"id": "9"})


def test_router_skips_routes_that_do_not_accept_the_method() -> None:
    """A method outside the function's list finds no route (the host answers 404)."""
    router = Router([RouteEntry(compile_route("health"), frozenset({"GET"}), "health")])
    assert router.match("get", "health") == ("health", {})
    assert router.match("POST", "health") is None
