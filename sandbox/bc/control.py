"""BC knobs (limits, latency, faults) and counters; reachable as `sandbox.bc` and under SANDBOX_ADMIN_URL."""

from __future__ import annotations

import dataclasses
import random
import threading
from collections import Counter, deque
from dataclasses import dataclass
from typing import Any

from sandbox.bc.api import BcApi
from sandbox.bc.documents import Documents, seed_documents
from sandbox.bc.examples import seed_examples
from sandbox.bc.faults import Fault, FaultPlan, FaultRates, Latency, draw
from sandbox.bc.limits import Limiter, LimitSettings
from sandbox.bc.schema import JsonValue
from sandbox.bc.store import BcStore, seed_store
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
        return data


class BcControl:
    """Owns BC's store, limiter and fault knobs; the HTTP layer asks it what to do with each request."""

    def __init__(self, config: SandboxConfig, clock: SandboxClock) -> None:
        self._config = config
        self._clock = clock
        self.lock = (
            threading.RLock()
        )  # guards the store and counters between the server loop and test threads
        self.store = BcStore(clock)
        self.documents = Documents(self.store)
        self.api = BcApi(config, self.store, self.documents)
        self.limiter = Limiter(clock)
        self.company_id = ""
        self._rng = random.Random(config.seed + 3)
        self._requests: Counter[tuple[str, int]] = Counter()
        self._faults_injected: Counter[str] = Counter()
        self._forced: deque[Fault] = deque()
        self._limits = self._default_limits()
        self._rates = FaultRates()
        self._latency = Latency(config.bc_latency_ms, config.bc_latency_jitter_ms)
        self.reseed()

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
        """Put the demo company back as seeded."""
        with self.lock:
            rng = random.Random(self._config.seed + 1)
            self.company_id = seed_store(self.store, self._config, rng)
            company = self.store.companies[self.company_id]
            seed_documents(self.store, self.documents, company, self._config, rng)
            seed_examples(self.store, self.documents, company)

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
            self._faults_injected.clear()
            self._forced.clear()
            self._limits = self._default_limits()
            self._rates = FaultRates()
            self._latency = Latency(self._config.bc_latency_ms, self._config.bc_latency_jitter_ms)
            self._rng = random.Random(self._config.seed + 3)
            self.limiter.clear_windows()
        self.reseed()

    # --- counters ---------------------------------------------------------------------------------------------------
    def stats(self) -> BcStats:
        """Counters: requests by identity and status, peaks, records per entity, faults injected."""
        with self.lock:
            requests: dict[str, dict[int, int]] = {}
            for (who, status), n in self._requests.items():
                requests.setdefault(who, {})[status] = n
            states = dict(self.limiter.identities)
            return BcStats(
                requests=requests,
                peak_in_flight={who: s.peak_in_flight for who, s in states.items()},
                peak_queued={who: s.peak_queued for who, s in states.items()},
                peak_window_usage={who: s.peak_window for who, s in states.items()},
                in_flight={who: s.in_flight for who, s in states.items()},
                records=self.store.counts(),
                faults_injected=dict(self._faults_injected),
            )

    def records(self, set_name: str) -> list[dict[str, JsonValue]]:
        """Copies of the demo company's rows of an entity set (for assertions without going through HTTP)."""
        with self.lock:
            company = self.store.company(self.company_id)
            if company is None:
                return []
            return [dict(row.data) for row in self.store.table(company, set_name).values()]

    # --- used by the HTTP layer ----------------------------------------------------------------------------------------
    def count(self, identity: str, status: int) -> None:
        """Count a finished request."""
        with self.lock:
            self._requests[(identity, status)] += 1

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
            }
