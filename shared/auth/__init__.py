"""Token lifecycle for BC: sign-in, refresh under a lease into Key Vault, a per-process cache, status.

Public surface: TokenManager (implements shared.tokens.TokenProvider), the composition entry points (whose
AuthServices also carries the admin's SignInFlow), the value objects and the errors. Everything else is an
implementation detail of this package.
"""

from shared.auth.compose import AuthServices, auth_services, build_auth_services, close_auth_services
from shared.auth.errors import (
    AuthError,
    CredentialsRejectedError,
    MinValidityTooLongError,
    NotAuthorizedError,
    ReauthorizationRequiredError,
    RefreshTimeoutError,
    SignInFlowError,
    SignInNotSavedError,
    SignInRejectedError,
    SignInResponseMalformedError,
    SignInStateExpiredError,
    SignInStateMissingError,
    SignInStateReplayedError,
    SignInStateUnknownError,
    StaleTokenSetError,
    TokenRefreshFailedError,
    TokenStoreUnavailableError,
    TokenUnavailableError,
)
from shared.auth.manager import ScheduledOutcome, TokenManager
from shared.auth.models import ConnectionStatus, Health, TokenSet

__all__ = [
    "AuthError",
    "AuthServices",
    "ConnectionStatus",
    "CredentialsRejectedError",
    "Health",
    "MinValidityTooLongError",
    "NotAuthorizedError",
    "ReauthorizationRequiredError",
    "RefreshTimeoutError",
    "ScheduledOutcome",
    "SignInFlowError",
    "SignInNotSavedError",
    "SignInRejectedError",
    "SignInResponseMalformedError",
    "SignInStateExpiredError",
    "SignInStateMissingError",
    "SignInStateReplayedError",
    "SignInStateUnknownError",
    "StaleTokenSetError",
    "TokenManager",
    "TokenRefreshFailedError",
    "TokenSet",
    "TokenStoreUnavailableError",
    "TokenUnavailableError",
    "auth_services",
    "build_auth_services",
    "close_auth_services",
]
