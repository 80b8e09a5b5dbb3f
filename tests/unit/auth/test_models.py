"""Value objects: JSON round trips, secret-free reprs, the newest-wins comparison."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from shared.auth.models import ConnectionRecord, Grant, Health, PendingSignIn, TokenSet, first_token_set
from shared.tokens import AuthMode

NOW = datetime(2026, 1, 5, 8, 0, tzinfo=UTC)


def token_set(generation: int = 1, refresh_token: str | None = "rt-secret-1") -> TokenSet:  # noqa: S107
    grant = Grant("at-secret-1", timedelta(hours=1), ("scope/.default",), refresh_token, "a@b.test", "tid")
    return first_token_set("default", AuthMode.DELEGATED, grant, NOW, generation)


def test_token_set_round_trips_through_json() -> None:
    """to_json/from_json preserve every field, times included."""
    original = token_set(generation=7)
    assert TokenSet.from_json(original.to_json()) == original


def test_reprs_never_show_tokens_codes_or_flows() -> None:
    """repr of TokenSet, Grant and PendingSignIn hides access token, refresh token and the PKCE flow."""
    pending = PendingSignIn(
        "state1", '{"code_verifier": "verifier-secret"}', NOW, NOW + timedelta(minutes=10)
    )
    grant = Grant("at-secret-1", timedelta(hours=1), (), "rt-secret-1")
    text = repr(token_set()) + repr(grant) + repr(pending) + repr(token_set().access)
    assert "secret" not in text


def test_malformed_stored_json_raises_without_echoing_the_content() -> None:
    """A corrupt secret gives a ValueError whose message does not contain the stored text."""
    with pytest.raises(ValueError, match="malformed") as raised:
        TokenSet.from_json('{"access_token": "at-secret-9"}')
    assert "at-secret-9" not in str(raised.value)


def test_only_a_higher_generation_is_newer() -> None:
    """Same generation never wins; higher does; anything beats nothing."""
    assert token_set(2).is_newer_than(token_set(1))
    assert not token_set(2).is_newer_than(token_set(2))
    assert not token_set(1).is_newer_than(token_set(2))
    assert token_set(1).is_newer_than(None)


def test_successor_keeps_the_refresh_token_when_entra_sends_none() -> None:
    """A grant without refresh token (client credentials) keeps the previous one and bumps the generation."""
    later = NOW + timedelta(minutes=50)
    successor = token_set(3).successor(Grant("at-2", timedelta(minutes=70), ()), later)
    assert successor.generation == 4
    assert successor.refresh_token == "rt-secret-1"
    assert successor.expires_on == later + timedelta(minutes=70)
    assert successor.lifetime == timedelta(minutes=70)


def test_connection_state_round_trips_through_a_row() -> None:
    """to_row/from_row preserve health, times, counters and the failed generation."""
    state = ConnectionRecord(
        "default",
        Health.REAUTHORIZATION_REQUIRED,
        last_refresh_at=NOW,
        last_error_code="invalid_grant/AADSTS50173",
        last_error_message="refused",
        last_error_at=NOW,
        consecutive_failures=2,
        backoff_until=NOW + timedelta(hours=2),
        failed_generation=5,
    )
    assert ConnectionRecord.from_row("default", dict(state.to_row())) == state
