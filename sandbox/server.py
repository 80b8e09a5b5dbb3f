"""Serve several ASGI apps over TLS with uvicorn on one background event loop (signals stay with the caller)."""

from __future__ import annotations

import asyncio
import logging
import socket
import threading
import time
from dataclasses import dataclass

import uvicorn
from starlette.types import ASGIApp

from sandbox.errors import SandboxStartError
from sandbox.tls import TlsFiles


@dataclass(frozen=True, slots=True)
class Listener:
    """One app on one bound socket."""

    name: str
    app: ASGIApp
    sock: socket.socket
    tls: bool = True  # False: plain HTTP (the managed-identity endpoint, as App Service's is)

    @property
    def port(self) -> int:
        """The bound port."""
        return int(self.sock.getsockname()[1])


def bind(host: str, port: int) -> socket.socket:
    """A listening TCP socket (port 0 = any free port), bound before the servers start so URLs are known early."""
    # proto=IPPROTO_TCP matters: asyncio only sets TCP_NODELAY on accepted sockets whose proto says TCP, and
    # without it every response waits ~40 ms for the client's delayed ACK (Nagle).
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    try:
        sock.bind((host, port))
    except OSError as exc:
        sock.close()
        raise SandboxStartError(f"cannot bind {host}:{port}: {exc}") from exc
    sock.listen(2048)
    sock.setblocking(False)
    return sock


class ServerThread:
    """Runs uvicorn servers for every listener on a daemon thread with its own event loop."""

    def __init__(self, listeners: list[Listener], tls: TlsFiles) -> None:
        self._listeners = listeners
        self._servers = [
            uvicorn.Server(
                uvicorn.Config(
                    listener.app,
                    ssl_certfile=str(tls.server_cert) if listener.tls else None,
                    ssl_keyfile=str(tls.server_key) if listener.tls else None,
                    http="h11",  # the drop-connection fault relies on h11's cycle exposing its transport
                    loop="asyncio",
                    lifespan="off",
                    log_level="warning",
                    access_log=False,
                    timeout_keep_alive=30,
                    timeout_graceful_shutdown=2,
                )
            )
            for listener in listeners
        ]
        self._thread = threading.Thread(target=self._run, name="sandbox-servers", daemon=True)
        self._error: BaseException | None = None

    def start(self, timeout: float = 20.0) -> None:
        """Start serving and wait until every server is accepting connections."""
        self._thread.start()
        deadline = time.monotonic() + timeout
        while not all(server.started for server in self._servers):
            if self._error is not None or not self._thread.is_alive():
                raise SandboxStartError(f"a sandbox server failed to start: {self._error!r}")
            if time.monotonic() > deadline:
                raise SandboxStartError("the sandbox servers did not start in time")
            time.sleep(0.01)

    def stop(self, timeout: float = 10.0) -> None:
        """Ask every server to exit and wait for the thread."""
        for server in self._servers:
            # force_exit: idle keep-alive TLS connections would otherwise hold shutdown until the client closes them.
            server.force_exit = True
            server.should_exit = True
        self._thread.join(timeout)
        for listener in self._listeners:
            listener.sock.close()

    def _run(self) -> None:
        # uvicorn logs "Exception in ASGI application" for app errors; keep them, but not its startup chatter.
        logging.getLogger("uvicorn.error").setLevel(logging.WARNING)
        try:
            asyncio.run(self._serve_all())
        except BaseException as exc:
            self._error = exc

    async def _serve_all(self) -> None:
        await asyncio.gather(
            *(
                server.serve(sockets=[listener.sock])
                for server, listener in zip(self._servers, self._listeners, strict=True)
            )
        )
        # Connections whose clients never closed them (keep-alive pools) are cut so no socket outlives the loop.
        for server in self._servers:
            for connection in list(server.server_state.connections):
                transport = getattr(connection, "transport", None)
                if transport is not None:
                    transport.abort()
        for _ in range(3):
            await asyncio.sleep(0)
