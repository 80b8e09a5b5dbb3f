"""`make dev`: the local world in one command — Azurite, the sandbox and devhost on function_app.py, wired together.

    python -m localworld.dev [--port 7071] [--sandbox-port-base 7443] [--azurite-ports 10000,10001,10002]
                          [--work-dir .local] [--settings local.settings.json]

1. Azurite (blob, queue, table) on its default ports, in memory — so `UseDevelopmentStorage=true` reaches it; an
   Azurite already answering there is used as it is.
2. The sandbox (Entra ID, Key Vault, BC over TLS) on stable ports (7443-7446) with its CA in `.local/sandbox/`:
   the same values every run, the ones `make sandbox` and local.settings.json.example use.
3. devhost on function_app.py with the settings, lowest precedence first: make dev's own (storage, delegated mode,
   the callback, keys), the sandbox's env file, local.settings.json (optional: make dev needs none; placeholders
   such as `<tenant id>` skipped with a warning), then the process environment (as Core Tools). A setting in the
   file or the environment that points at a local port make dev does not run is refused in one line before
   anything starts (the example's URLs after `--sandbox-port-base 8443`, say).
   The merged settings are written to `.local/dev.settings.json` (it holds the sandbox's client secret and the
   function key, like `.local/sandbox.env`; `.local/` is git-ignored).
4. Prints the values in effect: the status page, the sign-in link, the CLI line, the function key; Ctrl-C (or
   SIGTERM) stops devhost, the sandbox and Azurite, in that order. Exit code 0 after a clean stop, 1 when something could not start.
"""

from __future__ import annotations

import argparse
import json
import re
import secrets
import shlex
import signal
import socket
import subprocess
import sys
import tempfile
from collections.abc import Callable, Mapping, Sequence
from contextlib import ExitStack
from dataclasses import dataclass
from pathlib import Path
from types import FrameType
from typing import IO
from urllib.parse import urlsplit

import httpx

from devhost.environment import process_environment, read_env_file, read_local_settings
from devhost.errors import ConfigError, StartupError
from devhost.help_format import DefaultsHelp
from localworld.azurite import AzuriteEndpoints
from localworld.instances import devhost_command
from localworld.polling import wait_until
from localworld.processes import stop_process

REPO_ROOT = Path(__file__).resolve().parent.parent
DEFAULT_PORT = 7071
DEFAULT_SANDBOX_PORT_BASE = 7443  # Entra 7443, Key Vault 7444, BC 7445, the sandbox's admin API 7446
DEFAULT_AZURITE_PORTS = (10000, 10001, 10002)  # blob, queue, table: Azurite's own defaults
HOST = "127.0.0.1"
# A value copied from local.settings.json.example's older placeholders, e.g. "<entra tenant id>".
_PLACEHOLDER = re.compile(r"<[^<>]+>")
# What the sandbox's env file holds that is about the sandbox itself, not an app setting.
_SANDBOX_ONLY = ("SANDBOX_",)


@dataclass(frozen=True, slots=True)
class DevOptions:
    """Where everything listens and lives."""

    port: int = DEFAULT_PORT
    sandbox_port_base: int = DEFAULT_SANDBOX_PORT_BASE
    azurite_ports: tuple[int, int, int] = DEFAULT_AZURITE_PORTS
    work_dir: Path = REPO_ROOT / ".local"
    settings_file: Path = REPO_ROOT / "local.settings.json"

    @property
    def base_url(self) -> str:
        """devhost's URL."""
        return f"http://{HOST}:{self.port}"

    @property
    def sandbox_env_file(self) -> Path:
        """The env file the sandbox writes once it is ready (as `make sandbox` does)."""
        return self.work_dir / "sandbox.env"

    @property
    def merged_settings_file(self) -> Path:
        """The settings devhost runs with (Core Tools' format)."""
        return self.work_dir / "dev.settings.json"


def own_settings(options: DevOptions, azurite: AzuriteEndpoints, function_key: str) -> dict[str, str]:
    """What make dev sets itself: storage, delegated mode with its callback, the keys, the default schedule."""
    return {
        "FUNCTIONS_WORKER_RUNTIME": "python",
        "AzureWebJobsStorage": azurite.connection_string,
        "JobsStorage": azurite.connection_string,
        "BC_AUTH_MODE": "delegated",
        "BC_REDIRECT_URI": f"{options.base_url}/api/auth/callback",
        # where the sandbox's BC sends change notifications: devhost's own http://127.0.0.1 (the sandbox allows it)
        "BC_NOTIFICATION_BASE_URL": options.base_url,
        "KEY_VAULT_CREDENTIAL": "client_secret",
        "DEVHOST_FUNCTION_KEY": function_key,
        "DEVHOST_MASTER_KEY": secrets.token_urlsafe(24),
    }


