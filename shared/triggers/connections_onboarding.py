"""Onboarding routes of a connection: admin-consent link and callback, the check, the per-connection sign-in.

    GET  /api/connections/{name}/consent      function key  a one-time admin-consent link for the connection's tenant
                                                            (`?identity=X`: for that identity's app)
    GET  /api/connections/consent/callback    anonymous     Entra's redirect after the consent; runs the check
    POST /api/connections/{name}/check        function key  the check, as JSON (never a token or secret): every
                                                            identity of the pool, or `?identity=X` only
    GET  /api/connections/{name}/sign-in      function key  302 to Entra: the connection's delegated sign-in
                                                            (`?identity=X`: that identity's user signs in)

The consent callback is anonymous like /api/auth/callback (Entra's redirect carries no function key): the
one-time, 10-minute state naming the connection is what protects it. Its pages show plain sentences (every text
escaped by shared.auth.web.page) and a reference id for failures; the cause is logged under that reference. The
sign-in's callback is the existing /api/auth/callback, which finds the connection from the state.
"""

from __future__ import annotations

import logging
import re
from typing import TYPE_CHECKING

import azure.functions as func

from shared.errors import IntegrationError, SettingsError
from shared.http import Reply, json_reply
from shared.settings import Impact, get_settings, require
from shared.triggers.replies import http_response

if TYPE_CHECKING:
    from shared.connections.connection import Connection, Identity
    from shared.onboarding.check import CheckReport
    from shared.onboarding.service import ConsentOutcome, Onboarding

bp = func.Blueprint()
logger = logging.getLogger(__name__)
_GUID = re.compile(r"[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}")


def _error(status: int, error: str, message: str) -> func.HttpResponse:
    # imported when it runs, not at the cold start (the host imports every trigger module to index it)
    from shared.auth.web import PAGE_HEADERS

    return http_response(json_reply(status, {"error": error, "message": message}, PAGE_HEADERS))


async def _connection(req: func.HttpRequest) -> tuple[Onboarding, Connection]:
    """The route's connection (its name validated before any lookup) and the onboarding services."""
    # imported when it runs, not at the cold start (the host imports every trigger module to index it)
    from shared.connections.connection import CONNECTION_NAME_PATTERN
    from shared.connections.errors import ConnectionUnusableError
    from shared.onboarding.service import onboarding_services

    name = req.route_params.get("name", "")
    if re.fullmatch(CONNECTION_NAME_PATTERN, name) is None:  # re caches the compiled pattern
        raise ConnectionUnusableError(
            name[:40], "a connection name is 1-40 characters of a-z, 0-9 and -: see `bcjobs connections list`"
        )
    settings = get_settings()
    require(settings, Impact.TOKENS, Impact.STORAGE)
    onboarding = await onboarding_services(settings)
    return onboarding, await onboarding.connection(name)


def _identity(req: func.HttpRequest, connection: Connection) -> Identity | None:
    """The `?identity=` of the request (None: not asked); ConnectionUnusableError naming the pool when unknown."""
    # imported when it runs, not at the cold start (the host imports every trigger module to index it)
    from shared.connections.errors import ConnectionUnusableError

    asked = req.params.get("identity")
    if asked is None:
        return None
    found = next((i for i in connection.pool if i.name == asked), None)
    if found is None:
        names = ", ".join(i.name for i in connection.pool)
        raise ConnectionUnusableError(
            connection.name,
            f"connection '{connection.name}' has no identity '{asked[:20]}' (it has: {names}): see `bcjobs "
            f"connections identities list {connection.name}`",
        )
    return found


def _failure(route: str, exc: Exception) -> func.HttpResponse:
    """A JSON answer naming the next step for what an admin route can fail with."""
    # imported when it runs, not at the cold start (the host imports every trigger module to index it)
    from shared.auth import AuthError
    from shared.auth.causes import describe
    from shared.connections.errors import (
        ConnectionUnusableError,
        RegistryUnavailableError,
        UnknownConnectionError,
    )
    from shared.onboarding.consent import ConsentUnavailableError

    if isinstance(exc, ConnectionUnusableError):
        return _error(404 if isinstance(exc, UnknownConnectionError) else 400, "connection", exc.reason)
    if isinstance(exc, SettingsError | ConsentUnavailableError):
        return _error(500, "settings", str(exc))
    if isinstance(exc, RegistryUnavailableError):
        return _error(503, "registry", str(exc))
    logger.warning(
        "%s failed: %s", route, describe(exc), extra={"event": "onboarding.failed", "route": route}
    )
    return _error(503 if isinstance(exc, AuthError) else 500, type(exc).__name__, str(exc))


