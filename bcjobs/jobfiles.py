"""Reading jobs from a file for `bcjobs enqueue`: JSON (one object or an array of them) or JSONL (one per line).

Every entry keeps its position (`line 12` in JSONL, `item 3` in a JSON array) so that a report can point at it;
a line that is not JSON becomes an entry with its problem (the parser's reason, line and column), and reading
never stops at a bad line. Several JSON documents one after another (`cat a.json b.json | bcjobs enqueue -`) are
read as one job each, at the line where each starts; a JSONL line that is only part of a document spread over
several lines says so instead of leaving the user with a screen of "broken" lines.
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
    file: str | None = None  # set when enqueue reads several files

    @property
    def where(self) -> str:
        """`line 12` or `item 3` (`jobs.json line 12` when several files were read)."""
        place = f"{self.kind} {self.number}"
        return f"{self.file} {place}" if self.file else place


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
        return _documents(text) or _jsonl(text)
    return _entries_of(value)


def _reason(exc: json.JSONDecodeError) -> str:
    """The parser's reason and place: `Expecting ',' delimiter, line 3 column 5`."""
    return f"{exc.msg}, line {exc.lineno} column {exc.colno}"


def _document(text: str) -> list[Entry]:
    try:
        value = json.loads(text)
    except json.JSONDecodeError as exc:
        return [Entry("line", exc.lineno, problem=Problem("", f"valid JSON ({_reason(exc)})"))]
    except (ValueError, RecursionError):
        return [Entry("line", 1, problem=Problem("", "valid JSON"))]
    return _entries_of(value)


def _documents(text: str) -> list[Entry] | None:
    """JSON documents one after another, at least one spread over lines: one entry each (None: not that)."""
    decoder, position, spread = json.JSONDecoder(), 0, False
    entries: list[Entry] = []
    while (position := _skip_space(text, position)) < len(text):
        try:
            value, end = decoder.raw_decode(text, position)
        except (ValueError, RecursionError):
            return None
        spread = spread or "\n" in text[position:end]
        entries.append(Entry("line", text.count("\n", 0, position) + 1, value))
        position = end
    return entries if spread else None


def _skip_space(text: str, position: int) -> int:
    while position < len(text) and text[position].isspace():
        position += 1
    return position


def _entries_of(value: object) -> list[Entry]:
    if isinstance(value, list):
        return [Entry("item", index, item) for index, item in enumerate(value, start=1)]
    return [Entry("line", 1, value)]


_SPREAD_HINT = (
    "; this looks like a JSON document spread over several lines: JSONL needs one job per line "
    "(pass .json files as arguments instead of piping them)"
)


def _jsonl(text: str) -> list[Entry]:
    lines = text.splitlines()
    hint = _SPREAD_HINT if any(line.strip() in {"{", "[", "}", "]", "},", "],"} for line in lines) else ""
    entries = []
    for number, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        try:
            entries.append(Entry("line", number, json.loads(line)))
        except json.JSONDecodeError as exc:
            reason = f"{exc.msg}, column {exc.colno}"
            entries.append(Entry("line", number, problem=Problem("", f"a JSON object ({reason}){hint}")))
        except (ValueError, RecursionError):
            entries.append(Entry("line", number, problem=Problem("", f"a JSON object{hint}")))
    return entries