def local_overrides(path: Path, warn: Callable[[str], None]) -> dict[str, str]:
    """local.settings.json's Values that override make dev's; placeholders skipped and a missing file named."""
    if not path.exists():
        return {}  # make dev needs no file: its own settings and the sandbox's are complete
    values = read_local_settings(path)
    placeholders = sorted(key for key, value in values.items() if _PLACEHOLDER.search(value))
    if placeholders:
        warn(
            f"warning: {path}: ignoring placeholder values of {', '.join(placeholders)} "
            "(make dev sets them; fill them in or delete them)"
        )
    return {key: value for key, value in values.items() if key not in placeholders}


_LOOPBACK = ("127.0.0.1", "localhost", "::1")
_STORAGE_SETTINGS = ("AzureWebJobsStorage", "JobsStorage")
_DEVELOPMENT_STORAGE = "UseDevelopmentStorage=true"


def _fixed_ports(options: DevOptions) -> dict[str, tuple[int, str]]:
    """The settings make dev points at what it starts: the port each must name, and what listens there."""
    base = options.sandbox_port_base
    return {
        "BC_AUTHORITY_HOST": (base, "the sandbox's Entra"),
        "KEY_VAULT_URL": (base + 1, "the sandbox's Key Vault"),
        "BC_API_BASE_URL": (base + 2, "the sandbox's BC"),
        "BC_REDIRECT_URI": (options.port, "devhost"),
        "BC_NOTIFICATION_BASE_URL": (options.port, "devhost"),
    }


def _loopback_port(value: str) -> int | None:
    """The port of an http(s) URL on this machine; None for anything else."""
    try:
        parsed = urlsplit(value.strip())
        port = parsed.port
    except ValueError:
        return None
    if parsed.scheme not in ("http", "https") or parsed.hostname not in _LOOPBACK:
        return None
    return port or (443 if parsed.scheme == "https" else 80)


def _storage_ports(value: str) -> list[int]:
    """The local ports a storage connection string names (UseDevelopmentStorage=true: Azurite's defaults)."""
    if value.replace(" ", "").lower() == _DEVELOPMENT_STORAGE.lower():
        return list(DEFAULT_AZURITE_PORTS[1:])  # the app uses queues and tables
    parts = (part.partition("=") for part in value.split(";"))
    ports = (_loopback_port(url) for key, _, url in parts if key.strip().endswith("Endpoint"))
    return [port for port in ports if port is not None]


def _conflict(key: str, value: str, options: DevOptions) -> str | None:
    """Why one setting points at something make dev did not start, or None."""
    if key in _STORAGE_SETTINGS:
        wrong = [port for port in _storage_ports(value) if port not in options.azurite_ports]
        ports = ",".join(str(port) for port in options.azurite_ports)
        return f"{key} points at port {wrong[0]}, but make dev runs Azurite on {ports}" if wrong else None
    port = _loopback_port(value)
    fixed = _fixed_ports(options).get(key)
    if fixed is not None and port is not None and port != fixed[0]:
        return f"{key} points at port {port}, but {fixed[1]} listens on {fixed[0]}"
    started = {options.port, *range(options.sandbox_port_base, options.sandbox_port_base + 5)}
    if fixed is None and port is not None and port not in started | set(options.azurite_ports):
        return f"{key} points at port {port}, where make dev starts nothing"
    return None


def check_conflicts(local: Mapping[str, str], path: Path, options: DevOptions) -> None:
    """Refuse, in one line, settings in local.settings.json that point at a port make dev does not serve."""
    found = [(key, why) for key, value in local.items() if (why := _conflict(key, value, options))]
    if not found:
        return
    keys = ", ".join(key for key, _ in found)
    raise ConfigError(
        f"{path}: {found[0][1]}; delete {keys} from {path} (make dev sets them for the ports it runs) "
        "or give make dev the ports they name"
    )


