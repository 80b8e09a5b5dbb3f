"""The template process: imports the third-party packages once, then forks each worker process ready to import the app.

Why: a worker process imports the app's SDKs before it can serve (azure-storage, azure-data-tables, Key Vault, MSAL,
httpx, pydantic, OpenTelemetry: about 0.75 s of CPU on this project's 2-core machines), and devhost starts one per
function group, per devhost, per restart; the test suite starts several hundred. A fork of a process that has
already imported those packages is ready in milliseconds. multiprocessing's forkserver does the same for its own
children (docs.python.org/3/library/multiprocessing.html, "forkserver"; `set_forkserver_preload`).

What the worker does is unchanged (devhost/worker.py): in a new session, from devhost's folder, with exactly the app
settings as its environment (`os.environ` replaced before anything of the app is imported), it imports the app
itself and serves its socket. The real host starts each worker as a new process; the only difference is that the
preloaded third-party modules are already in `sys.modules`. None of them reads the environment at import (they read
it when a client is built), and nothing of the app or of `shared` is preloaded: the app reads its settings at import.
`random` reseeds itself in a forked child (random.py registers `os.register_at_fork`); ids come from `os.urandom`.

Protocol, over a SOCK_SEQPACKET socketpair (one datagram per message, so no framing): devhost sends a pickled
`Spawn` with the worker's socket as an SCM_RIGHTS file descriptor; the template forks, answers the child's pid and
closes its copy of the socket, so that the worker's end of file means the worker exited. The template reaps its
children (SIGCHLD) and exits when devhost's end closes; each worker notices devhost's end on its own socket.
"""

from __future__ import annotations

import argparse
import atexit
import contextlib
import importlib
import os
import pickle
import signal
import socket
import subprocess
import sys
import threading
import traceback
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

from devhost.environment import worker_environment

# The heavy third-party packages an app of this repo imports (requirements.in); one missing is skipped. Left out on
# purpose: aiohttp, and azure-storage-queue which imports it (sync or aio): aiohttp builds its verifying SSL context
# when imported (aiohttp/connector.py `_SSL_CONTEXT_VERIFIED`), from the SSL_CERT_FILE of that moment, so a worker
# must import it under its own settings (the managed-identity world sets SSL_CERT_FILE to the local CA).
# Read at import by what is preloaded, and so the template's value rather than the settings': only debugging switches
# (MULTIDICT_NO_EXTENSIONS, YARL_NO_EXTENSIONS, PROPCACHE_NO_EXTENSIONS, PSUTIL_DEBUG) and Windows' SYSTEMDRIVE.
# A checked list: tests/integration/devhost/test_template.py fails when a preload starts importing aiohttp.
PRELOAD = (
    "azure.functions",
    "azure.core.pipeline.transport",
    "azure.data.tables.aio",
    "azure.keyvault.secrets.aio",
    "azure.identity.aio",
    "msal",
    "httpx",
    "pydantic",
    "opentelemetry.sdk.metrics",
    "opentelemetry.sdk.trace",
    "azure.monitor.opentelemetry",
)
_MAX_MESSAGE = 1 << 20  # a Spawn carries the app settings: a few KiB


@dataclass(frozen=True, slots=True)
class Spawn:
    """One worker to fork: its arguments after `python -m devhost.worker`, its environment and folder."""

    argv: tuple[str, ...]
    environment: Mapping[str, str] = field(repr=False)  # app settings: secrets
    cwd: str


def preload(modules: Sequence[str]) -> dict[str, str]:
    """Import what can be imported (a missing package costs the worker nothing); the environment variables the
    imports set, which a worker must set again after it takes its settings (azure-monitor-opentelemetry sets
    AZURE_MONITOR_DISTRO_VERSION when imported, and its exporter reports it)."""
    before = dict(os.environ)
    for name in modules:
        with contextlib.suppress(ImportError):
            importlib.import_module(name)
    return {name: value for name, value in os.environ.items() if before.get(name) != value}


def _reap(_signum: int, _frame: object) -> None:
    """Collect every child that has exited (the workers are the template's children, not devhost's)."""
    with contextlib.suppress(ChildProcessError):
        while os.waitpid(-1, os.WNOHANG)[0] > 0:
            pass


