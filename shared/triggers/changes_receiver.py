"""`GET|POST /api/notifications/{connection}/{key}`: BC's webhook receiver (anonymous; issue 22).

Anonymous because BC sends no credential (reference (a) A3: no Authorization header, no signature); the path's
key and each item's clientState are what authenticate a notification, checked in the expansion. Thin: the
handshake first (pure, nothing built: BC waits 5 s at most), else shared/changes/receiver.py queues the body.
"""

from __future__ import annotations

import azure.functions as func

from shared.triggers.replies import http_response

bp = func.Blueprint()


@bp.function_name("changes_receiver")
@bp.route(
    route="notifications/{connection}/{key}", methods=["GET", "POST"], auth_level=func.AuthLevel.ANONYMOUS
)
async def changes_receiver(req: func.HttpRequest) -> func.HttpResponse:
    """200 with the token for BC's handshake; 202 for anything else but storage trouble (503)."""
    # imported when it runs, not at the cold start (the host imports every trigger module to index it)
    from shared.changes.inbound import notification_queue
    from shared.changes.receiver import Incoming, handshake, receive
    from shared.clock import SystemClock

    incoming = Incoming(
        connection=req.route_params.get("connection", ""),
        key=req.route_params.get("key", ""),
        query=dict(req.params),
        headers={name.lower(): value for name, value in req.headers.items()},
        body=req.get_body() or b"",
    )
    reply = handshake(incoming)
    if reply is None:
        reply = await receive(incoming, notification_queue, SystemClock())
    return http_response(reply)
