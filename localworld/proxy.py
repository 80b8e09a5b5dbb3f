"""A counting pass-through proxy in front of Azurite: how many storage calls the workers make, and which.

The demo and the benchmarks point the workers' `JobsStorage` at two of these (queue, table). It is a TCP relay:
bytes go through untouched (no HTTP re-encoding, no header changes), while the client's side is parsed just
enough to count each request by method and resource (`POST bc-results/messages`, `MERGE bcjobs`). It runs on
its own event loop in a thread of the calling process and costs little CPU per request.

In front of an HTTPS Azurite (OAuth, which needs HTTPS; the demo's S2S mode) it terminates TLS with the sandbox's
server certificate, which the workers trust through the sandbox CA, counts the decrypted requests, and opens its own
TLS connection to Azurite, verified against the same CA: the bytes of each request (bearer token included) still go
through unchanged.
"""

from __future__ import annotations

import asyncio
import contextlib
import ssl
import threading
import weakref
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlsplit

from bcjobs import JOBS_QUEUE, RESULTS_QUEUE
from localworld.azurite import ACCOUNT, ACCOUNT_KEY
from localworld.ports import free_port, wait_for_port

_CHUNK = 65536


class _RequestCounter:
    """Finds HTTP/1.1 request boundaries in a client's byte stream (Content-Length or chunked bodies)."""

    def __init__(self, count: Callable[[str, str], None]) -> None:
        self._count = count
        self._buffer = b""
        self._body = 0  # bytes of the current body still to skip
        self._chunked = False

    def feed(self, data: bytes) -> None:
        self._buffer += data
        while self._step():
            pass

    def _step(self) -> bool:
        if self._body:
            skipped = min(self._body, len(self._buffer))
            self._buffer, self._body = self._buffer[skipped:], self._body - skipped
            return bool(self._buffer) and not self._body
        if self._chunked:
            return self._chunk()
        end = self._buffer.find(b"\r\n\r\n")
        if end < 0:
            return False
        head, self._buffer = self._buffer[:end].decode("latin-1"), self._buffer[end + 4 :]
        lines = head.split("\r\n")
        method, _, rest = lines[0].partition(" ")
        self._count(method, rest.partition(" ")[0].partition("?")[0])
        headers = {k.strip().lower(): v.strip() for k, _, v in (line.partition(":") for line in lines[1:])}
        self._chunked = "chunked" in headers.get("transfer-encoding", "").lower()
        self._body = int(headers.get("content-length") or 0) if not self._chunked else 0
        return True

    def _chunk(self) -> bool:
        line_end = self._buffer.find(b"\r\n")
        if line_end < 0:
            return False
        size = int(self._buffer[:line_end].split(b";")[0] or b"0", 16)
        if size == 0:
            trailer_end = self._buffer.find(b"\r\n\r\n", line_end)
            if trailer_end < 0 and self._buffer[line_end : line_end + 4] != b"\r\n\r\n":
                return False
            self._buffer = self._buffer[line_end + 4 if trailer_end < 0 else trailer_end + 4 :]
            self._chunked = False
            return True
        if len(self._buffer) < line_end + 2 + size + 2:
            return False
        self._buffer = self._buffer[line_end + 2 + size + 2 :]
        return True


@dataclass(frozen=True, slots=True)
class ProxyTls:
    """TLS on both sides of a proxy: the certificate it serves and the CA it verifies the upstream with."""

    cert: Path
    key: Path
    ca_bundle: Path

    def server(self) -> ssl.SSLContext:
        """What the proxy serves its clients with (HTTP/1.1 only: the proxy counts HTTP/1.1 requests)."""
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        context.load_cert_chain(self.cert, self.key)
        context.set_alpn_protocols(["http/1.1"])
        return context

    def client(self) -> ssl.SSLContext:
        """What the proxy connects upstream with."""
        return ssl.create_default_context(cafile=str(self.ca_bundle))


