"""`python -m bench pipeline`: jobs/s through one devhost process, and storage calls per job.

The real function_app.py runs under devhost (in this process) against Azurite and an in-process sandbox whose BC
limit is out of reach, so the pipeline itself is what is measured. Azure Storage traffic goes through a counting
pass-through proxy: every request the process makes is counted by service, method and path. The host's own work
(devhost receiving and deleting `bc-jobs` messages) is reported apart from the product's (job rows, audit rows,
result messages, retry copies, throttle heartbeats).
"""

from __future__ import annotations

import base64
import contextlib
import json
import threading
import time
import uuid
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import uvicorn
from azure.core.exceptions import ResourceNotFoundError
from azure.data.tables import TableClient
from azure.storage.queue import QueueClient
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

import function_app
from bcjobs import JOBS_QUEUE, POISON_QUEUE, RESULTS_QUEUE
from devhost.azurite import ACCOUNT, ACCOUNT_KEY, Azurite
from devhost.host import DevHost
from devhost.hostconfig import load_host_config
from devhost.ports import free_port, wait_for_port
from sandbox import Sandbox, SandboxConfig
from shared.settings import get_settings

ROOT = Path(__file__).resolve().parents[1]
_HOP_HEADERS = {"host", "content-length", "transfer-encoding", "connection"}


@dataclass
class CountingProxy:
    """Forwards every request to `upstream` and counts (method, first path segment after the account)."""

    upstream: str
    counts: Counter[str] = field(default_factory=Counter)
    port: int = field(default_factory=free_port)

    def app(self) -> Starlette:
        client = httpx.AsyncClient(base_url=self.upstream, timeout=30)

        async def forward(request: Request) -> Response:
            path = request.url.path
            self.counts[_kind(request.method, path)] += 1
            headers = {k: v for k, v in request.headers.items() if k.lower() not in _HOP_HEADERS}
            answer = await client.request(
                request.method,
                path,
                params=request.query_params,
                headers=headers,
                content=await request.body(),
            )
            out = {
                k: v
                for k, v in answer.headers.items()
                if k.lower() not in _HOP_HEADERS | {"content-encoding"}
            }
            return Response(answer.content, status_code=answer.status_code, headers=out)

        return Starlette(
            routes=[
                Route(
                    "/{path:path}",
                    forward,
                    methods=["GET", "POST", "PUT", "DELETE", "PATCH", "MERGE", "HEAD", "OPTIONS"],
                )
            ]
        )

    def start(self) -> None:
        config = uvicorn.Config(
            self.app(), host="127.0.0.1", port=self.port, log_level="warning", lifespan="off"
        )
        threading.Thread(target=uvicorn.Server(config).run, daemon=True).start()
        wait_for_port("127.0.0.1", self.port, timeout=10)


def _kind(method: str, path: str) -> str:
    parts = path.strip("/").split("/")
    resource = parts[1] if len(parts) > 1 else ""
    resource = resource.split("(")[0]
    suffix = "/messages" if len(parts) > 2 and parts[2] == "messages" else ""
    return f"{method} {resource}{suffix}"


def _connection(queue_port: int, table_port: int) -> str:
    return (
        f"DefaultEndpointsProtocol=http;AccountName={ACCOUNT};AccountKey={ACCOUNT_KEY};"
        f"QueueEndpoint=http://127.0.0.1:{queue_port}/{ACCOUNT};"
        f"TableEndpoint=http://127.0.0.1:{table_port}/{ACCOUNT};"
    )


def _job(index: int, item_id: str) -> str:
    body = {"jobId": f"bench-{index}", "operation": "get", "entitySet": "items", "id": item_id}
    return base64.b64encode(json.dumps(body).encode()).decode()


def run(jobs: int = 500) -> dict[str, Any]:
    """Send `jobs` simple GET jobs to one devhost process; figures as one JSON-able dict."""
    azurite = Azurite()
    endpoints = azurite.start()
    queues = CountingProxy(f"http://127.0.0.1:{endpoints.queue_port}")
    tables = CountingProxy(f"http://127.0.0.1:{endpoints.table_port}")
    queues.start()
    tables.start()
    try:
        with Sandbox(SandboxConfig(seed=1, bc_rate_limit=10_000_000)) as sandbox:
            return _measure(
                jobs,
                sandbox,
                endpoints.connection_string,
                _connection(queues.port, tables.port),
                queues,
                tables,
            )
    finally:
        azurite.stop()


