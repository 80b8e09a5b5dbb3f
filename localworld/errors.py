"""Errors the local world raises on purpose.

IntegrationError (shared.errors)
 └── WorldError                              a process of the local world did not start, or a service of it answered
      │                                      unexpectedly (the sandbox's admin API, BC read by BcReader)
      ├── azurite.AzuriteNotInstalledError   node_modules has no Azurite (also a RuntimeError)
      ├── azurite.AzuriteExitedError         an Azurite process died while starting (also a RuntimeError)
      └── demo.context.DemoError             a `make demo` step failed
"""

from shared.errors import IntegrationError


class WorldError(IntegrationError):
    """A process of the local world did not start, or one of its services answered unexpectedly."""
