"""Errors of the token lifecycle. Every message is safe to log: no token, secret or code is ever put into one.

The errors TokenManager.token()/replacement_for()/refresh_now() raise are also shared.tokens.TokenProviderError
(marked *), whose `transient` flag tells consumers such as shared/bc whether waiting helps (only
TokenUnavailableError) or an admin must act first.

IntegrationError (shared.errors)
 └── AuthError                               anything the token lifecycle cannot do
      ├── NotAuthorizedError *               no token set stored yet: an admin must sign in (delegated) or
      │                                      the first client-credentials token could not be obtained
      ├── ReauthorizationRequiredError *     the refresh token is dead (invalid_grant: AADSTS70008, 700082,
      │                                      50173, revoked) or the user must interact (MFA, consent)
      ├── CredentialsRejectedError *         Entra refused the app itself (invalid_client, unauthorized_client,
      │                                      invalid_scope): fix the app registration or its secret
      ├── TokenUnavailableError * transient  no token valid long enough can be served right now (transient)
      │    ├── TokenRefreshFailedError       Entra was unreachable or answered 5xx/429/temporarily_unavailable
      │    ├── TokenStoreUnavailableError    Key Vault (or the auth table: lease, record) could not be reached
      │    └── RefreshTimeoutError           another process held the refresh lease for too long
      ├── MinValidityTooLongError *          the caller wants a token to outlive any token Entra issues
      ├── StaleTokenSetError                 a write would replace a newer token set with an older one
      ├── SignInNotSavedError                Entra accepted the sign-in but its token set was not written
      │                                      (Key Vault refused or failed, or the lease was lost): sign in again
      └── SignInFlowError                    the admin sign-in callback cannot be accepted (nothing is stored)
           ├── SignInResponseMalformedError  the callback's state, code or body has a shape no sign-in
           │                                 response has (checked before any storage call)
           ├── SignInStateMissingError       the callback carries no state
           ├── SignInStateUnknownError       no sign-in was started with that state
           ├── SignInStateExpiredError       the sign-in was started more than 10 minutes ago
           ├── SignInStateReplayedError      that state was already used once
           └── SignInRejectedError           Entra answered the sign-in with an error, or the code was refused
"""

from __future__ import annotations

from datetime import datetime

from shared.errors import IntegrationError
from shared.tokens import TokenProviderError


class AuthError(IntegrationError):
    """Root of the token lifecycle's errors."""


class NotAuthorizedError(AuthError, TokenProviderError):
    """No token set exists for the connection yet."""


class ReauthorizationRequiredError(AuthError, TokenProviderError):
    """The stored grant is dead; an admin must sign in again at /api/auth/login."""

    def __init__(self, message: str, *, error_code: str | None = None) -> None:
        super().__init__(message)
        self.error_code = error_code


class CredentialsRejectedError(AuthError, TokenProviderError):
    """Entra rejected the application's own credentials or configuration."""

    def __init__(self, message: str, *, error_code: str | None = None) -> None:
        super().__init__(message)
        self.error_code = error_code


class TokenUnavailableError(AuthError, TokenProviderError):
    """No sufficiently valid token right now; worth retrying later (`retry_after`, when known)."""

    transient = True

    def __init__(self, message: str, *, retry_after: datetime | None = None) -> None:
        super().__init__(message)
        self.retry_after = retry_after


class TokenRefreshFailedError(TokenUnavailableError):
    """Entra could not be reached or failed transiently."""


class TokenStoreUnavailableError(TokenUnavailableError):
    """Key Vault or Table Storage could not be reached."""


class RefreshTimeoutError(TokenUnavailableError):
    """Waited for another process's refresh longer than the wait budget."""


class MinValidityTooLongError(AuthError, TokenProviderError):
    """The requested minimum validity exceeds the lifetime Entra gives tokens."""


class StaleTokenSetError(AuthError):
    """A token set older than (or as old as) the stored one was about to overwrite it."""


class SignInNotSavedError(AuthError):
    """The sign-in's token set could not be stored, so the connection is not authorised by it."""


class SignInFlowError(AuthError):
    """The sign-in callback was refused; nothing was stored."""


class SignInResponseMalformedError(SignInFlowError):
    """The callback's state, code or body cannot belong to a sign-in response (wrong characters, too long)."""


class SignInStateMissingError(SignInFlowError):
    """The callback has no state parameter."""


class SignInStateUnknownError(SignInFlowError):
    """No pending sign-in has that state."""


class SignInStateExpiredError(SignInFlowError):
    """The pending sign-in is older than its 10-minute window."""


class SignInStateReplayedError(SignInFlowError):
    """The state was already consumed by an earlier callback."""


class SignInRejectedError(SignInFlowError):
    """Entra returned an error for the sign-in or refused to redeem the code."""
