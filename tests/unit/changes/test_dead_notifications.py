"""A notification message the host gave up on is recorded (never its key); one that is not ours is dropped."""

from __future__ import annotations

import logging
from datetime import UTC, datetime

import pytest

from shared.changes.expansion_compose import expand_text, record_dead
from shared.changes.notifications import NotificationMessage

KEY = "0123456789abcdef0123456789abcdef"


def test_a_dead_notification_is_logged_with_its_connection_and_items_never_its_secrets(
    caplog: pytest.LogCaptureFixture,
) -> None:
    item = {
        "changeType": "updated",
        "resource": "api/v2.0/companies(x)/customers(y)",
        "clientState": "s3cret",
    }
    message = NotificationMessage(
        connection="contoso",
        key=KEY,
        correlation_id="c0ffee",
        received_at=datetime(2026, 1, 5, tzinfo=UTC),
        value=(item,),
    )
    with caplog.at_level(logging.ERROR):
        record_dead(message.encode(), 5)
        record_dead("not base64 at all", 5)
    first, second = caplog.records
    assert first.event == "changes.notification_dead_lettered"  # type: ignore[attr-defined]
    assert first.correlation_id == "c0ffee"  # type: ignore[attr-defined]
    assert "contoso" in first.getMessage()
    assert "customers(y)" in first.getMessage()
    assert KEY not in first.getMessage()
    assert "s3cret" not in first.getMessage()
    assert "(unreadable)" in second.getMessage()


async def test_a_message_that_is_not_a_notification_is_dropped_not_retried() -> None:
    expanded = await expand_text("bm90IGpzb24=")  # base64 of "not json"
    assert expanded.dropped == 1
