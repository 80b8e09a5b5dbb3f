"""GET /api/jobs/{jobId}: a job's state, attempts, times, result, error and BC interactions (function key)."""

from __future__ import annotations

import json
import logging
import uuid

import azure.functions as func

from shared.jobs import JobStoreError, job_services, job_status, valid_job_id

bp = func.Blueprint()
logger = logging.getLogger(__name__)
JSON = "application/json"


def _json(status: int, body: object, **headers: str) -> func.HttpResponse:
    return func.HttpResponse(json.dumps(body), status_code=status, mimetype=JSON, headers=headers or None)


@bp.function_name("jobs_status")
@bp.route(route="jobs/{jobId}", methods=["GET"], auth_level=func.AuthLevel.FUNCTION)
async def jobs_status(req: func.HttpRequest) -> func.HttpResponse:
    """200 with the job, 404 for an unknown id, 400 for an id no job can have, 503 when storage fails."""
    job_id = req.route_params.get("jobId", "")
    if not valid_job_id(job_id):
        return _json(
            400, {"error": "invalid_job_id", "message": "a job id is 1-100 characters of A-Z a-z 0-9 . _ : -"}
        )
    try:
        services = await job_services()
        body = await job_status(services.store, services.audit, job_id)
    except JobStoreError as exc:
        reference = uuid.uuid4().hex[:12]
        logger.error("job status failed (ref %s): %s", reference, exc, extra={"event": "jobs.status_failed"})
        return _json(
            503,
            {"error": "storage_unavailable", "message": "try again shortly", "reference": reference},
            **{"Retry-After": "5"},
        )
    if body is None:
        return _json(
            404,
            {"error": "not_found", "message": f"no job {job_id}: check the id, or wait until it is received"},
        )
    return _json(200, body)
