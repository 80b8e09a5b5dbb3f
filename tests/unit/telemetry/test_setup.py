"""Telemetry configuration: nothing without a connection string; with one, the distro gets the product's options."""

from __future__ import annotations

import json
import logging
from pathlib import Path

import pytest
from opentelemetry import _logs, metrics, trace

from shared.settings import telemetry_settings
from shared.telemetry import configure_telemetry
from shared.telemetry.processors import JobDimensionsProcessor, RedactingLogProcessor
from shared.telemetry.setup import DISABLED_INSTRUMENTATIONS, PRODUCT_LOGGER, distro_options

ROOT = Path(__file__).resolve().parents[3]


@pytest.mark.parametrize("environ", [{}, {"APPLICATIONINSIGHTS_CONNECTION_STRING": "  "}])
def test_without_a_connection_string_nothing_is_configured(environ: dict[str, str]) -> None:
    """No provider is installed and no handler added: nothing can export (tests and the local world)."""
    handlers = list(logging.getLogger(PRODUCT_LOGGER).handlers)
    assert configure_telemetry(telemetry_settings(environ).connection_string) is False
    assert type(metrics.get_meter_provider()).__name__ == "_ProxyMeterProvider"
    assert type(_logs.get_logger_provider()).__name__ == "ProxyLoggerProvider"
    assert type(trace.get_tracer_provider()).__name__ == "ProxyTracerProvider"
    assert logging.getLogger(PRODUCT_LOGGER).handlers == handlers


def test_the_distro_exports_product_logs_through_the_products_processors() -> None:
    """Logs of `shared.*` only, job dimensions then redaction before export; no tracing, no HTTP auto-instrumentation."""
    options = distro_options("InstrumentationKey=00000000-0000-0000-0000-000000000000")
    assert options["logger_name"] == "shared"
    assert options["disable_tracing"] is True
    processors = options["log_record_processors"]
    assert isinstance(processors, list)
    assert [type(p) for p in processors] == [JobDimensionsProcessor, RedactingLogProcessor]
    assert options["instrumentation_options"] == {
        name: {"enabled": False} for name in DISABLED_INSTRUMENTATIONS
    }
    assert {"httpx", "requests", "urllib3", "azure_sdk"} <= set(DISABLED_INSTRUMENTATIONS)


def test_host_json_keeps_the_default_telemetry_mode_and_quiets_forwarded_function_logs() -> None:
    """No host OpenTelemetry mode (it skips queue and timer triggers); product logs go once, through the distro;
    the host still records every invocation (`requests`, read by the function-failures alert)."""
    host = json.loads((ROOT / "host.json").read_text(encoding="utf-8"))
    assert "telemetryMode" not in host
    levels = host["logging"]["logLevel"]
    assert levels["Function"] == "Warning"
    assert levels["Host.Results"] == "Information"
    assert "Request" in host["logging"]["applicationInsights"]["samplingSettings"]["excludedTypes"]
