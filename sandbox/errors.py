"""Errors the sandbox raises to its caller (not the HTTP errors it serves, which are responses).

SandboxError
 ├── SandboxStartError   a server did not come up (port taken, TLS files unreadable, timeout)
 └── TokenRejectedError  a bearer token failed validation (signature, audience, expiry, tenant)
"""


class SandboxError(Exception):
    """Root of the sandbox's own errors."""


class SandboxStartError(SandboxError):
    """The sandbox could not start its servers."""


class TokenRejectedError(SandboxError):
    """A bearer token is missing, malformed, badly signed, expired or meant for another audience."""
