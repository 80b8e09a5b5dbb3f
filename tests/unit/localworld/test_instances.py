"""The demo's worker pool: the environment its processes get."""

from __future__ import annotations

from pathlib import Path

import pytest

from localworld.infra_settings import connection_strings
from localworld.instances import InstancePool

RUNNER_STORAGE = "DefaultEndpointsProtocol=http;AccountName=devstoreaccount1;AccountKey=k;"


def test_a_production_pool_keeps_the_runners_connection_string_out(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """With production=True, a JobsStorage in the runner's shell does not reach the workers; the platform's
    variables and the settings do (without it, the shell's connection string would)."""
    monkeypatch.setenv("JobsStorage", RUNNER_STORAGE)
    settings = {"JobsStorage__queueServiceUri": "https://127.0.0.1:1/devstoreaccount1"}
    platform = {"IDENTITY_ENDPOINT": "http://127.0.0.1:2/msi/token"}

    production = InstancePool(settings, tmp_path, platform=platform, production=True).environment()
    plain = InstancePool(settings, tmp_path, platform=platform).environment()

    assert connection_strings(production) == []
    assert production["IDENTITY_ENDPOINT"] == platform["IDENTITY_ENDPOINT"]
    assert production["JobsStorage__queueServiceUri"] == settings["JobsStorage__queueServiceUri"]
    assert {"DEVHOST_FUNCTION_KEY", "DEVHOST_MASTER_KEY", "PATH"} <= set(production)
    assert connection_strings(plain) == ["JobsStorage"]
