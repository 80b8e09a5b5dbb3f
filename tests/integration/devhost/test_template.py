"""Workers forked from the template process behave as workers started afresh: the app settings are the environment,
what the preloaded imports set is set again, nothing that reads the environment at import (aiohttp's SSL context)
is preloaded, a worker is its own session, and `DEVHOST_WORKER_TEMPLATE=off` starts workers the slow way."""

from __future__ import annotations

import os
import subprocess
import sys

import httpx
import pytest

from devhost.template import PRELOAD
from devhost.workers import TEMPLATE_SWITCH
from tests.integration.devhost.conftest import StartHost

pytestmark = pytest.mark.integration


def test_no_preloaded_package_imports_aiohttp() -> None:
    """aiohttp builds its SSL context from SSL_CERT_FILE when imported: a worker must import it under its settings."""
    probe = "import sys; from devhost.template import PRELOAD, preload; preload(PRELOAD); print('aiohttp' in sys.modules)"
    shown = subprocess.run(
        [sys.executable, "-c", probe], capture_output=True, text=True, check=True, timeout=60
    )
    assert shown.stdout.strip() == "False"
    assert "azure.functions" in PRELOAD


def test_a_forked_worker_has_its_settings_what_imports_set_and_its_own_session(
    start_devhost: StartHost, sample_settings: dict[str, str]
) -> None:
    """The settings reach os.environ; AZURE_MONITOR_DISTRO_VERSION (set by azure-monitor-opentelemetry's import)
    is set as a fresh import would; the worker leads its own session (Ctrl-C does not reach it)."""
    host = start_devhost({**sample_settings, "SAMPLE_FLAG": "from-settings"})
    assert httpx.get(f"{host.base_url}/api/env/SAMPLE_FLAG").text == "from-settings"
    assert httpx.get(f"{host.base_url}/api/env/AZURE_MONITOR_DISTRO_VERSION").text
    pid = int(httpx.get(f"{host.base_url}/api/pid").text)
    assert os.getsid(pid) == pid
    assert pid != os.getpid()


def test_with_the_template_off_a_worker_is_a_child_of_devhost(
    start_devhost: StartHost, sample_settings: dict[str, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """The slow path stays available (and honest): the worker is devhost's own child, with the same settings."""
    monkeypatch.setenv(TEMPLATE_SWITCH, "off")
    host = start_devhost({**sample_settings, "SAMPLE_FLAG": "from-settings"})
    assert httpx.get(f"{host.base_url}/api/env/SAMPLE_FLAG").text == "from-settings"
    pid = int(httpx.get(f"{host.base_url}/api/pid").text)
    with open(f"/proc/{pid}/stat", encoding="ascii") as stat:
        parent = int(stat.read().rsplit(")", 1)[1].split()[1])
    assert parent == os.getpid()