@bp.function_name("connections_consent")
@bp.route(route="connections/{name}/consent", methods=["GET"], auth_level=func.AuthLevel.FUNCTION)
async def connections_consent(req: func.HttpRequest) -> func.HttpResponse:
    """A one-time admin-consent link (10 minutes) for the connection's tenant and app."""
    # imported when it runs, not at the cold start (the host imports every trigger module to index it)
    from shared.auth.web import PAGE_HEADERS

    try:
        onboarding, connection = await _connection(req)
        link = await onboarding.consent_link(connection, _identity(req, connection))
    except IntegrationError as exc:
        return _failure("connections/consent", exc)
    return http_response(json_reply(200, link.to_json(), PAGE_HEADERS))


@bp.function_name("connections_check")
@bp.route(route="connections/{name}/check", methods=["POST"], auth_level=func.AuthLevel.FUNCTION)
async def connections_check(req: func.HttpRequest) -> func.HttpResponse:
    """The check: `{"connection", "identity", "ok", "steps": [{"name", "ok", "detail", "fix"}]}` for `?identity=X`;
    without, the primary's report, `ok` for the whole pool and `identities`: one report per identity."""
    # imported when it runs, not at the cold start (the host imports every trigger module to index it)
    from shared.auth.web import PAGE_HEADERS
    from shared.onboarding.check import PoolReport

    try:
        onboarding, connection = await _connection(req)
        identity = _identity(req, connection)
        report = await (
            onboarding.check(connection, identity) if identity else onboarding.check_pool(connection)
        )
    except IntegrationError as exc:
        return _failure("connections/check", exc)
    reports = report.reports if isinstance(report, PoolReport) else (report,)
    for each in reports:
        logger.info(
            "connection check of '%s' identity %s: %s",
            connection.name,
            each.identity,
            "ok" if each.ok else f"failed at {each.steps[-1].name}",
            extra={"event": "onboarding.checked", "connection": connection.name, "identity": each.identity},
        )
    return http_response(json_reply(200, report.to_json(), PAGE_HEADERS))


@bp.function_name("connections_sign_in")
@bp.route(route="connections/{name}/sign-in", methods=["GET"], auth_level=func.AuthLevel.FUNCTION)
async def connections_sign_in(req: func.HttpRequest) -> func.HttpResponse:
    """Start the connection's delegated sign-in: 302 to Entra; the callback is /api/auth/callback."""
    # imported when it runs, not at the cold start (the host imports every trigger module to index it)
    from shared.auth import AuthError
    from shared.auth.web import page, redirect
    from shared.tokens import AuthMode

    try:
        onboarding, connection = await _connection(req)
        identity = _identity(req, connection) or connection.primary
        redirect_uri = onboarding.settings.auth.callback_uri
        if connection.mode is not AuthMode.DELEGATED or redirect_uri is None:
            raise AuthError(_no_sign_in(connection, redirect_uri))
        auth_uri = await onboarding.auth.for_identity(connection, identity).sign_in.start(redirect_uri)
    except AuthError as exc:
        return http_response(page(409, "Sign-in not available", [str(exc)]))
    except IntegrationError as exc:
        return _failure("connections/sign-in", exc)
    return http_response(redirect(auth_uri))


def _no_sign_in(connection: Connection, redirect_uri: str | None) -> str:
    # imported when it runs, not at the cold start (the host imports every trigger module to index it)
    from shared.tokens import AuthMode

    if connection.mode is not AuthMode.DELEGATED:
        return (
            f"connection '{connection.name}' uses client credentials: nobody signs in; grant admin consent "
            f"(GET /api/connections/{connection.name}/consent) and run its check"
        )
    return "no redirect URI is configured: set BC_REDIRECT_URI (or run in Azure: WEBSITE_HOSTNAME)"


