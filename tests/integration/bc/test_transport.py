"""The BC client's aiohttp transport against real sockets: what goes out is what httpx built, what comes back is
what the server said, and each failure is the httpx error that tells the sender whether BC may have acted
(shared/bc/transport.py has the table)."""

from __future__ import annotations

import asyncio
import gzip
import socket
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager

import httpx
import pytest

from shared.bc.factory import http_client_from_settings
from shared.bc.transport import AiohttpTransport
from shared.settings import Settings

Reply = Callable[[asyncio.StreamReader, asyncio.StreamWriter], Awaitable[None]]
LIMITS = httpx.Limits(max_connections=4, max_keepalive_connections=2)
QUERY = "$filter=displayName%20eq%20%27O%27%27Brien%20%2B%20Co%27&$top=2"


class Server:
    """A loopback HTTP/1.1 server whose every connection runs the reply `behaviour` makes for it; it keeps each
    request's head."""

    def __init__(self, behaviour: Callable[[Server], Reply]) -> None:
        self.heads: list[bytes] = []
        self.arrived = asyncio.Event()
        self.port = 0
        self.reply = behaviour(self)

    async def serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            await self.reply(reader, writer)
        finally:
            writer.close()

    async def read_head(self, reader: asyncio.StreamReader) -> bytes:
        head = await reader.readuntil(b"\r\n\r\n")
        self.heads.append(head)
        self.arrived.set()
        return head


@asynccontextmanager
async def serving(behaviour: Callable[[Server], Reply]) -> AsyncIterator[Server]:
    server = Server(behaviour)
    listener = await asyncio.start_server(server.serve, "127.0.0.1", 0)
    server.port = listener.sockets[0].getsockname()[1]
    try:
        yield server
    finally:
        listener.close()


def client(timeout: httpx.Timeout | None = None) -> httpx.AsyncClient:
    return httpx.AsyncClient(
        transport=AiohttpTransport(False, LIMITS), timeout=timeout or httpx.Timeout(5.0), limits=LIMITS
    )


def answers_gzip(server: Server) -> Reply:
    async def reply(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        while not reader.at_eof():
            try:
                await server.read_head(reader)
            except asyncio.IncompleteReadError:
                return  # the client closed its kept-alive connection
            body = gzip.compress(b'{"value": []}')
            writer.write(
                b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Encoding: gzip\r\n"
                b"Set-Cookie: a=1\r\nSet-Cookie: b=2\r\nrequest-id: bc-1\r\n"
                + f"Content-Length: {len(body)}\r\n\r\n".encode()
                + body
            )
            await writer.drain()

    return reply


def drops_after_the_request(server: Server) -> Reply:
    async def reply(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await server.read_head(reader)

    return reply


def never_answers(server: Server) -> Reply:
    async def reply(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await server.read_head(reader)
        await asyncio.sleep(30)

    return reply


async def test_a_request_goes_out_as_httpx_built_it_and_the_answer_comes_back_whole() -> None:
    """The OData query byte for byte, the product's headers, the gzip body decoded, repeated headers kept."""
    async with serving(answers_gzip) as server, client() as http:
        url = f"http://127.0.0.1:{server.port}/api/v2.0/customers?{QUERY}"
        answer = await http.get(
            url, headers={"User-Agent": "bc-product/0.1.0", "Data-Access-Intent": "ReadOnly"}
        )
        again = await http.get(url)
    assert (answer.status_code, answer.json(), again.status_code) == (200, {"value": []}, 200)
    assert answer.headers.get_list("set-cookie") == ["a=1", "b=2"]
    assert answer.headers["request-id"] == "bc-1"
    first = server.heads[0].decode()
    assert first.startswith(f"GET /api/v2.0/customers?{QUERY} HTTP/1.1\r\n")
    assert "User-Agent: bc-product/0.1.0\r\n" in first
    assert "Data-Access-Intent: ReadOnly\r\n" in first
    # httpx keeps the client's cookies and sends them, as over its own transport; aiohttp adds none of its own
    assert [line for line in server.heads[1].decode().split("\r\n") if "cookie" in line.lower()] == [
        "Cookie: a=1; b=2"
    ]


async def test_a_refused_connection_is_a_connect_error_so_the_request_surely_never_went_out() -> None:
    with socket.socket() as held:  # bound, not listening: connections to it are refused
        held.bind(("127.0.0.1", 0))
        port = held.getsockname()[1]
        async with client() as http:
            with pytest.raises(httpx.ConnectError):
                await http.post(f"http://127.0.0.1:{port}/api/v2.0/customers", json={"displayName": "A"})


@pytest.mark.parametrize("method", ["GET", "PUT", "DELETE", "PATCH", "POST"])
async def test_a_connection_dropped_after_the_request_is_one_request_that_may_have_reached_bc(
    method: str,
) -> None:
    """aiohttp would send GET, PUT and DELETE again by itself; the transport never does: one request, and an
    error the sender treats as sent."""
    async with serving(drops_after_the_request) as server, client() as http:
        with pytest.raises(httpx.RemoteProtocolError):
            await http.request(method, f"http://127.0.0.1:{server.port}/api/v2.0/customers(1)", content=b"{}")
    assert len(server.heads) == 1


async def test_a_server_that_never_answers_is_a_read_timeout() -> None:
    async with serving(never_answers) as server, client(httpx.Timeout(5.0, read=0.2)) as http:
        with pytest.raises(httpx.ReadTimeout):
            await http.get(f"http://127.0.0.1:{server.port}/api/v2.0/customers")
    assert len(server.heads) == 1


async def test_a_request_that_gets_no_connection_in_time_is_a_connect_timeout_so_it_never_went_out() -> None:
    """The pool's wait is httpx's `pool` timeout; running out of it is not sent, like a connect timeout."""
    limits = httpx.Limits(max_connections=1)
    timeout = httpx.Timeout(5.0, pool=0.2)
    async with serving(never_answers) as server:
        transport = AiohttpTransport(False, limits)
        async with httpx.AsyncClient(transport=transport, timeout=timeout) as http:
            url = f"http://127.0.0.1:{server.port}/api/v2.0/customers"
            holding = asyncio.create_task(http.get(url))
            await asyncio.wait_for(server.arrived.wait(), 5)
            with pytest.raises(httpx.ConnectTimeout):
                await http.get(url)
            holding.cancel()
    assert len(server.heads) == 1


async def test_a_proxy_named_in_the_environment_still_carries_the_bc_clients_requests(
    bc_settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    """httpx mounts its own proxy transport for what HTTP(S)_PROXY covers, as before the client moved to aiohttp."""
    async with serving(answers_gzip) as proxy:
        monkeypatch.setenv("HTTP_PROXY", f"http://127.0.0.1:{proxy.port}")
        monkeypatch.delenv("NO_PROXY", raising=False)
        monkeypatch.delenv("no_proxy", raising=False)
        async with http_client_from_settings(bc_settings) as http:
            answer = await http.get("http://bc.example/v2.0/companies")
    assert answer.status_code == 200
    assert proxy.heads[0].startswith(b"GET http://bc.example/v2.0/companies HTTP/1.1\r\n")
