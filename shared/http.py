"""`Reply`: the HTTP answer a service gives its trigger (status, body text, headers, media type).

Services build replies without azure.functions, so they stay testable without the Functions library;
shared/triggers/replies.py turns one into a `func.HttpResponse`. JSON bodies are written by `json_reply` with
the standard library's defaults (ASCII, `\\u` escapes), the same text for every route.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, field

JSON = "application/json"
HTML = "text/html"
TEXT = "text/plain"


@dataclass(frozen=True, slots=True)
class Reply:
    """An HTTP answer: status, body text (UTF-8 on the wire), headers and the body's media type."""

    status: int
    body: str = field(default="", repr=False)  # pages can name the signed-in account
    headers: Mapping[str, str] = field(default_factory=dict)
    mimetype: str = JSON


def json_reply(status: int, data: object, headers: Mapping[str, str] | None = None) -> Reply:
    """A JSON answer: `data` (dicts, lists, strings, numbers) as JSON text."""
    return Reply(status, json.dumps(data), dict(headers or {}), JSON)
