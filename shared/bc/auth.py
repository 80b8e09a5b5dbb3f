"""The only code that touches the Authorization header: bearer tokens from the TokenProvider, one refresh on 401.

The pipeline asks for the token *before* it takes a throttle permit (design: token -> throttle -> BC call), so a
slow token refresh never holds one of the identity's in-flight slots or burns a rate permit. After a 401 it
asks for a newer token than the rejected one (again outside the throttle) and resends once; a second 401 is an
AuthenticationError. Whatever the provider raises becomes TokenAcquisitionError, chaining the original: shared/bc
cannot know shared/auth's error types (the token seam, shared/tokens.py), only that no token came and, through
TokenProviderError.transient, whether waiting helps (TokenRefusedError, not retriable, when it does not).
"""

from __future__ import annotations

from datetime import timedelta

import httpx

from shared.bc.errors import TokenAcquisitionError, TokenRefusedError
from shared.tokens import DEFAULT_MIN_VALIDITY, AccessToken, TokenProvider, TokenProviderError


class BearerAuth:
    """Gets BC tokens from a TokenProvider and puts them on requests."""

    def __init__(self, tokens: TokenProvider, min_validity: timedelta = DEFAULT_MIN_VALIDITY) -> None:
        self._tokens = tokens
        self._min_validity = min_validity

    async def token(self) -> AccessToken:
        """A token valid for at least `min_validity`; TokenAcquisitionError when the provider fails."""
        try:
            return await self._tokens.token(self._min_validity)
        except Exception as exc:  # any provider failure: the seam cannot know its types (shared/tokens.py)
            raise _unavailable(exc) from exc

    async def refreshed(self, rejected: AccessToken) -> AccessToken:
        """A newer token than the one BC just rejected; TokenAcquisitionError when the provider fails."""
        try:
            return await self._tokens.refresh(rejected=rejected)
        except Exception as exc:  # as in token()
            raise _unavailable(exc) from exc

    @staticmethod
    def authorize(request: httpx.Request, token: AccessToken) -> None:
        """Set the bearer header on `request` (replacing a previous one before a resend)."""
        request.headers["Authorization"] = f"Bearer {token.value}"


def _unavailable(exc: Exception) -> TokenAcquisitionError:
    # Unknown failures count as transient: the job layer retries them with backoff and a bounded budget.
    refused = isinstance(exc, TokenProviderError) and not exc.transient
    error_type = TokenRefusedError if refused else TokenAcquisitionError
    return error_type(
        f"no BC token: the token provider failed ({type(exc).__name__})",
        provider_error=type(exc).__name__,
    )
