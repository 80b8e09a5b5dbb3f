"""GET /api/health: liveness for load balancers and the demo, and whether the app settings are usable.

Anonymous and dependency-free on purpose (no Key Vault, Table or Entra call): `ok`, or `degraded` with the same
setting problems the cold-start check logged (names and fixes, never a value).
"""

from __future__ import annotations

import azure.functions as func

from shared.http import json_reply
from shared.settings import settings_problems
from shared.triggers.replies import http_response

bp = func.Blueprint()


@bp.function_name("health")
@bp.route(route="health", methods=["GET"], auth_level=func.AuthLevel.ANONYMOUS)
def health(req: func.HttpRequest) -> func.HttpResponse:
    """Answer 200 with a tiny JSON body; says the worker is up (and whether its settings are), not that BC is
    reachable."""
    del req
    problems = settings_problems()
    body: dict[str, object] = {"status": "ok"}
    if problems:
        body = {
            "status": "degraded",
            "settings": list(dict.fromkeys(problem.setting for problem in problems)),
            "problems": [str(problem) for problem in problems],
        }
    return http_response(json_reply(200, body))
