"""The local world started as one: Azurite, the sandbox process and a counting proxy in front of each of Azurite's
queue and table services, stopped in reverse; devhost instances started on it as a pool.

bench/ builds on `World` (bench/world.py adds resets, enqueuing and counters). The demo starts the same pieces
one step at a time (demo/steps.py; each step is a line of its transcript, and an S2S run puts Azurite behind the
sandbox's certificate) with `start_proxies` and `InstancePool`. The soak keeps its own world (soak/world.py): an
in-process sandbox whose counters it reads directly, a file-backed Azurite it restarts, and instances it kills
and restarts one by one.
"""

from __future__ import annotations

import contextlib
import tempfile
import uuid
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Self

from localworld.azurite import Azurite, AzuriteEndpoints
from localworld.instances import InstancePool
from localworld.proxy import CountingProxy, ProxyTls, proxied_connection_string
from localworld.sandbox import SandboxProcess


def start_proxies(
    azurite: AzuriteEndpoints, tls: ProxyTls | None = None
) -> tuple[CountingProxy, CountingProxy]:
    """A started counting proxy in front of Azurite's queue service and one in front of its table service
    (`tls`: terminate TLS with the sandbox's certificate and re-encrypt to Azurite)."""
    queue = CountingProxy(f"{azurite.scheme}://127.0.0.1:{azurite.queue_port}", tls).start()
    try:
        table = CountingProxy(f"{azurite.scheme}://127.0.0.1:{azurite.table_port}", tls).start()
    except BaseException:
        queue.stop()
        raise
    return queue, table


@dataclass
class World:
    """The running world; `World.started()` builds it and takes it down."""

    azurite: AzuriteEndpoints
    sandbox: SandboxProcess
    proxies: tuple[CountingProxy, CountingProxy]  # queue, table
    folder: Path  # the run's temporary folder: the sandbox's env file and log, the instances' logs

    @classmethod
    @contextlib.contextmanager
    def started(cls, prefix: str = "world-", sandbox_flags: Sequence[str] = ()) -> Iterator[Self]:
        """Azurite, the sandbox (with `sandbox_flags`) and the proxies, stopped on exit."""
        with tempfile.TemporaryDirectory(prefix=prefix) as work, Azurite() as azurite:
            sandbox = SandboxProcess(Path(work), sandbox_flags)
            try:
                sandbox.start()
                with _proxies(azurite) as proxies:
                    yield cls(azurite, sandbox, proxies, Path(work))
            finally:
                sandbox.stop()

    @property
    def proxied(self) -> str:
        """The connection string through the counting proxies."""
        return proxied_connection_string(self.proxies[0].port, self.proxies[1].port)

    @contextlib.contextmanager
    def instances(
        self,
        settings: dict[str, str],
        count: int,
        app: str = "function_app:app",
        functions: tuple[str, ...] = (),
    ) -> Iterator[InstancePool]:
        """`count` devhost instances on `app` (only `functions`, when given); stopped (SIGTERM, in-flight work
        finishes) on exit."""
        log_dir = self.folder / f"logs-{uuid.uuid4().hex[:6]}"
        log_dir.mkdir()
        pool = InstancePool(settings, log_dir, count=count, app=app, functions=functions)
        if settings.get("BC_AUTH_MODE") == "delegated":  # the callback is the first instance's
            pool.settings = {**settings, "BC_REDIRECT_URI": f"{pool.base_url}/api/auth/callback"}
        try:
            yield pool.start()
        finally:
            pool.stop(grace=60)


@contextlib.contextmanager
def _proxies(azurite: AzuriteEndpoints) -> Iterator[tuple[CountingProxy, CountingProxy]]:
    proxies = start_proxies(azurite)
    try:
        yield proxies
    finally:
        for proxy in proxies:
            proxy.stop()
