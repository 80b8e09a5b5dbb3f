"""Tell someone that an admin must act (re-authorise, fix credentials): an optional webhook POST.

The body carries no secret. The webhook URL itself may carry one (e.g. a Logic App `sig=`), so it is
never logged.
"""

from __future__ import annotations

import logging
import ssl
from dataclasses import dataclass
from datetime import datetime
from typing import Protocol

import httpx

logger = logging.getLogger(__name__)

WEBHOOK_TIMEOUT_SECONDS = 10.0


@dataclass(frozen=True, slots=True)
class AdminAlert:
    """What happened to which connection and what the admin should do next."""

    connection: str
    health: str  # a shared.auth.models.Health value
    error_code: str | None
    detected_at: datetime
    next_step: str
    account: str | None = None
    tenant_id: str | None = None

    def to_json_dict(self) -> dict[str, str | None]:
        """The webhook body."""
        return {
            "event": f"bc.auth.{self.health}",
            "connection": self.connection,
            "health": self.health,
            "state": self.health,  # deprecated alias of "health" (its name until 2026-12), for existing receivers
            "error_code": self.error_code,
            "detected_at": self.detected_at.isoformat(),
            "next_step": self.next_step,
            "account": self.account,
            "tenant_id": self.tenant_id,
        }


class AdminNotifier(Protocol):
    """Delivers an AdminAlert; must never raise (alerting is best effort)."""

    async def notify(self, alert: AdminAlert) -> None:
        """Send the alert."""
        ...


class NoNotifier:
    """Used when BC_REAUTH_WEBHOOK_URL is unset: the error log line is the alert."""

    async def notify(self, alert: AdminAlert) -> None:
        """Do nothing."""
        del alert


class WebhookNotifier:
    """POSTs the alert as JSON to a configured URL with httpx."""

    def __init__(self, url: str, verify: ssl.SSLContext | bool = True) -> None:
        self._url = url
        self._verify = verify

    async def notify(self, alert: AdminAlert) -> None:
        """POST once; a failure is logged (without the URL) and swallowed."""
        try:
            async with httpx.AsyncClient(verify=self._verify, timeout=WEBHOOK_TIMEOUT_SECONDS) as client:
                response = await client.post(self._url, json=alert.to_json_dict())
            response.raise_for_status()
        except httpx.HTTPError as exc:
            logger.warning(
                "re-authorization webhook failed (%s)",
                type(exc).__name__,
                extra={"connection": alert.connection, "event": "auth.webhook_failed"},
            )
