"""The package's public surface and error tree."""

from __future__ import annotations

import inspect

import shared.auth
import shared.auth.errors as errors
from shared.errors import IntegrationError
from shared.tokens import TokenProviderError


def test_every_auth_error_descends_from_auth_error_and_the_integration_root() -> None:
    """All exception classes of shared.auth.errors subclass AuthError (and so IntegrationError) and end in Error."""
    classes = [c for _, c in inspect.getmembers(errors, inspect.isclass) if issubclass(c, Exception)]
    assert classes
    for cls in classes:
        if cls in (IntegrationError, TokenProviderError):  # imported roots, not defined here
            continue
        assert issubclass(cls, errors.AuthError)
        assert issubclass(cls, IntegrationError)
        assert cls.__name__.endswith("Error")
        assert cls.__name__ in (errors.__doc__ or "")


def test_public_surface_is_pinned() -> None:
    """__all__ lists exactly the seam, the composition entry points, value objects and errors."""
    assert set(shared.auth.__all__) == {
        "AuthError",
        "AuthServices",
        "ConnectionStatus",
        "CredentialsRejectedError",
        "Health",
        "SignInFlowError",
        "SignInRejectedError",
        "SignInResponseMalformedError",
        "SignInStateExpiredError",
        "SignInStateMissingError",
        "SignInStateReplayedError",
        "SignInStateUnknownError",
        "MinValidityTooLongError",
        "NotAuthorizedError",
        "ReauthorizationRequiredError",
        "RefreshTimeoutError",
        "ScheduledOutcome",
        "SignInNotSavedError",
        "StaleTokenSetError",
        "TokenManager",
        "TokenRefreshFailedError",
        "TokenSet",
        "TokenStoreUnavailableError",
        "TokenUnavailableError",
        "auth_services",
        "build_auth_services",
        "close_auth_services",
    }
    assert all(hasattr(shared.auth, name) for name in shared.auth.__all__)


def test_only_unavailable_tokens_are_transient_for_consumers() -> None:
    """Consumers retry TokenUnavailableError on their own; the other provider errors need an admin first."""
    provider_errors = [
        c for _, c in inspect.getmembers(errors, inspect.isclass) if issubclass(c, TokenProviderError)
    ]
    transient = {c.__name__ for c in provider_errors if c.transient}
    assert transient == {
        "TokenUnavailableError",
        "TokenRefreshFailedError",
        "TokenStoreUnavailableError",
        "RefreshTimeoutError",
    }
    assert issubclass(errors.ReauthorizationRequiredError, TokenProviderError)
    assert issubclass(errors.NotAuthorizedError, TokenProviderError)
