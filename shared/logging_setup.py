"""Process-wide logging policy, applied once at import of function_app.py."""

from __future__ import annotations

import logging

from shared.redaction import install_redaction

# httpx/httpcore log each request line at INFO, query string included (OData $filter values, webhook
# signatures); the BC client's recorder logs what ops need without query values. MSAL and the Azure SDK's
# HTTP logging policy are chatty at INFO too.
_QUIET_LOGGERS = ("httpx", "httpcore", "msal", "azure.core.pipeline.policies.http_logging_policy")


def configure_logging() -> None:
    """Redact every record at creation and quiet chatty client loggers; safe to call more than once."""
    install_redaction()
    for name in _QUIET_LOGGERS:
        logging.getLogger(name).setLevel(logging.WARNING)
