"""`GET /api/changes` (function key): the change log read with a cursor (shared/changes/api.py).

Thin: the query string to the service, its Reply to the host. Storage trouble while the feed is built is a 503
like any other (the app tries again on its next poll).
"""

from __future__ import annotations

import logging
from datetime import timedelta

import azure.functions as func

from shared.http import json_reply
from shared.settings import get_settings
from shared.triggers.replies import http_response

bp = func.Blueprint()
logger = logging.getLogger(__name__)


@bp.function_name("changes_read")
@bp.route(route="changes", methods=["GET"], auth_level=func.AuthLevel.FUNCTION)
async def changes_read(req: func.HttpRequest) -> func.HttpResponse:
    """200 with `{"changes": [...], "next": cursor}`; 400 naming a bad parameter; 404 unknown connection; 410 a
    cursor past the retention; 503."""
    # imported when it runs, not at the cold start (the host imports every trigger module to index it)
    from shared.changes.api import read_changes
    from shared.changes.compose import change_services
    from shared.changes.errors import ChangeLogUnavailableError
    from shared.connections.compose import registry_services
    from shared.connections.errors import RegistryUnavailableError

    try:
        services = await change_services()
        registry = (await registry_services(get_settings())).registry
    except (ChangeLogUnavailableError, RegistryUnavailableError, OSError) as exc:
        logger.warning(
            "change feed unavailable: %s", type(exc).__name__, extra={"event": "changes.unavailable"}
        )
        reply = json_reply(503, {"error": "storage_unavailable", "message": "storage unavailable: try again"})
        return http_response(reply)
    retention = timedelta(days=get_settings().changes.changes_retention_days)
    return http_response(await read_changes(services.feed, dict(req.params), registry, retention))
