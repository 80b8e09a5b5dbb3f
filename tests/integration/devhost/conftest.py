"""Fixtures for driving devhost with the sample app against the session's Azurite."""

from __future__ import annotations

import secrets
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from devhost.azurite import AzuriteEndpoints
from devhost.host import DevHost
from devhost.hostconfig import load_host_config
from tests.integration.devhost.sample_app import Recorder, build_app

SAMPLE_HOST_JSON = Path(__file__).with_name("host.json")


@pytest.fixture
def recorder() -> Recorder:
    """What the sample functions observed."""
    return Recorder()


@pytest.fixture
def sample_settings(azurite: AzuriteEndpoints, unique_name: str) -> dict[str, str]:
    """App settings for one test: its own queues/table, fresh keys; the busy timers are disabled."""
    return {
        "JobsStorage": azurite.connection_string,
        "SAMPLE_QUEUE": f"{unique_name}-in",
        "SAMPLE_OUT_QUEUE": f"{unique_name}-out",
        "SAMPLE_TABLE": f"t{unique_name}",
        "SAMPLE_TIMER_SCHEDULE": "*/1 * * * * *",
        "AzureWebJobs.tick.Disabled": "true",
        "AzureWebJobs.flaky.Disabled": "true",
        "DEVHOST_FUNCTION_KEY": secrets.token_urlsafe(16),
        "DEVHOST_MASTER_KEY": secrets.token_urlsafe(16),
        "BC_ENVIRONMENT": "sandbox-from-devhost",
    }


@pytest.fixture
def start_devhost(recorder: Recorder) -> Iterator[Callable[[dict[str, str]], DevHost]]:
    """Start devhost on the sample app with the given settings; stopped after the test."""
    hosts: list[DevHost] = []

    def start(settings: dict[str, str]) -> DevHost:
        host = DevHost(
            build_app(recorder), settings, host_config=load_host_config(SAMPLE_HOST_JSON), shutdown_grace=5
        )
        hosts.append(host.start())
        return host

    yield start
    for host in hosts:
        host.stop()
