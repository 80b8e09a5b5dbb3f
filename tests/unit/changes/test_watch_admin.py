"""The watches API: validated like the connections API, per connection, never echoing a submitted value."""

from __future__ import annotations

import json

from shared.changes.watch_admin import (
    MAX_WATCHES,
    WatchesAdmin,
    WatchesAdminSource,
    delete_watch,
    list_watches,
    put_watch,
    show_watch,
)
from shared.changes.watches import CachedWatches, MemoryWatchStore
from shared.changes.watermarks import MemoryWatermarkStore, Watermark
from shared.connections import Connection, ConnectionRegistry, MemoryRegistryStore
from testkit.clock import ManualClock

BASE = "https://app.example.net"
DEFAULT = Connection(
    name="default",
    tenant_id="11111111-1111-1111-1111-111111111111",
    environment="production",
    client_id="33333333-3333-3333-3333-333333333333",
    from_settings=True,
)
LIMITED = Connection(
    name="contoso",
    tenant_id="22222222-2222-2222-2222-222222222222",
    environment="production",
    client_id="33333333-3333-3333-3333-333333333333",
    custom_apis=("contoso/app/v1.0",),
)


def admin() -> tuple[WatchesAdmin, MemoryWatchStore]:
    clock = ManualClock()
    store = MemoryWatchStore()
    registry = ConnectionRegistry(DEFAULT, MemoryRegistryStore(LIMITED), clock)
    services = WatchesAdmin(registry, CachedWatches(store, clock), MemoryWatermarkStore())
    return services, store


def source(services: WatchesAdmin) -> WatchesAdminSource:
    async def get() -> WatchesAdmin:
        return services

    return get


async def test_put_creates_then_replaces_and_get_lists_it() -> None:
    services, store = admin()
    body = json.dumps({"entitySet": "customers", "includeData": True, "select": ["number"]}).encode()

    created = await put_watch(source(services), "default", "customers", body, base_url=BASE)
    replaced = await put_watch(source(services), "default", "customers", body, base_url=BASE)
    listed = await list_watches(source(services), "default", base_url=BASE)
    shown = await show_watch(source(services), "default", "customers", base_url=BASE)

    assert (created.status, replaced.status, listed.status, shown.status) == (201, 200, 200, 200)
    assert created.headers["Location"] == f"{BASE}/api/connections/default/watches/customers"
    (watch,) = json.loads(listed.body)["watches"]
    assert watch["entitySet"] == "customers"
    assert watch["connection"] == "default"
    assert watch["select"] == ["number"]
    assert list(store.rows) == [("default", "customers")]


async def test_bad_fields_are_named_with_their_fix_and_never_echoed() -> None:
    services, _ = admin()
    body = json.dumps({"entitySet": "cust omers'--", "companyId": "not-a-guid", "name": "x"}).encode()

    reply = await put_watch(source(services), "default", "customers", body, base_url=BASE)

    assert reply.status == 400
    assert "cust omers" not in reply.body
    assert "not-a-guid" not in reply.body
    fields = {f["field"] for f in json.loads(reply.body)["fields"]}
    assert fields == {"name"}  # the URL's name is refused first
    again = await put_watch(
        source(services), "default", "customers", json.dumps({"entitySet": "x y"}).encode(), base_url=BASE
    )
    assert json.loads(again.body)["fields"][0]["field"] == "entitySet"
    assert "fix" in json.loads(again.body)["fields"][0]


async def test_a_custom_api_the_connection_may_not_call_is_refused() -> None:
    services, _ = admin()
    body = json.dumps({"entitySet": "things", "api": "fabrikam/app/v1.0"}).encode()

    refused = await put_watch(source(services), "contoso", "things", body, base_url=BASE)
    allowed = await put_watch(
        source(services), "contoso", "things", json.dumps({"entitySet": "things", "api": "contoso/app/v1.0"}).encode(),
        base_url=BASE,
    )  # fmt: skip

    assert (refused.status, allowed.status) == (400, 201)


async def test_unknown_connection_or_watch_is_404_naming_how_to_list() -> None:
    services, _ = admin()
    unknown = await list_watches(source(services), "nope", base_url=BASE)
    missing = await show_watch(source(services), "default", "nope", base_url=BASE)
    deleted = await delete_watch(source(services), "default", "nope")

    assert (unknown.status, missing.status, deleted.status) == (404, 404, 404)
    assert "bcjobs watches list --connection default" in missing.body


async def test_delete_removes_the_watch() -> None:
    services, store = admin()
    await put_watch(source(services), "default", "items", b'{"entitySet": "items"}', base_url=BASE)

    assert (await delete_watch(source(services), "default", "items")).status == 204
    assert store.rows == {}


async def test_a_connection_holds_at_most_the_limit_of_watches() -> None:
    services, _ = admin()
    for index in range(MAX_WATCHES):
        await put_watch(source(services), "default", f"w{index}", b'{"entitySet": "items"}', base_url=BASE)

    full = await put_watch(source(services), "default", "one-more", b'{"entitySet": "items"}', base_url=BASE)

    assert full.status == 409


async def test_a_body_that_is_not_a_json_object_is_refused() -> None:
    services, _ = admin()
    for body in (b"", b"[]", b"{", b"x" * 10_000):
        reply = await put_watch(source(services), "default", "w", body, base_url=BASE)
        assert reply.status in (400, 413)


async def test_a_watch_that_follows_something_else_or_is_deleted_starts_reconciliation_afresh() -> None:
    services, _ = admin()
    marks = services.progress
    assert isinstance(marks, MemoryWatermarkStore)
    await put_watch(source(services), "default", "w", b'{"entitySet": "customers"}', base_url=BASE)
    await marks.put(Watermark("default", "w"))
    await marks.add_ids("default", "w", ["a"])

    await put_watch(
        source(services), "default", "w", b'{"entitySet": "customers", "includeData": true}', base_url=BASE
    )
    kept = await marks.mark("default", "w")
    await put_watch(source(services), "default", "w", b'{"entitySet": "vendors"}', base_url=BASE)
    moved = await marks.mark("default", "w")
    await marks.add_ids("default", "w", ["b"])
    await delete_watch(source(services), "default", "w")

    assert kept is not None
    assert moved is None
    assert await marks.known_ids("default", "w") == set()
