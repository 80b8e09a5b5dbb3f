"""The one exception root of the integration.

IntegrationError
 ├── SettingsError                  a setting is missing or malformed (raised at cold start)
 ├── auth.errors.AuthError          token lifecycle (see shared/auth/errors.py)
 ├── bc.errors.BusinessCentralError BC API calls (see shared/bc/errors.py)
 └── jobs.errors.JobError           job validation, storage and processing (see shared/jobs/errors.py)

Every error message is safe to log: no token, secret or authorization code is ever put into one.
"""


class IntegrationError(Exception):
    """Root of every error this package raises on purpose."""


class SettingsError(IntegrationError):
    """The app's configuration is missing something or holds a bad value."""
