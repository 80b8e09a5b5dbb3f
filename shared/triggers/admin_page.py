"""GET /api/status: the status page for admins (function key), server-rendered HTML with a strict CSP.

Not `/api/admin`: the Functions host reserves routes (and function names) beginning with `admin` for its own admin
API and puts such a function in error at start ("The specified route conflicts with one or more built in routes",
azure-functions-host#1781), whatever the route prefix.
"""

from __future__ import annotations

import azure.functions as func

from shared.triggers.replies import http_response

bp = func.Blueprint()


@bp.function_name("status_page")
@bp.route(route="status", methods=["GET"], auth_level=func.AuthLevel.FUNCTION)
async def status_page_route(req: func.HttpRequest) -> func.HttpResponse:
    """Connection, jobs by state, latest failures, queues and throttle usage; each section says when it failed."""
    del req  # the caller's key stays out of the page (shared.ops.page SIGN_IN_ACTION says why)
    # imported when it runs, not at the cold start (the host imports every trigger module to index it)
    from shared.ops import status_page
    from shared.settings import get_settings

    return http_response(await status_page(get_settings()))
