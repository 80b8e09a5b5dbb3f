"""Reply (shared.http) and the one helper that turns it into the host's HttpResponse."""

from __future__ import annotations

import json

from shared.http import Reply, json_reply
from shared.triggers.replies import http_response


def test_a_json_reply_carries_its_status_headers_and_media_type_to_the_response() -> None:
    """Status, JSON text, every header and application/json reach the HttpResponse."""
    response = http_response(json_reply(503, {"error": "storage_unavailable"}, {"Retry-After": "10"}))
    assert response.status_code == 503
    assert json.loads(response.get_body()) == {"error": "storage_unavailable"}
    assert response.headers["Retry-After"] == "10"
    assert response.mimetype == "application/json"
    assert response.charset == "utf-8"


def test_a_page_keeps_its_text_and_an_empty_redirect_has_no_body() -> None:
    """HTML is sent as written (UTF-8); a 302 is empty with its Location."""
    page = http_response(Reply(200, "<p>Jörg</p>", {}, "text/html"))
    assert (page.get_body(), page.mimetype) == ("<p>Jörg</p>".encode(), "text/html")
    moved = http_response(Reply(302, headers={"Location": "https://login.example/"}, mimetype="text/plain"))
    assert (moved.status_code, moved.get_body(), moved.headers["Location"]) == (
        302,
        b"",
        "https://login.example/",
    )


def test_the_reply_repr_leaves_the_body_out() -> None:
    """A page can name the signed-in account: a logged Reply shows status and headers only."""
    assert "secret-account" not in repr(Reply(200, "secret-account"))
