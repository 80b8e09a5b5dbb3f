"""What a consumer of the change feed checks: the event parses with the `cloudevents` SDK (structured JSON) and
validates against the published schema (`schemas/bc-change.v1.schema.json`). Every test producing events uses it."""

from __future__ import annotations

import json
from functools import cache
from typing import Any

import jsonschema
from cloudevents.core.formats.json import JSONFormat

from bcjobs.schema import SCHEMA_DIR


@cache
def _schema() -> dict[str, Any]:
    value: dict[str, Any] = json.loads((SCHEMA_DIR / "bc-change.v1.schema.json").read_text(encoding="utf-8"))
    return value


def conforming(text: str | bytes) -> dict[str, Any]:
    """The event's attributes as the SDK read them; raises when the SDK or the schema refuses it."""
    jsonschema.validate(json.loads(text), _schema(), format_checker=jsonschema.FormatChecker())
    event = JSONFormat().read(None, text)
    return dict(event.get_attributes())
