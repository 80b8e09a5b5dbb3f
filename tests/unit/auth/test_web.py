"""Admin pages and JSON: escaped, secret-free, sensible status codes."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from urllib.parse import urlencode

import pytest

from shared.auth.errors import (
    ReauthorizationRequiredError,
    SignInNotSavedError,
    SignInRejectedError,
    SignInResponseMalformedError,
    SignInStateMissingError,
    SignInStateUnknownError,
    TokenRefreshFailedError,
    TokenStoreUnavailableError,
)
from shared.auth.models import ConnectionStatus, Health
from shared.auth.web import (
    MAX_CALLBACK_BODY_BYTES,
    callback_failed_page,
    callback_params,
    connected_page,
    error_json,
    new_reference,
    page,
    refused_page,
    settings_json,
)
from shared.settings import Impact, InvalidSettingsError, SettingProblem
from shared.tokens import AuthMode


def test_settings_json_names_the_settings_and_never_a_value() -> None:
    """A 500 body listing the settings to fix, the fix, and no value."""
    error = InvalidSettingsError(
        [SettingProblem("BC_TENANT_ID", "is not set", "set it to the tenant id", Impact.TOKENS)]
    )
    result = settings_json(error)
    body = json.loads(result.body)
    assert result.status == 500
    assert body["settings"] == ["BC_TENANT_ID"]
    assert "BC_TENANT_ID is not set: set it to the tenant id" in body["message"]


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
    assert "<a href='/api/status'>Back to the status page</a>" in body


def test_refused_page_is_a_400() -> None:
    """A refused callback answers 400 and says nothing was stored."""
    result = refused_page(SignInStateUnknownError("no sign-in was started with this state"), "ref123")
    assert result.status == 400
    assert "Nothing was stored" in result.body
    assert "ref123" in result.body
    assert "href='/api/status'" in result.body


def test_error_json_is_503_for_transient_and_409_for_admin_needed() -> None:
    """Retry-later errors are 503; errors an admin must fix are 409."""
    assert error_json(TokenRefreshFailedError("x")).status == 503
    assert error_json(ReauthorizationRequiredError("y")).status == 409


def test_unsaved_sign_in_gets_a_503_page_asking_to_sign_in_again() -> None:
    """A sign-in whose token set was not written is reported as not saved, never as connected."""
    result = callback_failed_page(
        SignInNotSavedError("the sign-in could not be saved (TokenStoreUnavailableError)"), "ref123"
    )

    assert result.status == 503
    assert "Sign-in could not be saved" in result.body
    assert "Sign in again" in result.body
    assert "connected" not in result.body.lower()


def test_other_callback_failures_get_a_503_page_saying_nothing_was_stored() -> None:
    """A store read failure during the callback is a retryable 503 that stored nothing."""
    result = callback_failed_page(
        TokenStoreUnavailableError("Key Vault unavailable (ServiceRequestError)"), "ref123"
    )

    assert result.status == 503
    assert "Nothing was stored." in result.body


@pytest.mark.parametrize(
    "state",
    ["a/b", "a#b", "a?b", "a\\b", "a\x00b", "a\nb", "</script>", "a b", "x" * 257, "x" * 65536],
    ids=["slash", "hash", "question", "backslash", "nul", "newline", "markup", "space", "257", "64k"],
)
def test_callback_refuses_a_state_no_sign_in_hands_out_before_any_storage_call(state: str) -> None:
    """A state with characters Table keys refuse (or markup), or longer than 256, is malformed: a 400 at once."""
    with pytest.raises(SignInResponseMalformedError, match="start again at /api/auth/login"):
        callback_params("POST", {}, urlencode({"state": state, "code": "x"}).encode())
    with pytest.raises(SignInResponseMalformedError):
        callback_params("GET", {"state": state, "code": "x"}, b"")


def test_callback_accepts_msal_states_and_keeps_every_field() -> None:
    """MSAL's 16-letter state, a long code and Entra's other fields pass unchanged."""
    fields = {
        "state": "AbCdEfGhIjKlMnOp",
        "code": "0.A" + "x" * 2000,
        "session_state": "s-1",
        "client_info": "e30",
    }

    assert callback_params("POST", {}, urlencode(fields).encode()) == fields
    assert callback_params("GET", fields, b"") == fields


def test_callback_without_state_is_refused_as_missing() -> None:
    """No state at all is the 'missing' refusal (also before any storage call)."""
    with pytest.raises(SignInStateMissingError):
        callback_params("POST", {}, b"code=x")


@pytest.mark.parametrize(
    ("body", "what"),
    [
        (b"state=abc&code=" + b"x" * (MAX_CALLBACK_BODY_BYTES + 1), "body"),
        (urlencode({"state": "abc", "code": "x" * 9000}).encode(), "field"),
        ("&".join(f"f{n}=v" for n in range(40)).encode() + b"&state=abc", "fields"),
    ],
    ids=["body", "code", "field-count"],
)
def test_callback_caps_body_code_and_field_count(body: bytes, what: str) -> None:
    """An oversized body, an oversized code or too many fields is refused before the state is looked up."""
    with pytest.raises(SignInResponseMalformedError, match=what):
        callback_params("POST", {}, body)


@pytest.mark.parametrize(
    "error",
    [
        TokenStoreUnavailableError("table storage unavailable (HttpResponseError)"),
        TokenStoreUnavailableError("Key Vault unavailable (ServiceRequestError)"),
        TokenRefreshFailedError("Entra unreachable or failing (OSError)"),
        SignInNotSavedError("the sign-in could not be saved (TokenStoreUnavailableError); nothing is stored"),
        ValueError("Invalid URL (ValueError)"),
    ],
    ids=["table", "vault", "entra", "not-saved", "bug"],
)
def test_callback_failure_pages_show_plain_words_and_a_reference_never_a_cause(error: Exception) -> None:
    """Anonymous callers never see exception class names or cause text; they get a reference id to pass on."""
    reference = new_reference()
    result = callback_failed_page(error, reference)

    assert result.status in (500, 503)
    assert reference in result.body
    assert "Nothing was stored." in result.body
    assert str(error) not in result.body
    assert "Error" not in result.body
    assert "(" not in result.body.split("<h1>", 1)[1].split("Reference:", 1)[0]


def test_refused_page_for_an_entra_refusal_names_the_oauth_error_only() -> None:
    """Entra's OAuth error code (e.g. access_denied) is shown; it is the admin's own answer, not an internal."""
    result = refused_page(
        SignInRejectedError("Entra returned the sign-in with an error (access_denied)"), "r"
    )
    assert "access_denied" in result.body


def test_references_are_distinct_and_short() -> None:
    """Each failure gets its own reference id, short enough to read out."""
    references = {new_reference() for _ in range(100)}
    assert len(references) == 100
    assert all(len(reference) == 12 for reference in references)
