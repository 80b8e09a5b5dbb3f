"""The job pipeline's fixtures (function_app.py under devhost, Azurite, the sandbox) and a local Application
Insights ingestion endpoint for the telemetry tests."""

from tests.fixtures.ingestion import ingestion
from tests.integration.jobs.conftest import jobs_env, pipeline, world

__all__ = ["ingestion", "jobs_env", "pipeline", "world"]
