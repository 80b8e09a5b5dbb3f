"""Key Vault reads/writes and token-endpoint calls per hour per instance of the token lifecycle (simulated).

Simulates 24 hours on a manual clock with the real TokenManager over in-memory stores that count every call
(one store read = one Key Vault GET, one write = one secret version) and an Entra stand-in issuing access
tokens of 60-90 minutes, as Entra does (learn.microsoft.com/entra/identity-platform/access-tokens, "Token
lifetime"). Each instance runs `workers` processes calling token() every `interval` seconds; one timer (the
Functions host runs a timer once across instances) purges expired sign-ins and runs refresh_if_due() at every
full hour. Run as `python -m bench tokens`.
"""

from __future__ import annotations

import asyncio
import itertools
import random
from collections import Counter
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from shared.auth.health import HealthRecorder
from shared.auth.leases import LeaseKeeper
from shared.auth.manager import Collaborators, TokenManager
from shared.auth.models import ConnectionRecord, Grant, Lease, PendingSignIn, SignInStart
from shared.auth.notify import NoNotifier
from shared.auth.sign_in import PendingSignIns, SignInFlow
from shared.tokens import AuthMode
from testkit.auth_stores import MemoryRecordStore, MemoryTokenStore
from testkit.clock import ManualClock

HOURS = 24
SCOPE = "https://api.businesscentral.dynamics.com/.default"
_START = datetime(2026, 1, 5, 8, 0, tzinfo=UTC)


@dataclass(frozen=True, slots=True)
class Scenario:
    """One simulated deployment."""

    mode: AuthMode
    instances: int
    workers: int  # worker processes per instance
    interval: int  # seconds between token() calls of each process
    timer: bool


SCENARIOS = (
    Scenario(AuthMode.DELEGATED, 1, 1, 10, True),
    Scenario(AuthMode.DELEGATED, 1, 4, 10, True),
    Scenario(AuthMode.DELEGATED, 3, 2, 10, True),
    Scenario(AuthMode.DELEGATED, 3, 2, 10, False),
    Scenario(AuthMode.CLIENT_CREDENTIALS, 3, 2, 10, True),
)


class _Entra:
    """IdentityProvider stand-in: opaque tokens with Entra's random 60-90 minute lifetimes; counts calls."""

    def __init__(self, seed: int) -> None:
        self.calls: Counter[str] = Counter()
        self._rng = random.Random(seed)
        self._n = itertools.count(1)

    async def start_sign_in(self, redirect_uri: str, state: str | None = None) -> SignInStart:
        """A sign-in whose state is its own code (the simulation signs in without a browser)."""
        state = state or f"state{next(self._n)}"
        return SignInStart(auth_uri=f"{redirect_uri}?state={state}", state=state, flow="{}")

    async def finish_sign_in(self, flow: str, response: Mapping[str, str]) -> Grant:
        """Redeem the code."""
        await asyncio.sleep(0)  # a network call: other processes run meanwhile
        self.calls["authorization_code"] += 1
        return self._grant(with_refresh=True)

    async def redeem_refresh_token(self, refresh_token: str) -> Grant:
        """Rotate the refresh token."""
        await asyncio.sleep(0)  # a network call: other processes run meanwhile
        self.calls["refresh_token"] += 1
        return self._grant(with_refresh=True)

    async def acquire_for_client(self) -> Grant:
        """An app-only token."""
        await asyncio.sleep(0)  # a network call: other processes run meanwhile
        self.calls["client_credentials"] += 1
        return self._grant(with_refresh=False)

    def _grant(self, with_refresh: bool) -> Grant:
        n = next(self._n)
        return Grant(
            access_token=f"at-{n}",
            expires_in=timedelta(seconds=self._rng.randint(3600, 5400)),
            scopes=(SCOPE,),
            refresh_token=f"rt-{n}" if with_refresh else None,
        )


class _World:
    """Shared stores and Entra; each manager() is one worker process with its own cache."""

    def __init__(self, mode: AuthMode, seed: int) -> None:
        self.mode = mode
        self.clock = ManualClock(_START)
        self.entra = _Entra(seed)
        self.tokens = MemoryTokenStore()
        self._leases = MemoryRecordStore[Lease]()
        self._sign_ins = MemoryRecordStore[PendingSignIn]()
        self._records = MemoryRecordStore[ConnectionRecord]()
        self._holders = itertools.count(1)

    def manager(self) -> TokenManager:
        """A new process on the shared stores."""
        return TokenManager(
            Collaborators(
                connection="default",
                mode=self.mode,
                identity=self.entra,
                tokens=self.tokens,
                leases=LeaseKeeper(self._leases, self.clock),
                health=HealthRecorder("default", self._records, self.clock, NoNotifier()),
                clock=self.clock,
                holder=f"process-{next(self._holders)}",
            )
        )

    async def sign_in(self) -> None:
        """The admin's sign-in (delegated mode)."""
        flow = self.sign_in_flow(self.manager())
        auth_uri = await flow.start("http://127.0.0.1:7071/api/auth/callback")
        state = auth_uri.split("state=", 1)[1]
        await flow.finish({"code": state, "state": state})

    def sign_in_flow(self, manager: TokenManager) -> SignInFlow:
        """The admin's sign-in beside `manager`, on the shared pending sign-ins."""
        return SignInFlow(PendingSignIns(self._sign_ins, self.clock), manager)


async def simulate(scenario: Scenario) -> dict[str, object]:
    """Run one scenario for HOURS simulated hours; its figures per hour (per instance and in total)."""
    world = _World(scenario.mode, seed=scenario.instances * 10 + scenario.workers)
    if scenario.mode is AuthMode.DELEGATED:
        await world.sign_in()
    processes = [world.manager() for _ in range(scenario.instances * scenario.workers)]
    world.tokens.reads = world.tokens.writes = 0
    world.entra.calls.clear()
    start = world.clock.now()
    for second in range(0, HOURS * 3600, scenario.interval):
        world.clock.move_to(start + timedelta(seconds=second))
        if scenario.timer and second % 3600 == 0:
            await world.sign_in_flow(processes[0]).purge_expired()  # the timer's run, as in token_refresh
            await processes[0].refresh_if_due()
        await asyncio.gather(*(p.token() for p in processes))
    per_instance_hour = HOURS * scenario.instances
    entra_calls = sum(world.entra.calls.values())
    return {
        "mode": scenario.mode.value,
        "instances": scenario.instances,
        "worker_processes_per_instance": scenario.workers,
        "token_calls_every_s": scenario.interval,
        "timer": scenario.timer,
        "key_vault_reads_per_hour_per_instance": round(world.tokens.reads / per_instance_hour, 2),
        "key_vault_writes_per_hour_per_instance": round(world.tokens.writes / per_instance_hour, 2),
        "token_endpoint_calls_per_hour_per_instance": round(entra_calls / per_instance_hour, 2),
        "token_endpoint_calls_per_hour_total": round(entra_calls / HOURS, 2),
    }


def run() -> dict[str, object]:
    """Every scenario, as one JSON-ready object."""

    async def all_scenarios() -> list[dict[str, object]]:
        return [await simulate(scenario) for scenario in SCENARIOS]

    return {
        "bench": "tokens",
        "simulated_hours": HOURS,
        "access_token_lifetime_minutes": [60, 90],
        "scenarios": asyncio.run(all_scenarios()),
    }
