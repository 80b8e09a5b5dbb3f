"""Turning a function's return value into the HTTP response devhost sends."""

from __future__ import annotations

import azure.functions as func

from devhost.http_app import to_response, under_prefix


def _headers(response: object) -> list[tuple[str, str]]:
    raw = getattr(response, "raw_headers", [])
    return [(name.decode(), value.decode()) for name, value in raw]


def test_status_location_and_body_are_kept() -> None:
    """A 302 with Location keeps both, and the body bytes."""
    response = to_response(
        func.HttpResponse("moved", status_code=302, headers={"Location": "https://login.example/x"})
    )
    assert response.status_code == 302
    assert ("location", "https://login.example/x") in _headers(response)
    assert response.body == b"moved"


def test_content_type_comes_from_mimetype_and_charset() -> None:
    """Without a Content-Type header the mimetype (plus charset for text/*) is used."""
    assert ("content-type", "text/plain; charset=utf-8") in _headers(to_response(func.HttpResponse("hi")))
    json_response = to_response(func.HttpResponse("{}", mimetype="application/json"))
    assert ("content-type", "application/json") in _headers(json_response)


def test_repeated_set_cookie_headers_survive() -> None:
    """Two Set-Cookie headers stay two headers."""
    response = func.HttpResponse("ok")
    response.headers.add("Set-Cookie", "a=1")
    response.headers.add("Set-Cookie", "b=2")
    cookies = [value for name, value in _headers(to_response(response)) if name == "set-cookie"]
    assert cookies == ["a=1", "b=2"]


def test_str_and_none_return_values() -> None:
    """A str becomes 200 text; None becomes 204; anything else is a 500."""
    assert to_response("hello").status_code == 200
    assert to_response(None).status_code == 204
    assert to_response(42).status_code == 500


def test_route_prefix_matches_in_any_case() -> None:
    """/API/health and /Api/jobs reach the routes under 'api' as on the host; /apix and /other do not."""
    assert under_prefix("/API/health", "/api") == "/health"
    assert under_prefix("/Api", "/api") == ""
    assert under_prefix("/api/Jobs/1", "/api") == "/Jobs/1"
    assert under_prefix("/apix/health", "/api") is None
    assert under_prefix("/other/api", "/api") is None
    assert under_prefix("/health", "") == "/health"
