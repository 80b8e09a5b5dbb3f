"""The job pipeline's fixtures (function_app.py under devhost, Azurite, the sandbox) for the telemetry tests."""

from tests.integration.jobs.conftest import jobs_env, pipeline, world

__all__ = ["jobs_env", "pipeline", "world"]
