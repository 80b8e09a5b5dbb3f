"""BC webhook subscriptions of one environment, and the notifications they collect.

Facts (reference bc-webhooks-connections-identities.md, section (a); Learn "Working with webhooks",
dev-itpro/api-reference/v2.0/dynamics-subscriptions; BC's sender, codeunit 6154 "API Webhook Notification Send"):
- subscriptions are environment-level (`api/v2.0/subscriptions`, or a custom API's route), the company is in
  `resource`; they expire 3 days after creation or the last renewal; 200 per environment;
- every change to a subscribed entity set's rows is recorded for each subscription; a change to a document line is
  recorded for its header ("a notification is sent for the header if a change is made to a line");
- codeunit 6154 merges an `updated` into the subscription's last item for the same entity when that item is an
  `updated` too (MergeIntoExistingUpdatedAggregateNotification); once a subscription holds the maximum number of
  items (1,000), the next change turns them all into one `collection` item (GenerateSingleAggregateNotification,
  MergeAllIntoNewCollectionAggregateNotification), whose resource is
  `{resource}?$filter=lastModifiedDateTime%20gt%20{first change - 50 ms}`, or the bare resource when a delete is
  among the changes or the entity has no lastModifiedDateTime (GetEntityCollectionUrl, HasNotificationOnDelete).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from datetime import UTC, datetime

from sandbox.bc.schema import COMPANY_SETS, ENTITY_TYPES, JsonValue
from sandbox.bc.store import weak_etag

# Line entity sets notify their header, so only headers and master data can be subscribed to.
SUBSCRIBABLE = frozenset(name for name in COMPANY_SETS if ENTITY_TYPES[name].parent is None)


def subscribable(set_name: str, api_route: str) -> bool:
    """Whether a subscription of `api_route` may name the entity set (a custom API page: not through v2.0)."""
    return set_name in SUBSCRIBABLE and (api_route != "v2.0" or not ENTITY_TYPES[set_name].custom_api)


_RESOURCE = re.compile(
    r"^(?:https?://[^/]+(?:/v2\.0/[^/]+(?:/[^/]+)?)?)?/?api/(?P<api>[^()]+?)/companies\((?P<company>[0-9a-fA-F-]{36})\)"
    r"/(?P<set>[A-Za-z]+)/?$"
)


def iso(moment: float) -> str:
    """Epoch seconds as BC writes a UTC DateTime in JSON (milliseconds, Z)."""
    value = datetime.fromtimestamp(moment, UTC)
    return value.strftime("%Y-%m-%dT%H:%M:%S.") + f"{value.microsecond // 1000:03d}Z"


@dataclass(frozen=True, slots=True)
class Resource:
    """What a subscription's `resource` names: the API route (v2.0 or publisher/group/version), the company and
    the entity set."""

    api: str
    company_id: str
    set_name: str


def parse_resource(resource: str) -> Resource | None:
    """The API route, company and entity set of a subscription resource; None when it names none."""
    match = _RESOURCE.match(resource.strip())
    if match is None:
        return None
    return Resource(match.group("api"), match.group("company").lower(), match.group("set"))


@dataclass(slots=True)
class Item:
    """One pending notification item: the entity key, the change type (created, updated, deleted) and when."""

    key: str
    change_type: str
    moment: float


@dataclass(slots=True)
class Collection:
    """The collapsed form once more than the threshold of items are pending."""

    first: float
    last: float
    had_delete: bool


@dataclass(slots=True)
class Pending:
    """A subscription's notification items not yet delivered (BC's API Webhook Notification Aggr rows)."""

    items: list[Item] = field(default_factory=list)
    collection: Collection | None = None

    def __bool__(self) -> bool:
        return bool(self.items) or self.collection is not None

    def add(self, item: Item, threshold: int) -> None:
        """Record an item the way codeunit 6154 aggregates it (module docstring)."""
        if self.collection is not None:
            self.collection.last = item.moment
            self.collection.had_delete |= item.change_type == "deleted"
            return
        if item.change_type == "updated":
            same = [i for i in self.items if i.key == item.key]
            if same and same[-1].change_type == "updated":
                same[-1].moment = item.moment
                return
        if len(self.items) >= threshold:
            first = self.items[0].moment
            had_delete = any(i.change_type == "deleted" for i in self.items)
            self.collection = Collection(first, item.moment, had_delete or item.change_type == "deleted")
            self.items = []
            return
        self.items.append(item)

    def merge(self, newer: Pending, threshold: int) -> None:
        """Put items that arrived during a failed delivery behind the ones that failed."""
        if newer.collection is not None and self.collection is None:
            self.collection = newer.collection
            self.items = []
            return
        for item in newer.items:
            self.add(item, threshold)


@dataclass(slots=True)
class Subscription:
    """One webhook subscription (the fields of Learn's subscription resource type)."""

    subscription_id: str
    notification_url: str
    resource: str
    client_state: str
    target: Resource
    user_id: str
    created: float
    modified: float
    expiration: float
    stamp: int
    pending: Pending = field(default_factory=Pending)
    attempt: int = 0  # failed deliveries of the pending items (codeunit 6154 "Attempt No.")
    next_attempt: float = 0.0  # sandbox epoch seconds; 0 = not waiting for a retry

    @property
    def etag(self) -> str:
        """The subscription's ETag (changes on every renewal)."""
        return weak_etag(self.stamp)

    def to_json(self) -> dict[str, JsonValue]:
        """As `GET subscriptions` shows it."""
        return {
            "@odata.etag": self.etag,
            "subscriptionId": self.subscription_id,
            "notificationUrl": self.notification_url,
            "resource": self.resource,
            "timestamp": self.stamp,
            "userId": self.user_id,
            "lastModifiedDateTime": iso(self.modified),
            "clientState": self.client_state,
            "expirationDateTime": iso(self.expiration),
            "systemCreatedAt": iso(self.created),
            "systemCreatedBy": self.user_id,
            "systemModifiedAt": iso(self.modified),
            "systemModifiedBy": self.user_id,
        }

    def items(self) -> list[dict[str, JsonValue]]:
        """The pending notifications as the items of a notification POST (codeunit 6154 GetEntityJObject)."""
        common: dict[str, JsonValue] = {
            "subscriptionId": self.subscription_id,
            "clientState": self.client_state,
            "expirationDateTime": iso(self.expiration),
        }
        collection = self.pending.collection
        if collection is not None:
            return [{**common, **self._collection_item(collection)}]
        return [
            {
                **common,
                "resource": f"{self.resource}({item.key})",
                "changeType": item.change_type,
                "lastModifiedDateTime": iso(item.moment),
            }
            for item in self.pending.items
        ]

    def _collection_item(self, collection: Collection) -> dict[str, JsonValue]:
        resource = self.resource
        filterable = "lastModifiedDateTime" in ENTITY_TYPES[self.target.set_name].fields
        if filterable and not collection.had_delete:
            # "Subtract 50 milliseconds to be sure we get all the changes since the SQL rounds in the different
            # way than C# / AL" (codeunit 6154 GetEntityCollectionUrl).
            resource += f"?$filter=lastModifiedDateTime%20gt%20{iso(collection.first - 0.05)}"
        return {
            "resource": resource,
            "changeType": "collection",
            "lastModifiedDateTime": iso(collection.last),
        }


class SubscriptionTable:
    """One environment's subscriptions and when its sender job is due. The caller holds BcControl.lock."""

    def __init__(self, tenant_id: str, environment: str) -> None:
        self.tenant_id = tenant_id
        self.environment = environment
        self.subscriptions: dict[str, Subscription] = {}
        self.job_at: float | None = None  # sandbox epoch seconds of the next sender run

    def matching(self, company_id: str, set_name: str) -> list[Subscription]:
        """The subscriptions whose resource is this company's entity set."""
        return [
            s
            for s in self.subscriptions.values()
            if s.target.company_id == company_id and s.target.set_name == set_name
        ]

    def schedule(self, moment: float) -> None:
        """Run the sender job at `moment` unless it already runs earlier."""
        if self.job_at is None or moment < self.job_at:
            self.job_at = moment

    def clear(self) -> int:
        """Remove every subscription (an environment copy or restore); how many there were."""
        removed = len(self.subscriptions)
        self.subscriptions.clear()
        self.job_at = None
        return removed
