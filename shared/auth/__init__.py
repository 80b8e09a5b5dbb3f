"""Token lifecycle for BC: sign-in, refresh under a lease into Key Vault, a per-process cache, status.

Public surface: TokenManager (implements shared.tokens.TokenProvider), the composition entry points (whose
AuthServices also carries the admin's SignInFlow), the value objects and the errors. Everything else is an
implementation detail of this package.
"""

from importlib import import_module
from typing import TYPE_CHECKING, Any

# Lazy (PEP 562): a trigger module imports names from here at every cold start (the host indexes every function),
# but only a running function needs the composition root and its SDK clients; `shared.auth.timing` and
# `shared.auth.errors` stay cheap to import for the decorators. The type checker sees the plain imports below.
if TYPE_CHECKING:
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

_HOMES = {
    **dict.fromkeys(
        ("AuthServices", "auth_services", "build_auth_services", "close_auth_services"), "compose"
    ),
    **dict.fromkeys(("ScheduledOutcome", "TokenManager"), "manager"),
    **dict.fromkeys(("ConnectionStatus", "Health", "TokenSet"), "models"),
}


def __getattr__(name: str) -> Any:
    """The public name from its module, imported on first use (errors from shared.auth.errors)."""
    if name not in __all__:
        raise AttributeError(f"module 'shared.auth' has no attribute {name!r}")
    value = getattr(import_module(f"shared.auth.{_HOMES.get(name, 'errors')}"), name)
    globals()[name] = value
    return value


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


def __dir__() -> list[str]:
    """The loaded names and the lazy public ones."""
    return sorted({*globals(), *__all__})
