"""The change log's values: cursors sort in publish order, an event always fits a queue message."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from shared.changes.log import CURSOR_PATTERN, cursor_at, fitted, queue_text
from testkit.changes import change_event

QUEUE_MESSAGE_LIMIT = 64 * 1024


def test_cursors_sort_as_text_in_time_order_and_match_the_published_pattern() -> None:
    """A later publish has a larger cursor, whatever the ids; the API accepts what it hands out."""
    early = datetime(2026, 12, 6, 7, 0, 59, 999999, tzinfo=UTC)
    cursors = [cursor_at(early, "ff"), cursor_at(early + timedelta(microseconds=1), "00")]
    assert sorted(cursors) == cursors
    assert all(CURSOR_PATTERN.match(cursor) for cursor in [*cursors, cursor_at(early)])


def test_an_entity_too_large_for_a_queue_message_travels_as_its_reference() -> None:
    """data.entity is dropped, data.reference stays, and the base64 message is under 64 KiB."""
    big = change_event("c0a8e2b1-0000-0000-0000-000000000001", entity={"notes": "x" * 60_000})
    sent = fitted(big)
    assert sent.data is not None
    assert "entity" not in sent.data
    assert sent.data["reference"].endswith("customers(c0a8e2b1-0000-0000-0000-000000000001)")
    assert len(queue_text(sent)) < QUEUE_MESSAGE_LIMIT


def test_an_entity_that_fits_travels_whole() -> None:
    """A customer of ordinary size is in the event itself."""
    small = change_event("c0a8e2b1-0000-0000-0000-000000000001", entity={"displayName": "Adatum"})
    assert fitted(small) == small
