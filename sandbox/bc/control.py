"""BC knobs (limits, latency, faults) and counters; reachable as `sandbox.bc` and under SANDBOX_ADMIN_URL."""

from __future__ import annotations

import dataclasses
import random
import threading
from collections import Counter, deque
from collections.abc import Collection, Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from sandbox.bc.api import BcApi
from sandbox.bc.documents import Documents
from sandbox.bc.environment import BcEnvironment
from sandbox.bc.faults import Fault, FaultPlan, FaultRates, Latency, draw
from sandbox.bc.limits import IdentityState, Limiter, LimitSettings
from sandbox.bc.schema import JsonValue
from sandbox.bc.store import BcStore
from sandbox.bc.webhooks import WebhookControl
from sandbox.clock import SandboxClock
from sandbox.config import SandboxConfig

ANONYMOUS = "anonymous"
DROPPED = 0  # the status recorded for a request whose connection was dropped


@dataclass(frozen=True, slots=True)
class BcStats:
    """A snapshot of BC's counters."""

    requests: dict[str, dict[int, int]]  # identity -> status -> count (status 0 = connection dropped)
    peak_in_flight: dict[str, int]
    peak_queued: dict[str, int]
    peak_window_usage: dict[str, int]
    in_flight: dict[str, int]
    records: dict[str, int]
    faults_injected: dict[str, int]
    # (method, User-Agent, Data-Access-Intent) -> count: the two headers BC's telemetry logs per request (RT0008,
    # learn.microsoft.com/dynamics365/business-central/dev-itpro/administration/telemetry-webservices-trace), so a
    # test can see what the customer's admin would. None: the request did not send that header.
    client_headers: dict[tuple[str, str | None, str | None], int] = dataclasses.field(default_factory=dict)

    def headers_of(self, method: str | None = None) -> list[tuple[str | None, str | None]]:
        """The (User-Agent, Data-Access-Intent) pairs requests with that method (any when None) sent."""
        return [(agent, intent) for (m, agent, intent) in self.client_headers if method in (None, m)]

    def count(self, status: int | None = None, identity: str | None = None) -> int:
        """Requests with that status (any when None) from that identity (all when None)."""
        return sum(
            n
            for who, statuses in self.requests.items()
            if identity is None or who == identity
            for code, n in statuses.items()
            if status is None or code == status
        )

    def to_json(self) -> dict[str, Any]:
        """As JSON (status keys become strings)."""
        data = dataclasses.asdict(self)
        data["requests"] = {
            who: {str(k): v for k, v in statuses.items()} for who, statuses in self.requests.items()
        }
        data["client_headers"] = [
            {"method": method, "user_agent": agent, "data_access_intent": intent, "count": n}
            for (method, agent, intent), n in sorted(self.client_headers.items(), key=str)
        ]
        return data


def build_stats(
    counted: Counter[tuple[str, int]],
    limiters: Iterable[Limiter],
    records: dict[str, int],
    faults: dict[str, int],
    client_headers: Counter[tuple[str, str | None, str | None]] | None = None,
) -> BcStats:
    """BcStats from request counters and limiters (in flight summed, peaks the highest, over the limiters)."""
    requests: dict[str, dict[int, int]] = {}
    for (who, status), n in counted.items():
        requests.setdefault(who, {})[status] = n
    states: list[tuple[str, IdentityState]] = [
        (who, state) for limiter in limiters for who, state in limiter.identities.items()
    ]
    stats = BcStats(requests, {}, {}, {}, {}, records, faults, dict(client_headers or {}))
    for who, state in states:
        stats.peak_in_flight[who] = max(stats.peak_in_flight.get(who, 0), state.peak_in_flight)
        stats.peak_queued[who] = max(stats.peak_queued.get(who, 0), state.peak_queued)
        stats.peak_window_usage[who] = max(stats.peak_window_usage.get(who, 0), state.peak_window)
        stats.in_flight[who] = stats.in_flight.get(who, 0) + state.in_flight
    return stats


