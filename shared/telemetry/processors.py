"""The log record processors of the exported records (see shared/telemetry/dimensions.py for what they add and
scrub). A module of their own: they subclass the OpenTelemetry SDK's LogRecordProcessor, and the SDK (with psutil)
loads only when telemetry is configured (`log_record_processors`), never for `import function_app` (issue 24,
point 4).
"""

from __future__ import annotations

from opentelemetry.sdk._logs import LogRecordProcessor, ReadWriteLogRecord

from shared.redaction import redact
from shared.telemetry.dimensions import current_dimensions, scrub_attribute


class JobDimensionsProcessor(LogRecordProcessor):
    """Adds the current job scope's and the process's dimensions to a record that does not carry them."""

    def on_emit(self, log_record: ReadWriteLogRecord) -> None:
        """Fill in missing dimensions (runs in the logging call's context, so the scope is the caller's)."""
        attributes = log_record.log_record.attributes
        if attributes is None:
            return
        for name, value in current_dimensions().items():
            if name not in attributes:
                attributes[name] = value  # type: ignore[index]

    def shutdown(self) -> None:
        """Nothing to release."""

    def force_flush(self, timeout_millis: int = 30000) -> bool:
        """Nothing buffered."""
        del timeout_millis
        return True


class RedactingLogProcessor(LogRecordProcessor):
    """Scrubs the body and every string attribute; blanks attributes named like secrets."""

    def on_emit(self, log_record: ReadWriteLogRecord) -> None:
        """Redact in place before the exporting processor sees the record."""
        record = log_record.log_record
        if isinstance(record.body, str):
            record.body = redact(record.body)
        attributes = record.attributes
        if attributes is None:
            return
        for name in list(attributes):
            attributes[name] = scrub_attribute(name, attributes[name])  # type: ignore[index]

    def shutdown(self) -> None:
        """Nothing to release."""

    def force_flush(self, timeout_millis: int = 30000) -> bool:
        """Nothing buffered."""
        del timeout_millis
        return True
