"""CPU per BC request through httpx's own transport and through the product's aiohttp transport
(shared/bc/transport.py), side by side in one process: GETs to the sandbox over TLS, five at a time as BC's
in-flight limit allows, after a warm-up that opens the connections. The sides alternate over `rounds`, and the
figure of each side is its median."""

from __future__ import annotations

import asyncio
import os
import ssl
import statistics
import time
from typing import Any

import httpx

from bench.world import BenchWorld
from shared.bc.transport import AiohttpTransport

LIMITS = httpx.Limits(max_connections=10, max_keepalive_connections=5)


def _cpu_seconds() -> float:
    times = os.times()
    return times.user + times.system


async def _cpu_ms_per_request(client: httpx.AsyncClient, url: str, requests: int) -> float:
    async with client:
        for _ in range(50):
            (await client.get(url)).raise_for_status()

        async def five_at_a_time() -> None:
            for _ in range(requests // 5):
                (await client.get(url)).raise_for_status()

        started = _cpu_seconds()
        await asyncio.gather(*(five_at_a_time() for _ in range(5)))
        return (_cpu_seconds() - started) / requests * 1000


def transport_cost(world: BenchWorld, requests: int = 1500, rounds: int = 3) -> dict[str, Any]:
    """The median CPU ms per request of each transport, and their ratio."""
    url = world.sandbox.env["SANDBOX_ADMIN_URL"].rstrip("/") + "/config"  # a small JSON answer over TLS
    verify = ssl.create_default_context(cafile=world.sandbox.env["LOCAL_CA_BUNDLE"])
    sides: dict[str, list[float]] = {"httpx": [], "aiohttp": []}
    started = time.monotonic()
    for _ in range(rounds):
        own = httpx.AsyncClient(verify=verify, limits=LIMITS)
        sides["httpx"].append(asyncio.run(_cpu_ms_per_request(own, url, requests)))
        ours = httpx.AsyncClient(transport=AiohttpTransport(verify, LIMITS), limits=LIMITS)
        sides["aiohttp"].append(asyncio.run(_cpu_ms_per_request(ours, url, requests)))
    medians = {side: round(statistics.median(values), 3) for side, values in sides.items()}
    return {
        "httpx_cpu_ms_per_request": medians["httpx"],
        "aiohttp_cpu_ms_per_request": medians["aiohttp"],
        "ratio": round(medians["aiohttp"] / medians["httpx"], 2),
        "rounds": {side: [round(v, 3) for v in values] for side, values in sides.items()},
        "requests_per_round": requests,
        "seconds": round(time.monotonic() - started, 1),
    }