class BcControl:
    """Owns BC's environments (stores, limiters, registered applications) and fault knobs; the HTTP layer asks it
    what to do with each request. `store`, `api`, `limiter`, `company_id` and `records` are the primary
    environment's (the one the env file's BC_* keys name); `stats()` counts requests over every environment."""

    def __init__(
        self,
        config: SandboxConfig,
        clock: SandboxClock,
        tenant_ids: Sequence[str] = (),
        client_ids: Collection[str] = (),
    ) -> None:
        self._config = config
        self._clock = clock
        self.lock = (
            threading.RLock()
        )  # guards the stores and counters between the server loop and test threads
        # Tenant ids: the primary one first; placeholders when none are given (a BcControl without a directory).
        tenants = list(tenant_ids) or [f"tenant-{n}" for n in range(config.extra_tenants + 1)]
        self._client_ids = frozenset(client_ids)
        self.webhooks = WebhookControl(config, clock, self.lock)
        self.environments: dict[tuple[str, str], BcEnvironment] = {}
        for spec in config.environments:
            primary = spec.tenant == 0 and spec.name == config.bc_environment
            env = BcEnvironment(config, clock, tenants[spec.tenant], spec, primary, self.webhooks)
            env.registered = set(self._client_ids)
            self.environments[(env.tenant_id.lower(), env.name)] = env
        self.primary = next(env for env in self.environments.values() if env.primary)
        self._rng = random.Random(config.seed + 3)
        self._requests: Counter[tuple[str, int]] = Counter()
        self._client_headers: Counter[tuple[str, str | None, str | None]] = Counter()
        self._faults_injected: Counter[str] = Counter()
        self._forced: deque[Fault] = deque()
        self._limits = self._default_limits()
        self._rates = FaultRates()
        self._latency = Latency(config.bc_latency_ms, config.bc_latency_jitter_ms)

    # --- the primary environment, as before there were several ---------------------------------------------
    @property
    def store(self) -> BcStore:
        """The primary environment's store."""
        return self.primary.store

    @property
    def documents(self) -> Documents:
        """The primary environment's document rules."""
        return self.primary.documents

    @property
    def api(self) -> BcApi:
        """The primary environment's API."""
        return self.primary.api

    @property
    def limiter(self) -> Limiter:
        """The primary environment's limiter."""
        return self.primary.limiter

    @property
    def company_id(self) -> str:
        """The primary environment's seeded company."""
        return self.primary.company_id

    # --- environments ----------------------------------------------------------------------------------------
    def find(self, tenant_id: str, name: str) -> BcEnvironment | None:
        """The environment `name` of the tenant, if it exists (tenant id case-insensitive, name exact)."""
        return self.environments.get((tenant_id.lower(), name))

    def environment(self, tenant_id: str, name: str) -> BcEnvironment:
        """The environment `name` of the tenant; ValueError names the ones that exist."""
        found = self.find(tenant_id, name)
        if found is None:
            known = ", ".join(f"{t}/{n}" for t, n in self.environments)
            raise ValueError(f"no BC environment {tenant_id}/{name}; the sandbox has {known}")
        return found

    def tenant_environments(self, tenant_id: str) -> list[BcEnvironment]:
        """The tenant's environments, in configuration order."""
        return [env for (tenant, _), env in self.environments.items() if tenant == tenant_id.lower()]

    def register_application(self, tenant_id: str, environment: str, client_id: str) -> None:
        """Add the app's Microsoft Entra Application card (State = Enabled) to the environment."""
        env = self.environment(tenant_id, environment)
        with self.lock:
            env.registered.add(client_id)

    def unregister_application(self, tenant_id: str, environment: str, client_id: str) -> None:
        """Remove the app's card: its tokens get 401 in that environment from now on."""
        env = self.environment(tenant_id, environment)
        with self.lock:
            env.registered.discard(client_id)

    def is_registered(self, env: BcEnvironment, client_id: str) -> bool:
        """Whether the app has a card in the environment."""
        with self.lock:
            return client_id in env.registered

    def environment_stats(self, env: BcEnvironment) -> BcStats:
        """One environment's counters: its requests, its limiter, its records (faults are counted globally)."""
        with self.lock:
            return build_stats(env.requests, [env.limiter], env.store.counts(), {})

    def _default_limits(self) -> LimitSettings:
        c = self._config
        return LimitSettings(
            c.bc_rate_limit,
            c.bc_effective_window_seconds,
            c.bc_max_in_flight,
            c.bc_max_queue,
            c.bc_effective_queue_timeout_seconds,
            c.bc_retry_after_on_429,
        )

    def reseed(self) -> None:
        """Put every environment's company back as seeded."""
        with self.lock:
            for env in self.environments.values():
                env.reseed()

    # --- knobs ------------------------------------------------------------------------------------------------------
    def faults(self, **rates: Any) -> FaultRates:
        """Set fault rates and parameters (the FaultRates fields): rate_429, rate_408, rate_502, rate_503, rate_504,
        rate_drop, rate_spike, rate_ambiguous_write, spike_ms, retry_after_seconds (None: 429 without Retry-After)."""
        with self.lock:
            self._rates = dataclasses.replace(self._rates, **rates)
            return self._rates

    def fail_next(self, count: int, kind: str | Fault) -> None:
        """Force the next `count` requests to suffer `kind`: 429, 408, 502, 503, 504, drop, spike or ambiguous_write.

        An ambiguous_write waits in the queue for the next write (reads pass it) and drops the connection only
        if that write changed data; a 408 runs the request first, so a write is committed before the answer.
        """
        with self.lock:
            self._forced.extend(Fault(kind) for _ in range(count))

    def limits(self, **changes: Any) -> LimitSettings:
        """Change limits at run time (rate_limit, window_seconds, max_in_flight, max_queue, queue_timeout_seconds, retry_after_on_429)."""
        with self.lock:
            self._limits = dataclasses.replace(self._limits, **changes)
            return self._limits

    def latency(self, base_ms: float = 0.0, jitter_ms: float = 0.0) -> Latency:
        """Set the latency model."""
        with self.lock:
            self._latency = Latency(base_ms, jitter_ms)
            return self._latency

    def current_limits(self) -> LimitSettings:
        """The limits in force."""
        with self.lock:
            return self._limits

    def reset(self) -> None:
        """Restore knobs, clear counters and windows, reseed the data."""
        with self.lock:
            self._requests.clear()
            self._client_headers.clear()
            self._faults_injected.clear()
            self._forced.clear()
            self._limits = self._default_limits()
            self._rates = FaultRates()
            self._latency = Latency(self._config.bc_latency_ms, self._config.bc_latency_jitter_ms)
            self._rng = random.Random(self._config.seed + 3)
            for env in self.environments.values():
                env.limiter.clear_windows()
                env.requests.clear()
                env.registered = set(self._client_ids)
            self.webhooks.reset()  # before reseeding, so the seed's inserts notify no one
        self.reseed()

    # --- counters ---------------------------------------------------------------------------------------------------
    def stats(self) -> BcStats:
        """Counters: requests by identity and status, peaks, records per entity, faults injected."""
        with self.lock:
            limiters = [env.limiter for env in self.environments.values()]
            records = self.primary.store.counts()
            faults = dict(self._faults_injected)
            return build_stats(self._requests, limiters, records, faults, self._client_headers)

    def records(self, set_name: str) -> list[dict[str, JsonValue]]:
        """Copies of the demo company's rows of an entity set (for assertions without going through HTTP)."""
        with self.lock:
            return self.primary.records(set_name)

    # --- used by the HTTP layer ----------------------------------------------------------------------------------------
    def count(self, identity: str, status: int, env: BcEnvironment | None = None) -> None:
        """Count a finished request (in its environment too, when it reached one)."""
        with self.lock:
            self._requests[(identity, status)] += 1
            if env is not None:
                env.requests[(identity, status)] += 1

    def note_headers(self, method: str, user_agent: str | None, data_access_intent: str | None) -> None:
        """Count the headers BC's telemetry logs of one request (every request, refused ones too)."""
        with self.lock:
            self._client_headers[(method, user_agent, data_access_intent)] += 1

    def plan(self, is_write: bool) -> FaultPlan:
        """Draw the fate of one admitted request."""
        with self.lock:
            forced = None
            if self._forced and (self._forced[0] is not Fault.AMBIGUOUS_WRITE or is_write):
                forced = self._forced.popleft()
            plan = draw(self._rng, self._rates, self._latency, forced, is_write)
            if plan.error is not None:
                self._faults_injected[plan.error.value] += 1
            if plan.delay_ms > self._latency.base_ms + self._latency.jitter_ms:
                self._faults_injected[Fault.SPIKE.value] += 1
            return plan

    def count_fault(self, fault: Fault) -> None:
        """Count a fault decided after the request ran (an ambiguous write counts only once it really drops)."""
        with self.lock:
            self._faults_injected[fault.value] += 1

    def fault_rates(self) -> FaultRates:
        """The fault rates in force."""
        with self.lock:
            return self._rates

    def snapshot(self) -> dict[str, Any]:
        """Knobs and counters as JSON for the admin endpoint."""
        with self.lock:
            return {
                "stats": self.stats().to_json(),
                "limits": dataclasses.asdict(self._limits),
                "faults": dataclasses.asdict(self._rates),
                "latency": dataclasses.asdict(self._latency),
                "pending_forced_faults": [f.value for f in self._forced],
                "company_id": self.company_id,
                "webhooks": dataclasses.asdict(self.webhooks.current_settings()),
                "environments": [
                    {
                        **dataclasses.asdict(env.info),
                        "registered_applications": sorted(env.registered),
                    }
                    for env in self.environments.values()
                ],
            }
