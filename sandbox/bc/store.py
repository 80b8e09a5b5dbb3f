"""BC's data in memory: companies, each with tables of rows; row stamps give the ETags; a demo company is seeded."""

from __future__ import annotations

import base64
import copy
import random
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime

from sandbox.bc.schema import COMPANY_SETS, ENTITY_TYPES, EntityType, JsonValue
from sandbox.clock import SandboxClock
from sandbox.config import SandboxConfig
from sandbox.ids import guid


def weak_etag(stamp: int) -> str:
    """A weak ETag shaped like BC's (base64 of a quoted, semicolon-separated stamp); opaque to clients."""
    digits = str(stamp)
    raw = f"'{len(digits)};{digits};'".encode()
    return f'W/"{base64.b64encode(raw).decode()}"'


@dataclass(slots=True)
class Row:
    """One record: its JSON fields and the stamp its ETag derives from."""

    data: dict[str, JsonValue]
    stamp: int

    @property
    def etag(self) -> str:
        """A weak ETag shaped like BC's (see weak_etag); opaque to clients."""
        return weak_etag(self.stamp)


@dataclass(slots=True)
class Company:
    """A company: its own record, its tables and number series."""

    row: Row
    tables: dict[str, dict[str, Row]] = field(default_factory=dict)
    series: dict[str, int] = field(default_factory=dict)

    @property
    def id(self) -> str:
        """The company id."""
        return str(self.row.data["id"])

    @property
    def name(self) -> str:
        """The company name (used by the `Company` header)."""
        return str(self.row.data["name"])


# Told of every change to a row: (company, entity set, row, "created" | "updated" | "deleted"). BC records a
# webhook notification in the same session that changes the data (reference A3, "Who triggers delivery").
WriteListener = Callable[[Company, str, Row, str], None]


class BcStore:
    """All companies and their rows; every change takes a new stamp and is told to the listener (webhooks)."""

    def __init__(self, clock: SandboxClock) -> None:
        self._clock = clock
        self._stamp = 1000
        self.companies: dict[str, Company] = {}
        self.listener: WriteListener | None = None

    def _changed(self, company: Company, set_name: str, row: Row, change: str) -> None:
        if self.listener is not None:
            self.listener(company, set_name, row, change)

    # --- time and stamps ------------------------------------------------------------------------------
    def now_iso(self) -> str:
        """The sandbox time as BC writes lastModifiedDateTime."""
        moment = datetime.fromtimestamp(self._clock.now(), UTC)
        return moment.strftime("%Y-%m-%dT%H:%M:%S.") + f"{moment.microsecond // 1000:03d}Z"

    def today(self) -> str:
        """The sandbox date (work date)."""
        return datetime.fromtimestamp(self._clock.now(), UTC).date().isoformat()

    def _next_stamp(self) -> int:
        self._stamp += 1
        return self._stamp

    # --- companies and rows ---------------------------------------------------------------------------
    def company(self, company_id: str) -> Company | None:
        """A company by id (case-insensitive GUID)."""
        return self.companies.get(company_id.lower())

    def company_by_name(self, name: str) -> Company | None:
        """A company by its name."""
        return next((c for c in self.companies.values() if c.name == name), None)

    def table(self, company: Company, set_name: str) -> dict[str, Row]:
        """A company's table for an entity set."""
        return company.tables.setdefault(set_name, {})

    def get(self, company: Company, set_name: str, row_id: str) -> Row | None:
        """A row by id."""
        return self.table(company, set_name).get(row_id.lower())

    def insert(
        self, company: Company, entity: EntityType, data: dict[str, JsonValue], row_id: str | None = None
    ) -> Row:
        """Add a row with defaults for unset fields, a new id, a number from the series (if the entity has one)."""
        full = {name: spec.default for name, spec in entity.fields.items()}
        full.update(data)
        full["id"] = (row_id or str(uuid.uuid4())).lower()
        if entity.number_prefix is not None and not full.get("number"):
            full["number"] = self.next_number(company, entity)
        if "lastModifiedDateTime" in entity.fields:  # not on every page (SHIPMENT_TRACKINGS)
            full["lastModifiedDateTime"] = self.now_iso()
        row = Row(full, self._next_stamp())
        self.table(company, entity.set_name)[full["id"]] = row
        self._changed(company, entity.set_name, row, "created")
        return row

    def next_number(self, company: Company, entity: EntityType) -> str:
        """The next number of the entity's series, skipping numbers already taken."""
        taken = {str(r.data.get("number")) for r in self.table(company, entity.set_name).values()}
        while True:
            company.series[entity.set_name] = company.series.get(entity.set_name, 10000) + 10
            candidate = f"{entity.number_prefix}{company.series[entity.set_name]}"
            if candidate not in taken:
                return candidate

    def next_series(self, company: Company, key: str, prefix: str, start: int) -> str:
        """The next number of a series that has no table of its own (e.g. posted invoices)."""
        company.series[key] = company.series.get(key, start) + 1
        return f"{prefix}{company.series[key]}"

    def touch(self, row: Row, company: Company | None = None, set_name: str | None = None) -> None:
        """Mark a row changed: new stamp (new ETag) and lastModifiedDateTime; told to the listener when the
        company and entity set are given."""
        row.stamp = self._next_stamp()
        if "lastModifiedDateTime" in row.data:
            row.data["lastModifiedDateTime"] = self.now_iso()
        if company is not None and set_name is not None:
            self._changed(company, set_name, row, "updated")

    def delete(self, company: Company, set_name: str, row_id: str) -> None:
        """Remove a row."""
        row = self.table(company, set_name).pop(row_id.lower(), None)
        if row is not None:
            self._changed(company, set_name, row, "deleted")

    def counts(self) -> dict[str, int]:
        """Records per entity set over all companies."""
        totals = dict.fromkeys(ENTITY_TYPES, 0)
        totals["companies"] = len(self.companies)
        for company in self.companies.values():
            for set_name, rows in company.tables.items():
                totals[set_name] += len(rows)
        return totals

    # --- transactions ($batch with Isolation: snapshot) ------------------------------------------------------
    def snapshot(self) -> tuple[int, dict[str, Company]]:
        """A deep copy to restore if a snapshot batch fails."""
        return self._stamp, copy.deepcopy(self.companies)

    def restore(self, saved: tuple[int, dict[str, Company]]) -> None:
        """Roll back to a snapshot (stamps keep increasing so no ETag is ever reused)."""
        self.companies = saved[1]
        self._stamp = max(self._stamp, saved[0])


