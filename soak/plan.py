"""The jobs of a soak run, decided up front from a seed: every operation, each with what it should leave in BC.

Every write carries a marker nobody else uses (a `displayName`, or an invoice's `externalDocumentNumber`), so the
sandbox's own records show whether BC got it once, twice or not at all; updates, deletes and actions each get a
record of their own (seeded for the run), so their effects can be told apart too. A quarter of the markers and
every `list` filter carry OData-injection text: it must reach BC as a literal. Malformed messages and jobs past
their deadline are mixed in, and 5 % of the queue sends go out twice.
"""

from __future__ import annotations

import base64
import json
import random
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from enum import StrEnum
from typing import Any

from soak.config import SoakConfig

# Share of the valid jobs per operation (sums to 1).
MIX: dict[str, float] = {
    "get": 0.14,
    "list": 0.12,
    "create": 0.20,
    "upsert": 0.10,
    "update": 0.12,
    "delete": 0.08,
    "action": 0.07,
    "batch": 0.17,
}
# Text that would change a query if it were pasted into OData instead of quoted and escaped.
INJECTIONS = (
    "' or 1 eq 1 or displayName eq '",
    "x') or (1 eq 1",
    "'; DROP TABLE customers;--",
    "%27%20or%201%20eq%201",
    "&$filter=true",
    "' and contains(displayName,'",
    "\\' or ''='",
    "$expand=*&$select=*",
)


class Route(StrEnum):
    """How a job reaches the pipeline."""

    QUEUE = "queue"  # base64 JSON on bc-jobs, as an app's queue SDK sends it
    FRONT_DOOR = "front_door"  # POST /api/jobs on one of the workers


@dataclass(frozen=True, slots=True)
class Seeds:
    """Ids of the records the sandbox seeded for this run."""

    customers: list[str]
    customer_numbers: list[str]
    items: list[str]
    item_numbers: list[str]
    vendors: list[str]
    invoices: list[str]


@dataclass(frozen=True, slots=True)
class Planned:
    """One job (or malformed message) to send, and what it should do."""

    key: str  # the job id; "" for a message without a readable one (its row is msg-<message id>)
    kind: str  # an operation, "malformed" or "expired"
    at: float  # seconds after the load starts
    route: Route = Route.QUEUE
    job: dict[str, Any] | None = None  # None for a malformed message
    raw: str | None = None  # the message text of a malformed message
    duplicate: bool = False  # a second send of a job sent before
    # What it writes: displayNames (customers, items) or invoices' externalDocumentNumber.
    markers: tuple[str, ...] = ()
    target: str | None = None  # the seeded record it updates, deletes or posts
    injection: bool = False  # a `list` whose filter value is injection text: must find nothing

    def text(self) -> str:
        """The queue message text."""
        if self.raw is not None:
            return self.raw
        return base64.b64encode(json.dumps(self.job).encode("utf-8")).decode("ascii")


@dataclass
class Plan:
    """Every send of the run, in time order."""

    run_id: str
    sends: list[Planned] = field(default_factory=list)

    def distinct(self) -> list[Planned]:
        """The first send of each job (duplicates left out)."""
        return [planned for planned in self.sends if not planned.duplicate]


def seed_counts(config: SoakConfig) -> dict[str, int]:
    """SandboxConfig fields: enough records for every update, delete and action to have its own."""
    valid = _valid_count(config)
    return {
        "bc_seed_customers": int(valid * MIX["update"]) + 80,
        "bc_seed_vendors": int(valid * MIX["delete"]) + 20,
        "bc_seed_sales_invoices": int(valid * MIX["action"]) + 10,
        "bc_seed_items": 40,
    }


def _valid_count(config: SoakConfig) -> int:
    return config.jobs - _malformed_count(config) - _expired_count(config)


def _malformed_count(config: SoakConfig) -> int:
    return max(1, round(config.jobs * config.malformed_share))


def _expired_count(config: SoakConfig) -> int:
    return max(1, round(config.jobs * config.expired_share))


def build_plan(config: SoakConfig, seeds: Seeds, run_id: str, now: datetime | None = None) -> Plan:
    """The sends of one run (deterministic for a seed and the seeded records)."""
    rng = random.Random(config.seed)  # noqa: S311 - a reproducible workload, not security
    builder = _Builder(config, seeds, run_id, rng, now or datetime.now(UTC))
    return builder.plan()


