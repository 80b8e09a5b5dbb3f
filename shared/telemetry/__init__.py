"""Telemetry: Azure Monitor through OpenTelemetry (configured once, only with a connection string), the app's
metrics named and described once (instruments.METRICS), job dimensions on every exported log record, and the
functions instrumented code calls to record a fact.

Depends on nothing of the product but shared.redaction and shared.clock (and the bcjobs contract's types), so
every package may record metrics.
"""

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
