"""function_app.py indexed the way the Python worker indexes it, then checked with the host's own rules.

The worker (Azure/azure-functions-python-worker azure_functions_worker/loader.py index_function_app) imports
function_app, takes the one top-level FunctionRegister instance (more than one is an indexing error), calls
get_functions() and sends each function's bindings to the host, which validates them (devhost.hostrules: the
same rules devhost applies at start). The expected table is docs' functions-host-parity reference, section 1.
"""

from __future__ import annotations

import json
from typing import Any

import azure.functions as func
from azure.functions.decorators.function_app import FunctionRegister

import function_app
from devhost.catalog import functions_of
from devhost.hostrules import host_refusals, metadata_of
from shared.settings import (
    DEFAULT_RECONCILE_SCHEDULE,
    DEFAULT_RETENTION_SCHEDULE,
    DEFAULT_SUBSCRIPTIONS_SCHEDULE,
    RECONCILE_SCHEDULE_SETTING,
    RETENTION_SCHEDULE_SETTING,
    SUBSCRIPTIONS_SCHEDULE_SETTING,
    refresh_schedule_binding,
    schedule_binding,
)

RETURN = {"direction": "OUT", "type": "http", "name": "$return"}


def _http(auth: str, methods: list[str], route: str) -> list[dict[str, Any]]:
    trigger = {"direction": "IN", "type": "httpTrigger", "name": "req", "methods": methods}
    return [{**trigger, "authLevel": auth, "route": route}, RETURN]


def _queue(queue: str) -> list[dict[str, Any]]:
    return [
        {
            "direction": "IN",
            "type": "queueTrigger",
            "name": "message",
            "queueName": queue,
            "connection": "JobsStorage",
        }
    ]


def _timer(schedule: str, use_monitor: bool) -> list[dict[str, Any]]:
    timer = {"direction": "IN", "type": "timerTrigger", "name": "timer", "schedule": schedule}
    return [{**timer, "runOnStartup": False, "useMonitor": use_monitor}]


# %BC_TOKEN_REFRESH_SCHEDULE% when that setting exists at import, else the default expression itself.
EXPECTED = {
    "health": _http("ANONYMOUS", ["GET"], "health"),
    "auth_login": _http("FUNCTION", ["GET"], "auth/login"),
    "auth_callback": _http("ANONYMOUS", ["GET", "POST"], "auth/callback"),
    "auth_status": _http("FUNCTION", ["GET"], "auth/status"),
    "auth_refresh": _http("FUNCTION", ["POST"], "auth/refresh"),
    "token_refresh": _timer(refresh_schedule_binding(), use_monitor=True),
    "jobs_process": _queue("bc-jobs"),
    "jobs_poison": _queue("bc-jobs-poison"),
    "jobs_status": _http("FUNCTION", ["GET"], "jobs/{jobId}"),
    "jobs_submit": _http("FUNCTION", ["POST"], "jobs"),
    "jobs_list": _http("FUNCTION", ["GET"], "jobs"),
    "status_page": _http("FUNCTION", ["GET"], "status"),
    "telemetry_sample": _timer("0 * * * * *", use_monitor=False),
    # the connection registry's API (issue 21)
    "connections_list": _http("FUNCTION", ["GET"], "connections"),
    "connections_show": _http("FUNCTION", ["GET"], "connections/{name}"),
    "connections_put": _http("FUNCTION", ["PUT"], "connections/{name}"),
    "connections_delete": _http("FUNCTION", ["DELETE"], "connections/{name}"),
    # a connection's identities (issue 23)
    "identities_list": _http("FUNCTION", ["GET"], "connections/{name}/identities"),
    "identities_put": _http("FUNCTION", ["PUT"], "connections/{name}/identities/{identity}"),
    "identities_delete": _http("FUNCTION", ["DELETE"], "connections/{name}/identities/{identity}"),
    # onboarding a connection (issue 21)
    "connections_consent": _http("FUNCTION", ["GET"], "connections/{name}/consent"),
    "connections_consent_callback": _http("ANONYMOUS", ["GET"], "connections/consent/callback"),
    "connections_check": _http("FUNCTION", ["POST"], "connections/{name}/check"),
    "connections_sign_in": _http("FUNCTION", ["GET"], "connections/{name}/sign-in"),
    # the change feed (issue 22): feed
    "changes_read": _http("FUNCTION", ["GET"], "changes"),
    # the change feed's receiver and expansion (issue 22, `receiver`)
    "changes_receiver": _http("ANONYMOUS", ["GET", "POST"], "notifications/{connection}/{key}"),
    "changes_expand": _queue("bc-notifications"),
    "changes_expand_poison": _queue("bc-notifications-poison"),
    # the change feed's timers (issue 22, subs)
    "change_subscriptions": _timer(
        schedule_binding(SUBSCRIPTIONS_SCHEDULE_SETTING, DEFAULT_SUBSCRIPTIONS_SCHEDULE), use_monitor=True
    ),
    "change_reconcile": _timer(
        schedule_binding(RECONCILE_SCHEDULE_SETTING, DEFAULT_RECONCILE_SCHEDULE), use_monitor=True
    ),
    "change_retention": _timer(
        schedule_binding(RETENTION_SCHEDULE_SETTING, DEFAULT_RETENTION_SCHEDULE), use_monitor=True
    ),
    "watches_list": _http("FUNCTION", ["GET"], "connections/{name}/watches"),
    "watches_show": _http("FUNCTION", ["GET"], "connections/{name}/watches/{watch}"),
    "watches_put": _http("FUNCTION", ["PUT"], "connections/{name}/watches/{watch}"),
    "watches_delete": _http("FUNCTION", ["DELETE"], "connections/{name}/watches/{watch}"),
}


def _the_one_app() -> func.FunctionApp:
    apps = [v for v in vars(function_app).values() if isinstance(v, FunctionRegister)]
    assert len(apps) == 1, "the worker refuses more than one top-level function app"
    assert isinstance(apps[0], func.FunctionApp)
    return apps[0]


def test_function_app_indexes_into_the_documented_functions_the_host_accepts() -> None:
    """The worker's view of function_app.py: one app, one function per EXPECTED entry, no refusal by the host."""
    functions = functions_of(_the_one_app())
    assert len(functions) == len(EXPECTED)
    assert host_refusals(metadata_of(functions)) == ()


def test_function_app_bindings_are_the_documented_ones() -> None:
    """Each function's JSON (names, types, directions, routes, methods, auth levels) is the reference table's."""
    functions = functions_of(_the_one_app())
    found = {f.get_function_name(): json.loads(f.get_function_json())["bindings"] for f in functions}
    assert found == EXPECTED
    assert {json.loads(f.get_function_json())["scriptFile"] for f in functions} == {"function_app.py"}