def _measure(
    jobs: int, sandbox: Sandbox, direct: str, counted: str, queues: CountingProxy, tables: CountingProxy
) -> dict[str, Any]:
    settings = {
        **sandbox.env,
        "JobsStorage": counted,
        "BC_TABLE_PREFIX": "b" + uuid.uuid4().hex[:8],
        "BC_AUTH_MODE": "client_credentials",
        "BC_TOKEN_REFRESH_SCHEDULE": "0 0 * * * *",
    }
    item = str(sandbox.bc.records("items")[0]["id"])
    with QueueClient.from_connection_string(direct, JOBS_QUEUE) as queue:
        _fresh_queues(direct)
        get_settings.cache_clear()
        host = DevHost(
            function_app.app,
            settings,
            host_config=load_host_config(ROOT / "host.json"),
            on_stop=function_app.close_services,
        )
        host.start()
        try:
            _warm_up(queue, direct, settings["BC_TABLE_PREFIX"], item)
            queues.counts.clear()
            tables.counts.clear()
            for index in range(jobs):
                queue.send_message(_job(index, item))
            started = time.monotonic()
            _wait_for(direct, settings["BC_TABLE_PREFIX"], jobs + 1)
            elapsed = time.monotonic() - started
        finally:
            host.stop()
            get_settings.cache_clear()
    return _figures(jobs, elapsed, queues.counts, tables.counts, sandbox)


def _fresh_queues(connection: str) -> None:
    for name in (JOBS_QUEUE, POISON_QUEUE, RESULTS_QUEUE):
        client = QueueClient.from_connection_string(connection, name)
        with contextlib.suppress(ResourceNotFoundError):
            client.delete_queue()
        client.create_queue()


def _warm_up(queue: QueueClient, connection: str, prefix: str, item: str) -> None:
    """One job first: tables created, token fetched, throttle joined (costs not counted)."""
    queue.send_message(_job(-1, item))
    _wait_for(connection, prefix, 1)


def _wait_for(connection: str, prefix: str, count: int) -> None:
    deadline = time.monotonic() + 600
    with TableClient.from_connection_string(connection, f"{prefix}jobs") as table:
        while time.monotonic() < deadline:
            try:
                done = sum(1 for _ in table.query_entities("State eq 'succeeded'", select=["PartitionKey"]))
            except ResourceNotFoundError:  # the table may not exist yet
                done = 0
            if done >= count:
                return
            time.sleep(0.2)
    raise TimeoutError(f"{count} jobs did not finish in 600 s")


def _figures(
    jobs: int, elapsed: float, queue_counts: Counter[str], table_counts: Counter[str], sandbox: Sandbox
) -> dict[str, Any]:
    host_calls = {
        k: v
        for k, v in queue_counts.items()
        if k.endswith(f"{JOBS_QUEUE}/messages") and k.split()[0] in ("GET", "DELETE")
    }
    product_queue = {k: v for k, v in queue_counts.items() if k not in host_calls}
    heartbeats = sum(v for k, v in table_counts.items() if "throttle" in k)
    job_tables = {k: v for k, v in table_counts.items() if "throttle" not in k}
    product = sum(product_queue.values()) + sum(job_tables.values())
    return {
        "jobs": jobs,
        "seconds": round(elapsed, 2),
        "jobs_per_second": round(jobs / elapsed, 1),
        "storage_calls_per_job": round(product / jobs, 2),
        "storage_calls_per_job_with_throttle_heartbeats": round((product + heartbeats) / jobs, 3),
        "host_calls_per_job": round(sum(host_calls.values()) / jobs, 2),
        "product_calls": dict(sorted({**product_queue, **job_tables}.items())),
        "host_calls": dict(sorted(host_calls.items())),
        "bc_requests": sandbox.bc.stats().count(),
    }


def main(jobs: int) -> None:
    """Print the figures."""
    print(json.dumps(run(jobs)))
