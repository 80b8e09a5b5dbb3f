"""Reading job files for `bcjobs enqueue`: JSONL by line, JSON arrays by item, bad lines kept with their number."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from bcjobs.cli.durations import parse_since
from bcjobs.jobfiles import read_entries


def test_jsonl_entries_keep_their_line_numbers_and_bad_lines_do_not_stop_reading() -> None:
    """Blank lines are skipped; a broken line is an entry with its problem; later lines still count."""
    text = '{"a": 1}\n\n{broken\n{"b": 2}\n'
    entries = read_entries(text, name="jobs.jsonl")
    assert [(e.where, e.value) for e in entries] == [
        ("line 1", {"a": 1}),
        ("line 3", None),
        ("line 4", {"b": 2}),
    ]
    assert entries[1].problem is not None
    assert "column 2" in entries[1].problem.expected


def test_a_json_array_is_read_by_item_and_an_object_as_one_job() -> None:
    """`.json` holds one object or an array of them."""
    assert [e.where for e in read_entries('[{"a": 1}, 2]', name="jobs.json")] == ["item 1", "item 2"]
    assert [(e.where, e.value) for e in read_entries('{\n "a": 1\n}', name="job.json")] == [
        ("line 1", {"a": 1})
    ]


def test_a_broken_json_document_is_one_problem_at_its_line() -> None:
    """A pretty-printed `.json` with an error is not misread as many bad JSONL lines."""
    entries = read_entries('{\n "a": 1,\n}\n', name="job.json")
    assert [(e.where, e.problem is not None) for e in entries] == [("line 3", True)]


def test_without_a_suffix_the_text_decides() -> None:
    """stdin: one document when it parses as one, else JSONL."""
    assert len(read_entries('{"a": 1}\n{"b": 2}\n', name="-")) == 2
    assert len(read_entries('{"a": 1}', name="-")) == 1
    assert len(read_entries('[{"a": 1}, {"b": 2}]', name="-")) == 2


def test_since_takes_durations_and_iso_date_times() -> None:
    """`--since 2h` is two hours ago; a date-time without an offset is UTC."""
    now = datetime(2026, 12, 2, 12, 0, tzinfo=UTC)
    assert parse_since("2h", now=lambda: now) == datetime(2026, 12, 2, 10, 0, tzinfo=UTC)
    assert parse_since("90s", now=lambda: now) == datetime(2026, 12, 2, 11, 58, 30, tzinfo=UTC)
    assert parse_since("2026-12-01T08:00:00") == datetime(2026, 12, 1, 8, 0, tzinfo=UTC)
    assert parse_since("2026-12-01T08:00:00+01:00").utcoffset() is not None
    with pytest.raises(ValueError, match="duration"):
        parse_since("yesterday")


def test_json_documents_one_after_another_are_one_job_each_at_their_first_line() -> None:
    """`cat a.json b.json | bcjobs enqueue -`: two pretty-printed objects are two jobs, not six broken lines."""
    entries = read_entries('{\n "a": 1\n}\n{\n "b": 2\n}\n', name="-")
    assert [(e.where, e.value, e.problem) for e in entries] == [
        ("line 1", {"a": 1}, None),
        ("line 4", {"b": 2}, None),
    ]


def test_a_broken_document_spread_over_lines_says_jsonl_needs_one_job_per_line() -> None:
    """Piped multi-line JSON with a mistake: each bad line says why, and that JSONL wants one job per line."""
    entries = read_entries('{\n "a": 1,\n}\n', name="-")
    problems = [e.problem.expected for e in entries if e.problem is not None]
    assert problems
    assert all("one job per line" in text for text in problems)
    assert "Expecting" in problems[0]


def test_a_json_syntax_error_gives_the_parsers_reason_and_place() -> None:
    """`.json` with a trailing comma: the reason, the line and the column."""
    (entry,) = read_entries('{\n "a": 1,\n}\n', name="job.json")
    assert entry.problem is not None
    assert (
        entry.problem.expected
        == "valid JSON (Expecting property name enclosed in double quotes, line 3 column 1)"
    )
