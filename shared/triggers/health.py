"""GET /api/health: liveness for load balancers and the demo. Anonymous and dependency-free on purpose."""

from __future__ import annotations

import json

import azure.functions as func

bp = func.Blueprint()


@bp.function_name("health")
@bp.route(route="health", methods=["GET"], auth_level=func.AuthLevel.ANONYMOUS)
def health(req: func.HttpRequest) -> func.HttpResponse:
    """Answer 200 with a tiny JSON body; says the worker is up, not that BC is reachable."""
    del req
    return func.HttpResponse(json.dumps({"status": "ok"}), status_code=200, mimetype="application/json")
