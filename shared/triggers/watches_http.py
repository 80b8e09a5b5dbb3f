"""The watches' HTTP API (function key): `GET /api/connections/{name}/watches`, `GET|PUT|DELETE
/api/connections/{name}/watches/{watch}`.

Thin: read the request, call shared.changes.watch_admin, map its Reply. The base URL is the request's scheme and
host, never its query (which may hold the function key).
"""

from __future__ import annotations

from urllib.parse import urlsplit

import azure.functions as func

from shared.triggers.replies import http_response

bp = func.Blueprint()


def _base_url(url: str) -> str:
    parts = urlsplit(url)
    return f"{parts.scheme}://{parts.netloc}"


@bp.function_name("watches_list")
@bp.route(route="connections/{name}/watches", methods=["GET"], auth_level=func.AuthLevel.FUNCTION)
async def watches_list(req: func.HttpRequest) -> func.HttpResponse:
    """200 with the connection's watches; 404; 503."""
    # imported when it runs, not at the cold start (the host imports every trigger module to index it)
    from shared.changes.directories import watches_admin
    from shared.changes.watch_admin import list_watches

    name = req.route_params.get("name", "")
    return http_response(await list_watches(watches_admin, name, base_url=_base_url(req.url)))


@bp.function_name("watches_show")
@bp.route(route="connections/{name}/watches/{watch}", methods=["GET"], auth_level=func.AuthLevel.FUNCTION)
async def watches_show(req: func.HttpRequest) -> func.HttpResponse:
    """200 with the watch; 404; 503."""
    # imported when it runs, not at the cold start (the host imports every trigger module to index it)
    from shared.changes.directories import watches_admin
    from shared.changes.watch_admin import show_watch

    name, watch = req.route_params.get("name", ""), req.route_params.get("watch", "")
    return http_response(await show_watch(watches_admin, name, watch, base_url=_base_url(req.url)))


@bp.function_name("watches_put")
@bp.route(route="connections/{name}/watches/{watch}", methods=["PUT"], auth_level=func.AuthLevel.FUNCTION)
async def watches_put(req: func.HttpRequest) -> func.HttpResponse:
    """201 created, 200 replaced; 400 naming each field; 404; 409 when the connection has the most; 503."""
    # imported when it runs, not at the cold start (the host imports every trigger module to index it)
    from shared.changes.directories import watches_admin
    from shared.changes.watch_admin import put_watch

    name, watch = req.route_params.get("name", ""), req.route_params.get("watch", "")
    reply = await put_watch(watches_admin, name, watch, req.get_body(), base_url=_base_url(req.url))
    return http_response(reply)


@bp.function_name("watches_delete")
@bp.route(route="connections/{name}/watches/{watch}", methods=["DELETE"], auth_level=func.AuthLevel.FUNCTION)
async def watches_delete(req: func.HttpRequest) -> func.HttpResponse:
    """204 deleted; 404; 503."""
    # imported when it runs, not at the cold start (the host imports every trigger module to index it)
    from shared.changes.directories import watches_admin
    from shared.changes.watch_admin import delete_watch

    name, watch = req.route_params.get("name", ""), req.route_params.get("watch", "")
    return http_response(await delete_watch(watches_admin, name, watch))
