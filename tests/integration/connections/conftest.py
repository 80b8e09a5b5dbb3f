"""The jobs tier's world (devhost running function_app.py, Azurite, the sandbox) for the connection tests."""

from tests.integration.jobs.conftest import jobs_env, pipeline, world

__all__ = ["jobs_env", "pipeline", "world"]