def serve(control: socket.socket, set_by_imports: Mapping[str, str]) -> None:
    """Fork a worker per Spawn until devhost's end closes."""
    signal.signal(signal.SIGCHLD, _reap)
    while True:
        message, fds, _flags, _address = socket.recv_fds(control, _MAX_MESSAGE, 1)
        if not message:
            return
        spawn: Spawn = pickle.loads(message)  # noqa: S301 - devhost, our parent, over our own socketpair
        pid = os.fork()
        if pid == 0:
            _become_worker(control, spawn, fds[0], set_by_imports)
        os.close(fds[0])
        control.send(pickle.dumps(pid))


def _become_worker(control: socket.socket, spawn: Spawn, fd: int, set_by_imports: Mapping[str, str]) -> None:
    """In the child: the worker's session, folder and environment, then devhost.worker's main; never returns."""
    code = 1
    try:
        control.close()
        signal.signal(signal.SIGCHLD, signal.SIG_DFL)
        os.setsid()  # Ctrl-C reaches devhost, which stops its workers itself (as start_new_session=True did)
        os.chdir(spawn.cwd)
        os.environ.clear()
        os.environ.update(spawn.environment)
        os.environ.update(set_by_imports)  # as the imports would, had the worker made them under its settings
        from devhost import worker

        code = worker.main([*spawn.argv, "--fd", str(fd)])
    except BaseException:  # the worker's own failure reports reach devhost; this is a failure to become one
        traceback.print_exc()
    finally:
        os._exit(code)


class Template:
    """devhost's side: one template process, started on first use, shared by every devhost in this process."""

    def __init__(self, cwd: str) -> None:
        ours, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
        with theirs:
            self._process = subprocess.Popen(  # noqa: S603 - fixed argv: this interpreter running the template
                [sys.executable, "-m", "devhost.template", "--fd", str(theirs.fileno())],
                pass_fds=(theirs.fileno(),),
                cwd=cwd,
                env=worker_environment({}),  # the process basics only; each worker gets its app settings
                start_new_session=True,
            )
        self._control = ours
        self._lock = threading.Lock()

    def spawn(self, spawn: Spawn, worker_end: socket.socket) -> int:
        """Fork a worker holding `worker_end`; its pid. OSError or EOFError if the template is gone."""
        with self._lock:
            socket.send_fds(self._control, [pickle.dumps(spawn)], [worker_end.fileno()])
            answer = self._control.recv(_MAX_MESSAGE)
        if not answer:
            raise EOFError("the template process exited")
        pid: int = pickle.loads(answer)  # noqa: S301 - our own child process, over our own socketpair
        return pid

    def close(self) -> None:
        """End of file to the template, which exits; its workers follow their own devhost."""
        self._control.close()
        with contextlib.suppress(subprocess.TimeoutExpired):
            self._process.wait(timeout=5)
        if self._process.returncode is None:
            self._process.kill()
            self._process.wait()


_shared: dict[str, Template] = {}  # this process's template, once started
_shared_lock = threading.Lock()


def fork_worker(spawn: Spawn, worker_end: socket.socket) -> int:
    """Fork a worker from this process's template; its pid. A template that died is started again, once."""
    with _shared_lock:
        try:
            return _template(spawn.cwd).spawn(spawn, worker_end)
        except (OSError, EOFError):
            _shared.pop("template").close()
            return _template(spawn.cwd).spawn(spawn, worker_end)


def warm(cwd: str) -> None:
    """Start this process's template now (a fork of Popen, milliseconds), so that it has preloaded by the time the
    first invocation needs a worker."""
    with _shared_lock:
        _template(cwd)


def _template(cwd: str) -> Template:
    if "template" not in _shared:
        _shared["template"] = Template(cwd)
        atexit.register(_shared["template"].close)
    return _shared["template"]


def main(argv: Sequence[str] | None = None) -> int:
    """`python -m devhost.template --fd N`: preload, then serve devhost's socket."""
    parser = argparse.ArgumentParser(prog="python -m devhost.template")
    parser.add_argument(
        "--fd", type=int, required=True, help="this end of devhost's SOCK_SEQPACKET socketpair"
    )
    args = parser.parse_args(argv)
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    serve(socket.socket(fileno=args.fd), preload(PRELOAD))
    return 0


if __name__ == "__main__":
    sys.exit(main())
