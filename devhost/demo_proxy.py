"""A counting pass-through proxy in front of Azurite: how many storage calls the workers make, and which.

The demo and the benchmarks point the workers' `JobsStorage` at two of these (queue, table); every request is
forwarded unchanged to Azurite and counted by method and resource (`POST bc-results/messages`, `MERGE bcjobs`).
It runs in a thread of the calling process (uvicorn), so it adds a hop but no process to manage.
"""

from __future__ import annotations

import contextlib
import threading
from collections import Counter
from collections.abc import AsyncIterator
from dataclasses import dataclass, field

import httpx
import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from devhost.azurite import ACCOUNT, ACCOUNT_KEY
from devhost.ports import free_port, wait_for_port

_HOP_HEADERS = {"host", "content-length", "transfer-encoding", "connection"}
_METHODS = ["GET", "POST", "PUT", "DELETE", "PATCH", "MERGE", "HEAD", "OPTIONS"]


@dataclass
class CountingProxy:
    """Forwards every request to `upstream` and counts `kind(method, path)`; `start()` / `stop()`."""

    upstream: str
    counts: Counter[str] = field(default_factory=Counter)
    port: int = field(default_factory=free_port)
    _server: uvicorn.Server | None = field(default=None, repr=False)
    _thread: threading.Thread | None = field(default=None, repr=False)
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    def app(self) -> Starlette:
        """The forwarding app (one httpx pool to the upstream)."""
        client = httpx.AsyncClient(base_url=self.upstream, timeout=60)

        async def forward(request: Request) -> Response:
            path = request.url.path
            with self._lock:
                self.counts[kind(request.method, path)] += 1
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

        @contextlib.asynccontextmanager
        async def lifespan(app: Starlette) -> AsyncIterator[None]:
            yield
            await client.aclose()

        return Starlette(routes=[Route("/{path:path}", forward, methods=_METHODS)], lifespan=lifespan)

    def start(self) -> CountingProxy:
        """Serve in a daemon thread; returns once the port accepts connections."""
        config = uvicorn.Config(self.app(), host="127.0.0.1", port=self.port, log_level="warning")
        self._server = uvicorn.Server(config)
        self._thread = threading.Thread(target=self._server.run, name=f"proxy-{self.port}", daemon=True)
        self._thread.start()
        wait_for_port("127.0.0.1", self.port, timeout=15)
        return self

    def stop(self) -> None:
        """Ask uvicorn to exit and wait for the thread (open connections are closed)."""
        if self._server is not None:
            self._server.should_exit = True
        if self._thread is not None:
            self._thread.join(timeout=10)

    def snapshot(self) -> Counter[str]:
        """A copy of the counts so far."""
        with self._lock:
            return Counter(self.counts)

    def clear(self) -> None:
        """Start counting from zero."""
        with self._lock:
            self.counts.clear()


def kind(method: str, path: str) -> str:
    """`METHOD resource[/messages]`: the queue or table name without keys, e.g. `MERGE bcjobs`."""
    parts = path.strip("/").split("/")
    resource = parts[1].split("(")[0] if len(parts) > 1 else ""
    suffix = "/messages" if len(parts) > 2 and parts[2] == "messages" else ""
    return f"{method} {resource}{suffix}"


def proxied_connection_string(queue_port: int, table_port: int) -> str:
    """An Azurite connection string whose queue and table endpoints are the two proxies."""
    return (
        f"DefaultEndpointsProtocol=http;AccountName={ACCOUNT};AccountKey={ACCOUNT_KEY};"
        f"QueueEndpoint=http://127.0.0.1:{queue_port}/{ACCOUNT};"
        f"TableEndpoint=http://127.0.0.1:{table_port}/{ACCOUNT};"
    )


@dataclass(frozen=True, slots=True)
class StorageCalls:
    """Storage calls split by who made them."""

    host: int  # the trigger's receive and delete of queue messages
    product: int  # job rows, audit rows, result and retry messages, auth tables
    throttle: int  # heartbeats of the shared BC throttle
    by_kind: dict[str, int]

    @property
    def total(self) -> int:
        """Every call the workers made."""
        return self.host + self.product + self.throttle


def split_calls(queue_counts: Counter[str], table_counts: Counter[str]) -> StorageCalls:
    """Host calls (GET/DELETE on `*/messages`), throttle heartbeats (`*throttle` table), the rest is product."""
    host = sum(
        v for k, v in queue_counts.items() if k.endswith("/messages") and k.split()[0] in ("GET", "DELETE")
    )
    throttle = sum(v for k, v in table_counts.items() if k.split()[-1].endswith("throttle"))
    product = sum(queue_counts.values()) - host + sum(table_counts.values()) - throttle
    merged = queue_counts + table_counts
    return StorageCalls(host, product, throttle, dict(sorted(merged.items())))