def check_environment(environment: Mapping[str, str], options: DevOptions) -> None:
    """The same for the process environment, which wins over every file in devhost (as under Core Tools)."""
    checked = (*_fixed_ports(options), *_STORAGE_SETTINGS)
    found = [
        (key, why)
        for key in checked
        if key in environment and (why := _conflict(key, environment[key], options))
    ]
    if found:
        keys = " ".join(key for key, _ in found)
        raise ConfigError(
            f"the environment: {found[0][1]}; `unset {keys}` (make dev sets them) and run it again"
        )


def in_effect(settings: Mapping[str, str], environment: Mapping[str, str]) -> dict[str, str]:
    """The values devhost runs with: the merged settings, each overridden by the process environment's."""
    return {key: environment.get(key, value) for key, value in settings.items()}


def merge(own: Mapping[str, str], sandbox: Mapping[str, str], local: Mapping[str, str]) -> dict[str, str]:
    """make dev's settings < the sandbox's < local.settings.json (the process environment wins in devhost)."""
    app_sandbox = {k: v for k, v in sandbox.items() if not k.startswith(_SANDBOX_ONLY)}
    return {**own, **app_sandbox, **local}


def cli_storage(options: DevOptions, value: str) -> str:
    """JobsStorage as the CLI line shows it: the short form at Azurite's default ports; never an account key
    other than Azurite's well-known one."""
    is_azurite = "devstoreaccount1" in value or value.replace(" ", "").lower() == _DEVELOPMENT_STORAGE.lower()
    if is_azurite and options.azurite_ports == DEFAULT_AZURITE_PORTS:
        return _DEVELOPMENT_STORAGE
    if is_azurite or "AccountKey=" not in value:
        return shlex.quote(value)
    return f"'<JobsStorage from {options.merged_settings_file}>'"


def banner(options: DevOptions, settings: Mapping[str, str], sandbox: Mapping[str, str]) -> str:
    """What make dev prints once everything answers: the values in effect (local.settings.json's included)."""
    key = settings.get("DEVHOST_FUNCTION_KEY", "")
    api = f"{options.base_url}/api"
    ca = settings.get("LOCAL_CA_BUNDLE", "")
    storage = cli_storage(options, settings.get("JobsStorage", ""))
    return "\n".join(
        [
            "",
            "make dev: the local world is running (Ctrl-C stops devhost, the sandbox and Azurite)",
            f"  status page {api}/status?code={key}   (jobs, sign-in state, failures)",
            f"  sign in     {api}/auth/login?code={key}",
            f"              the sandbox signs in {sandbox.get('SANDBOX_USER', '?')} at once; a browser must trust "
            f"{ca} or run with --ignore-certificate-errors",
            f"  CLI         JobsStorage={storage} bcjobs list",
            f"  app         {api}   function key: {key} (header x-functions-key or ?code=)",
            f"  health      {api}/health",
            second_connection(options, key, settings, sandbox),
            f"  sandbox     Entra {settings.get('BC_AUTHORITY_HOST')}, Key Vault {settings.get('KEY_VAULT_URL')}, "
            f"BC {settings.get('BC_API_BASE_URL')}, admin {sandbox.get('SANDBOX_ADMIN_URL')}",
            f"  Azurite     blob :{options.azurite_ports[0]}, queue "
            f":{options.azurite_ports[1]}, table :{options.azurite_ports[2]}",
            f"  settings    {options.merged_settings_file} (sandbox log: {options.work_dir / 'sandbox.log'})",
            "",
        ]
    )


def second_connection(
    options: DevOptions, key: str, settings: Mapping[str, str], sandbox: Mapping[str, str]
) -> str:
    """One line: how to register a second connection (issue 21) with the CLI, in the sandbox's customer tenant's
    environment when its env file lists one, then its admin-consent link and its check."""
    others = [
        env
        for env in json.loads(sandbox.get("SANDBOX_BC_ENVIRONMENTS") or "[]")
        if env.get("tenant") != settings.get("BC_TENANT_ID")
    ]
    tenant, environment = (
        (others[0]["tenant"], others[0]["environment"]) if others else ("TENANT", "production")
    )
    client = settings.get("BC_CLIENT_ID") or "CLIENT_ID"
    return (
        f"  connection  BCJOBS_API_URL={options.base_url} BCJOBS_FUNCTION_KEY={key} bcjobs connections put customer "
        f"--tenant-id {tenant} --environment {environment} --client-id {client}; then `bcjobs connections consent "
        "customer` (its tenant admin's consent link) and `bcjobs connections check customer`; jobs name it with "
        '"connection": "customer"'
    )