@dataclass
class _Builder:
    config: SoakConfig
    seeds: Seeds
    run_id: str
    rng: random.Random
    now: datetime
    counter: int = 0
    updates: list[str] = field(default_factory=list)
    deletes: list[str] = field(default_factory=list)
    invoices: list[str] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.updates = list(self.seeds.customers)
        self.deletes = list(self.seeds.vendors)
        self.invoices = list(self.seeds.invoices)
        for pool in (self.updates, self.deletes, self.invoices):
            self.rng.shuffle(pool)

    def plan(self) -> Plan:
        valid = _valid_count(self.config)
        kinds = [kind for kind, share in MIX.items() for _ in range(round(valid * share))]
        kinds = (kinds + ["get"] * valid)[:valid]
        kinds += ["malformed"] * _malformed_count(self.config) + ["expired"] * _expired_count(self.config)
        self.rng.shuffle(kinds)
        span = self.config.load_seconds
        sends: list[Planned] = []
        for index, kind in enumerate(kinds):
            at = span * index / len(kinds)
            planned = self._one(kind, at)
            sends.append(planned)
            queued = planned.job is not None and planned.route is Route.QUEUE
            if queued and self.rng.random() < self.config.duplicate_share:
                again = min(span, at + self.rng.uniform(0.0, 20.0))
                sends.append(_copy(planned, at=again, duplicate=True))
        sends.sort(key=lambda planned: planned.at)
        return Plan(self.run_id, sends)

    def _next(self) -> int:
        self.counter += 1
        return self.counter

    def _key(self, kind: str, n: int) -> str:
        return f"soak-{self.run_id}-{kind}-{n}"

    def _marker(self, tag: str, n: int) -> str:
        marker = f"soak {self.run_id} {tag}{n}"
        if self.rng.random() < 0.25:
            marker += " " + self.rng.choice(INJECTIONS)
        return marker

    def _route(self) -> Route:
        return Route.FRONT_DOOR if self.rng.random() < self.config.front_door_share else Route.QUEUE

    def _one(self, kind: str, at: float) -> Planned:
        n = self._next()
        key = self._key(kind, n)
        if kind == "malformed":
            return _malformed(self.rng, key, at)
        if kind == "expired":
            deadline = (self.now - timedelta(minutes=5)).isoformat()
            job = {**self._get(), "jobId": key, "deadline": deadline}
            return Planned(key, kind, at, job=job)
        made = getattr(self, f"_{kind}")(n)
        job, extra = made if isinstance(made, tuple) else (made, {})
        return Planned(key, kind, at, route=self._route(), job={"jobId": key, **job}, **extra)

    # -- one builder per operation: the job's JSON, or (JSON, Planned fields) ----------------------------------

    def _get(self, n: int = 0) -> dict[str, Any]:
        if self.rng.random() < 0.5:
            return {
                "operation": "get",
                "entitySet": "customers",
                "id": self.rng.choice(self.seeds.customers),
                "query": {"select": ["id", "number", "displayName"]},
            }
        return {"operation": "get", "entitySet": "items", "id": self.rng.choice(self.seeds.items)}

    def _list(self, n: int) -> tuple[dict[str, Any], dict[str, Any]]:
        if self.rng.random() < 0.5:
            value = self.rng.choice(INJECTIONS)
            condition = {"field": "displayName", "operator": "eq", "value": value}
            return (
                {"operation": "list", "entitySet": "customers", "query": {"filter": [condition], "top": 5}},
                {"injection": True},
            )
        prefix = self.rng.choice(self.seeds.item_numbers)[:2]
        query = {
            "filter": [{"field": "number", "operator": "startswith", "value": prefix}],
            "select": ["number", "displayName"],
            "orderBy": ["number desc"],
            "top": 3,
        }
        return {"operation": "list", "entitySet": "items", "query": query}, {}

    def _create(self, n: int) -> tuple[dict[str, Any], dict[str, Any]]:
        if self.rng.random() < 0.1:
            marker = f"SK{self.run_id}-{n}"  # externalDocumentNumber: 35 characters at most
            customer = self.rng.choice(self.seeds.customer_numbers)
            line = {
                "lineType": "Item",
                "lineObjectNumber": self.rng.choice(self.seeds.item_numbers),
                "quantity": 1,
            }
            invoice = {
                "operation": "create",
                "entitySet": "salesInvoices",
                "data": {
                    "customerNumber": customer,
                    "externalDocumentNumber": marker,
                    "salesInvoiceLines": [line],
                },
                "naturalKey": {"externalDocumentNumber": marker},
            }
            return invoice, {"markers": (marker,)}
        marker = self._marker("c", n)
        job: dict[str, Any] = {
            "operation": "create",
            "entitySet": "customers",
            "data": {"displayName": marker},
        }
        if self.rng.random() < 2 / 3:
            job["naturalKey"] = {"displayName": marker}
            job["data"] = {"phoneNumber": f"555-{n % 10000:04d}"}
        return job, {"markers": (marker,)}

    def _upsert(self, n: int) -> tuple[dict[str, Any], dict[str, Any]]:
        marker = self._marker("u", n)
        job = {
            "operation": "upsert",
            "entitySet": "customers",
            "naturalKey": {"displayName": marker},
            "data": {"phoneNumber": f"556-{n % 10000:04d}"},
        }
        return job, {"markers": (marker,)}

    def _update(self, n: int) -> tuple[dict[str, Any], dict[str, Any]]:
        target, marker = self.updates.pop(), self._marker("m", n)
        job = {"operation": "update", "entitySet": "customers", "id": target, "data": {"displayName": marker}}
        return job, {"target": target, "markers": (marker,)}

    def _delete(self, n: int) -> tuple[dict[str, Any], dict[str, Any]]:
        target = self.deletes.pop()
        return {"operation": "delete", "entitySet": "vendors", "id": target}, {"target": target}

    def _action(self, n: int) -> tuple[dict[str, Any], dict[str, Any]]:
        target = self.invoices.pop()
        job = {
            "operation": "action",
            "entitySet": "salesInvoices",
            "id": target,
            "action": "Microsoft.NAV.post",
        }
        return job, {"target": target}

    def _batch(self, n: int) -> tuple[dict[str, Any], dict[str, Any]]:
        size = self.rng.randint(2, 8)
        markers: list[str] = []
        operations: list[dict[str, Any]] = []
        for index in range(size):
            if self.rng.random() < 0.6:
                marker = f"soak {self.run_id} b{n}.{index}"
                markers.append(marker)
                operations.append(
                    {"operation": "create", "entitySet": "items", "data": {"displayName": marker}}
                )
            else:
                operations.append(
                    {"operation": "get", "entitySet": "items", "id": self.rng.choice(self.seeds.items)}
                )
        job: dict[str, Any] = {"operation": "batch", "operations": operations}
        if self.rng.random() < 0.25:
            job["atomic"] = True
        return job, {"markers": tuple(markers)}


