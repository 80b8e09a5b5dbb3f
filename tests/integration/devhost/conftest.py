"""Fixtures for driving devhost with the sample app against the session's Azurite."""

from __future__ import annotations

import secrets
from collections.abc import Collection, Iterator
from pathlib import Path

import pytest

from devhost.host import DevHost
from devhost.hostconfig import load_host_config
from localworld.azurite import AzuriteEndpoints
from tests.integration.devhost import sample_app
from tests.integration.devhost.sample_app import Recorder

SAMPLE_HOST_JSON = Path(__file__).with_name("host.json")


@pytest.fixture
def recorder(tmp_path: Path) -> Recorder:
    """What the sample functions observed (they append to the file SAMPLE_RECORD_FILE names)."""
    return Recorder(tmp_path / "events.jsonl")


@pytest.fixture
def sample_settings(azurite: AzuriteEndpoints, unique_name: str, recorder: Recorder) -> dict[str, str]:
    """App settings for one test: its own queues/table/record file, fresh keys; the timers are disabled (each
    timer is a function group of its own: a worker process a test pays for only when it needs that timer)."""
    return {
        "JobsStorage": azurite.connection_string,
        "SAMPLE_QUEUE": f"{unique_name}-in",
        "SAMPLE_OUT_QUEUE": f"{unique_name}-out",
        "SAMPLE_TABLE": f"t{unique_name}",
        "SAMPLE_TIMER_SCHEDULE": "*/1 * * * * *",
        "SAMPLE_RECORD_FILE": str(recorder.path),
        "AzureWebJobs.tick.Disabled": "true",
        "AzureWebJobs.flaky.Disabled": "true",
        "AzureWebJobs.on_startup.Disabled": "true",
        "DEVHOST_FUNCTION_KEY": secrets.token_urlsafe(16),
        "DEVHOST_MASTER_KEY": secrets.token_urlsafe(16),
        "BC_ENVIRONMENT": "sandbox-from-devhost",
    }


class StartHost:
    """Starts devhost on the sample app; every host it started is stopped after the test."""

    def __init__(self) -> None:
        self.hosts: list[DevHost] = []

    def __call__(
        self,
        settings: dict[str, str],
        *,
        host_json: Path = SAMPLE_HOST_JSON,
        functions: Collection[str] | None = None,
    ) -> DevHost:
        host = DevHost(  # sample_app.app, not a global of this module: the worker imports it from sample_app
            sample_app.app,
            settings,
            host_config=load_host_config(host_json),
            shutdown_grace=5,
            functions=functions,
        )
        self.hosts.append(host.start())
        return host


@pytest.fixture
def start_devhost() -> Iterator[StartHost]:
    """Start devhost on the sample app with the given settings (and host.json); stopped after the test."""
    starter = StartHost()
    yield starter
    for host in starter.hosts:
        host.stop()
