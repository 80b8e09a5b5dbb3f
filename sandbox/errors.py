"""Errors the sandbox raises to its caller (not the HTTP errors it serves, which are responses).

SandboxError
 ├── SandboxStartError                  a server did not come up (port taken, TLS files unreadable, timeout)
 ├── TokenRejectedError                 a bearer token failed validation (signature, audience, expiry, tenant)
 ├── entra.errors.EntraProtocolError    an Entra token-endpoint error to answer with (AADSTS code + status)
 └── bc.errors.BcError                  a BC error to answer with (status + BC code, CorrelationId in the message)

The sandbox is a test double, not part of the integration, so its root is separate from shared.errors.IntegrationError.
"""


class SandboxError(Exception):
    """Root of the sandbox's own errors."""


class SandboxStartError(SandboxError):
    """The sandbox could not start its servers."""


class TokenRejectedError(SandboxError):
    """A bearer token is missing, malformed, badly signed, expired or meant for another audience."""
