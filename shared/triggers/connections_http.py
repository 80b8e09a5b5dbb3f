"""The connection registry's HTTP API (function key): `GET /api/connections`, `GET|PUT|DELETE
/api/connections/{name}`, and a connection's identities: `GET /api/connections/{name}/identities`,
`PUT|DELETE /api/connections/{name}/identities/{identity}` (shared/connections/identity_admin.py).

Thin: read the request, call shared.connections.admin, map its Reply. The base URL is the request's scheme and
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


@bp.function_name("connections_list")
@bp.route(route="connections", methods=["GET"], auth_level=func.AuthLevel.FUNCTION)
async def connections_list(req: func.HttpRequest) -> func.HttpResponse:
    """200 with every connection (the settings' one marked fromSettings); 503."""
    # imported when it runs, not at the cold start (the host imports every trigger module to index it)
    from shared.connections.admin import list_connections
    from shared.jobs.connections_admin import connections_admin

    return http_response(await list_connections(connections_admin, base_url=_base_url(req.url)))


@bp.function_name("connections_show")
@bp.route(route="connections/{name}", methods=["GET"], auth_level=func.AuthLevel.FUNCTION)
async def connections_show(req: func.HttpRequest) -> func.HttpResponse:
    """200 with the connection; 404; 400; 503."""
    # imported when it runs, not at the cold start (the host imports every trigger module to index it)
    from shared.connections.admin import show_connection
    from shared.jobs.connections_admin import connections_admin

    name = req.route_params.get("name", "")
    return http_response(await show_connection(connections_admin, name, base_url=_base_url(req.url)))


@bp.function_name("connections_put")
@bp.route(route="connections/{name}", methods=["PUT"], auth_level=func.AuthLevel.FUNCTION)
async def connections_put(req: func.HttpRequest) -> func.HttpResponse:
    """201 registered, 200 replaced; 400 naming each field; 409 for the settings' connection; 503."""
    # imported when it runs, not at the cold start (the host imports every trigger module to index it)
    from shared.connections.admin import put_connection
    from shared.jobs.connections_admin import connections_admin

    name = req.route_params.get("name", "")
    reply = await put_connection(connections_admin, name, req.get_body(), base_url=_base_url(req.url))
    return http_response(reply)


@bp.function_name("connections_delete")
@bp.route(route="connections/{name}", methods=["DELETE"], auth_level=func.AuthLevel.FUNCTION)
async def connections_delete(req: func.HttpRequest) -> func.HttpResponse:
    """204 deleted; 202 disabled because jobs are pending; 404; 409; 503."""
    # imported when it runs, not at the cold start (the host imports every trigger module to index it)
    from shared.connections.admin import delete_connection
    from shared.jobs.connections_admin import connections_admin

    return http_response(await delete_connection(connections_admin, req.route_params.get("name", "")))


@bp.function_name("identities_list")
@bp.route(route="connections/{name}/identities", methods=["GET"], auth_level=func.AuthLevel.FUNCTION)
async def identities_list(req: func.HttpRequest) -> func.HttpResponse:
    """200 with the connection's pool, primary first, each with its token health; 404; 400; 503."""
    # imported when it runs, not at the cold start (the host imports every trigger module to index it)
    from shared.connections.identity_admin import list_identities
    from shared.jobs.connections_admin import connections_admin

    name = req.route_params.get("name", "")
    return http_response(await list_identities(connections_admin, name, base_url=_base_url(req.url)))


@bp.function_name("identities_put")
@bp.route(
    route="connections/{name}/identities/{identity}", methods=["PUT"], auth_level=func.AuthLevel.FUNCTION
)
async def identities_put(req: func.HttpRequest) -> func.HttpResponse:
    """201 added, 200 replaced (with the next steps); 400 naming each field; 404; 409 primary or settings; 503."""
    # imported when it runs, not at the cold start (the host imports every trigger module to index it)
    from shared.connections.identity_admin import put_identity
    from shared.jobs.connections_admin import connections_admin

    name, identity = req.route_params.get("name", ""), req.route_params.get("identity", "")
    reply = await put_identity(connections_admin, name, identity, req.get_body(), base_url=_base_url(req.url))
    return http_response(reply)


@bp.function_name("identities_delete")
@bp.route(
    route="connections/{name}/identities/{identity}", methods=["DELETE"], auth_level=func.AuthLevel.FUNCTION
)
async def identities_delete(req: func.HttpRequest) -> func.HttpResponse:
    """204 removed with its secrets (a running job on it finishes); 404; 409 for primary or settings; 503."""
    # imported when it runs, not at the cold start (the host imports every trigger module to index it)
    from shared.connections.identity_admin import delete_identity
    from shared.jobs.connections_admin import connections_admin

    name, identity = req.route_params.get("name", ""), req.route_params.get("identity", "")
    return http_response(await delete_identity(connections_admin, name, identity))
