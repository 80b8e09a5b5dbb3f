"""`make dev` (python -m localworld.dev) as a process: one command brings up Azurite, the sandbox and devhost wired
together, prints what to open, honours local.settings.json, and Ctrl-C stops all of it."""

from __future__ import annotations

import html
import json
import os
import re
import shlex
import signal
import socket
import ssl
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from devhost.environment import process_environment
from localworld.polling import wait_until
from localworld.ports import free_port

pytestmark = pytest.mark.integration

REPO_ROOT = Path(__file__).resolve().parents[3]
_PREFIXES = ("BC_", "KEY_VAULT_", "LOCAL_CA_BUNDLE", "JobsStorage", "AzureWebJobs", "DEVHOST_", "WEBSITE_")


def _free(port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        try:
            sock.bind(("127.0.0.1", port))
        except OSError:
            return False
        return True


def _four_free_ports() -> int:
    """A base port with base..base+3 free (the sandbox's Entra, Key Vault, BC and admin ports)."""
    for _ in range(50):
        base = free_port()
        if base < 65000 and all(_free(base + n) for n in range(4)):
            return base
    raise RuntimeError("no four consecutive free ports")


def _refuses(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=1):
            return False
    except OSError:
        return True


class Output:
    """Lines a child writes to stdout (and stderr), collected by a thread."""

    def __init__(self, process: subprocess.Popen[str]) -> None:
        self.lines: list[str] = []
        self._thread = threading.Thread(target=self._read, args=(process,), daemon=True)
        self._thread.start()

    def _read(self, process: subprocess.Popen[str]) -> None:
        assert process.stdout is not None
        for line in process.stdout:
            self.lines.append(line.rstrip("\n"))

    def text(self) -> str:
        return "\n".join(self.lines)

    def join(self) -> None:
        self._thread.join(timeout=30)


@pytest.fixture
def make_dev(tmp_path: Path) -> Iterator[tuple[subprocess.Popen[str], Output, dict[str, int], Path]]:
    """`python -m localworld.dev` on free ports with a local.settings.json that overrides the function key and
    still holds an old placeholder; killed at the end if the test did not stop it."""
    ports = {"app": free_port(), "sandbox": _four_free_ports(), "blob": free_port(), "queue": free_port()}
    ports["table"] = free_port()
    settings = tmp_path / "local.settings.json"
    settings.write_text(
        json.dumps(
            {
                "IsEncrypted": False,
                "Values": {
                    "DEVHOST_FUNCTION_KEY": "key-from-local-settings",
                    "BC_TENANT_ID": "<entra tenant id>",
                },
            }
        ),
        encoding="utf-8",
    )
    command = [
        sys.executable, "-m", "localworld.dev", "--port", str(ports["app"]),
        "--sandbox-port-base", str(ports["sandbox"]),
        "--azurite-ports", f"{ports['blob']},{ports['queue']},{ports['table']}",
        "--work-dir", str(tmp_path / "local"), "--settings", str(settings),
    ]  # fmt: skip
    environment = {k: v for k, v in process_environment().items() if not k.startswith(_PREFIXES)}
    process = subprocess.Popen(
        command,
        cwd=REPO_ROOT,
        env={**environment, "PYTHONUNBUFFERED": "1"},
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        start_new_session=True,  # a signal to the test's group never reaches it: only the one sent below
    )
    output = Output(process)
    try:
        yield process, output, ports, tmp_path / "local"
    finally:
        if process.poll() is None:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait()
        output.join()
        if process.stdout is not None:
            process.stdout.close()


def test_make_dev_runs_the_local_world_signs_in_and_stops_everything_on_ctrl_c(
    make_dev: tuple[subprocess.Popen[str], Output, dict[str, int], Path],
) -> None:
    """One command: the banner names the URLs, the key and the sign-in link; the link signs the sandbox user in;
    local.settings.json wins (its key) except placeholders (warned); Ctrl-C stops devhost, sandbox, Azurite."""
    process, output, ports, work_dir = make_dev
    wait_until(
        lambda: "local world is running" in output.text() or process.poll() is not None,
        timeout=120,
        what="make dev to start",
    )
    assert process.poll() is None, output.text()[-3000:]
    text = output.text()
    assert "ignoring placeholder values of BC_TENANT_ID" in text
    sign_in = re.search(r"sign in\s+(\S+)", text)
    assert sign_in is not None
    link = sign_in.group(1)
    assert link == f"http://127.0.0.1:{ports['app']}/api/auth/login?code=key-from-local-settings"
    assert f"health      http://127.0.0.1:{ports['app']}/api/health" in text
    status_page = f"http://127.0.0.1:{ports['app']}/api/status?code=key-from-local-settings"
    assert f"status page {status_page}" in text
    cli = re.search(r"CLI\s+JobsStorage=(.+) bcjobs list", text)
    assert cli is not None
    assert f"QueueEndpoint=http://127.0.0.1:{ports['queue']}/" in cli.group(1)  # the Azurite actually running

    login = httpx.get(link, timeout=30)
    assert login.status_code == 302
    tls = ssl.create_default_context(cafile=str(work_dir / "sandbox" / "sandbox-ca.pem"))
    form = httpx.get(login.headers["Location"], verify=tls, timeout=30)
    fields = {
        html.unescape(k): html.unescape(v)
        for k, v in re.findall(r'name="([^"]+)" value="([^"]*)"', form.text)
    }
    action = re.search(r'action="([^"]+)"', form.text)
    assert action is not None
    callback = httpx.post(html.unescape(action.group(1)), data=fields, timeout=30)
    assert callback.status_code == 200
    assert "Business Central connected" in callback.text
    status = httpx.get(
        f"http://127.0.0.1:{ports['app']}/api/auth/status",
        headers={"x-functions-key": "key-from-local-settings"},
        timeout=30,
    ).json()
    assert (status["state"], status["has_token"]) == ("ok", True)
    assert httpx.get(status_page, timeout=30).status_code == 200  # the banner's status page answers
    _send_every_example_with_the_banners_cli_line(text)

    os.kill(process.pid, signal.SIGINT)  # what Ctrl-C sends (the terminal also sends it to the children)
    process.wait(timeout=90)

    assert process.returncode == 0
    output.join()
    assert output.lines[-1] == "make dev: stopped"
    listening = [
        port for port in [ports["app"], *range(ports["sandbox"], ports["sandbox"] + 4)] if not _refuses(port)
    ]
    listening += [port for port in (ports["queue"], ports["table"]) if not _refuses(port)]
    assert listening == []
    assert not (work_dir / "sandbox.env").exists()  # the sandbox removed its env file on its way out


def _bcjobs(storage: str, *arguments: str) -> subprocess.CompletedProcess[str]:
    """The installed command (`make` put it in .venv from bcjobs/pyproject.toml), as the README's start here runs it."""
    return subprocess.run(
        [str(Path(sys.executable).with_name("bcjobs")), *arguments],
        env={**process_environment(), "JobsStorage": storage},
        capture_output=True, text=True, timeout=60, cwd=REPO_ROOT, check=False,
    )  # fmt: skip


def _send_every_example_with_the_banners_cli_line(banner: str) -> None:
    """The README's step 3: every file of examples/jobs/ through `bcjobs enqueue`, with the storage the banner's
    CLI line names; each ends succeeded, and `bcjobs list` shows them newest first."""
    line = re.search(r"CLI\s+(JobsStorage=.+ bcjobs list)", banner)
    assert line is not None
    storage = shlex.split(line.group(1))[0].removeprefix("JobsStorage=")
    examples = sorted(str(path) for path in (REPO_ROOT / "examples" / "jobs").glob("*.json"))
    sent = _bcjobs(storage, "enqueue", *examples)
    assert sent.returncode == 0, sent.stdout + sent.stderr
    ids = {json.loads(Path(path).read_text(encoding="utf-8"))["jobId"] for path in examples}

    def listed() -> list[dict[str, str]]:
        shown = _bcjobs(storage, "list", "--json")
        assert shown.returncode == 0, shown.stderr
        return [job for job in json.loads(shown.stdout) if job["jobId"] in ids]

    terminal = {"succeeded", "failed", "rejected", "expired", "dead_lettered"}
    wait_until(
        lambda: {j["jobId"] for j in listed() if j["state"] in terminal} == ids, timeout=120, what="examples"
    )
    jobs = listed()
    assert {job["jobId"]: job["state"] for job in jobs} == dict.fromkeys(ids, "succeeded")
    updated = [job["updatedAt"] for job in jobs]
    assert updated == sorted(updated, reverse=True)


def test_make_dev_refuses_a_copied_example_on_other_ports_in_one_line_before_starting_anything(
    tmp_path: Path,
) -> None:
    """The README's other-ports recipe with a copied local.settings.json.example: exit 1 at once, one line naming
    the first conflict and every setting to delete; nothing was started."""
    settings = tmp_path / "local.settings.json"
    settings.write_text(
        (REPO_ROOT / "local.settings.json.example").read_text(encoding="utf-8"), encoding="utf-8"
    )
    app, base = free_port(), _four_free_ports()
    command = [
        sys.executable, "-m", "localworld.dev", "--port", str(app), "--sandbox-port-base", str(base),
        "--azurite-ports", f"{free_port()},{free_port()},{free_port()}",
        "--work-dir", str(tmp_path / "local"), "--settings", str(settings),
    ]  # fmt: skip
    environment = {k: v for k, v in process_environment().items() if not k.startswith(_PREFIXES)}
    done = subprocess.run(
        command, cwd=REPO_ROOT, env=environment, capture_output=True, text=True, timeout=60, check=False
    )
    assert done.returncode == 1
    lines = done.stdout.splitlines()
    assert len(lines) == 1, done.stdout
    assert lines[0].startswith(
        f"make dev: could not start: {settings}: AzureWebJobsStorage points at port 10001"
    )
    assert "KEY_VAULT_URL" in lines[0]
    assert not (tmp_path / "local").exists()  # refused before the work folder, Azurite or the sandbox
    assert _refuses(app)
