"""build_status: the connection's health as the status endpoint shows it, degraded when a store was unreadable."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from shared.auth.errors import TokenStoreUnavailableError
from shared.auth.models import ConnectionRecord, Grant, Health, first_token_set
from shared.auth.status import build_status
from shared.tokens import AuthMode

NOW = datetime(2026, 1, 5, 8, 0, tzinfo=UTC)
TOKENS = first_token_set("c", AuthMode.DELEGATED, Grant("at", timedelta(hours=1), (), "rt"), NOW, 3)


def test_no_token_set_means_not_authorized_with_the_sign_in_as_next_step() -> None:
    """Nothing stored and an OK record: not_authorized, and the admin is sent to the sign-in."""
    status = build_status("c", AuthMode.DELEGATED, None, ConnectionRecord("c"), NOW)

    assert status.health is Health.NOT_AUTHORIZED
    assert not status.has_token
    assert status.next_step is not None
    assert "/api/auth/login" in status.next_step


def test_an_unreadable_store_degrades_an_ok_status_but_not_an_admin_needed_one() -> None:
    """A problem reading a store: degraded with its error named; reauthorization_required stays."""
    problem = TokenStoreUnavailableError("Key Vault unreachable")
    ok = build_status("c", AuthMode.DELEGATED, TOKENS, ConnectionRecord("c"), NOW, problem)
    dead = ConnectionRecord("c", Health.REAUTHORIZATION_REQUIRED)

    assert (ok.health, ok.last_error_code, ok.has_token) == (
        Health.DEGRADED,
        "TokenStoreUnavailableError",
        True,
    )
    assert (
        build_status("c", AuthMode.DELEGATED, TOKENS, dead, NOW, problem).health
        is Health.REAUTHORIZATION_REQUIRED
    )


def test_the_json_names_the_health_and_keeps_the_deprecated_state_alias() -> None:
    """/api/auth/status JSON: "health" is the field; "state" repeats it for monitors built on the old name."""
    body = build_status("c", AuthMode.DELEGATED, TOKENS, ConnectionRecord("c"), NOW).to_json_dict()

    assert (body["health"], body["state"], body["generation"]) == ("ok", "ok", 3)
    assert "at" not in body.values()
