"""The job pipeline's fixtures (function_app.py under devhost, Azurite, the sandbox) and a local Application
Insights ingestion endpoint for the telemetry tests."""

from tests.fixtures.ingestion import ingestion
from tests.integration.jobs.conftest import jobs_env, pipeline, world

__all__ = ["ingestion", "jobs_env", "pipeline", "world"]

# The job both telemetry tests send through the real trigger.
JOB = {
    "jobId": "telemetry-create-1",
    "operation": "create",
    "entitySet": "customers",
    "data": {"displayName": "Fabrikam Telemetry"},
    "correlationId": "crm-telemetry-1",
}
