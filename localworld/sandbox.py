"""The sandbox as a process: `SandboxProcess` runs `python -m sandbox` (Entra ID, Key Vault, BC over TLS), reads
the env file it writes once ready and talks to its admin endpoints (sandbox/admin.py)."""

from __future__ import annotations

import contextlib
import ssl
import subprocess
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import httpx

from devhost.environment import read_env_file
from localworld.errors import WorldError
from localworld.polling import wait_until
from localworld.processes import REPO_ROOT, stop_process, tail


class SandboxProcess:
    """`python -m sandbox` with extra CLI flags; its env file, admin endpoints and log."""

    def __init__(self, folder: Path, flags: Sequence[str] = ()) -> None:
        self.folder = folder
        self.flags = list(flags)
        self.env_file = folder / "sandbox.env"
        self.log = folder / "sandbox.log"
        self.env: dict[str, str] = {}
        self.process: subprocess.Popen[bytes] | None = None
        self._admin: httpx.Client | None = None

    def start(self, timeout: float = 60) -> dict[str, str]:
        """Start it and wait for its env file; the env (CA, URLs, app registration, admin URL)."""
        command = [sys.executable, "-m", "sandbox", "--write-env", str(self.env_file), *self.flags]
        with self.log.open("wb") as sink:
            self.process = subprocess.Popen(command, cwd=REPO_ROOT, stdout=sink, stderr=sink)  # noqa: S603
        process = self.process
        with contextlib.suppress(TimeoutError):  # reported below with the sandbox's log
            wait_until(
                lambda: self.env_file.exists() or process.poll() is not None, timeout=timeout, what="sandbox"
            )
        if not self.env_file.exists():
            self.stop()
            raise WorldError(f"the sandbox did not start: {tail(self.log)}")
        self.env = read_env_file(self.env_file)
        verify = ssl.create_default_context(cafile=self.env["LOCAL_CA_BUNDLE"])
        self._admin = httpx.Client(
            base_url=self.env["SANDBOX_ADMIN_URL"].rstrip("/"), verify=verify, timeout=30
        )
        return self.env

    @property
    def pid(self) -> int:
        """The sandbox's process id."""
        if self.process is None:
            raise WorldError("the sandbox is not running")
        return self.process.pid

    def admin(self, path: str, payload: dict[str, Any] | None = None) -> dict[str, Any]:
        """GET (no payload) or POST one of the admin endpoints (sandbox/admin.py); its JSON answer."""
        if self._admin is None:
            raise WorldError("the sandbox is not running")
        response = self._admin.get(path) if payload is None else self._admin.post(path, json=payload)
        if response.status_code != 200:
            raise WorldError(f"sandbox admin {path} answered {response.status_code}: {response.text[:300]}")
        answer: dict[str, Any] = response.json()
        return answer

    def stats(self) -> dict[str, Any]:
        """Counters of Entra, Key Vault and BC."""
        return self.admin("/stats")

    def stop(self) -> None:
        """SIGTERM, then SIGKILL after the grace."""
        if self._admin is not None:
            self._admin.close()
            self._admin = None
        if self.process is not None:
            stop_process(self.process)
