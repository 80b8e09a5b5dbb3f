"""Timer: keep the BC token in Key Vault fresh (hourly by default), one refresher across instances.

Each run first purges expired pending sign-ins (SignInFlow.purge_expired), then refreshes when due
(TokenManager.refresh_if_due).

The schedule is `%BC_TOKEN_REFRESH_SCHEDULE%` when that app setting exists, else the default expression itself
(shared.settings.refresh_schedule_binding): the documented default works without the setting.

A transient failure raises so the host's retry policy (declared in shared.auth.timing) runs it again; an
admin-needed failure is recorded and alerted once by the token manager and is not retried here.
"""

from __future__ import annotations

import logging

import azure.functions as func

from shared.auth import (
    CredentialsRejectedError,
    NotAuthorizedError,
    ReauthorizationRequiredError,
    auth_services,
)
from shared.auth.timing import (
    TIMER_RETRY_COUNT,
    TIMER_RETRY_MAX_INTERVAL,
    TIMER_RETRY_MIN_INTERVAL,
    TIMER_RETRY_STRATEGY,
)
from shared.errors import SettingsError
from shared.settings import refresh_schedule_binding

bp = func.Blueprint()
logger = logging.getLogger(__name__)


@bp.function_name("token_refresh")
@bp.retry(
    strategy=TIMER_RETRY_STRATEGY,
    max_retry_count=TIMER_RETRY_COUNT,
    minimum_interval=TIMER_RETRY_MIN_INTERVAL,
    maximum_interval=TIMER_RETRY_MAX_INTERVAL,
)
@bp.timer_trigger(
    arg_name="timer", schedule=refresh_schedule_binding(), run_on_startup=False, use_monitor=True
)
async def token_refresh(timer: func.TimerRequest) -> None:
    """Purge expired sign-ins, refresh when due; log what happened."""
    try:
        services = await auth_services()
    except SettingsError as exc:  # logged at cold start too; a retry cannot help
        logger.error("token refresh cannot run: %s", exc, extra={"event": "auth.timer_settings_invalid"})
        return
    try:
        await services.sign_in.purge_expired()  # best effort: never raises
        outcome = await services.manager.refresh_if_due()
    except (ReauthorizationRequiredError, CredentialsRejectedError, NotAuthorizedError) as exc:
        logger.warning(
            "token refresh needs an admin: %s", type(exc).__name__, extra={"event": "auth.timer_blocked"}
        )
        return
    logger.info(
        "token refresh timer: %s",
        outcome.value,
        extra={"event": "auth.timer", "outcome": outcome.value, "past_due": timer.past_due},
    )
