"""The benchmarks' local world: localworld.world.World (one Azurite, one sandbox process and two counting storage
proxies) for a whole `make bench`, reset between runs; devhost instances started per run.

Every process the figures are about runs on its own: the sandbox (Entra, Key Vault, BC) in `python -m sandbox`,
each worker in `python -m devhost`; this process only enqueues, samples counters and forwards storage calls.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import json
import subprocess
import time
import uuid
from collections import Counter
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any, Self

from azure.core.exceptions import ResourceNotFoundError
from azure.data.tables import TableClient
from azure.storage.queue import QueueClient
from azure.storage.queue.aio import QueueClient as AsyncQueueClient

from bcjobs import JOBS_QUEUE, POISON_QUEUE, RESULTS_QUEUE, JobReport
from bcjobs.rows import JOB_ROW, report_from_row
from localworld.azurite import AzuriteEndpoints
from localworld.bc import BcReader
from localworld.world import World
from shared.bc.throttle import HEARTBEAT_SECONDS

JOIN_DELAY_SECONDS = 1.5 * HEARTBEAT_SECONDS + 1.0  # a newcomer waits this long before it may send


def b64(job: dict[str, Any]) -> str:
    """A job as queue text (base64 of its JSON)."""
    return base64.b64encode(json.dumps(job).encode("utf-8")).decode("ascii")


def ok_requests(stats: dict[str, Any]) -> int:
    """BC answers with a 2xx status, every identity."""
    return sum(
        int(n)
        for by_status in stats["bc"]["requests"].values()
        for status, n in by_status.items()
        if 200 <= int(status) < 300
    )


def requests_by_status(stats: dict[str, Any]) -> Counter[str]:
    """BC requests by status over every identity ("0": dropped)."""
    total: Counter[str] = Counter()
    for by_status in stats["bc"]["requests"].values():
        total.update({str(k): int(v) for k, v in by_status.items()})
    return total


@dataclass
class Sample:
    """Counters at one moment."""

    at: float
    stats: dict[str, Any]
    queue_calls: Counter[str]
    table_calls: Counter[str]


@dataclass
class BenchWorld(World):
    """The running world (localworld.world.World) with the benchmarks' seeds and levers; `BenchWorld.started()`
    builds it and takes it down."""

    azurite_pids: dict[str, int] = field(default_factory=dict)  # "queue", "table" -> node process id
    items: list[str] = field(default_factory=list)  # seeded item ids (the same after every reset)
    customers: list[str] = field(default_factory=list)

    @classmethod
    @contextlib.contextmanager
    def started(
        cls, prefix: str = "bench-", sandbox_flags: Sequence[str] = ("--seed", "1")
    ) -> Iterator[Self]:
        """Azurite, the sandbox and the proxies (World.started), with the seeded ids read from BC."""
        with super().started(prefix, sandbox_flags) as world:
            world.azurite_pids = azurite_pids(world.azurite)
            with BcReader(world.sandbox.env) as bc:
                world.items = [str(r["id"]) for r in bc.records("items")]
                world.customers = [str(r["id"]) for r in bc.records("customers")]
            yield world

    def reset(
        self,
        *,
        rate_limit: int,
        window_seconds: float,
        latency_ms: float = 0.0,
        jitter_ms: float = 0.0,
        max_in_flight: int = 5,
        token_lifetime: float | None = None,
    ) -> None:
        """Sandbox back to its seed (counters, windows, Key Vault emptied) with these limits; empty queues."""
        self.sandbox.admin("/reset", {})
        limits = {"rate_limit": rate_limit, "window_seconds": window_seconds, "max_in_flight": max_in_flight}
        self.sandbox.admin("/bc/limits", limits)
        self.sandbox.admin("/bc/latency", {"base_ms": latency_ms, "jitter_ms": jitter_ms})
        if token_lifetime is not None:
            self.sandbox.admin("/entra/token-lifetime", {"seconds": token_lifetime})
        for name in (JOBS_QUEUE, POISON_QUEUE, RESULTS_QUEUE):
            with QueueClient.from_connection_string(self.azurite.connection_string, name) as queue:
                with contextlib.suppress(ResourceNotFoundError):
                    queue.delete_queue()
                queue.create_queue()
        for proxy in self.proxies:
            proxy.clear()

    def app_settings(self, prefix: str, *, proxied: bool = True, **extra: str) -> dict[str, str]:
        """function_app.py's settings for a run: client credentials, its own tables, the hourly timer."""
        storage = self.proxied if proxied else self.azurite.connection_string
        return {
            **self.sandbox.env,
            "JobsStorage": storage,
            "AzureWebJobsStorage": storage,
            "BC_TABLE_PREFIX": prefix,
            "BC_AUTH_MODE": "client_credentials",
            "BC_TOKEN_REFRESH_SCHEDULE": "0 0 * * * *",
            **extra,
        }

    def enqueue(self, texts: list[str], concurrency: int = 32) -> float:
        """Put the texts on bc-jobs (straight to Azurite); seconds it took."""
        started = time.monotonic()

        async def send_all() -> None:
            work = iter(texts)
            async with AsyncQueueClient.from_connection_string(
                self.azurite.connection_string, JOBS_QUEUE
            ) as queue:

                async def sender() -> None:
                    for text in work:
                        await queue.send_message(text)

                await asyncio.gather(*(sender() for _ in range(concurrency)))

        asyncio.run(send_all())
        return time.monotonic() - started

    def get_jobs(self, count: int, tag: str) -> list[str]:
        """`count` single-record GET jobs (one BC request each) over the seeded items."""
        return [
            b64(
                {
                    "jobId": f"{tag}-{n}",
                    "operation": "get",
                    "entitySet": "items",
                    "id": self.items[n % len(self.items)],
                }
            )
            for n in range(count)
        ]

    def sample(self) -> Sample:
        """The sandbox's counters and the proxies' counts now."""
        return Sample(
            time.monotonic(), self.sandbox.stats(), self.proxies[0].snapshot(), self.proxies[1].snapshot()
        )

    def states(self, table_name: str) -> dict[str, int]:
        """Rows of a jobs table by state."""
        with TableClient.from_connection_string(self.azurite.connection_string, table_name) as table:
            try:
                # job rows only: a job's audit rows share its partition (shared/jobs/audit.py)
                rows = table.query_entities(f"RowKey eq '{JOB_ROW}'", select=["State"])
                return dict(Counter(str(row["State"]) for row in rows))
            except ResourceNotFoundError:
                return {}

    def report(self, table_name: str, job_id: str) -> JobReport | None:
        """One job's report from its row."""
        with TableClient.from_connection_string(self.azurite.connection_string, table_name) as table:
            try:
                return report_from_row(dict(table.get_entity(job_id, JOB_ROW)))
            except ResourceNotFoundError:
                return None

    def count_rows(self, table_name: str, state: str) -> int:
        """Rows of a jobs table in `state`."""
        with TableClient.from_connection_string(self.azurite.connection_string, table_name) as table:
            try:
                rows = table.query_entities(
                    f"RowKey eq '{JOB_ROW}' and State eq @s", parameters={"s": state}, select=["PartitionKey"]
                )
                return sum(1 for _ in rows)
            except ResourceNotFoundError:
                return 0


def azurite_pids(azurite: AzuriteEndpoints) -> dict[str, int]:
    """The node processes serving the queue and table ports (for their CPU time)."""
    listing = subprocess.run(["ps", "-eo", "pid,args"], capture_output=True, text=True, check=False).stdout  # noqa: S607
    found = {}
    for line in listing.splitlines():
        for service, port in (("queue", azurite.queue_port), ("table", azurite.table_port)):
            if f"azurite-{service}" in line and f" {port} " in f"{line} " and "node" in line:
                found[service] = int(line.split()[0])
    return found


def unique_prefix(label: str) -> str:
    """A table prefix of its own for one run (letters and digits)."""
    return f"{label}{uuid.uuid4().hex[:6]}"