def _listening(port: int) -> bool:
    try:
        with socket.create_connection((HOST, port), timeout=0.5):
            return True
    except OSError:
        return False


def _function_key(options: DevOptions) -> str:
    """A function key kept in the work folder, so links and curl commands stay valid across runs."""
    path = options.work_dir / "dev.function-key"
    if path.exists() and path.read_text(encoding="utf-8").strip():
        return path.read_text(encoding="utf-8").strip()
    key = secrets.token_urlsafe(24)
    path.write_text(key, encoding="utf-8")
    return key


class DevWorld:
    """The three processes, started in order and stopped in reverse."""

    def __init__(self, options: DevOptions, out: Callable[[str], None] = print) -> None:
        self.options = options
        self._out = out
        self._cleanup = ExitStack()
        self.devhost: subprocess.Popen[bytes] | None = None
        self.settings: dict[str, str] = {}
        self.started = False  # past the settings check: something may be running

    def start(self) -> None:
        """Azurite, the sandbox, devhost; raises StartupError naming what did not start."""
        local = local_overrides(self.options.settings_file, self._out)
        check_conflicts(local, self.options.settings_file, self.options)  # before anything starts
        check_environment(process_environment(), self.options)
        self.started = True
        self.options.work_dir.mkdir(parents=True, exist_ok=True)
        azurite = self._start_azurite()
        sandbox = self._start_sandbox()
        self.settings = merge(
            own_settings(self.options, azurite, _function_key(self.options)), sandbox, local
        )
        self.options.merged_settings_file.write_text(
            json.dumps({"IsEncrypted": False, "Values": self.settings}, indent=2), encoding="utf-8"
        )
        self._start_devhost()
        self._out(banner(self.options, in_effect(self.settings, process_environment()), sandbox))

    def stop(self) -> None:
        """Stop everything that was started (devhost first: it finishes in-flight work)."""
        self._cleanup.close()

    def _spawn(
        self,
        command: Sequence[str],
        grace: float,
        output: IO[bytes] | int | None = subprocess.DEVNULL,
        env: Mapping[str, str] | None = None,
        cwd: Path = REPO_ROOT,
    ) -> subprocess.Popen[bytes]:
        """Start a child (stopped at cleanup: SIGTERM, then SIGKILL after `grace` seconds)."""
        process = subprocess.Popen(  # noqa: S603 - fixed argv: node_modules' Azurite or this interpreter
            list(command), cwd=cwd, stdout=output, stderr=output, env=env
        )
        self._cleanup.callback(stop_process, process, grace)
        return process

    def _start_azurite(self) -> AzuriteEndpoints:
        blob, queue, table = self.options.azurite_ports
        endpoints = AzuriteEndpoints(HOST, queue, table)
        if _listening(queue) and _listening(table):
            self._out(f"make dev: Azurite already answers on :{queue} and :{table}; using it")
            return endpoints
        binary = REPO_ROOT / "node_modules" / ".bin" / "azurite"
        if not binary.exists():
            raise StartupError(f"{binary} not found: run `make deps` (npm ci)")
        command = [
            str(binary), "--silent", "--inMemoryPersistence", "--skipApiVersionCheck", "--disableTelemetry",
            "--blobHost", HOST, "--blobPort", str(blob),
            "--queueHost", HOST, "--queuePort", str(queue), "--tableHost", HOST, "--tablePort", str(table),
        ]  # fmt: skip
        # In memory; its cwd is a temporary folder (Azurite may write its debug files there).
        workdir = self._cleanup.enter_context(tempfile.TemporaryDirectory(prefix="azurite-dev-"))
        process = self._spawn(command, 10, cwd=Path(workdir))
        self._wait(
            "Azurite", process, lambda: _listening(queue) and _listening(table), f"ports {queue}, {table}"
        )
        return endpoints

    def _start_sandbox(self) -> dict[str, str]:
        env_file = self.options.sandbox_env_file
        env_file.unlink(missing_ok=True)  # a crashed earlier run's file would be trusted otherwise
        log = self._cleanup.enter_context((self.options.work_dir / "sandbox.log").open("wb"))
        command = [
            sys.executable, "-m", "sandbox", "--write-env", str(env_file),
            "--work-dir", str(self.options.work_dir / "sandbox"), "--port-base", str(self.options.sandbox_port_base),
        ]  # fmt: skip
        process = self._spawn(command, 15, output=log)
        self._wait("the sandbox", process, env_file.exists, f"its env file {env_file}")
        return read_env_file(env_file)

    def _start_devhost(self) -> None:
        command = devhost_command(
            self.options.port, "function_app:app",
            "--settings", str(self.options.merged_settings_file), "--log-format", "text",
        )  # fmt: skip
        self.devhost = self._spawn(
            command, 40, output=None, env=process_environment()
        )  # logs to the terminal
        self._wait("devhost", self.devhost, self._health_answers, f"{self.options.base_url}/api/health")

    def _health_answers(self) -> bool:
        try:
            return httpx.get(f"{self.options.base_url}/api/health", timeout=2).status_code == 200
        except httpx.HTTPError:
            return False

    def _wait(
        self, name: str, process: subprocess.Popen[bytes], ready: Callable[[], bool], what: str
    ) -> None:
        try:
            wait_until(lambda: ready() or process.poll() is not None, timeout=90, what=f"{name} ({what})")
        except TimeoutError as exc:
            raise StartupError(str(exc)) from None
        if process.poll() is not None:
            raise StartupError(
                f"{name} exited with {process.returncode} while starting (is a port in use? "
                f"see {self.options.work_dir / 'sandbox.log'} for the sandbox)"
            )


