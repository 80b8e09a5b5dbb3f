"""The HTTP front door for jobs (function key): `POST /api/jobs` enqueues, `GET /api/jobs` lists.

Thin: read the request, call shared.jobs.front_door, map its Reply. `GET /api/jobs/{jobId}` is jobs_status.py.
"""

from __future__ import annotations

from urllib.parse import urlsplit

import azure.functions as func

from shared.triggers.replies import http_response

bp = func.Blueprint()
_TRUE = {"1", "true", "yes"}


def _base_url(url: str) -> str:
    """Scheme and host of the request (never its query, which may hold the function key)."""
    parts = urlsplit(url)
    return f"{parts.scheme}://{parts.netloc}"


@bp.function_name("jobs_submit")
@bp.route(route="jobs", methods=["POST"], auth_level=func.AuthLevel.FUNCTION)
async def jobs_submit(req: func.HttpRequest) -> func.HttpResponse:
    """202 with each job's id and status URL; 400 naming each bad job's field; 503 when storage fails."""
    # imported when it runs, not at the cold start (the host imports every trigger module to index it)
    from shared.jobs import submit_jobs

    partial = (req.params.get("partial") or "").lower() in _TRUE
    return http_response(await submit_jobs(req.get_body(), partial=partial, base_url=_base_url(req.url)))


@bp.function_name("jobs_list")
@bp.route(route="jobs", methods=["GET"], auth_level=func.AuthLevel.FUNCTION)
async def jobs_list(req: func.HttpRequest) -> func.HttpResponse:
    """200 with a page of jobs (`state`, `since`, `pageSize`, `continuationToken`); 400; 503."""
    # imported when it runs, not at the cold start (the host imports every trigger module to index it)
    from shared.jobs import list_jobs

    return http_response(await list_jobs(dict(req.params), base_url=_base_url(req.url)))
