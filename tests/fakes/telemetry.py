"""OpenTelemetry's in-memory reader and exporter wired like production: the app's instruments bound to an SDK
MeterProvider with an InMemoryMetricReader, and the `shared` logger exporting through the app's log record
processors (job dimensions, redaction) into an InMemoryLogRecordExporter. Used by every tier's telemetry tests."""

from __future__ import annotations

import json
import logging
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

from opentelemetry.instrumentation.logging.handler import LoggingHandler
from opentelemetry.sdk._logs import LoggerProvider, ReadableLogRecord
from opentelemetry.sdk._logs.export import InMemoryLogRecordExporter, SimpleLogRecordProcessor
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import (
    HistogramDataPoint,
    InMemoryMetricReader,
    Metric,
    NumberDataPoint,
)

from shared import telemetry
from shared.clock import Clock
from shared.telemetry.setup import PRODUCT_LOGGER


@dataclass(frozen=True)
class Point:
    """One exported data point: its attributes and value (a histogram's count and sum)."""

    attributes: dict[str, Any]
    value: float
    count: int = 0


@dataclass
class Captured:
    """What the app exported during the block."""

    reader: InMemoryMetricReader
    exporter: InMemoryLogRecordExporter
    provider: LoggerProvider

    def metrics(self) -> dict[str, Metric]:
        """Every metric collected now, by name."""
        data = self.reader.get_metrics_data()
        found: dict[str, Metric] = {}
        if data is None:
            return found
        for resource in data.resource_metrics:
            for scope in resource.scope_metrics:
                for metric in scope.metrics:
                    found[metric.name] = metric
        return found

    def points(self, name: str) -> list[Point]:
        """The data points of one metric (empty when nothing was recorded)."""
        metric = self.metrics().get(name)
        if metric is None:
            return []
        points: list[Point] = []
        for point in metric.data.data_points:
            if isinstance(point, HistogramDataPoint):
                points.append(Point(dict(point.attributes or {}), point.sum, point.count))
            elif isinstance(point, NumberDataPoint):
                points.append(Point(dict(point.attributes or {}), float(point.value)))
        return points

    def total(self, name: str, **attributes: str) -> float:
        """The sum of a counter's points whose attributes include `attributes`."""
        return sum(
            point.value for point in self.points(name) if attributes.items() <= point.attributes.items()
        )

    def records(self) -> list[ReadableLogRecord]:
        """Every exported log record, in order."""
        self.provider.force_flush()
        return list(self.exporter.get_finished_logs())

    def events(self, event: str) -> list[dict[str, Any]]:
        """The attributes of every exported record whose `event` dimension is `event`."""
        return [
            dict(record.log_record.attributes or {})
            for record in self.records()
            if (record.log_record.attributes or {}).get("event") == event
        ]

    def exported_text(self) -> str:
        """Every exported body, attribute name and value and metric attribute, as one text (for leak checks)."""
        parts = [
            json.dumps(
                {"body": record.log_record.body, "attributes": dict(record.log_record.attributes or {})},
                default=str,
            )
            for record in self.records()
        ]
        for metric in self.metrics().values():
            parts += [json.dumps(dict(p.attributes or {})) for p in metric.data.data_points]
        return "\n".join(parts)


@contextmanager
def capture(clock: Clock | None = None) -> Iterator[Captured]:
    """Bind the app's instruments and the `shared` logger to in-memory OpenTelemetry for the block."""
    reader = InMemoryMetricReader()
    meters = MeterProvider(metric_readers=[reader])
    telemetry.use_meter_provider(meters, clock)
    provider = LoggerProvider()
    for processor in telemetry.log_record_processors():
        provider.add_log_record_processor(processor)
    exporter = InMemoryLogRecordExporter()
    provider.add_log_record_processor(SimpleLogRecordProcessor(exporter))
    handler = LoggingHandler(logger_provider=provider)
    product = logging.getLogger(PRODUCT_LOGGER)
    level = product.level
    product.addHandler(handler)
    if product.getEffectiveLevel() > logging.INFO:  # records below the root's level never reach a handler
        product.setLevel(logging.INFO)
    try:
        yield Captured(reader, exporter, provider)
    finally:
        product.removeHandler(handler)
        product.setLevel(level)
        telemetry.use_meter_provider(None)
        provider.shutdown()
        meters.shutdown()
