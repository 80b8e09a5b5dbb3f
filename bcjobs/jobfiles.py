"""Reading jobs from a file for `bcjobs enqueue`: JSON (one object or an array of them) or JSONL (one per line).

Every entry keeps its position (`line 12` in JSONL, `item 3` in a JSON array) so that a report can point at it;
a line that is not JSON becomes an entry with its problem, and reading never stops at a bad line.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from bcjobs.errors import Problem

JSONL_SUFFIXES = frozenset({".jsonl", ".ndjson"})


@dataclass(frozen=True, slots=True)
class Entry:
    """One job's place in the file and its parsed JSON value (or why it could not be parsed)."""

    kind: Literal["line", "item"]
    number: int  # 1-based
    value: object = None
    problem: Problem | None = None

    @property
    def where(self) -> str:
        """`line 12` or `item 3`."""
        return f"{self.kind} {self.number}"


def read_entries(text: str, *, name: str = "-") -> list[Entry]:
    """The jobs in `text`; the format from `name`'s suffix (.json / .jsonl / .ndjson) or, for others, the text.

    A `.json` file, or text starting with `[`, is one JSON document (an object or an array of objects); other
    text is read as one document when it parses as one, else as JSONL (blank lines skipped).
    """
    suffix = Path(name).suffix.lower()
    if suffix in JSONL_SUFFIXES:
        return _jsonl(text)
    stripped = text.lstrip()
    if suffix == ".json" or stripped.startswith("["):
        return _document(text)
    try:
        value = json.loads(text)
    except (ValueError, RecursionError):
        return _jsonl(text)
    return _entries_of(value)


def _document(text: str) -> list[Entry]:
    try:
        value = json.loads(text)
    except json.JSONDecodeError as exc:
        return [Entry("line", exc.lineno, problem=Problem("", f"valid JSON (error at column {exc.colno})"))]
    except (ValueError, RecursionError):
        return [Entry("line", 1, problem=Problem("", "valid JSON"))]
    return _entries_of(value)


def _entries_of(value: object) -> list[Entry]:
    if isinstance(value, list):
        return [Entry("item", index, item) for index, item in enumerate(value, start=1)]
    return [Entry("line", 1, value)]


def _jsonl(text: str) -> list[Entry]:
    entries = []
    for number, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        try:
            entries.append(Entry("line", number, json.loads(line)))
        except json.JSONDecodeError as exc:
            entries.append(
                Entry("line", number, problem=Problem("", f"a JSON object (error at column {exc.colno})"))
            )
        except (ValueError, RecursionError):
            entries.append(Entry("line", number, problem=Problem("", "a JSON object")))
    return entries
