"""The change log client's flow without I/O: the query it sends, the events it reads, the errors it names."""

from __future__ import annotations

import json
from urllib.parse import parse_qs, urlsplit

import pytest

from bcjobs import _flows as flows
from bcjobs.api_session import HttpAnswer
from bcjobs.change_client import ChangesApiError, changes_flow
from testkit.changes import change_event


def test_a_read_sends_the_cursor_and_returns_the_events_and_the_next_cursor() -> None:
    """after and limit go on the query string; the events come back as ChangeEvents."""
    event = change_event("c0a8e2b1-0000-0000-0000-000000000001")
    sent: list[str] = []

    def api(method: str, url: str, body: bytes | None) -> HttpAnswer:
        sent.append(url)
        return HttpAnswer(200, json.dumps({"changes": [json.loads(event.to_json())], "next": "c2"}).encode())

    page = flows.carry_out(changes_flow(api, "https://app.example/", "contoso", "customers", "c1", 50))
    assert page.changes == (event,)
    assert page.next == "c2"
    query = parse_qs(urlsplit(sent[0]).query)
    assert query == {"connection": ["contoso"], "entitySet": ["customers"], "after": ["c1"], "limit": ["50"]}


def test_a_refused_key_says_which_key_to_pass() -> None:
    """401/403 name the option and the variable that carry the function key."""

    def api(method: str, url: str, body: bytes | None) -> HttpAnswer:
        return HttpAnswer(401, b"{}")

    with pytest.raises(ChangesApiError, match="BCJOBS_FUNCTION_KEY") as raised:
        flows.carry_out(changes_flow(api, "https://app.example", "contoso", "customers", None, None))
    assert raised.value.status == 401
