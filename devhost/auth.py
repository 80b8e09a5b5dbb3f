"""The host's HTTP auth levels: anonymous, function (function or master key) and admin (master key only).

Keys are read from `?code=` or the `x-functions-key` header (header first), as the host does. The host's kinds
of key ("Understand keys", learn.microsoft.com/azure/azure-functions/function-keys-how-to), one of each:
- DEVHOST_FUNCTION_KEY: the host key (functionKeys.default of `az functionapp keys list`), valid for every
  function at level function;
- DEVHOST_FUNCTION_KEY_<function name>: a function key, valid for that function only (at level function);
- DEVHOST_MASTER_KEY: the master key, valid for every function at any level.
Key management (several named keys, rotation through the admin API) is not reproduced.
"""

from __future__ import annotations

import hmac
from collections.abc import Mapping
from dataclasses import dataclass, field
from enum import StrEnum

FUNCTION_KEY_SETTING = "DEVHOST_FUNCTION_KEY"
PER_FUNCTION_KEY_PREFIX = "DEVHOST_FUNCTION_KEY_"
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

    function_key: str | None = field(default=None, repr=False)  # the host key
    master_key: str | None = field(default=None, repr=False)
    per_function: Mapping[str, str] = field(default_factory=dict, repr=False)  # function name -> its key

    @classmethod
    def from_settings(cls, settings: Mapping[str, str]) -> HostKeys:
        """Read the keys from app settings; empty strings count as unset."""
        per_function = {
            name[len(PER_FUNCTION_KEY_PREFIX) :]: value
            for name, value in settings.items()
            if name.startswith(PER_FUNCTION_KEY_PREFIX) and value
        }
        return cls(
            settings.get(FUNCTION_KEY_SETTING) or None, settings.get(MASTER_KEY_SETTING) or None, per_function
        )


def presented_key(headers: Mapping[str, str], query: Mapping[str, str]) -> str | None:
    """The key a request carries: the x-functions-key header, else the code query parameter."""
    return headers.get(KEY_HEADER) or query.get(KEY_QUERY) or None


def _same(presented: str, expected: str | None) -> bool:
    return expected is not None and hmac.compare_digest(presented.encode(), expected.encode())


def is_authorized(
    level: AuthLevel, presented: str | None, keys: HostKeys, function: str | None = None
) -> bool:
    """Whether a request presenting this key may call `function` at this level."""
    if level is AuthLevel.ANONYMOUS:
        return True
    if presented is None:
        return False
    if _same(presented, keys.master_key):
        return True
    if level is not AuthLevel.FUNCTION:
        return False
    own = keys.per_function.get(function) if function is not None else None
    return _same(presented, keys.function_key) or _same(presented, own)


def refusal(level: AuthLevel, presented: str | None, function: str) -> str:
    """The 401 body: which key the route wants and where devhost reads it. The Azure host answers 401 with an empty
    body (the README says which key each route needs); devhost says it, since here the keys are the developer's own
    settings. The presented key is never echoed."""
    wanted = (
        f"the master key ({MASTER_KEY_SETTING})"
        if level is AuthLevel.ADMIN
        else f"a function key: the host key ({FUNCTION_KEY_SETTING}) or this function's "
        f"({PER_FUNCTION_KEY_PREFIX}{function})"
    )
    given = "no key was sent" if presented is None else "the key sent is not one of them"
    return (
        f"401 Unauthorized: {function} needs {wanted}, sent as the {KEY_HEADER} header or the ?{KEY_QUERY}= "
        f"query parameter; {given}."
    )
