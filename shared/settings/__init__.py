"""One typed settings object, read once from the environment, and the checks that tell an admin what to fix.

- `model.py`: the groups (`Settings`, `StorageSettings`, ...), their defaults and aliases, `load_settings`,
  `get_settings`, `telemetry_settings` and the timer's `refresh_schedule_binding`; the only module of the product that reads the
  environment.
- `problems.py`: `SettingProblem`, its `Impact`, `InvalidSettingsError`.
- `checks.py`: the cold-start checks (`check_settings`, `log_settings_problems`) and `require`.
"""

from shared.settings.checks import check_settings, log_settings_problems, require, settings_problems
from shared.settings.model import (
    APPLICATION_INSIGHTS_SETTING,
    BC_RESOURCE,
    CALLBACK_PATH,
    DEFAULT_RECONCILE_SCHEDULE,
    DEFAULT_REFRESH_SCHEDULE,
    DEFAULT_RETENTION_SCHEDULE,
    DEFAULT_SUBSCRIPTIONS_SCHEDULE,
    FUNCTION_TIMEOUT_SECONDS,
    INVOCATION_RESERVE_SECONDS,
    RECONCILE_SCHEDULE_SETTING,
    REFRESH_SCHEDULE_SETTING,
    RETENTION_SCHEDULE_SETTING,
    SUBSCRIPTIONS_SCHEDULE_SETTING,
    AuthSettings,
    BcSettings,
    ChangeSettings,
    JobSettings,
    LocalSettings,
    Settings,
    StorageSettings,
    TelemetrySettings,
    get_settings,
    load_settings,
    notification_base,
    refresh_schedule_binding,
    schedule_binding,
    telemetry_settings,
)
from shared.settings.problems import Impact, InvalidSettingsError, SettingProblem

__all__ = [
    "APPLICATION_INSIGHTS_SETTING",
    "BC_RESOURCE",
    "CALLBACK_PATH",
    "DEFAULT_RECONCILE_SCHEDULE",
    "DEFAULT_REFRESH_SCHEDULE",
    "DEFAULT_RETENTION_SCHEDULE",
    "DEFAULT_SUBSCRIPTIONS_SCHEDULE",
    "FUNCTION_TIMEOUT_SECONDS",
    "INVOCATION_RESERVE_SECONDS",
    "RECONCILE_SCHEDULE_SETTING",
    "REFRESH_SCHEDULE_SETTING",
    "RETENTION_SCHEDULE_SETTING",
    "SUBSCRIPTIONS_SCHEDULE_SETTING",
    "AuthSettings",
    "BcSettings",
    "ChangeSettings",
    "Impact",
    "InvalidSettingsError",
    "JobSettings",
    "LocalSettings",
    "SettingProblem",
    "Settings",
    "StorageSettings",
    "TelemetrySettings",
    "check_settings",
    "get_settings",
    "load_settings",
    "log_settings_problems",
    "notification_base",
    "refresh_schedule_binding",
    "require",
    "schedule_binding",
    "settings_problems",
    "telemetry_settings",
]
