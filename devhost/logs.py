"""Structured log lines for the CLI: one JSON object per record, redacted; extra fields under `fields`."""

from __future__ import annotations

import json
import logging
import sys
from datetime import UTC, datetime

from shared.redaction import install_redaction


class JsonFormatter(logging.Formatter):
    """Render a record as {"time", "level", "logger", "message", ...fields, "exception"?}."""

    def format(self, record: logging.LogRecord) -> str:
        """One line of JSON."""
        line: dict[str, object] = {
            "time": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
        }
        fields = getattr(record, "fields", None)
        if isinstance(fields, dict):
            line.update(fields)
        if record.exc_info and not record.exc_text:
            record.exc_text = self.formatException(record.exc_info)
        if record.exc_text:
            line["exception"] = record.exc_text
        return json.dumps(line, default=str)


class TextFormatter(logging.Formatter):
    """Human-readable: time level logger message key=value..."""

    def format(self, record: logging.LogRecord) -> str:
        """One line of text (plus a traceback when there is one)."""
        text = super().format(record)
        fields = getattr(record, "fields", None)
        if isinstance(fields, dict) and fields:
            text += " " + " ".join(f"{key}={value}" for key, value in fields.items())
        return text


def configure_logging(style: str = "json", level: int = logging.INFO) -> None:
    """Send every log record to stderr in the given style ("json" or "text"), redacted at creation."""
    handler = logging.StreamHandler(sys.stderr)
    if style == "json":
        handler.setFormatter(JsonFormatter())
    else:
        handler.setFormatter(TextFormatter("%(asctime)s %(levelname)s %(name)s %(message)s"))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level)
    # Storage SDK request logging is noisy at INFO; keep its warnings.
    logging.getLogger("azure").setLevel(logging.WARNING)
    install_redaction()
