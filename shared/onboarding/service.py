"""Onboarding of one connection, wired to the process's services: the consent link and its callback, the sign-in
link, and the check (each with the connection's own token manager, pending states and connection record)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from urllib.parse import urlsplit

from shared.auth.compose import AuthServices, auth_services
from shared.auth.errors import SignInStateUnknownError
from shared.auth.sign_in import LOGIN_PATH, check_state, connection_in_state
from shared.bc.factory import agent_for, build_client, endpoint_for, http_client_from_settings
from shared.connections.compose import registry_services
from shared.connections.connection import Connection, Identity
from shared.connections.errors import UnknownConnectionError
from shared.connections.registry import ConnectionRegistry
from shared.errors import SettingsError
from shared.onboarding.check import TOKEN, CheckReport, CheckStep, ConnectionCheck, Links, PoolReport
from shared.onboarding.consent import (
    GRANTED,
    ConsentAnswer,
    ConsentLink,
    ConsentUnavailableError,
    consent_answer,
    split_consent_name,
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
    identity: str = "primary"


def sign_in_path(connection: Connection, identity: Identity | None = None) -> str:
    """The connection's sign-in route: /api/auth/login for the settings' one (as before), else its own; an
    identity's user signs in with `?identity=`."""
    if connection.from_settings:
        return LOGIN_PATH
    query = "" if identity is None or identity.primary else f"?identity={identity.name}"
    return f"/api/connections/{connection.name}/sign-in{query}"


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

    async def consent_link(self, connection: Connection, identity: Identity | None = None) -> ConsentLink:
        """A fresh one-time admin-consent link for the connection's tenant (for one identity's app: `identity`)."""
        pending = self.auth.pending_consents(connection.name)
        return await start_consent(connection, self.settings, pending, identity)

    def sign_in_link(self, connection: Connection, identity: Identity | None = None) -> str:
        """The connection's (or identity's) sign-in URL on this app's host (its path alone when no host is set)."""
        callback = self.settings.auth.callback_uri
        origin = f"{urlsplit(callback).scheme}://{urlsplit(callback).netloc}" if callback else ""
        return f"{origin}{sign_in_path(connection, identity)}"

    async def check_pool(self, connection: Connection) -> PoolReport:
        """The check of every identity of the connection's pool, one after another (a check is a few requests)."""
        return PoolReport(tuple([await self.check(connection, identity) for identity in connection.pool]))

    async def check(self, connection: Connection, identity: Identity | None = None) -> CheckReport:
        """One identity's check (the primary's by default) with its own token manager and a BC client for its
        connection's environment."""
        acting = identity or connection.primary
        try:
            manager = self.auth.for_identity(connection, acting).manager
        except (
            SettingsError
        ) as exc:  # its credential cannot be used here: its report says so, the pool's go on
            return unbuildable(connection, acting, exc)
        endpoint = endpoint_for(connection, self.settings)
        agent = agent_for(connection, acting)
        client = build_client(self.settings, manager, Unthrottled(), endpoint=endpoint, agent=agent)
        probe = ClientProbe(
            client, http_client_from_settings(self.settings), self.settings.bc.api_base_url, manager
        )
        links = Links(
            consent=lambda: self._consent_url(connection, acting),
            sign_in=self.sign_in_link(connection, acting),
        )
        try:
            return await ConnectionCheck(connection, manager, probe, links, acting).run()
        finally:
            await probe.aclose()

    async def finish_consent(self, params: Mapping[str, str]) -> ConsentOutcome:
        """Entra's redirect: the state's connection, its one-time state consumed, the outcome recorded on its
        connection record; when granted, the check's report. SignInFlowError for a state this app cannot accept."""
        state = check_state(params.get("state"))
        connection, identity = await self._consented(connection_in_state(state))
        await self.auth.pending_consents(connection.name).consume(state)
        answer = consent_answer(params, state)
        manager = self.auth.for_identity(connection, identity).manager
        await manager.parts.health.record_consent(
            GRANTED if answer.granted else answer.error or "unknown_error"
        )
        if answer.granted:  # the refusal from before the consent is not replayed (see forget_refusals)
            await self.auth.forget_refusals(connection, identity)
        report = await self.check(connection, identity) if answer.granted else None
        return ConsentOutcome(connection, answer, report, identity.name)

    async def _consented(self, named: str | None) -> tuple[Connection, Identity]:
        """The connection and identity a consent state names; SignInStateUnknownError when they are gone."""
        name, identity = split_consent_name(named) if named else ("", None)
        connection = await self.registry.find(name) if name else None
        pool = connection.pool if connection is not None else ()
        acting = next((i for i in pool if i.name == (identity or "primary")), None)
        if connection is None or acting is None:
            raise SignInStateUnknownError("no admin consent was started with this state")
        return connection, acting

    async def _consent_url(self, connection: Connection, identity: Identity) -> str:
        try:
            return (await self.consent_link(connection, identity)).url
        except ConsentUnavailableError as exc:
            query = "" if identity.primary else f"?identity={identity.name}"
            return f"GET /api/connections/{connection.name}/consent{query} ({exc})"


def unbuildable(connection: Connection, identity: Identity, error: SettingsError) -> CheckReport:
    """The check of an identity whose token manager cannot be built (a credential this deployment cannot use)."""
    route = f"/api/connections/{connection.name}" + (
        "" if identity.primary else f"/identities/{identity.name}"
    )
    fix = f"give it a credential this app can use (PUT {route}), or fix the setting named; then run the check again"
    return CheckReport(connection.name, (CheckStep(TOKEN, False, str(error), fix),), identity.name)


async def onboarding_services(settings: Settings | None = None) -> Onboarding:
    """The running loop's onboarding (its auth services and registry are the process's, shared)."""
    settings = settings or get_settings()
    registry = (await registry_services(settings)).registry
    return Onboarding(settings, registry, await auth_services(settings))