def _copy(planned: Planned, **changes: Any) -> Planned:
    values = {name: getattr(planned, name) for name in Planned.__slots__}
    return Planned(**{**values, **changes})


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")


def _malformed(rng: random.Random, key: str, at: float) -> Planned:
    """A message that breaks the contract; some name a valid jobId (their rejection is kept under it)."""
    deep: Any = {"operation": "list", "entitySet": "customers"}
    for _ in range(200):
        deep = {"x": deep}
    bodies: list[dict[str, Any]] = [
        {"operation": "get", "entitySet": "customers"},  # `get` needs `id`
        {"operation": "list", "entitySet": "customers?$filter=1 eq 1"},
        {"operation": "create", "entitySet": "customers", "data": {"displayName": "x" * 5000}},
        {"operation": 7, "entitySet": ["customers"]},
        {"schemaVersion": 2, "operation": "list", "entitySet": "customers"},
        {"operation": "get", "entitySet": "customers", "id": "1' or '1'='1"},
    ]
    choices: list[tuple[str, bool]] = [
        ('{"operation": "get"}', False),  # plain JSON, not base64
        ("%%% not base64 %%%", False),
        (_b64(b"\xff\xfe\xfa"), False),  # not UTF-8
        (_b64(b"[1, 2, 3]"), False),
        (_b64(json.dumps(deep).encode()), False),
        *((_b64(json.dumps({"jobId": key, **body}).encode()), True) for body in bodies),
    ]
    text, named = rng.choice(choices)
    return Planned(key if named else "", "malformed", at, raw=text)
