"""The expansion: BC's doorbell items become one change event per entity version, read at most once each."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any
from uuid import UUID

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from bcjobs.changes import ChangeKind, ChangeOrigin, change_id, tombstone_version
from shared.bc.errors import ServiceUnavailableError
from shared.changes.expansion import Expansion
from shared.changes.feed import MemoryChangeFeed
from shared.changes.notifications import NotificationMessage
from shared.changes.watch import Watch
from shared.changes.watermarks import MemoryWatermarkStore, Watermark
from shared.connections import Connection
from tests.fakes.notifications import MemoryBc, MemorySecrets, MemoryWatches, OneFeedLane, Secret

KEY, STATE = "0123456789abcdef0123456789abcdef", "fedcba9876543210fedcba9876543210"
COMPANY = UUID("11111111-1111-1111-1111-111111111111")
RECEIVED = datetime(2026, 1, 5, 8, 1, tzinfo=UTC)
CONNECTION = Connection(
    name="contoso",
    tenant_id="contoso.onmicrosoft.com",
    environment="production",
    client_id="33333333-3333-3333-3333-333333333333",
    company_id=COMPANY,
)


def _id(n: int) -> str:
    return str(UUID(int=1000 + n))


def _customer(n: int, etag: str = "1", modified: str = "2026-01-05T08:00:00Z") -> dict[str, object]:
    return {"@odata.etag": f'W/"{etag}"', "id": _id(n), "number": f"C{n}", "lastModifiedDateTime": modified}


def _item(n: int | None, change: str = "updated", state: str = STATE, query: str = "") -> dict[str, Any]:
    entity = f"({_id(n)})" if n is not None else ""
    return {
        "subscriptionId": "sub-1",
        "clientState": state,
        "resource": f"api/v2.0/companies({COMPANY})/customers{entity}{query}",
        "changeType": change,
        "lastModifiedDateTime": "2026-01-05T08:00:30Z",
    }


def _message(*items: dict[str, Any], key: str = KEY) -> NotificationMessage:
    return NotificationMessage(
        connection="contoso", key=key, correlation_id="c0ffee", received_at=RECEIVED, value=items
    )


def _world(rows: list[dict[str, object]], **watch: Any) -> tuple[Expansion, MemoryBc, MemoryChangeFeed]:
    bc, feed = MemoryBc(sets={"customers": rows}), MemoryChangeFeed()
    watches = MemoryWatches(
        {"contoso": [Watch(connection="contoso", name="customers", entity_set="customers", **watch)]}
    )
    secrets = MemorySecrets({"contoso": Secret(KEY, STATE)})
    return Expansion(secrets, watches, OneFeedLane(CONNECTION, bc), feed), bc, feed


async def test_an_update_becomes_the_event_of_the_version_read_from_bc() -> None:
    expansion, bc, feed = _world([_customer(1, etag="7", modified="2026-01-05T08:00:10Z")])
    expanded = await expansion.expand(_message(_item(1)))
    [event] = feed.sent
    assert (expanded.new, expanded.seen, len(bc.requests)) == (1, 0, 1)
    assert event.id == change_id("contoso", str(COMPANY), "customers", _id(1), 'W/"7"')
    assert event.type == "bcintegration.customers.updated"
    assert event.source == f"/connections/contoso/environments/production/companies/{COMPANY}"
    assert (event.subject, event.bcetag, event.bcorigin) == (_id(1), 'W/"7"', ChangeOrigin.WEBHOOK)
    assert event.time == datetime(2026, 1, 5, 8, 0, 10, tzinfo=UTC)
    reference = f"https://bc.test/v2.0/contoso/production/api/v2.0/companies({COMPANY})/customers({_id(1)})"
    assert event.data == {"reference": reference}


async def test_a_watch_with_data_and_fields_selects_them_and_carries_the_entity() -> None:
    expansion, bc, feed = _world([_customer(1)], include_data=True, select=("number",))
    await expansion.expand(_message(_item(1, "created")))
    [(_, _, query)] = bc.requests
    assert query is not None
    assert query.params()["$select"] == "id,number"
    assert feed.sent[0].bcchange is ChangeKind.CREATED
    assert feed.sent[0].data is not None
    assert feed.sent[0].data["entity"] == {
        "id": _id(1),
        "number": "C1",
        "lastModifiedDateTime": "2026-01-05T08:00:00Z",
    }
    assert feed.sent[0].data["reference"].endswith(f"/companies({COMPANY})/customers({_id(1)})")


async def test_several_items_for_one_entity_are_one_read() -> None:
    expansion, bc, feed = _world([_customer(1)])
    await expansion.expand(_message(_item(1, "created"), _item(1), _item(1)))
    assert len(bc.requests) == 1
    assert [event.bcchange for event in feed.sent] == [ChangeKind.CREATED]


async def test_a_delete_is_a_tombstone_without_a_read_and_a_404_is_one_too() -> None:
    expansion, bc, feed = _world([])
    await expansion.expand(_message(_item(1, "deleted"), _item(2)))
    assert [request[1] for request in bc.requests] == [f"companies({COMPANY})/customers({_id(2)})"]
    assert {event.subject: event.bcchange for event in feed.sent} == {
        _id(1): ChangeKind.DELETED,
        _id(2): ChangeKind.DELETED,
    }
    assert feed.sent[0].id == change_id("contoso", str(COMPANY), "customers", _id(1), tombstone_version())
    assert feed.sent[0].data is None


async def test_a_collection_is_read_page_by_page_from_bcs_bound_ascending() -> None:
    rows = [_customer(n, modified=f"2026-01-05T08:00:0{n}Z") for n in range(1, 6)]
    expansion, bc, feed = _world(rows)
    bound = "?$filter=lastModifiedDateTime%20gt%202026-01-05T08:00:01.950Z"
    await expansion.expand(_message(_item(None, "collection", query=bound)))
    assert [event.subject for event in feed.sent] == [_id(n) for n in range(2, 6)]
    query = bc.requests[0][2]
    assert query is not None
    assert query.params()["$orderby"] == "lastModifiedDateTime asc"
    assert query.params()["$filter"] == "lastModifiedDateTime gt 2026-01-05T08:00:01.95Z"
    assert len(bc.requests) == 2  # pages of two


async def test_a_bare_collection_reads_the_whole_set() -> None:
    expansion, _, feed = _world([_customer(n) for n in range(1, 4)])
    await expansion.expand(_message(_item(None, "collection")))
    assert len(feed.sent) == 3


async def test_a_bare_collection_of_a_whole_watch_publishes_only_versions_reconciliation_had_not_recorded() -> (
    None
):
    rows = [_customer(n) for n in range(1, 4)]
    bc, feed, marks = MemoryBc(sets={"customers": rows}), MemoryChangeFeed(), MemoryWatermarkStore()
    watch = Watch(connection="contoso", name="customers", entity_set="customers")
    secrets = MemorySecrets({"contoso": Secret(KEY, STATE)})
    expansion = Expansion(
        secrets, MemoryWatches({"contoso": [watch]}), OneFeedLane(CONNECTION, bc), feed, None, marks
    )
    unchanged = change_id("contoso", str(COMPANY), "customers", _id(1), 'W/"1"')
    await marks.put(Watermark("contoso", "customers", whole=True))
    await marks.put_versions("contoso", "customers", {_id(1): unchanged, _id(2): "an older version"})

    expanded = await expansion.expand(_message(_item(None, "collection")))

    assert sorted(event.subject for event in feed.sent) == [_id(2), _id(3)]  # changed, new
    assert expanded.new == 2


async def test_a_repeated_message_publishes_nothing_new() -> None:
    expansion, _, feed = _world([_customer(1)])
    await expansion.expand(_message(_item(1)))
    again = await expansion.expand(_message(_item(1)))
    assert (again.new, again.seen, len(feed.sent)) == (0, 1, 1)


async def test_a_wrong_key_or_client_state_is_dropped_before_any_read() -> None:
    expansion, bc, feed = _world([_customer(1), _customer(2)])
    wrong_key = await expansion.expand(_message(_item(1), key="f" * 32))
    mixed = await expansion.expand(_message(_item(1, state="x" * 32), _item(2), _item(1, state=None)))  # type: ignore[arg-type]
    assert wrong_key.dropped == 1
    assert mixed.dropped == 0  # counted as wrong_secret in _verified, not as malformed
    assert [event.subject for event in feed.sent] == [_id(2)]
    assert len(bc.requests) == 1


async def test_items_matching_no_watch_or_unreadable_are_dropped() -> None:
    expansion, bc, feed = _world([_customer(1)])
    other = _item(1) | {"resource": f"api/v2.0/companies({COMPANY})/vendors({_id(1)})"}
    garbage = _item(1) | {"resource": "nonsense"}
    expanded = await expansion.expand(_message(other, garbage))
    assert (expanded.dropped, bc.requests, feed.sent) == (2, [], [])


async def test_bc_trouble_raises_for_a_redelivery_and_publishes_nothing() -> None:
    expansion, bc, feed = _world([_customer(1)])
    bc.unavailable = True
    with pytest.raises(ServiceUnavailableError):
        await expansion.expand(_message(_item(1)))
    assert feed.sent == []


async def test_every_read_runs_under_bcs_correlation_id() -> None:
    """The telemetry scope names the notification's x-ms-correlation-id and connection on every log record."""
    expansion, bc, _ = _world([_customer(1)])
    await expansion.expand(_message(_item(1)))
    assert bc.dimensions[0]["correlation_id"] == "c0ffee"
    assert bc.dimensions[0]["connection"] == "contoso"


_values = st.one_of(st.none(), st.integers(), st.text(max_size=80), st.lists(st.text(max_size=5), max_size=2))
_garbage_items = st.dictionaries(
    st.sampled_from(["changeType", "resource", "clientState", "lastModifiedDateTime", "subscriptionId", "x"]),
    _values,
    max_size=6,
)


@settings(max_examples=200, suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture])
@given(items=st.lists(_garbage_items, min_size=1, max_size=5), right_state=st.booleans())
async def test_garbage_items_never_raise_and_publish_nothing(
    items: list[dict[str, Any]], right_state: bool
) -> None:
    """Whatever a message holds besides BC's shapes is dropped: no exception, no read, no event."""
    expansion, bc, feed = _world([_customer(1)])
    if right_state:
        items = [item | {"clientState": STATE} for item in items]
    expanded = await expansion.expand(_message(*items))
    assert (bc.requests, feed.sent) == ([], [])
    assert expanded.new == 0