def seed_store(
    store: BcStore, config: SandboxConfig, rng: random.Random, company_name: str | None = None
) -> str:
    """Fill the demo company (CRONUS-like; named `company_name`, default the config's) and return its id; the seed
    makes ids and values repeatable."""
    store.companies.clear()
    name = config.bc_company_name if company_name is None else company_name
    company_id = guid(rng)
    now = store.now_iso()
    company = Company(
        Row(
            {
                "id": company_id,
                "systemVersion": "25.0.23364.25350",
                "timestamp": 1000,
                "name": name,
                "displayName": name,
                "businessProfileId": "",
                "systemCreatedAt": now,
                "systemCreatedBy": "00000000-0000-0000-0000-000000000001",
                "systemModifiedAt": now,
                "systemModifiedBy": "00000000-0000-0000-0000-000000000001",
            },
            1000,
        )
    )
    store.companies[company_id] = company
    for set_name in COMPANY_SETS:
        company.tables[set_name] = {}
    _seed_master_data(store, company, config, rng)
    return company_id


_CITIES = (
    "Atlanta",
    "Chicago",
    "Miami",
    "Seattle",
    "Denver",
    "Boston",
    "Dallas",
    "Austin",
    "Portland",
    "Phoenix",
)
_WORDS = (
    "Adatum",
    "Trey",
    "School of Fine Art",
    "Alpine Ski House",
    "Relecloud",
    "Coho Winery",
    "Fabrikam",
    "Litware",
    "Northwind",
    "Contoso",
    "Tailspin",
    "Wide World",
    "Proseware",
    "Lucerne",
    "Woodgrove",
    "Graphic Design",
)
_ITEMS = (
    "ATHENS Desk",
    "PARIS Guest Chair",
    "ROME Guest Chair",
    "TOKYO Guest Chair",
    "MEXICO Swivel Chair",
    "MUNICH Swivel Chair",
    "MOSCOW Swivel Chair",
    "SEOUL Guest Chair",
    "ATLANTA Whiteboard",
    "LONDON Swivel Chair",
    "ANTWERP Conference Table",
    "AMSTERDAM Lamp",
    "BERLIN Guest Chair",
    "GUEST Section 1",
    "SYDNEY Swivel Chair",
)


def _seed_master_data(store: BcStore, company: Company, config: SandboxConfig, rng: random.Random) -> None:
    customers, vendors, items = ENTITY_TYPES["customers"], ENTITY_TYPES["vendors"], ENTITY_TYPES["items"]
    for index in range(config.bc_seed_customers):
        city = rng.choice(_CITIES)
        store.insert(
            company,
            customers,
            {
                "displayName": f"{rng.choice(_WORDS)} {index + 1:03d}",
                "city": city,
                "country": "US",
                "email": f"contact{index + 1}@example.com",
                "creditLimit": float(rng.choice((0, 1000, 5000, 10000))),
                "type": "Company" if index % 5 else "Person",
            },
            row_id=guid(rng),
        )
    for index in range(config.bc_seed_vendors):
        store.insert(
            company,
            vendors,
            {
                "displayName": f"{rng.choice(_WORDS)} Supplies {index + 1:02d}",
                "city": rng.choice(_CITIES),
                "country": "US",
            },
            row_id=guid(rng),
        )
    for index in range(config.bc_seed_items):
        price = round(rng.uniform(10, 900), 2)
        store.insert(
            company,
            items,
            {
                "number": f"{1896 + index}-S",
                "displayName": f"{_ITEMS[index % len(_ITEMS)]} {index // len(_ITEMS) + 1}",
                "unitPrice": price,
                "unitCost": round(price * 0.6, 2),
                "inventory": float(rng.randint(0, 200)),
            },
            row_id=guid(rng),
        )
