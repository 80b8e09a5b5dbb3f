"""Every kind of change event parses with the cloudevents SDK and validates against the published schema."""

from __future__ import annotations

import base64

import pytest

from bcjobs.changes import ChangeEvent, ChangeKind, ChangeOrigin
from shared.changes.log import fitted, queue_text
from testkit.changes import change_event
from tests.fakes.change_contract import conforming

ID = "c0a8e2b1-0000-0000-0000-000000000001"
EVENTS = {
    "updated, with data": change_event(ID, entity={"id": ID, "displayName": "Adatum"}),
    "created, reference only": change_event(ID, kind=ChangeKind.CREATED),
    "deleted": change_event(ID, kind=ChangeKind.DELETED),
    "from reconciliation": change_event(ID, origin=ChangeOrigin.RECONCILIATION),
    "too large, fitted": fitted(change_event(ID, entity={"notes": "x" * 60_000})),
    "an echo": change_event(ID).model_copy(update={"bcecho": "job-42"}),
    "a custom API set": change_event(ID, entity_set="shipmentTrackings"),
}


@pytest.mark.parametrize("event", EVENTS.values(), ids=EVENTS.keys())
def test_the_queue_message_is_a_cloudevent_that_the_schema_accepts(event: ChangeEvent) -> None:
    """The base64 message decodes to structured JSON the SDK reads with every attribute the model set."""
    attributes = conforming(base64.b64decode(queue_text(event)))
    assert attributes["id"] == event.id
    assert attributes["type"] == event.type
    assert attributes["bcchange"] == event.bcchange.value
    assert attributes.get("bcecho") == event.bcecho


def test_an_unknown_attribute_is_refused_by_the_schema() -> None:
    """The schema is strict like the model: a misspelt extension is caught by a consumer's validation."""
    text = change_event(ID).to_json().replace('"bcorigin"', '"bcorigine"')
    with pytest.raises(Exception, match="bcorigin"):
        conforming(text)
