"""The watches flows of the connections clients: the URLs they call, the answers they read, a 404 told apart."""

from __future__ import annotations

import json

import pytest
from typer.testing import CliRunner

from bcjobs import _flows as flows
from bcjobs.api_session import HttpAnswer
from bcjobs.cli import app
from bcjobs.connections import (
    ConnectionsApiError,
    delete_watch_flow,
    put_watch_flow,
    watch_flow,
    watches_flow,
)

BASE = "https://bc-app.example/"
CUSTOMERS = {
    "connection": "fabrikam",
    "name": "customers",
    "entitySet": "customers",
    "includeData": True,
    "enabled": True,
    "links": {"self": "https://bc-app.example/api/connections/fabrikam/watches/customers"},
}
NOT_FOUND = {"error": "not_found", "message": "no watch"}


class FakeApi:
    """HttpCall answering from a table of (method, path) → (status, body); records every request."""

    def __init__(self, answers: dict[tuple[str, str], tuple[int, object]]) -> None:
        self.answers = answers
        self.requests: list[tuple[str, str, bytes | None]] = []

    def __call__(self, method: str, url: str, body: bytes | None) -> HttpAnswer:
        self.requests.append((method, url, body))
        status, value = self.answers[(method, url.removeprefix("https://bc-app.example"))]
        return HttpAnswer(status, b"" if value is None else json.dumps(value).encode())


def test_list_show_put_delete_call_the_connections_watches_routes() -> None:
    path = "/api/connections/fabrikam/watches"
    api = FakeApi(
        {
            ("GET", path): (200, {"watches": [CUSTOMERS]}),
            ("GET", f"{path}/customers"): (200, CUSTOMERS),
            ("GET", f"{path}/nobody"): (404, NOT_FOUND),
            ("PUT", f"{path}/customers"): (201, CUSTOMERS),
            ("DELETE", f"{path}/customers"): (204, None),
            ("DELETE", f"{path}/nobody"): (404, NOT_FOUND),
        }
    )

    (listed,) = flows.carry_out(watches_flow(api, BASE, "fabrikam"))
    shown = flows.carry_out(watch_flow(api, BASE, "fabrikam", "customers"))
    saved = flows.carry_out(put_watch_flow(api, BASE, "fabrikam", "customers", {"entitySet": "customers"}))

    assert listed == shown == saved
    assert listed.entity_set == "customers"
    assert listed.include_data is True
    assert flows.carry_out(watch_flow(api, BASE, "fabrikam", "nobody")) is None
    assert flows.carry_out(delete_watch_flow(api, BASE, "fabrikam", "customers")) is True
    assert flows.carry_out(delete_watch_flow(api, BASE, "fabrikam", "nobody")) is False
    assert json.loads(api.requests[2][2] or b"") == {"entitySet": "customers"}


def test_an_unknown_connection_is_an_error_naming_the_fix() -> None:
    api = FakeApi(
        {
            ("GET", "/api/connections/nope/watches"): (
                404,
                {"error": "connection_not_found", "message": "no connection 'nope': list them"},
            )
        }
    )
    with pytest.raises(ConnectionsApiError) as raised:
        flows.carry_out(watches_flow(api, BASE, "nope"))
    assert raised.value.status == 404
    assert "list them" in str(raised.value)


def test_the_cli_needs_a_connection() -> None:
    done = CliRunner().invoke(app, ["watches", "list"])
    assert done.exit_code == 2
    assert "--connection" in done.output
