"""Errors devhost raises on purpose.

IntegrationError (shared.errors)
 └── DevHostError            devhost could not load or run the app
      ├── MessageDecodeError a queue message is not in the host's encoding (counts as a failed try)
      ├── ConfigError        host.json, local.settings.json, a %SETTING% or a connection is missing or malformed
      ├── FunctionLoadError  one function cannot be served (unsupported binding, bad route or schedule)
      ├── WorkerError        an invocation's worker process was killed (functionTimeout), exited or did not start
      └── StartupError       the host did not come up (port taken, app failed to import, thread died)

The local world's errors (Azurite, the sandbox process, the demo) are in localworld/errors.py.
"""

from shared.errors import IntegrationError


class DevHostError(IntegrationError):
    """Root of devhost's own errors."""


class ConfigError(DevHostError):
    """A configuration file, setting or connection is missing or malformed."""


class FunctionLoadError(DevHostError):
    """A function uses something devhost cannot serve; the host skips it, like a function in error."""


class StartupError(DevHostError):
    """The host failed to start."""


class MessageDecodeError(DevHostError, ValueError):
    """A queue message is not in the encoding host.json says (base64 by default)."""


class WorkerError(DevHostError):
    """An invocation ended with its worker process: killed at functionTimeout, exited, or never started."""
