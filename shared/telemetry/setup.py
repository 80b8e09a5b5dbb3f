"""Azure Monitor through OpenTelemetry, configured once at cold start; nothing at all without a connection string.

The route (docs/operations.md "Telemetry"): the app calls the distro itself (`configure_azure_monitor`) and
host.json keeps the host's default telemetry mode.
- The host's OpenTelemetry mode covers HTTP, Service Bus and Event Hubs triggers only (not the queue and timer
  triggers this app lives on) and loses portal log streaming; the default mode keeps the host's own request
  telemetry (`requests`: every invocation, success or failure) and its logs.
- The worker's own switch (PYTHON_APPLICATIONINSIGHTS_ENABLE_TELEMETRY) would configure the distro without our
  options: the log record processors that add job dimensions and redact, the logger scope and the disabled
  HTTP instrumentations. Do not set it as well: two configurations export everything twice.
- Product loggers (`shared.*`) export through OpenTelemetry with their custom dimensions (the `traces` table);
  host.json keeps the worker's forwarded `Function.*` logs at Warning so information records are not sent twice.
- Tracing is off: the host already records each invocation, and automatic HTTP client instrumentation would
  export full BC URLs (OData filters hold customer data). BC calls are measured by the product's own metrics and
  audit rows, without query strings.
- Entra-only ingestion: the exporter reads APPLICATIONINSIGHTS_AUTHENTICATION_STRING
  (`ClientId=<identity>;Authorization=AAD`, set by infra) and uses that managed identity.
"""

from __future__ import annotations

import logging
import threading

from shared.telemetry.dimensions import log_record_processors

PRODUCT_LOGGER = "shared"
# The distro's automatic instrumentations, all off (see the module docstring).
DISABLED_INSTRUMENTATIONS = (
    "azure_sdk",
    "django",
    "fastapi",
    "flask",
    "httpx",
    "psycopg2",
    "requests",
    "urllib",
    "urllib3",
)

logger = logging.getLogger(__name__)
_lock = threading.Lock()
_configured = False


def configure_telemetry(connection_string: str | None) -> bool:
    """Configure the Azure Monitor distro once when given a connection string (APPLICATIONINSIGHTS_CONNECTION_STRING,
    which shared.settings.telemetry_settings reads).

    Returns whether telemetry is exported. Safe to call more than once (later calls do nothing).
    """
    global _configured
    connection_string = (connection_string or "").strip()
    if not connection_string:
        return False
    with _lock:
        if _configured:
            return True
        from azure.monitor.opentelemetry import configure_azure_monitor

        configure_azure_monitor(**distro_options(connection_string))
        product = logging.getLogger(PRODUCT_LOGGER)
        if product.getEffectiveLevel() > logging.INFO:  # the worker may leave the root at WARNING
            product.setLevel(logging.INFO)
        _configured = True
    logger.info("telemetry: exporting to Azure Monitor", extra={"event": "telemetry.configured"})
    return True


def distro_options(connection_string: str) -> dict[str, object]:
    """The keyword arguments given to configure_azure_monitor."""
    return {
        "connection_string": connection_string,
        "logger_name": PRODUCT_LOGGER,
        "disable_tracing": True,
        "log_record_processors": log_record_processors(),
        "instrumentation_options": {name: {"enabled": False} for name in DISABLED_INSTRUMENTATIONS},
    }
