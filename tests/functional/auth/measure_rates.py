"""Measure Key Vault reads/writes and token-endpoint calls per hour per instance (prints JSON; not a test).

Simulates 24 hours with a manual clock: the real TokenManager, in-memory stores counting every call (one
store read = one Key Vault GET), a fake Entra issuing 60-90 minute tokens like the real one. Each instance
runs `workers` processes calling token() every `interval` seconds; one timer (the host keeps timers
singleton across instances) runs scheduled_refresh() at every full hour.

    .venv/bin/python -m tests.functional.auth.measure_rates
"""

from __future__ import annotations

import asyncio
import json
import random
from datetime import timedelta

from shared.auth.models import Grant
from shared.settings import AuthMode
from tests.functional.auth.fakes import FakeEntra, World

HOURS = 24


class EntraLikeLifetimes(FakeEntra):
    """Fake Entra with Entra's random 60-90 minute access-token lifetimes."""

    def __init__(self, seed: int) -> None:
        super().__init__()
        self._rng = random.Random(seed)

    def _grant(self, with_refresh: bool) -> Grant:
        self.lifetime = timedelta(seconds=self._rng.randint(3600, 5400))
        return super()._grant(with_refresh)


async def scenario(
    mode: AuthMode, instances: int, workers: int, interval: int, timer: bool
) -> dict[str, object]:
    """Run one scenario; returns its figures per hour and per instance."""
    world = World(mode=mode, entra=EntraLikeLifetimes(seed=instances * 10 + workers))
    first = world.manager()
    if mode is AuthMode.DELEGATED:
        await world.sign_in(first)
    processes = [[world.manager() for _ in range(workers)] for _ in range(instances)]
    timer_manager = processes[0][0]
    world.tokens.reads = world.tokens.writes = 0
    world.entra.calls.clear()
    start = world.clock.now()
    for second in range(0, HOURS * 3600, interval):
        world.clock.current = start + timedelta(seconds=second)
        if timer and second % 3600 == 0:
            await timer_manager.scheduled_refresh()
        await asyncio.gather(*(p.token() for instance in processes for p in instance))
    per = HOURS * instances
    return {
        "mode": mode.value,
        "instances": instances,
        "worker_processes_per_instance": workers,
        "token_calls_every_s": interval,
        "timer": timer,
        "key_vault_reads_per_hour_per_instance": round(world.tokens.reads / per, 2),
        "key_vault_writes_per_hour_per_instance": round(world.tokens.writes / per, 2),
        "token_endpoint_calls_per_hour_per_instance": round(sum(world.entra.calls.values()) / per, 2),
        "token_endpoint_calls_per_hour_total": round(sum(world.entra.calls.values()) / HOURS, 2),
    }


async def main() -> None:
    """Print the figures of a few representative scenarios."""
    scenarios = [
        (AuthMode.DELEGATED, 1, 1, 10, True),
        (AuthMode.DELEGATED, 1, 4, 10, True),
        (AuthMode.DELEGATED, 3, 2, 10, True),
        (AuthMode.DELEGATED, 3, 2, 10, False),
        (AuthMode.CLIENT_CREDENTIALS, 3, 2, 10, True),
    ]
    for args in scenarios:
        print(json.dumps(await scenario(*args)))


if __name__ == "__main__":
    asyncio.run(main())
