"""The ISO-8601 helpers every stored record uses for its times."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone

from shared.clock import iso_utc, parse_iso_utc


def test_times_are_written_in_utc_and_read_back_as_the_same_instant() -> None:
    """A time with any offset is written as UTC text and read back equal and UTC-aware."""
    paris = datetime(2026, 1, 5, 9, 30, 15, 250000, tzinfo=timezone(timedelta(hours=1)))
    text = iso_utc(paris)
    assert text == "2026-01-05T08:30:15.250000+00:00"
    parsed = parse_iso_utc(text)
    assert parsed == paris
    assert parsed is not None
    assert parsed.tzinfo is UTC


def test_text_with_an_offset_or_a_z_is_converted_to_utc() -> None:
    """Times written elsewhere (an offset, or Z) come back in UTC."""
    assert parse_iso_utc("2026-01-05T10:00:00+02:00") == datetime(2026, 1, 5, 8, 0, tzinfo=UTC)
    assert parse_iso_utc("2026-01-05T08:00:00Z") == datetime(2026, 1, 5, 8, 0, tzinfo=UTC)


def test_missing_times_stay_missing() -> None:
    """None is written as None; None and an empty string (a Table property left blank) read as None."""
    assert iso_utc(None) is None
    assert parse_iso_utc(None) is None
    assert parse_iso_utc("") is None
