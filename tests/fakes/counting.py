"""A storage client wrapper counting the SDK calls made through it: the feed's storage calls per change."""

from __future__ import annotations

from collections import Counter
from typing import Any


class Counting:
    """A storage client whose calls are counted (one per SDK method call: every query here is one page)."""

    CALLS = frozenset(
        {
            "get_entity",
            "query_entities",
            "submit_transaction",
            "update_entity",
            "upsert_entity",
            "send_message",
        }
    )

    def __init__(self, inner: object, counts: Counter[str]) -> None:
        self._inner = inner
        self._counts = counts

    def __getattr__(self, name: str) -> Any:
        if name in self.CALLS:
            self._counts[name] += 1
        return getattr(self._inner, name)
