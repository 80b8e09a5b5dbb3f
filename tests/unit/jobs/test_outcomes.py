"""outcomes.decide: every row of the decision table, and the ErrorInfo a job records for BC's errors."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from bcjobs import ItemOutcome
from shared.auth.errors import (
    CredentialsRejectedError,
    NotAuthorizedError,
    ReauthorizationRequiredError,
    TokenRefreshFailedError,
    TokenStoreUnavailableError,
    TokenUnavailableError,
)
from shared.bc import (
    AuthenticationError,
    AuthorizationError,
    BusinessCentralError,
    ConflictError,
    Correlation,
    EntityChangedError,
    NotFoundError,
    QueryError,
    RequestTimeoutError,
    RequestValidationError,
    ServerError,
    ServiceUnavailableError,
    ThrottledError,
    TokenAcquisitionError,
    TokenRefusedError,
    UnexpectedResponseError,
)
from shared.jobs.errors import (
    AmbiguousWriteError,
    JobStoreError,
    NaturalKeyNotUniqueError,
    RetriableBatchItemsError,
)
from shared.jobs.outcomes import Verdict, decide, error_info
from shared.tokens import TokenProviderError

NOW = datetime(2026, 1, 5, 8, 0, tzinfo=UTC)
CORRELATION = Correlation("client-req-1", request_id="bc-req-1", ms_correlation_x="bc-corr-1")


def test_throttling_is_retried_no_sooner_than_bcs_retry_after() -> None:
    """429 → retry, BC's Retry-After carried to the policy, the attempt recorded as bc_throttled."""
    decision = decide(
        ThrottledError("too many requests", status=429, code="TooManyRequests", retry_after=42),
        reconcilable=False,
        now=NOW,
    )
    assert decision.verdict is Verdict.RETRY
    assert decision.retry_after == 42
    assert decision.ambiguous is False
    assert (decision.error.code, decision.error.bc_code, decision.error.status) == (
        "bc_throttled",
        "TooManyRequests",
        429,
    )
    assert decision.error.retriable is True


@pytest.mark.parametrize(
    ("failure", "code"),
    [
        (ServiceUnavailableError("bad gateway", status=502, retry_after=3), "bc_unavailable"),
        (ServiceUnavailableError("unavailable", status=503), "bc_unavailable"),
        (RequestTimeoutError("gateway timeout", status=504), "bc_timeout"),
        (RequestTimeoutError("request timeout", status=408), "bc_timeout"),
        (ServerError("internal", status=500, code="Internal_ServerError"), "bc_server_error"),
        (ServiceUnavailableError("connection dropped", request_sent=False), "bc_unavailable"),
        (
            TokenAcquisitionError("token service down", provider_error="TokenRefreshFailedError"),
            "token_unavailable",
        ),
    ],
    ids=["502", "503", "504", "408", "500", "dropped", "token-acquisition"],
)
def test_transient_bc_failures_are_retried(failure: BusinessCentralError, code: str) -> None:
    """BC 5xx, 408, a dropped connection and a passing token outage → retry with our code for the failure."""
    decision = decide(failure, reconcilable=False, now=NOW)
    assert decision.verdict is Verdict.RETRY
    assert decision.error.code == code
    assert decision.retry_after == failure.retry_after
    assert decision.ambiguous is False


def test_retriable_batch_items_are_retried() -> None:
    """Some batch items failed for reasons worth retrying → the job is retried (its items kept on the error)."""
    cause = ThrottledError("throttled inside the batch", status=429, retry_after=7)
    items = {
        0: ItemOutcome(index=0, status=201),
        1: ItemOutcome(index=1, status=429, error=error_info(cause)),
    }
    decision = decide(RetriableBatchItemsError(items, cause), reconcilable=False, now=NOW)
    assert decision.verdict is Verdict.RETRY
    assert decision.retry_after == 7


def test_an_ambiguous_write_with_a_natural_key_is_retried_to_reconcile() -> None:
    """Lost answer + natural key → retry marked ambiguous (the next run looks the key up before writing)."""
    cause = RequestTimeoutError("no answer", status=504, correlation=CORRELATION, retry_after=9)
    decision = decide(AmbiguousWriteError(cause), reconcilable=True, now=NOW)
    assert decision.verdict is Verdict.RETRY
    assert decision.ambiguous is True
    assert decision.retry_after == 9
    assert decision.error.code == "bc_timeout"
    assert decision.error.client_request_id == "client-req-1"


def test_an_ambiguous_write_without_a_natural_key_fails_as_ambiguous_write() -> None:
    """Lost answer, nothing to look up → failed `ambiguous_write`, not retriable, telling the app what to check."""
    cause = ServerError("internal", status=500, code="Internal_ServerError", correlation=CORRELATION)
    decision = decide(AmbiguousWriteError(cause), reconcilable=False, now=NOW)
    assert decision.verdict is Verdict.FAIL
    assert decision.ambiguous is True
    assert decision.retry_after is None
    error = decision.error
    assert error.code == "ambiguous_write"
    assert error.retriable is False
    assert "bc_server_error" in error.message
    assert "naturalKey" in error.message
    # BC's own code and the correlation ids still point BC support at the request.
    assert (error.bc_code, error.status) == ("Internal_ServerError", 500)
    assert (error.client_request_id, error.bc_request_id) == ("client-req-1", "bc-req-1")


