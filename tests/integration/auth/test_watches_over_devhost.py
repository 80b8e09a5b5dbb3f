"""Watches end to end, as an admin manages them: function_app.py on devhost, the bcjobs CLI, Azurite and the
sandbox Key Vault (the watches API's stores are built with the change feed's)."""

from __future__ import annotations

import json

import pytest
from typer.testing import CliRunner

from bcjobs.cli import app as cli
from bcjobs.connections import ConnectionsClient
from tests.integration.auth.conftest import AppHost

pytestmark = pytest.mark.integration


def bcjobs(app_host: AppHost, *args: str) -> tuple[int, str]:
    """`bcjobs watches ...` against the app host; (exit code, stdout and stderr)."""
    env = {
        "BCJOBS_API_URL": app_host.base_url,
        "BCJOBS_FUNCTION_KEY": app_host.function_key,
        "COLUMNS": "250",
    }
    done = CliRunner().invoke(cli, ["watches", *args], env=env)
    return done.exit_code, done.output


def test_an_admin_puts_lists_and_deletes_a_watch_of_the_settings_connection(app_host: AppHost) -> None:
    connection = app_host.env["BC_CONNECTION_NAME"]

    put = bcjobs(app_host, "put", "customers", "--connection", connection, "--entity-set", "customers",
                 "--include-data", "--select", "number", "--select", "displayName", "--json")  # fmt: skip
    listed = bcjobs(app_host, "list", "--connection", connection, "--json")
    shown = bcjobs(app_host, "show", "customers", "--connection", connection)
    deleted = bcjobs(app_host, "delete", "customers", "--connection", connection)
    gone = bcjobs(app_host, "show", "customers", "--connection", connection)

    assert put[0] == 0, put[1]
    assert json.loads(put[1])["select"] == ["number", "displayName"]
    assert [w["name"] for w in json.loads(listed[1])] == ["customers"]
    assert (shown[0], deleted[0], gone[0]) == (0, 0, 4)
    assert "customers" in shown[1]


def test_a_bad_watch_is_refused_naming_the_field_and_an_unknown_connection_named(app_host: AppHost) -> None:
    connection = app_host.env["BC_CONNECTION_NAME"]
    with ConnectionsClient(app_host.base_url, app_host.function_key) as admin:
        assert admin.watches(connection) == []

    bad = bcjobs(app_host, "put", "w", "--connection", connection, "--entity-set", "not a set")
    unknown = bcjobs(app_host, "list", "--connection", "nobody-here")

    assert bad[0] == 2
    assert "entitySet" in bad[1]
    assert unknown[0] == 2
    assert "no connection 'nobody-here'" in unknown[1]
