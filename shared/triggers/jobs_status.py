"""GET /api/jobs/{jobId}: a job's state, attempts, times, result, error and BC interactions (function key).

Thin: read the route parameter, call shared.jobs.front_door, map its Reply.
"""

from __future__ import annotations

import azure.functions as func

from shared.triggers.replies import http_response

bp = func.Blueprint()


@bp.function_name("jobs_status")
@bp.route(route="jobs/{jobId}", methods=["GET"], auth_level=func.AuthLevel.FUNCTION)
async def jobs_status(req: func.HttpRequest) -> func.HttpResponse:
    """200 with the job, 404 for an unknown id, 400 for an id no job can have, 503 when storage fails."""
    # imported when it runs, not at the cold start (the host imports every trigger module to index it)
    from shared.jobs import job_status

    return http_response(await job_status(req.route_params.get("jobId", "")))
