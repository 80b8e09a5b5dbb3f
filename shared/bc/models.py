"""Value objects that cross the BC client's boundary: where a call goes and what comes back (all frozen)."""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from enum import StrEnum
from types import MappingProxyType
from typing import TypeAlias
from uuid import UUID

from shared.bc.errors import BusinessCentralError, QueryError

JsonValue: TypeAlias = str | int | float | bool | Sequence["JsonValue"] | Mapping[str, "JsonValue"] | None
JsonObject: TypeAlias = Mapping[str, JsonValue]

# OData (CSDL) simple identifiers: a letter or _, then letters, digits or _, at most 128 characters.
_SEGMENT = re.compile(r"^[A-Za-z_][A-Za-z0-9_]{0,127}$")
_VERSION = re.compile(r"^v\d+\.\d+$|^beta$")


def _segment(value: str, what: str) -> str:
    if not _SEGMENT.fullmatch(value):
        # The value may come from job input: show its length, never the text (it could be anything).
        raise QueryError(f"not a valid {what} (letters, digits and _ only; got {len(value)} characters)")
    return value


@dataclass(frozen=True, slots=True)
class BcEndpoint:
    """Where BC lives: `{base_url}/v2.0/{tenant}/{environment}/api/...` (tenant may be omitted)."""

    base_url: str
    environment: str
    tenant_id: str | None = None
    company_id: UUID | None = None
    company_name: str | None = None

    def api_root(self, api: ApiRoute) -> str:
        """The absolute URL of an API's root, ending without a slash."""
        tenant = f"/{self.tenant_id}" if self.tenant_id else ""
        return f"{self.base_url.rstrip('/')}/v2.0{tenant}/{self.environment}/{api.path}"


@dataclass(frozen=True, slots=True)
class ApiRoute:
    """Which API: the standard `api/v2.0`, or a custom `api/{publisher}/{group}/{version}`."""

    publisher: str | None = None
    group: str | None = None
    version: str = "v2.0"

    def __post_init__(self) -> None:
        if (self.publisher is None) != (self.group is None):
            raise QueryError("a custom API needs both publisher and group")
        if self.publisher is not None and self.group is not None:
            _segment(self.publisher, "API publisher")
            _segment(self.group, "API group")
        if not _VERSION.fullmatch(self.version):
            raise QueryError("not an API version (v<major>.<minor> or beta)")

    @property
    def path(self) -> str:
        """`api/v2.0` or `api/{publisher}/{group}/{version}`."""
        if self.publisher is None:
            return f"api/{self.version}"
        return f"api/{self.publisher}/{self.group}/{self.version}"


STANDARD_API = ApiRoute()


@dataclass(frozen=True, slots=True)
class EntitySet:
    """A collection: `companies({company})/{name}`, or a navigation `.../{parent}({id})/{name}`."""

    name: str
    api: ApiRoute = STANDARD_API
    # None: the client's configured company. Ignored when `parent` is set (the parent carries it).
    company_id: UUID | None = None
    parent: EntityKey | None = None

    def __post_init__(self) -> None:
        _segment(self.name, "entity set name")

    def key(self, entity_id: UUID | str) -> EntityKey:
        """One entity of this set by its GUID."""
        return EntityKey(self, entity_id if isinstance(entity_id, UUID) else UUID(entity_id))

    def relative_path(self, company_id: UUID) -> str:
        """The path below the API root, e.g. `companies(…)/salesOrders(…)/salesOrderLines`."""
        if self.parent is not None:
            return f"{self.parent.relative_path(company_id)}/{self.name}"
        return f"companies({self.company_id or company_id})/{self.name}"


@dataclass(frozen=True, slots=True)
class EntityKey:
    """One entity: `{entity set}({id})` (BC keys are GUIDs, unquoted)."""

    entity_set: EntitySet
    id: UUID

    @property
    def api(self) -> ApiRoute:
        """The API the entity belongs to."""
        return self.entity_set.api

    def child(self, name: str) -> EntitySet:
        """A navigation collection below this entity (e.g. salesOrderLines of a salesOrder)."""
        return EntitySet(name, api=self.entity_set.api, parent=self)

    def relative_path(self, company_id: UUID) -> str:
        """The path below the API root."""
        return f"{self.entity_set.relative_path(company_id)}({self.id})"


def _frozen(values: JsonObject) -> JsonObject:
    return MappingProxyType(dict(values))


@dataclass(frozen=True, slots=True)
class Entity:
    """One record as BC returned it; `etag` is its `@odata.etag` (opaque, for If-Match)."""

    values: JsonObject
    etag: str | None = None

    @classmethod
    def from_json(cls, body: JsonObject) -> Entity:
        """Split BC's JSON into values and the ETag."""
        etag = body.get("@odata.etag")
        values = {key: value for key, value in body.items() if not key.startswith("@odata.")}
        return cls(_frozen(values), etag if isinstance(etag, str) else None)

    @property
    def id(self) -> UUID | None:
        """The entity's `id` GUID when it has one."""
        raw = self.values.get("id")
        return UUID(raw) if isinstance(raw, str) else None

    def __getitem__(self, key: str) -> JsonValue:
        return self.values[key]


@dataclass(frozen=True, slots=True)
class Company:
    """A BC company of the environment."""

    id: UUID
    name: str
    display_name: str | None = None
    system_version: str | None = None


class Method(StrEnum):
    """HTTP methods the client sends."""

    GET = "GET"
    POST = "POST"
    PATCH = "PATCH"
    DELETE = "DELETE"


IDEMPOTENT_METHODS = frozenset({Method.GET, Method.DELETE})


@dataclass(frozen=True, slots=True)
class BatchOperation:
    """One operation of a $batch: create into an EntitySet, or get/update/delete/act on an EntityKey.

    `etag` is sent as If-Match (PATCH and DELETE need one; "*" means "whatever the current version is").
    `action` makes it a bound action POST `{key}/Microsoft.NAV.{action}`.
    """

    method: Method
    target: EntitySet | EntityKey
    body: JsonObject | None = None
    etag: str | None = None
    action: str | None = None

    def __post_init__(self) -> None:
        if self.action is not None:
            _segment(self.action, "action name")
            if self.method is not Method.POST or not isinstance(self.target, EntityKey):
                raise QueryError("a bound action is a POST on an entity key")
        if self.body is not None:
            object.__setattr__(self, "body", _frozen(self.body))

    @property
    def api(self) -> ApiRoute:
        """The API the target lives in."""
        return self.target.api

    def relative_url(self, company_id: UUID) -> str:
        """The operation's URL relative to the API root, as JSON $batch expects."""
        path = self.target.relative_path(company_id)
        return f"{path}/Microsoft.NAV.{self.action}" if self.action else path


@dataclass(frozen=True, slots=True)
class BatchResult:
    """What BC answered for one operation; `error` is set when its status is not 2xx.

    `rolled_back` is True for every operation of an atomic batch that failed (AtomicBatchFailedError): BC
    reverted it even when its own status is 2xx, so an `entity` it carries does not exist in BC.
    """

    operation: BatchOperation
    status: int
    entity: Entity | None = None
    error: BusinessCentralError | None = field(default=None, compare=False)
    rolled_back: bool = False

    @property
    def ok(self) -> bool:
        """True for a 2xx answer whose change BC kept (False once rolled back)."""
        return 200 <= self.status < 300 and not self.rolled_back


@dataclass(frozen=True, slots=True)
class Page:
    """One page of a list: its entities and the (already host-checked) link to the next page."""

    entities: tuple[Entity, ...]
    next_link: str | None
