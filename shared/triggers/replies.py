"""The one place a service's Reply (shared.http) becomes the Functions host's HttpResponse."""

from __future__ import annotations

import azure.functions as func

from shared.http import Reply


def http_response(reply: Reply) -> func.HttpResponse:
    """The reply as the host sends it (UTF-8 body, no headers when there are none)."""
    return func.HttpResponse(
        reply.body, status_code=reply.status, mimetype=reply.mimetype, headers=dict(reply.headers) or None
    )
