"""Admin pages and JSON: escaped, secret-free, sensible status codes."""

from __future__ import annotations

from datetime import UTC, datetime

from shared.auth.errors import (
    LoginStateUnknownError,
    ReauthorizationRequiredError,
    SignInNotSavedError,
    TokenRefreshFailedError,
    TokenStoreUnavailableError,
)
from shared.auth.models import ConnectionStatus, Health
from shared.auth.web import (
    callback_failed_page,
    callback_url,
    connected_page,
    error_json,
    page,
    refused_page,
)
from shared.settings import AuthMode


def test_callback_url_sits_beside_login_and_drops_the_function_key() -> None:
    """The login URL's ?code=<function key> never becomes part of the redirect URI."""
    assert (
        callback_url("https://app.example.net/api/auth/login?code=functionkey")
        == "https://app.example.net/api/auth/callback"
    )


def test_pages_escape_every_text() -> None:
    """Text from the outside cannot inject markup."""
    assert "<script>" not in page(400, "t", ["<script>alert(1)</script>"]).body


def test_connected_page_shows_account_tenant_and_expiry() -> None:
    """The success page names account, tenant and expiry time."""
    status = ConnectionStatus(
        "default",
        AuthMode.DELEGATED,
        Health.OK,
        True,
        datetime(2026, 1, 5, 9, tzinfo=UTC),
        "a@b.test",
        "tid",
        1,
        None,
        None,
        None,
        None,
        None,
        None,
    )
    body = connected_page(status).body
    assert "a@b.test" in body
    assert "tid" in body
    assert "2026-01-05T09:00:00+00:00" in body


def test_refused_page_is_a_400() -> None:
    """A refused callback answers 400 and says nothing was stored."""
    result = refused_page(LoginStateUnknownError("no sign-in was started with this state"))
    assert result.status == 400
    assert "Nothing was stored" in result.body


def test_error_json_is_503_for_transient_and_409_for_admin_needed() -> None:
    """Retry-later errors are 503; errors an admin must fix are 409."""
    assert error_json(TokenRefreshFailedError("x")).status == 503
    assert error_json(ReauthorizationRequiredError("y")).status == 409


def test_unsaved_sign_in_gets_a_503_page_asking_to_sign_in_again() -> None:
    """A sign-in whose token set was not written is reported as not saved, never as connected."""
    result = callback_failed_page(
        SignInNotSavedError("the sign-in could not be saved (TokenStoreUnavailableError)")
    )

    assert result.status == 503
    assert "Sign-in could not be saved" in result.body
    assert "Sign in again" in result.body
    assert "connected" not in result.body.lower()


def test_other_callback_failures_get_a_503_page_saying_nothing_was_stored() -> None:
    """A store read failure during the callback is a retryable 503 that stored nothing."""
    result = callback_failed_page(TokenStoreUnavailableError("Key Vault unavailable (ServiceRequestError)"))

    assert result.status == 503
    assert "Nothing was stored." in result.body