@dataclass
class CountingProxy:
    """Relays every connection to `upstream` (http://host:port, or https://host:port with `tls`) and counts
    `kind(method, path)`."""

    upstream: str
    tls: ProxyTls | None = None
    counts: Counter[str] = field(default_factory=Counter)
    port: int = field(default_factory=free_port)
    _loop: asyncio.AbstractEventLoop | None = field(default=None, repr=False)
    _thread: threading.Thread | None = field(default=None, repr=False)
    _stopped: asyncio.Event | None = field(default=None, repr=False)
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)
    _upstream_tls: ssl.SSLContext | None = field(default=None, repr=False)
    # Transports of the relays, while anything holds them (the loop does until they are closed).
    _transports: weakref.WeakSet[asyncio.WriteTransport] = field(default_factory=weakref.WeakSet, repr=False)

    def _note(self, method: str, path: str) -> None:
        with self._lock:
            self.counts[kind(method, path)] += 1

    async def _relay(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        upstream = urlsplit(self.upstream)
        try:
            up_reader, up_writer = await asyncio.open_connection(
                upstream.hostname, upstream.port, ssl=self._upstream_tls
            )
        except OSError:
            writer.close()
            return
        counter = _RequestCounter(self._note)

        async def pipe(source: asyncio.StreamReader, sink: asyncio.StreamWriter, parse: bool) -> None:
            with contextlib.suppress(OSError, asyncio.IncompleteReadError):
                while data := await source.read(_CHUNK):
                    if parse:
                        counter.feed(data)
                    sink.write(data)
                    await sink.drain()
            with contextlib.suppress(OSError):
                sink.close()

        self._transports.update((writer.transport, up_writer.transport))
        try:
            await asyncio.gather(pipe(reader, up_writer, True), pipe(up_reader, writer, False))
        finally:
            for end in (writer, up_writer):
                end.close()

    async def _serve(self, ready: threading.Event) -> None:
        self._stopped = asyncio.Event()
        secure = self.tls.server() if self.tls is not None else None
        if self.tls is not None and urlsplit(self.upstream).scheme == "https":
            self._upstream_tls = self.tls.client()
        server = await asyncio.start_server(self._relay, "127.0.0.1", self.port, ssl=secure)
        ready.set()
        async with server:
            await self._stopped.wait()
        server.close()
        relays = [task for task in asyncio.all_tasks() if task is not asyncio.current_task()]
        for task in relays:  # open keep-alive connections: close both ends
            task.cancel()
        await asyncio.gather(*relays, return_exceptions=True)
        # A TLS connection still closing (its close_notify exchange) would outlive the loop: drop it now, and give
        # the loop one turn to close the sockets (transports close them in a callback).
        for transport in list(self._transports):
            transport.abort()
        await asyncio.sleep(0)

    def start(self) -> CountingProxy:
        """Serve on a loop in a daemon thread; returns once the port accepts connections."""
        ready = threading.Event()
        self._loop = asyncio.new_event_loop()
        loop = self._loop

        def run() -> None:
            asyncio.set_event_loop(loop)
            try:
                with contextlib.suppress(Exception):
                    loop.run_until_complete(self._serve(ready))
            finally:
                loop.close()

        self._thread = threading.Thread(target=run, name=f"proxy-{self.port}", daemon=True)
        self._thread.start()
        ready.wait(timeout=15)
        wait_for_port("127.0.0.1", self.port, timeout=15)
        return self

    def stop(self) -> None:
        """Stop accepting and end the thread (open relays are dropped with it)."""
        if self._loop is not None and self._stopped is not None:
            self._loop.call_soon_threadsafe(self._stopped.set)
        if self._thread is not None:
            self._thread.join(timeout=10)

    @property
    def url(self) -> str:
        """Where clients reach the proxy."""
        return f"{'https' if self.tls is not None else 'http'}://127.0.0.1:{self.port}"

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


def background_calls(by_kind: dict[str, int]) -> int:
    """Calls no job causes (counted by the proxies as `METHOD name[/messages]`): properties of the jobs queues (the
    telemetry sample's queue lengths), table creation, connection-registry and token-record reads (their staleness
    timer), and the host's polls of queues other than `bc-jobs` and `bc-results` (poison, notifications)."""
    return sum(count for kind, count in by_kind.items() if _background(kind))


def _background(kind: str) -> bool:
    method, _, target = kind.partition(" ")
    name, _, messages = target.partition("/")
    if messages:  # a queue's messages: the host's polls of queues that hold no job
        return method == "GET" and name not in (JOBS_QUEUE, RESULTS_QUEUE)
    if name in (JOBS_QUEUE, RESULTS_QUEUE) or (method == "POST" and name == "Tables"):
        return True  # queue properties, table creation
    return method == "GET" and not name.endswith(("jobs", "throttle"))  # registry and token-record reads
