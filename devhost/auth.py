"""The host's HTTP auth levels: anonymous, function (function or master key) and admin (master key only).

Keys are read from `?code=` or the `x-functions-key` header (header first), as the host does. Real key
management (per-function keys, host keys, rotation through the admin API) is not reproduced: devhost has
one function key (DEVHOST_FUNCTION_KEY) and one master key (DEVHOST_MASTER_KEY).
"""

from __future__ import annotations

import hmac
from collections.abc import Mapping
from dataclasses import dataclass, field
from enum import StrEnum

FUNCTION_KEY_SETTING = "DEVHOST_FUNCTION_KEY"
MASTER_KEY_SETTING = "DEVHOST_MASTER_KEY"
KEY_HEADER = "x-functions-key"
KEY_QUERY = "code"


class AuthLevel(StrEnum):
    """authLevel of an HTTP trigger."""

    ANONYMOUS = "anonymous"
    FUNCTION = "function"
    ADMIN = "admin"


@dataclass(frozen=True, slots=True)
class HostKeys:
    """The keys devhost accepts; None means no key of that kind exists, so nothing passes that level."""

    function_key: str | None = field(default=None, repr=False)
    master_key: str | None = field(default=None, repr=False)

    @classmethod
    def from_settings(cls, settings: Mapping[str, str]) -> HostKeys:
        """Read both keys from app settings; empty strings count as unset."""
        return cls(settings.get(FUNCTION_KEY_SETTING) or None, settings.get(MASTER_KEY_SETTING) or None)


def presented_key(headers: Mapping[str, str], query: Mapping[str, str]) -> str | None:
    """The key a request carries: the x-functions-key header, else the code query parameter."""
    return headers.get(KEY_HEADER) or query.get(KEY_QUERY) or None


def _same(presented: str, expected: str | None) -> bool:
    return expected is not None and hmac.compare_digest(presented.encode(), expected.encode())


def is_authorized(level: AuthLevel, presented: str | None, keys: HostKeys) -> bool:
    """Whether a request presenting this key may call a function at this level."""
    if level is AuthLevel.ANONYMOUS:
        return True
    if presented is None:
        return False
    if _same(presented, keys.master_key):
        return True
    return level is AuthLevel.FUNCTION and _same(presented, keys.function_key)
