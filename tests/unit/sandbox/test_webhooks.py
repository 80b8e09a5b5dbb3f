"""The sandbox's BC webhook rules without HTTP: aggregation as codeunit 6154 does it, resources, the delivery
outcome rules and the retry schedule."""

from __future__ import annotations

import threading

from sandbox.bc.store import Company, Row
from sandbox.bc.subscriptions import (
    Item,
    Pending,
    Resource,
    Subscription,
    SubscriptionTable,
    parse_resource,
)
from sandbox.bc.webhooks import WebhookControl, WebhookSettings
from sandbox.clock import SandboxClock
from sandbox.config import SandboxConfig

COMPANY = "5d115c9c-44e3-ea11-bb43-000d3a2feca1"


def _subscription(
    table: SubscriptionTable, url: str = "http://127.0.0.1:1/hook", sid: str = "s1"
) -> Subscription:
    target = Resource("v2.0", COMPANY, "customers")
    found = Subscription(
        sid, url, f"/api/v2.0/companies({COMPANY})/customers", "state", target, "user", 0, 0, 4e9, 1
    )
    table.subscriptions[sid] = found
    return found


def _control() -> tuple[WebhookControl, SubscriptionTable]:
    control = WebhookControl(SandboxConfig(), SandboxClock(), threading.RLock())
    return control, control.table_for("tenant", "production")


def test_repeated_updates_of_one_entity_merge_but_created_and_deleted_stay() -> None:
    pending = Pending()
    for change in ("created", "updated", "updated", "deleted"):
        pending.add(Item("a", change, 1.0), threshold=1000)
    assert [c.change_type for c in pending.items] == ["created", "updated", "deleted"]


def test_the_change_after_the_threshold_collapses_everything_into_a_collection() -> None:
    pending = Pending()
    for n in range(4):
        pending.add(Item(str(n), "created", float(n)), threshold=3)
    assert pending.items == []
    assert pending.collection is not None
    assert (pending.collection.first, pending.collection.last) == (0.0, 3.0)


def test_a_collection_with_a_delete_names_the_bare_resource() -> None:
    _, table = _control()
    subscription = _subscription(table)
    for n, change in enumerate(("created", "deleted", "created")):
        subscription.pending.add(Item(str(n), change, 10.0 + n), threshold=2)
    [item] = subscription.items()
    assert item["changeType"] == "collection"
    assert item["resource"] == subscription.resource


def test_a_collection_filters_from_the_first_change_minus_50_ms() -> None:
    _, table = _control()
    subscription = _subscription(table)
    for n in range(3):
        subscription.pending.add(Item(str(n), "created", 10.0 + n), threshold=2)
    [item] = subscription.items()
    assert item["resource"].endswith("?$filter=lastModifiedDateTime%20gt%201970-01-01T00:00:09.950Z")


def test_resources_name_api_company_and_entity_set() -> None:
    assert parse_resource(f"/api/v2.0/companies({COMPANY})/customers") == Resource(
        "v2.0", COMPANY, "customers"
    )
    assert parse_resource(f"api/contoso/app/v1.0/companies({COMPANY})/items") == Resource(
        "contoso/app/v1.0", COMPANY, "items"
    )
    assert parse_resource(f"/api/v2.0/companies({COMPANY})/customers(1)") is None
    assert parse_resource("/api/v2.0/customers") is None


def test_retries_follow_get_delay_time_for_attempt() -> None:
    settings = WebhookSettings.from_config(SandboxConfig())
    assert [settings.retry_delay(n) / 60 for n in range(1, 8)] == [1, 1, 10, 100, 1000, 1000, 1000]
    scaled = WebhookSettings.from_config(SandboxConfig(bc_time_scale=60))
    assert (scaled.delay_seconds, scaled.retry_delay(5)) == (0.5, 1000.0)


def test_a_line_change_is_recorded_for_its_header() -> None:
    control, table = _control()
    header = Subscription(
        "s1", "http://h", "r", "", Resource("v2.0", COMPANY, "salesOrders"), "u", 0, 0, 4e9, 1
    )
    table.subscriptions["s1"] = header
    company = Company(Row({"id": COMPANY, "name": "c"}, 1))
    control.record(
        table, company, "salesOrderLines", Row({"id": "line", "documentId": "order"}, 2), "deleted"
    )
    assert [(c.key, c.change_type) for c in header.pending.items] == [("order", "updated")]
    assert table.job_at is not None


def test_a_rejecting_status_deletes_every_subscription_of_the_url_only() -> None:
    control, table = _control()
    _subscription(table, "http://a", "s1").pending.add(Item("x", "created", 1.0), 1000)
    _subscription(table, "http://a", "s2")
    _subscription(table, "http://b", "s3").pending.add(Item("y", "created", 1.0), 1000)
    table.job_at = 0.0
    deliveries = {d.url: d for d in control.due_deliveries()}
    control.apply(deliveries["http://a"], 410)
    control.apply(deliveries["http://b"], 200)
    assert list(table.subscriptions) == ["s3"]


def test_the_sixth_failed_post_deletes_the_subscription() -> None:
    control, table = _control()
    control.settings(retry_seconds=(0.0,))
    _subscription(table).pending.add(Item("x", "created", 1.0), 1000)
    table.job_at = 0.0
    posts = 0
    while table.subscriptions and posts < 10:
        for delivery in control.due_deliveries():
            control.apply(delivery, None)
            posts += 1
    assert posts == 6
    assert control.stats()["deleted"] == {"failures": 1}