@bp.function_name("connections_consent_callback")
@bp.route(route="connections/consent/callback", methods=["GET"], auth_level=func.AuthLevel.ANONYMOUS)
async def connections_consent_callback(req: func.HttpRequest) -> func.HttpResponse:
    """Entra's redirect after an admin consent: a known, unexpired, unused state only; then the check's page."""
    # imported when it runs, not at the cold start (the host imports every trigger module to index it)
    from shared.auth import SignInFlowError
    from shared.auth.causes import describe
    from shared.auth.web import callback_params, new_reference, page
    from shared.onboarding.service import onboarding_services

    reference = new_reference()
    try:
        params = callback_params("GET", req.params, b"")  # caps and the state's shape: no storage call
        outcome = await (await onboarding_services()).finish_consent(params)
    except SignInFlowError as exc:
        _log_refused(reference, exc)
        return http_response(refused_consent_page(reference))
    except Exception as exc:  # storage or settings: plain words and the reference, the cause in the log
        logger.error(
            "consent callback failed [reference %s]: %s",
            reference,
            describe(exc),
            extra={"event": "onboarding.consent_failed", "reference": reference},
        )
        lines = ["The app could not record the consent.", _reference(reference)]
        return http_response(page(500, "Consent not recorded", lines))
    return http_response(consent_page(outcome))


def _log_refused(reference: str, exc: Exception) -> None:
    # imported when it runs, not at the cold start (the host imports every trigger module to index it)
    from shared.auth.causes import describe

    logger.warning(
        "consent callback refused [reference %s]: %s",
        reference,
        describe(exc),
        extra={"event": "onboarding.consent_refused", "reference": reference},
    )


def _reference(reference: str) -> str:
    return f"Reference: {reference} (the app's log has the cause under this reference)."


def refused_consent_page(reference: str) -> Reply:
    """An unknown, expired, replayed or malformed state: nothing was changed."""
    # imported when it runs, not at the cold start (the host imports every trigger module to index it)
    from shared.auth.web import page

    lines = [
        "This consent answer does not match a consent link this app handed out in the last 10 minutes, or it "
        "was already used.",
        "Nothing was changed. Get a new link: GET /api/connections/{name}/consent (or ask your integrator).",
        _reference(reference),
    ]
    return page(400, "Consent answer not accepted", lines)


def consent_page(outcome: ConsentOutcome) -> Reply:
    """Entra's answer and, when granted, every step of the check."""
    # imported when it runs, not at the cold start (the host imports every trigger module to index it)
    from shared.auth.web import page
    from shared.onboarding.consent import refusal_fix

    connection, answer = outcome.connection, outcome.answer
    if not answer.granted or outcome.report is None:
        lines = [
            f"Connection: {connection.name} (tenant {connection.tenant_id})",
            f"Entra did not grant the consent ({answer.error}).",
            f"Next step: {refusal_fix(connection, answer.error or 'unknown_error')}",
        ]
        return page(400, "Admin consent not granted", lines)
    lines = [f"Connection: {connection.name}", f"Tenant: {answer.tenant or connection.tenant_id}"]
    if outcome.identity != "primary":
        lines.insert(1, f"Identity: {outcome.identity}")
    if (
        answer.tenant
        and _GUID.fullmatch(connection.tenant_id)
        and answer.tenant.lower() != connection.tenant_id.lower()
    ):
        lines.append(
            f"Entra recorded the consent in tenant {answer.tenant}, but the connection names tenant "
            f"{connection.tenant_id}: fix tenantId (PUT /api/connections/{connection.name}) or consent in that tenant"
        )
    return page(200, "Admin consent granted", [*lines, *_report_lines(outcome.report)])


def _report_lines(report: CheckReport) -> list[str]:
    lines = [f"Check: {'all steps passed' if report.ok else 'a step failed'}"]
    for step in report.steps:
        lines.append(f"{'OK' if step.ok else 'FAILED'} {step.name}: {step.detail}")
        if step.fix:
            lines.append(f"Fix: {step.fix}")
    return lines
