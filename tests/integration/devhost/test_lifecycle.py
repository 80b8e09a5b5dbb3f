"""devhost's lifecycle: graceful stop in-process, and the CLI (settings file, env precedence, SIGTERM)."""

from __future__ import annotations

import json
import signal
import socket
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import httpx
import pytest
from azure.storage.queue import QueueClient, TextBase64EncodePolicy

from devhost.environment import process_environment
from devhost.host import DevHost
from localworld.ports import free_port, wait_for_port
from tests.integration.devhost.conftest import SAMPLE_HOST_JSON
from tests.integration.devhost.sample_app import Recorder

pytestmark = pytest.mark.integration

StartHost = Callable[[dict[str, str]], DevHost]
REPO_ROOT = Path(__file__).resolve().parents[3]


def _refuses_connections(base_url: str) -> bool:
    host, port = base_url.removeprefix("http://").split(":")
    try:
        with socket.create_connection((host, int(port)), timeout=1):
            return False
    except OSError:
        return True


def test_stop_finishes_in_flight_work_then_stops_serving(
    start_devhost: StartHost, sample_settings: dict[str, str], recorder: Recorder
) -> None:
    """stop() lets a running invocation finish and settle its message, then closes HTTP and restores the env."""
    host = start_devhost(sample_settings)
    inbox = QueueClient.from_connection_string(
        sample_settings["JobsStorage"],
        sample_settings["SAMPLE_QUEUE"],
        message_encode_policy=TextBase64EncodePolicy(),
    )
    with inbox:
        inbox.send_message("slow-in-flight")
        recorder.wait_for("work")  # running now; it takes 0.4 s
        host.stop()
        assert [event.data["body"] for event in recorder.events("slow-done")] == ["slow-in-flight"]
        assert inbox.get_queue_properties().approximate_message_count == 0  # deleted, not left to redeliver
    assert not host.running
    assert _refuses_connections(host.base_url)
    assert "SAMPLE_QUEUE" not in process_environment()


def _write_settings(path: Path, values: dict[str, str]) -> Path:
    path.write_text(json.dumps({"IsEncrypted": False, "Values": values}), encoding="utf-8")
    return path


def test_cli_reads_settings_file_lets_environment_win_and_stops_on_sigterm(
    sample_settings: dict[str, str], tmp_path: Path
) -> None:
    """`python -m devhost`: file Values reach the app, the environment overrides them, SIGTERM exits 0."""
    settings_file = _write_settings(
        tmp_path / "local.settings.json",
        {**sample_settings, "BC_ENVIRONMENT": "from-file", "DEVHOST_FUNCTION_KEY": "key-from-file"},
    )
    port = free_port()
    command = [
        sys.executable, "-m", "devhost", "--port", str(port),
        "--app", "tests.integration.devhost.sample_app:app",
        "--settings", str(settings_file), "--host-json", str(SAMPLE_HOST_JSON),
    ]  # fmt: skip
    environment = {**process_environment(), "DEVHOST_FUNCTION_KEY": "key-from-env"}
    process = subprocess.Popen(command, cwd=REPO_ROOT, env=environment, stderr=subprocess.PIPE, text=True)
    try:
        wait_for_port("127.0.0.1", port, timeout=30)
        base = f"http://127.0.0.1:{port}/api"
        assert httpx.get(f"{base}/bc-environment").text == "from-file"
        assert httpx.get(f"{base}/items/1", params={"code": "key-from-env"}).status_code == 200
        assert httpx.get(f"{base}/items/1", params={"code": "key-from-file"}).status_code == 401
        process.send_signal(signal.SIGTERM)
        _, stderr = process.communicate(timeout=20)
    finally:
        if process.poll() is None:
            process.kill()
            process.communicate()
    assert process.returncode == 0
    events = [json.loads(line).get("event") for line in stderr.splitlines() if line.startswith("{")]
    assert events.count("started") == 1
    assert events[-1] == "stopped"
    key_logged = "key-from-env" in stderr  # a bool, so a failure never prints the key
    assert not key_logged


def run_cli(*arguments: str) -> subprocess.CompletedProcess[str]:
    """`python -m devhost --port 0 ARGUMENTS` from the repo root, run to its end (it is expected to refuse)."""
    command = [sys.executable, "-m", "devhost", "--port", "0", *arguments]
    return subprocess.run(command, cwd=REPO_ROOT, capture_output=True, text=True, timeout=60, check=False)


def test_cli_exits_non_zero_when_the_app_cannot_be_loaded(tmp_path: Path) -> None:
    """A wrong --app gives exit code 1 and says why on stderr."""
    result = run_cli("--app", "no_such_module:app", "--settings", str(tmp_path / "none.json"))
    assert result.returncode == 1
    assert "cannot load the app 'no_such_module:app'" in result.stderr


def test_cli_functions_option_refuses_unknown_names(tmp_path: Path) -> None:
    """`--functions work,nope` exits 1 and names the function the app does not have."""
    result = run_cli(
        "--app",
        "tests.integration.devhost.sample_app:app",
        "--functions",
        "work,nope",
        "--settings",
        str(tmp_path / "none.json"),
        "--host-json",
        str(SAMPLE_HOST_JSON),
    )
    assert result.returncode == 1
    assert "unknown function(s): nope" in result.stderr