@pytest.mark.parametrize(
    "failure",
    [
        TokenUnavailableError("no token now"),
        TokenRefreshFailedError("Entra 503"),
        TokenStoreUnavailableError("KV"),
    ],
    ids=["unavailable", "refresh-failed", "store-unavailable"],
)
def test_a_transient_token_failure_is_retried(failure: TokenProviderError) -> None:
    """The token service is briefly down → retry as token_unavailable (an attempt, like a BC outage)."""
    decision = decide(failure, reconcilable=False, now=NOW)
    assert decision.verdict is Verdict.RETRY
    assert decision.error.code == "token_unavailable"
    assert decision.error.retriable is True


@pytest.mark.parametrize(
    "failure",
    [
        ReauthorizationRequiredError("refresh token expired", error_code="invalid_grant"),
        CredentialsRejectedError("client secret rejected", error_code="invalid_client"),
        NotAuthorizedError("nobody signed in yet"),
    ],
    ids=["reauthorization", "credentials-rejected", "not-authorized"],
)
def test_a_token_failure_that_needs_an_admin_waits_for_authorization(failure: TokenProviderError) -> None:
    """Waiting alone will not help → waiting_for_authorization, pointing at the auth status route."""
    decision = decide(failure, reconcilable=True, now=NOW)
    assert decision.verdict is Verdict.WAIT_FOR_AUTHORIZATION
    assert decision.error.code == "authorization_required"
    assert "/api/auth/status" in decision.error.message
    assert decision.ambiguous is False


@pytest.mark.parametrize(
    ("failure", "code"),
    [
        (
            TokenRefusedError("re-authorization required", provider_error="ReauthorizationRequiredError"),
            "authorization_required",
        ),
        (
            AuthenticationError(
                "401 after a fresh token", status=401, code="Authentication_InvalidCredentials"
            ),
            "bc_authentication",
        ),
    ],
    ids=["token-refused", "bc-401"],
)
def test_refused_tokens_and_bc_401_wait_for_authorization(failure: BusinessCentralError, code: str) -> None:
    """The BC client's TokenRefusedError and a 401 that survived a refresh park the job for an admin."""
    decision = decide(failure, reconcilable=False, now=NOW)
    assert decision.verdict is Verdict.WAIT_FOR_AUTHORIZATION
    assert decision.error.code == code


@pytest.mark.parametrize(
    ("failure", "code"),
    [
        (
            RequestValidationError(
                "bad field", status=400, code="Application_FieldValidationException", correlation=CORRELATION
            ),
            "bc_validation",
        ),
        (
            AuthorizationError(
                "forbidden", status=403, code="Authorization_Forbidden", correlation=CORRELATION
            ),
            "bc_forbidden",
        ),
        (
            NotFoundError("no such record", status=404, code="BadRequest_NotFound", correlation=CORRELATION),
            "bc_not_found",
        ),
        (
            ConflictError(
                "same key", status=409, code="Internal_EntityWithSameKeyExists", correlation=CORRELATION
            ),
            "bc_conflict",
        ),
        (
            EntityChangedError(
                "stale etag", status=412, code="Request_EntityChanged", correlation=CORRELATION
            ),
            "bc_etag_changed",
        ),
        (QueryError("bad filter", correlation=CORRELATION), "invalid_query"),
        (UnexpectedResponseError("not JSON", status=200, correlation=CORRELATION), "bc_unexpected_response"),
    ],
    ids=["400", "403", "404", "409", "412", "query", "unusable-answer"],
)
def test_bc_refusals_fail_the_job_with_bcs_code_and_correlation(
    failure: BusinessCentralError, code: str
) -> None:
    """4xx, a bad query or an unusable answer → failed with our code, BC's code, status and correlation ids."""
    decision = decide(failure, reconcilable=True, now=NOW)
    assert decision.verdict is Verdict.FAIL
    error = decision.error
    assert error.code == code
    assert error.bc_code == failure.code
    assert error.status == failure.status
    assert error.message == failure.message
    assert (error.client_request_id, error.bc_request_id) == ("client-req-1", "bc-req-1")
    assert error.retriable is False


def test_the_bc_request_id_falls_back_to_ms_correlation_x() -> None:
    """When BC sent no request-id header, its ms-correlation-x is what support can search for."""
    failure = RequestValidationError(
        "bad", status=400, code="BadRequest", correlation=Correlation("ours", ms_correlation_x="theirs")
    )
    error = decide(failure, reconcilable=False, now=NOW).error
    assert (error.client_request_id, error.bc_request_id) == ("ours", "theirs")


def test_a_job_layer_code_is_kept_as_the_jobs_code() -> None:
    """natural_key_not_unique (our lower_snake code) is the job's code; BC's CamelCase codes never are."""
    decision = decide(
        NaturalKeyNotUniqueError("two customers match", code="natural_key_not_unique"),
        reconcilable=True,
        now=NOW,
    )
    assert decision.verdict is Verdict.FAIL
    assert decision.error.code == "natural_key_not_unique"
    assert error_info(RequestValidationError("x", code="BadRequest")).code == "bc_validation"


def test_an_unknown_bc_error_gets_the_generic_code() -> None:
    """A BusinessCentralError of no listed kind is still recorded (as bc_error) and not retried."""
    decision = decide(BusinessCentralError("odd", code="Weird_Code"), reconcilable=False, now=NOW)
    assert decision.verdict is Verdict.FAIL
    assert (decision.error.code, decision.error.bc_code) == ("bc_error", "Weird_Code")


@pytest.mark.parametrize(
    "failure", [RuntimeError("a bug"), JobStoreError("table down")], ids=["bug", "storage"]
)
def test_a_failure_that_is_not_a_job_outcome_is_raised_again(failure: Exception) -> None:
    """Bugs and storage failures are left to the host's retries and poison handling."""
    with pytest.raises(type(failure)) as raised:
        decide(failure, reconcilable=False, now=NOW)
    assert raised.value is failure
