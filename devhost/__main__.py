"""python -m devhost --port N [--app function_app:app] [--settings local.settings.json] [--host-json host.json]
                     [--env-file .local/sandbox.env] [--functions jobs_process,jobs_poison]

Runs the app like `func start` would: HTTP under /api, timers, queue triggers on Azurite, the app's code in one
worker process per function group (all HTTP functions; each other function on its own). Stops cleanly on
SIGINT/SIGTERM (in-flight invocations finish first). Exit code 0 after a clean stop, 1 on a startup error.
`--functions` serves only the named functions, as a Flex function group scales on its own instances: run
several devhost processes with `--functions jobs_process` beside one serving the rest to scale one group out.
"""

from __future__ import annotations

import argparse
import logging
import signal
import sys
from collections.abc import Sequence
from pathlib import Path
from types import FrameType

from devhost.catalog import load_app
from devhost.environment import (
    EnvironmentOverlay,
    local_http_port,
    merge_settings,
    process_environment,
    read_env_file,
    read_local_settings,
)
from devhost.errors import DevHostError
from devhost.help_format import DefaultsHelp
from devhost.host import DevHost
from devhost.hostconfig import load_host_config
from devhost.logs import configure_logging

_log = logging.getLogger("devhost")
DEFAULT_PORT = 7071  # Core Tools' default


def _arguments(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m devhost",
        description="Run a Python v2 Function app locally: HTTP routes, timers, queue triggers on Azurite.",
        formatter_class=DefaultsHelp,
    )
    parser.add_argument(
        "--port", type=int, default=None, help="HTTP port (default: Host.LocalHttpPort or 7071; 0 = any)"
    )
    parser.add_argument("--host", default="127.0.0.1", help="interface to listen on")
    parser.add_argument(
        "--app", default="function_app:app", help="module:attribute of the FunctionApp to serve"
    )
    parser.add_argument(
        "--settings",
        type=Path,
        default=Path("local.settings.json"),
        help="Core Tools settings file (Values; the process environment wins)",
    )
    parser.add_argument(
        "--host-json",
        type=Path,
        default=Path("host.json"),
        help="host.json to honour (queues, timeouts, routes)",
    )
    parser.add_argument(
        "--env-file",
        type=Path,
        default=None,
        help="KEY=VALUE settings under local.settings.json (e.g. the sandbox's .local/sandbox.env)",
    )
    parser.add_argument(
        "--log-format",
        choices=["json", "text"],
        default="json",
        help="json: one object a line, as Application Insights gets it; text: for a terminal",
    )
    parser.add_argument(
        "--shutdown-grace", type=float, default=30.0, help="seconds in-flight work may take at stop"
    )
    parser.add_argument(
        "--functions",
        type=_names,
        default=None,
        help="comma-separated function names to serve, the rest not (default: all). Flex scales each "
        "function group on its own instances: e.g. several devhost processes with --functions jobs_process "
        "beside one serving the rest; an unknown name is a startup error",
    )
    return parser.parse_args(argv)


def _names(value: str) -> frozenset[str]:
    return frozenset(name.strip() for name in value.split(",") if name.strip())


def _stop_on_signals(host: DevHost) -> None:
    def handle(signum: int, frame: FrameType | None) -> None:
        del frame
        _log.info("Received %s, shutting down", signal.Signals(signum).name)
        host.request_stop()

    signal.signal(signal.SIGINT, handle)
    signal.signal(signal.SIGTERM, handle)


def main(argv: Sequence[str] | None = None) -> int:
    """Run devhost until a signal arrives; returns the exit code."""
    args = _arguments(argv)
    configure_logging(args.log_format)
    try:
        base = read_env_file(args.env_file) if args.env_file else {}
        settings = merge_settings({**base, **read_local_settings(args.settings)}, process_environment())
        EnvironmentOverlay(settings).apply()  # before the import: the app may read settings at import time
        app = load_app(args.app)
        port = args.port if args.port is not None else (local_http_port(args.settings) or DEFAULT_PORT)
        host = DevHost(
            app,
            settings,
            host_config=load_host_config(args.host_json),
            host=args.host,
            port=port,
            shutdown_grace=args.shutdown_grace,
            functions=args.functions,
            app_reference=args.app,
        )
        _stop_on_signals(host)
        host.start()
    except DevHostError as exc:
        _log.error("devhost could not start: %s", exc)
        return 1
    while not host.wait(timeout=0.5):
        pass
    return 1 if host.failed else 0


if __name__ == "__main__":
    sys.exit(main())
