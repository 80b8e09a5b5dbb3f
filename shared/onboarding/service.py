"""Onboarding of one connection, wired to the process's services: the consent link and its callback, the sign-in
link, and the check (each with the connection's own token manager, pending states and connection record)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from urllib.parse import urlsplit

from shared.auth.compose import AuthServices, auth_services
from shared.auth.errors import SignInStateUnknownError
from shared.auth.sign_in import LOGIN_PATH, check_state, connection_in_state
from shared.bc.factory import build_client, endpoint_for, http_client_from_settings
from shared.connections.compose import registry_services
from shared.connections.connection import Connection
from shared.connections.errors import UnknownConnectionError
from shared.connections.registry import ConnectionRegistry
from shared.onboarding.check import CheckReport, ConnectionCheck, Links
from shared.onboarding.consent import (
    GRANTED,
    ConsentAnswer,
    ConsentLink,
    ConsentUnavailableError,
    consent_answer,
    start_consent,
)
from shared.onboarding.probe import ClientProbe, Unthrottled
from shared.settings import Settings, get_settings


@dataclass(frozen=True, slots=True)
class ConsentOutcome:
    """What the consent callback found: the connection, Entra's answer and, when granted, the check's report."""

    connection: Connection
    answer: ConsentAnswer
    report: CheckReport | None


def sign_in_path(connection: Connection) -> str:
    """The connection's sign-in route: /api/auth/login for the settings' one (as before), else its own."""
    return LOGIN_PATH if connection.from_settings else f"/api/connections/{connection.name}/sign-in"


@dataclass(frozen=True, slots=True)
class Onboarding:
    """The onboarding operations of the running process."""

    settings: Settings
    registry: ConnectionRegistry
    auth: AuthServices

    async def connection(self, name: str) -> Connection:
        """The connection of that name, enabled or not; UnknownConnectionError when there is none."""
        found = await self.registry.find(name)
        if found is None:
            raise UnknownConnectionError(name)
        return found

    async def consent_link(self, connection: Connection) -> ConsentLink:
        """A fresh one-time admin-consent link for the connection's tenant."""
        return await start_consent(connection, self.settings, self.auth.pending_consents(connection.name))

    def sign_in_link(self, connection: Connection) -> str:
        """The connection's sign-in URL on this app's host (its path alone when no host is configured)."""
        callback = self.settings.auth.callback_uri
        origin = f"{urlsplit(callback).scheme}://{urlsplit(callback).netloc}" if callback else ""
        return f"{origin}{sign_in_path(connection)}"

    async def check(self, connection: Connection) -> CheckReport:
        """The connection's check with its own token manager and a BC client for its environment."""
        manager = self.auth.for_connection(connection).manager
        endpoint = endpoint_for(connection, self.settings)
        client = build_client(self.settings, manager, Unthrottled(), endpoint=endpoint)
        probe = ClientProbe(
            client, http_client_from_settings(self.settings), self.settings.bc.api_base_url, manager
        )
        links = Links(consent=lambda: self._consent_url(connection), sign_in=self.sign_in_link(connection))
        try:
            return await ConnectionCheck(connection, manager, probe, links).run()
        finally:
            await probe.aclose()

    async def finish_consent(self, params: Mapping[str, str]) -> ConsentOutcome:
        """Entra's redirect: the state's connection, its one-time state consumed, the outcome recorded on its
        connection record; when granted, the check's report. SignInFlowError for a state this app cannot accept."""
        state = check_state(params.get("state"))
        name = connection_in_state(state)
        connection = await self.registry.find(name) if name else None
        if connection is None:
            raise SignInStateUnknownError("no admin consent was started with this state")
        await self.auth.pending_consents(connection.name).consume(state)
        answer = consent_answer(params, state)
        health = self.auth.for_connection(connection).manager.parts.health
        await health.record_consent(GRANTED if answer.granted else answer.error or "unknown_error")
        if answer.granted:
            await self.auth.forget_refusals(connection)  # the refusal from before the consent is not replayed
        report = await self.check(connection) if answer.granted else None
        return ConsentOutcome(connection, answer, report)

    async def _consent_url(self, connection: Connection) -> str:
        try:
            return (await self.consent_link(connection)).url
        except ConsentUnavailableError as exc:
            return f"GET /api/connections/{connection.name}/consent ({exc})"


async def onboarding_services(settings: Settings | None = None) -> Onboarding:
    """The running loop's onboarding (its auth services and registry are the process's, shared)."""
    settings = settings or get_settings()
    registry = (await registry_services(settings)).registry
    return Onboarding(settings, registry, await auth_services(settings))
