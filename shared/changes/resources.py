"""What a notification item names: BC's `resource` and `changeType`, read defensively (they come from the network).

Shapes (reference (a) A1, A3; Learn's "Working with webhooks"; codeunit 6154):
- an entity: `api/v2.0/companies({company})/customers({id})` (a custom API: `api/{publisher}/{group}/{version}/...`),
  with or without a leading slash, or as an absolute URL;
- a collection: the subscribed resource, plus `?$filter=lastModifiedDateTime%20gt%20{first change - 50 ms}` when
  the entity has that field and no delete was among the collapsed changes, else bare (read it all).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any
from urllib.parse import unquote
from uuid import UUID

from shared.bc.models import ApiRoute

CHANGE_TYPES = ("created", "updated", "deleted", "collection")
_GUID = r"[0-9A-Fa-f]{8}-[0-9A-Fa-f]{4}-[0-9A-Fa-f]{4}-[0-9A-Fa-f]{4}-[0-9A-Fa-f]{12}"
_RESOURCE = re.compile(
    rf"^(?:.*?/)?api/(?P<api>v\d+\.\d+|beta|[A-Za-z_]\w*/[A-Za-z_]\w*/(?:v\d+\.\d+|beta))"
    rf"/companies\((?P<company>{_GUID})\)/(?P<set>[A-Za-z_]\w{{0,127}})(?:\((?P<id>{_GUID})\))?"
    r"(?:\?(?P<query>.*))?$"
)
_SINCE = re.compile(r"^\s*lastModifiedDateTime\s+gt\s+(\S+)\s*$")


@dataclass(frozen=True, slots=True)
class ItemTarget:
    """The entity (or the collection, `entity_id` None) an item names, and a collection's lower bound."""

    api: str  # "v2.0", or "{publisher}/{group}/{version}" (Watch.api's form)
    company_id: UUID
    entity_set: str
    entity_id: UUID | None = None
    since: datetime | None = None  # a collection's `lastModifiedDateTime gt` bound; None: the whole set

    @property
    def api_path(self) -> str:
        """`api/v2.0` or `api/{publisher}/{group}/{version}` (Watch.api_path's form)."""
        return f"api/{self.api}"

    @property
    def route(self) -> ApiRoute:
        """The API as the BC client names it."""
        parts = self.api.split("/")
        return ApiRoute(parts[0], parts[1], parts[2]) if len(parts) == 3 else ApiRoute(version=self.api)


@dataclass(frozen=True, slots=True)
class NotificationItem:
    """One notification item as the expansion uses it."""

    change_type: str
    target: ItemTarget
    last_modified: datetime | None


def parse_item(raw: dict[str, Any]) -> NotificationItem | None:
    """The item, or None when its changeType or resource is not one BC sends."""
    change, resource = raw.get("changeType"), raw.get("resource")
    if change not in CHANGE_TYPES or not isinstance(resource, str):
        return None
    target = parse_resource(resource)
    if target is None or (target.entity_id is None) != (change == "collection"):
        return None
    return NotificationItem(change, target, parse_instant(raw.get("lastModifiedDateTime")))


def parse_resource(resource: str) -> ItemTarget | None:
    """The target of `resource`, or None when it names no company's entity set."""
    match = _RESOURCE.match(resource.strip()) if len(resource) <= 2048 else None
    if match is None:
        return None
    entity_id = match.group("id")
    return ItemTarget(
        api="v2.0" if match.group("api") == "v2.0" else match.group("api"),
        company_id=UUID(match.group("company")),
        entity_set=match.group("set"),
        entity_id=UUID(entity_id) if entity_id else None,
        since=_since(match.group("query")),
    )


def _since(query: str | None) -> datetime | None:
    """The bound of BC's `$filter=lastModifiedDateTime gt {datetime}`; any other filter reads the whole set."""
    filters = [part[len("$filter=") :] for part in (query or "").split("&") if part.startswith("$filter=")]
    # unquote, not unquote_plus: a `+` is a UTC offset's sign here, never a space
    found = _SINCE.match(unquote(filters[0])) if filters else None
    return parse_instant(found.group(1)) if found else None


def parse_instant(value: object) -> datetime | None:
    """An ISO 8601 instant as an aware UTC datetime (BC writes `Z`), or None."""
    if not isinstance(value, str) or len(value) > 40:
        return None
    try:
        parsed = datetime.fromisoformat(value)
    except ValueError:
        return None
    return parsed.astimezone(UTC) if parsed.tzinfo else parsed.replace(tzinfo=UTC)
