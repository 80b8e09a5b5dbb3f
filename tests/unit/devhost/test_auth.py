"""The host's HTTP auth decision: anonymous, function (function or master key), admin (master key)."""

from __future__ import annotations

import pytest

from devhost.auth import AuthLevel, HostKeys, is_authorized, presented_key

KEYS = HostKeys(function_key="fn-key", master_key="master-key")


@pytest.mark.parametrize(
    ("level", "presented", "allowed"),
    [
        (AuthLevel.ANONYMOUS, None, True),
        (AuthLevel.ANONYMOUS, "junk", True),
        (AuthLevel.FUNCTION, None, False),
        (AuthLevel.FUNCTION, "wrong", False),
        (AuthLevel.FUNCTION, "fn-key", True),
        (AuthLevel.FUNCTION, "master-key", True),
        (AuthLevel.ADMIN, "fn-key", False),
        (AuthLevel.ADMIN, "master-key", True),
        (AuthLevel.ADMIN, None, False),
    ],
)
def test_auth_decision_per_level_and_key(level: AuthLevel, presented: str | None, allowed: bool) -> None:
    """Each level admits exactly the keys the host admits."""
    assert is_authorized(level, presented, KEYS) is allowed


def test_unset_keys_open_nothing() -> None:
    """Without configured keys, FUNCTION and ADMIN routes refuse every request, even an empty key."""
    keys = HostKeys.from_settings({"DEVHOST_FUNCTION_KEY": ""})
    assert not is_authorized(AuthLevel.FUNCTION, "", keys)
    assert not is_authorized(AuthLevel.ADMIN, "anything", keys)


def test_header_key_is_preferred_over_query_code() -> None:
    """x-functions-key wins over ?code=; either alone is used."""
    assert presented_key({"x-functions-key": "h"}, {"code": "q"}) == "h"
    assert presented_key({}, {"code": "q"}) == "q"
    assert presented_key({}, {}) is None


def test_keys_do_not_appear_in_repr() -> None:
    """HostKeys never prints its keys."""
    assert "fn-key" not in repr(KEYS)
    assert "master-key" not in repr(KEYS)


def test_a_function_key_opens_only_its_own_function() -> None:
    """DEVHOST_FUNCTION_KEY_status_page admits status_page at level function, no other function, no admin route;
    the host key (DEVHOST_FUNCTION_KEY) still admits every function."""
    keys = HostKeys.from_settings(
        {"DEVHOST_FUNCTION_KEY": "host-key", "DEVHOST_FUNCTION_KEY_status_page": "page-key"}
    )
    assert is_authorized(AuthLevel.FUNCTION, "page-key", keys, "status_page")
    assert not is_authorized(AuthLevel.FUNCTION, "page-key", keys, "auth_login")
    assert not is_authorized(AuthLevel.FUNCTION, "page-key", keys)
    assert not is_authorized(AuthLevel.ADMIN, "page-key", keys, "status_page")
    assert is_authorized(AuthLevel.FUNCTION, "host-key", keys, "auth_login")
    assert "page-key" not in repr(keys)
