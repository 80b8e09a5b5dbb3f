"""Telemetry: Azure Monitor through OpenTelemetry (configured once, only with a connection string), the app's
metrics named and described once (instruments.METRICS), job dimensions on every exported log record, and the
functions instrumented code calls to record a fact.

Depends on nothing of the product but shared.redaction and shared.clock (and the bcjobs contract's types), so
every package may record metrics.

The names load on first use (PEP 562 module `__getattr__`, peps.python.org/pep-0562): function_app.py imports
`configure_telemetry` at every cold start, which needs none of the metrics API (issue 24, point 4).
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from shared.telemetry.dimensions import (
        current_dimensions,
        job_connection,
        job_scope,
        log_record_processors,
        note_job,
        set_default_dimensions,
    )
    from shared.telemetry.instruments import METRICS, MetricSpec, use_meter_provider
    from shared.telemetry.record import (
        FinishedReports,
        bc_request,
        changes_published,
        job_finished,
        job_retry,
        notification_items,
        notification_received,
        pool_identity,
        queue_sample,
        recent_bc_requests,
        reconcile_lag,
        subscriptions_managed,
        throttle_waited,
        token_expiry,
        token_refresh,
    )
    from shared.telemetry.setup import configure_telemetry

# Each name and the submodule that defines it.
_LAZY = {
    **dict.fromkeys(
        (
            "current_dimensions",
            "job_connection",
            "job_scope",
            "log_record_processors",
            "note_job",
            "set_default_dimensions",
        ),
        "shared.telemetry.dimensions",
    ),
    **dict.fromkeys(("METRICS", "MetricSpec", "use_meter_provider"), "shared.telemetry.instruments"),
    **dict.fromkeys(
        (
            "FinishedReports",
            "bc_request",
            "changes_published",
            "job_finished",
            "job_retry",
            "notification_items",
            "notification_received",
            "pool_identity",
            "queue_sample",
            "recent_bc_requests",
            "reconcile_lag",
            "subscriptions_managed",
            "throttle_waited",
            "token_expiry",
            "token_refresh",
        ),
        "shared.telemetry.record",
    ),
    "configure_telemetry": "shared.telemetry.setup",
}

# Hidden from type checkers: they see the names through the imports above (a typo stays a mypy error).
if not TYPE_CHECKING:

    def __getattr__(name: str) -> Any:
        """Import the submodule that defines `name` on first use, then keep the name here."""
        module = _LAZY.get(name)
        if module is None:
            raise AttributeError(f"module 'shared.telemetry' has no attribute {name!r}")
        value = getattr(importlib.import_module(module), name)
        globals()[name] = value
        return value

    def __dir__() -> list[str]:
        return sorted({*globals(), *_LAZY})


__all__ = [
    "METRICS",
    "FinishedReports",
    "MetricSpec",
    "bc_request",
    "changes_published",
    "configure_telemetry",
    "current_dimensions",
    "job_connection",
    "job_finished",
    "job_retry",
    "job_scope",
    "log_record_processors",
    "note_job",
    "notification_items",
    "notification_received",
    "pool_identity",
    "queue_sample",
    "recent_bc_requests",
    "reconcile_lag",
    "set_default_dimensions",
    "subscriptions_managed",
    "throttle_waited",
    "token_expiry",
    "token_refresh",
    "use_meter_provider",
]
