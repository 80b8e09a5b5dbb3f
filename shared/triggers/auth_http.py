"""Admin HTTP endpoints of the token lifecycle: sign-in start and callback, status, refresh now.

The callback is anonymous on purpose: a `code` parameter is what the Functions host reads as the function
key. The one-time, 10-minute state kept server-side is what protects it. Entra form-posts the response
(response_mode=form_post) so the code is never in a URL; a GET with the query is accepted too.
"""

from __future__ import annotations

import logging

import azure.functions as func

from shared.auth import AuthError, LoginFlowError, auth_services
from shared.auth.causes import describe
from shared.auth.web import (
    PAGE_HEADERS,
    WebResult,
    callback_failed_page,
    callback_params,
    callback_url,
    connected_page,
    error_json,
    new_reference,
    page,
    refused_page,
    status_json,
)

bp = func.Blueprint()
logger = logging.getLogger(__name__)


def _response(result: WebResult) -> func.HttpResponse:
    return func.HttpResponse(
        result.body, status_code=result.status, mimetype=result.mimetype, headers=PAGE_HEADERS
    )


@bp.function_name("auth_login")
@bp.route(route="auth/login", methods=["GET"], auth_level=func.AuthLevel.FUNCTION)
async def auth_login(req: func.HttpRequest) -> func.HttpResponse:
    """Start the delegated sign-in: 302 to Entra with PKCE and state; the flow stays in Table Storage."""
    services = await auth_services()
    redirect_uri = services.settings.auth.redirect_uri or callback_url(req.url)
    try:
        auth_uri = await services.manager.begin_authorization(redirect_uri)
    except AuthError as exc:
        return _response(page(409, "Sign-in not available", [str(exc)]))
    return func.HttpResponse(status_code=302, headers={**PAGE_HEADERS, "Location": auth_uri})


@bp.function_name("auth_callback")
@bp.route(route="auth/callback", methods=["GET", "POST"], auth_level=func.AuthLevel.ANONYMOUS)
async def auth_callback(req: func.HttpRequest) -> func.HttpResponse:
    """Accept only a known, unexpired, unused state; store the token set; show account, tenant, expiry.

    Anonymous callers see plain sentences and a reference id, never a cause; the cause is logged with the id.
    """
    reference = new_reference()
    try:
        response = callback_params(req.method, req.params, req.get_body())  # shape checks: no storage call
        services = await auth_services()
        status = await services.manager.complete_authorization(response)
    except LoginFlowError as exc:
        logger.warning(
            "sign-in callback refused [reference %s]: %s",
            reference,
            describe(exc),
            extra={"event": "auth.callback_refused", "reference": reference},
        )
        return _response(refused_page(exc, reference))
    except Exception as exc:  # SignInNotSavedError included: never the connected page without a write
        logger.error(
            "sign-in callback failed [reference %s]: %s",
            reference,
            describe(exc),
            extra={"event": "auth.callback_failed", "reference": reference},
        )
        return _response(callback_failed_page(exc, reference))
    return _response(connected_page(status))


@bp.function_name("auth_status")
@bp.route(route="auth/status", methods=["GET"], auth_level=func.AuthLevel.FUNCTION)
async def auth_status(req: func.HttpRequest) -> func.HttpResponse:
    """Token health as JSON (never the token)."""
    del req
    services = await auth_services()
    return _response(status_json(await services.manager.status()))


@bp.function_name("auth_refresh")
@bp.route(route="auth/refresh", methods=["POST"], auth_level=func.AuthLevel.FUNCTION)
async def auth_refresh(req: func.HttpRequest) -> func.HttpResponse:
    """Refresh now (also probes past a backoff), then answer with the status."""
    del req
    services = await auth_services()
    try:
        await services.manager.refresh()
    except AuthError as exc:
        return _response(error_json(exc))
    return _response(status_json(await services.manager.status()))
