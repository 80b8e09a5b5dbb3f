"""The one exception root of the integration.

IntegrationError
 ├── SettingsError                  a setting is missing or malformed (raised at cold start)
 ├── tokens.TokenProviderError      a token provider cannot hand out a token (`transient`: waiting helps)
 ├── table_cas.TableStorageError    a Table Storage call failed (neutral; each package maps it at its seam)
 │    └── TableMissingError         the table does not exist yet
 ├── auth.errors.AuthError          token lifecycle (see shared/auth/errors.py; provider errors are also
 │                                  TokenProviderError)
 ├── bc.errors.BusinessCentralError BC API calls (see shared/bc/errors.py)
 ├── (devhost.errors.DevHostError   the local host, outside the product package)
 └── (localworld.errors.WorldError  the local world and the demo, outside the product package)

Every error message is safe to log: no token, secret or authorization code is ever put into one.
"""


class IntegrationError(Exception):
    """Root of every error this package raises on purpose."""


class SettingsError(IntegrationError):
    """The app's configuration is missing something or holds a bad value."""