def _arguments(argv: Sequence[str] | None) -> DevOptions:
    parser = argparse.ArgumentParser(
        prog="python -m localworld.dev", description=__doc__.splitlines()[0], formatter_class=DefaultsHelp
    )
    parser.add_argument("--port", type=int, default=DEFAULT_PORT, help="devhost's HTTP port")
    parser.add_argument(
        "--sandbox-port-base",
        type=int,
        default=DEFAULT_SANDBOX_PORT_BASE,
        help="the sandbox's Entra, Key Vault, BC and admin ports: base..base+3",
    )
    parser.add_argument(
        "--azurite-ports",
        default=",".join(str(p) for p in DEFAULT_AZURITE_PORTS),
        help="Azurite's blob,queue,table ports",
    )
    parser.add_argument(
        "--work-dir",
        type=Path,
        default=REPO_ROOT / ".local",
        help="where the sandbox's CA, its env file and log, and the merged settings go",
    )
    parser.add_argument(
        "--settings",
        type=Path,
        default=REPO_ROOT / "local.settings.json",
        help="optional overrides of make dev's settings (Core Tools' format); one pointing at a port make dev does not run is refused",
    )
    args = parser.parse_args(argv)
    ports = tuple(int(port) for port in args.azurite_ports.split(","))
    if len(ports) != 3:
        parser.error("--azurite-ports takes three ports: blob,queue,table")
    return DevOptions(
        args.port, args.sandbox_port_base, (ports[0], ports[1], ports[2]), args.work_dir, args.settings
    )


def _stop_on_sigterm() -> None:
    def handle(signum: int, frame: FrameType | None) -> None:
        del signum, frame
        raise KeyboardInterrupt

    signal.signal(signal.SIGTERM, handle)


def main(argv: Sequence[str] | None = None, out: Callable[[str], None] = print) -> int:
    """Run the local world until Ctrl-C/SIGTERM or until devhost exits; the exit code."""
    options = _arguments(argv)
    _stop_on_sigterm()
    world = DevWorld(options, out)
    try:
        world.start()
        devhost = world.devhost
        while devhost is not None and devhost.poll() is None:
            try:
                devhost.wait(timeout=1)
            except subprocess.TimeoutExpired:
                continue
        if devhost is not None and devhost.returncode != 0:
            out(f"make dev: devhost exited with {devhost.returncode}; stopping the rest")
            return 1
        return 0
    except KeyboardInterrupt:
        out("make dev: stopping devhost, the sandbox and Azurite")
        return 0
    except (StartupError, ConfigError) as exc:
        out(f"make dev: could not start: {exc}")
        return 1
    finally:
        world.stop()
        if world.started:
            out("make dev: stopped")


if __name__ == "__main__":
    sys.exit(main())
