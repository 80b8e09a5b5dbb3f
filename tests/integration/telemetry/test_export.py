"""The production route end to end, offline: configure_telemetry with a connection string whose ingestion endpoint
is a local HTTP sink, in a child process (the global OpenTelemetry providers are set once per process).
What Application Insights would receive: log records as traces with the job's custom dimensions, the app's
metrics under their names, and no secret in either."""

from __future__ import annotations

import gzip
import json
import os
import subprocess
import sys
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

pytestmark = pytest.mark.integration
ROOT = Path(__file__).resolve().parents[3]
JWT = "eyJhbGciOiJSUzI1NiJ9.eyJhdWQiOiJodHRwczovL2FwaS5idXNpbmVzc2NlbnRyYWwifQ.c2lnbmF0dXJl"
CHILD = """
import logging, sys
from opentelemetry import _logs, metrics
from shared import telemetry

connection_string = sys.argv[1]
assert telemetry.configure_telemetry({"APPLICATIONINSIGHTS_CONNECTION_STRING": connection_string})
assert telemetry.configure_telemetry({"APPLICATIONINSIGHTS_CONNECTION_STRING": connection_string})  # once only
telemetry.set_default_dimensions(connection="default")
log = logging.getLogger("shared.jobs.processor")
with telemetry.job_scope(message_id="m-1"):
    telemetry.note_job(job_id="export-1", correlation_id="crm-export", operation="create", attempt=1)
    log.info("job export-1 succeeded after 1 attempts", extra={"event": "jobs.finished", "access_token": sys.argv[2]})
    logging.getLogger("azure.core").warning("not a product log: stays with the host")
telemetry.bc_request("POST", 429, 31.5, "Application_TooManyRequests")
_logs.get_logger_provider().force_flush()
metrics.get_meter_provider().force_flush()
"""


class Sink(BaseHTTPRequestHandler):
    """Accepts Application Insights' track calls and keeps every envelope."""

    envelopes: list[dict[str, Any]]
    lock = threading.Lock()

    def do_POST(self) -> None:
        body = self.rfile.read(int(self.headers.get("content-length") or 0))
        if self.headers.get("content-encoding") == "gzip":
            body = gzip.decompress(body)
        if self.path.endswith("/track"):
            with self.lock:
                self.envelopes.extend(json.loads(body))
        self.send_response(200)
        self.send_header("content-type", "application/json")
        self.end_headers()
        self.wfile.write(b'{"itemsReceived": 0, "itemsAccepted": 0, "errors": []}')

    def log_message(self, format: str, *args: Any) -> None:
        del format, args


@pytest.fixture
def sink() -> Iterator[tuple[str, list[dict[str, Any]]]]:
    """A local ingestion endpoint; yields its base URL and the envelopes it received."""
    received: list[dict[str, Any]] = []
    handler = type("BoundSink", (Sink,), {"envelopes": received})
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/", received
    finally:
        server.shutdown()
        server.server_close()


def test_configured_telemetry_exports_traces_with_dimensions_and_metrics(
    sink: tuple[str, list[dict[str, Any]]], tmp_path: Path
) -> None:
    """One job's record and one BC request reach the ingestion endpoint as App Insights would store them."""
    endpoint, envelopes = sink
    connection_string = f"InstrumentationKey=00000000-0000-0000-0000-000000000001;IngestionEndpoint={endpoint};LiveEndpoint={endpoint}"
    env = {
        **{k: v for k, v in os.environ.items() if not k.startswith(("APPLICATIONINSIGHTS_", "OTEL_"))},
        "APPLICATIONINSIGHTS_STATSBEAT_DISABLED_ALL": "true",  # no call home to Microsoft's statsbeat endpoint
        "TMPDIR": str(tmp_path),  # the exporter's offline retry storage, if it ever needs it
    }
    done = subprocess.run(
        [sys.executable, "-c", CHILD, connection_string, JWT],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    messages = [e["data"]["baseData"] for e in envelopes if e["data"]["baseType"] == "MessageData"]
    metrics = [e["data"]["baseData"] for e in envelopes if e["data"]["baseType"] == "MetricData"]
    (job,) = [m for m in messages if m["message"].startswith("job export-1")]
    assert {
        k: job["properties"][k] for k in ("event", "job_id", "correlation_id", "operation", "attempt")
    } == {
        "event": "jobs.finished",
        "job_id": "export-1",
        "correlation_id": "crm-export",
        "operation": "create",
        "attempt": "1",
    }
    assert job["properties"]["connection"] == "default"
    assert job["properties"]["access_token"] == "[REDACTED]"
    assert not [m for m in messages if "not a product log" in m["message"]]
    by_name = {metric["metrics"][0]["name"]: metric for metric in metrics}
    assert by_name["bc.requests"]["properties"] == {
        "method": "POST",
        "status": "429",
        "bc_code": "Application_TooManyRequests",
    }
    assert by_name["bc.requests.throttled"]["metrics"][0]["value"] == 1
    assert by_name["bc.request.duration"]["metrics"][0]["value"] == 31.5
    assert JWT not in json.dumps(envelopes)
