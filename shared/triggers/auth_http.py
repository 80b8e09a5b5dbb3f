"""Admin HTTP endpoints of the token lifecycle: sign-in start and callback, status, refresh now.

Settings the routes cannot work with (shared.settings.check_settings) give a 500 JSON body naming each setting
and its fix. The sign-in's redirect URI comes from BC_REDIRECT_URI (or the platform's WEBSITE_HOSTNAME), never
from the request: a forged Host header must not choose where Entra sends the admin's code.

The callback is anonymous on purpose: a `code` parameter is what the Functions host reads as the function
key. The one-time, 10-minute state kept server-side is what protects it. Entra form-posts the response
(response_mode=form_post) so the code is never in a URL; a GET with the query is accepted too.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING

import azure.functions as func

from shared.auth.causes import describe
from shared.auth.errors import AuthError, SignInFlowError
from shared.errors import SettingsError
from shared.settings import Impact, get_settings, require
from shared.triggers.replies import http_response

if TYPE_CHECKING:
    from shared.auth import AuthServices
    from shared.auth.manager import TokenManager
    from shared.auth.sign_in import SignInFlow

bp = func.Blueprint()
logger = logging.getLogger(__name__)


async def _services(*impacts: Impact) -> AuthServices:
    """The running loop's services, after checking every setting whose problems impact them or `impacts` (one
    InvalidSettingsError naming them all)."""
    # imported when it runs, not at the cold start (the host imports every trigger module to index it)
    from shared.auth import auth_services

    settings = get_settings()
    require(settings, Impact.TOKENS, Impact.STORAGE, *impacts)
    return await auth_services(settings)


def _settings_failure(route: str, exc: SettingsError) -> func.HttpResponse:
    # imported when it runs, not at the cold start (the host imports every trigger module to index it)
    from shared.auth.web import settings_json

    logger.error(
        "%s cannot work with the app settings: %s",
        route,
        exc,
        extra={"event": "auth.settings_invalid", "route": route},
    )
    return http_response(settings_json(exc))


@bp.function_name("auth_login")
@bp.route(route="auth/login", methods=["GET"], auth_level=func.AuthLevel.FUNCTION)
async def auth_login(req: func.HttpRequest) -> func.HttpResponse:
    """Start the delegated sign-in: 302 to Entra with PKCE and state; the flow stays in Table Storage."""
    # imported when it runs, not at the cold start (the host imports every trigger module to index it)
    from shared.auth.web import page, redirect

    del req  # nothing of the request is used: not even its Host header (see the module's docstring)
    try:
        services = await _services(Impact.SIGN_IN)
        redirect_uri = services.settings.auth.callback_uri
        if redirect_uri is None:  # only in client-credentials mode (delegated without one fails require())
            raise AuthError("sign-in is only used in delegated mode (BC_AUTH_MODE=delegated)")
        auth_uri = await services.sign_in.start(redirect_uri)
    except SettingsError as exc:
        return _settings_failure("auth/login", exc)
    except AuthError as exc:
        return http_response(page(409, "Sign-in not available", [str(exc)]))
    return http_response(redirect(auth_uri))


@bp.function_name("auth_callback")
@bp.route(route="auth/callback", methods=["GET", "POST"], auth_level=func.AuthLevel.ANONYMOUS)
async def auth_callback(req: func.HttpRequest) -> func.HttpResponse:
    """Accept only a known, unexpired, unused state; store the token set; show account, tenant, expiry.

    Anonymous callers see plain sentences and a reference id, never a cause; the cause is logged with the id.
    """
    # imported when it runs, not at the cold start (the host imports every trigger module to index it)
    from shared.auth import auth_services, web

    reference = web.new_reference()
    try:
        # shape checks: no storage call
        response = web.callback_params(req.method, req.params, req.get_body())
        sign_in, manager = await _sign_in_of(await auth_services(), response["state"])
        await sign_in.finish(response)
        status = await manager.status()
    except SignInFlowError as exc:
        logger.warning("sign-in callback refused [reference %s]: %s", reference, describe(exc),
                       extra={"event": "auth.callback_refused", "reference": reference})  # fmt: skip
        return http_response(web.refused_page(exc, reference))
    except Exception as exc:  # SignInNotSavedError included: never the connected page without a write
        logger.error("sign-in callback failed [reference %s]: %s", reference, describe(exc),
                     extra={"event": "auth.callback_failed", "reference": reference})  # fmt: skip
        return http_response(web.callback_failed_page(exc, reference))
    return http_response(web.connected_page(status))


async def _sign_in_of(services: AuthServices, state: str) -> tuple[SignInFlow, TokenManager]:
    """The sign-in a state belongs to: the settings' connection's for a state naming none (as before), else the
    named connection's (one registry lookup by name; its pending sign-in is in its own partition, so a state
    issued for connection A can never finish B's sign-in or write B's token set)."""
    # imported when it runs, not at the cold start (the host imports every trigger module to index it)
    from shared.auth.errors import SignInStateUnknownError
    from shared.auth.sign_in import connection_in_state
    from shared.connections.compose import registry_services
    from shared.connections.connection import IDENTITY_SEPARATOR

    name = connection_in_state(state)
    if name is None or name == services.manager.connection:
        return services.sign_in, services.manager
    registry = (await registry_services(services.settings)).registry
    found, identity = await registry.find(name), None
    if found is None and IDENTITY_SEPARATOR in name:  # an identity's sign-in names `{connection}--{identity}`
        owner, _, wanted = name.rpartition(IDENTITY_SEPARATOR)
        found = await registry.find(owner)
        identity = next((i for i in found.identities if i.name == wanted), None) if found else None
        found = found if identity is not None else None
    if found is None:
        raise SignInStateUnknownError(
            f"no sign-in was started with this state (connection '{name}' is unknown)"
        )
    auth = services.for_identity(found, identity or found.primary)
    return auth.sign_in, auth.manager


@bp.function_name("auth_status")
@bp.route(route="auth/status", methods=["GET"], auth_level=func.AuthLevel.FUNCTION)
async def auth_status(req: func.HttpRequest) -> func.HttpResponse:
    """Token health as JSON (never the token)."""
    # imported when it runs, not at the cold start (the host imports every trigger module to index it)
    from shared.auth.web import status_json

    del req
    try:
        services = await _services()
    except SettingsError as exc:
        return _settings_failure("auth/status", exc)
    return http_response(status_json(await services.manager.status()))


@bp.function_name("auth_refresh")
@bp.route(route="auth/refresh", methods=["POST"], auth_level=func.AuthLevel.FUNCTION)
async def auth_refresh(req: func.HttpRequest) -> func.HttpResponse:
    """Refresh now (also probes past a backoff; concurrent and rapid calls coalesce), then answer with the status."""
    # imported when it runs, not at the cold start (the host imports every trigger module to index it)
    from shared.auth.timing import REFRESH_MIN_AGE
    from shared.auth.web import error_json, refresh_json

    del req
    try:
        services = await _services()
        before = await services.manager.status()
        await services.manager.refresh_now()
    except SettingsError as exc:
        return _settings_failure("auth/refresh", exc)
    except AuthError as exc:
        return http_response(error_json(exc))
    return http_response(refresh_json(before, await services.manager.status(), REFRESH_MIN_AGE))
