"""The status page's change feed section: each watch's subscription and expiry, each connection's use of 200."""

from __future__ import annotations

from datetime import timedelta
from uuid import UUID

from shared.changes.feed_status import FeedStatus, feed_section_body
from shared.changes.secrets import MemoryNotifySecrets
from shared.changes.subscription_manager import SubscriptionManager
from shared.changes.subscriptions import MemorySubscriptionStore, SubscriptionRecord, SubscriptionUsage
from shared.ops.page import render
from shared.ops.snapshot import Snapshot
from testkit.clock import START, ManualClock
from tests.unit.changes.test_subscription_manager import BASE, FakeBc, watch

COMPANY = UUID(int=1)


def record(watch_name: str, left: timedelta) -> SubscriptionRecord:
    return SubscriptionRecord(
        "contoso",
        f"{watch_name:0>32}",
        watch_name,
        COMPANY,
        "customers",
        "/api/v2.0/x",
        START + left,
        None,
        START,
    )


def test_usage_and_each_subscription_show_and_a_failing_renewal_is_flagged() -> None:
    status = FeedStatus(
        (record("customers", timedelta(days=2)), record("orders", timedelta(hours=3))),
        (SubscriptionUsage("contoso", 2, 7, 200, START),),
    )

    body = feed_section_body(status, START)

    assert "2 ours of 7 in use, BC allows 200" in body
    assert "<td>customers</td>" in body
    assert "48.0 h" in body
    assert "<td class='problem'>3.0 h</td>" in body


def test_the_page_shows_the_section_or_why_it_could_not() -> None:
    status = FeedStatus((record("customers", timedelta(days=2)),), ())
    shown = render(Snapshot(START, None, None, [], [], None, change_feed=status))
    failed = render(Snapshot(START, None, None, [], [], None, {"change feed": "could not be read (X)"}))

    assert "Change feed: BC subscriptions" in shown
    assert "Change feed: could not be read (X)" in failed


async def test_the_manager_notes_the_usage_it_saw() -> None:
    clock, store = ManualClock(), MemorySubscriptionStore()
    bc = FakeBc(clock)
    bc.foreign("f1", "https://prod-01.westeurope.logic.azure.com/workflows/1")
    await SubscriptionManager(store, MemoryNotifySecrets(), BASE, clock).run(
        "contoso", [watch("customers")], bc
    )

    records, usages = await store.everything()

    assert [r.watch for r in records] == ["customers"]
    assert usages == [SubscriptionUsage("contoso", 1, 2, 200, clock.now())]
