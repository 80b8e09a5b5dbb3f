"""`python -m sandbox --write-env PATH`: serve the sandbox, write PATH once ready, run until SIGTERM/SIGINT."""

from __future__ import annotations

import argparse
import signal
import sys
import threading
from pathlib import Path

from sandbox.config import FederatedCredentialConfig, SandboxConfig
from sandbox.sandbox import Sandbox


class _DefaultsHelp(argparse.ArgumentDefaultsHelpFormatter):
    """Shows each option's default, except where there is none to show (None: the help says what unset means)."""

    def _get_help_string(self, action: argparse.Action) -> str | None:
        if action.default is None or action.required:
            return action.help
        return super()._get_help_string(action)


def parse_args(argv: list[str]) -> argparse.Namespace:
    """The CLI's options (sandbox/README.md, "Run it")."""
    parser = argparse.ArgumentParser(
        prog="python -m sandbox", description=__doc__, formatter_class=_DefaultsHelp
    )
    parser.add_argument(
        "--write-env", type=Path, required=True, help="where to write KEY=VALUE lines once ready"
    )
    parser.add_argument(
        "--seed", type=int, default=1, help="seeds ids, secrets, data and fault draws (same seed, same world)"
    )
    parser.add_argument(
        "--token-lifetime",
        type=float,
        default=None,
        help="access token lifetime in seconds (unset: random 60-90 min, as Entra)",
    )
    parser.add_argument("--bc-rate-limit", type=int, default=6000, help="requests per window per identity")
    parser.add_argument(
        "--bc-window-seconds", type=float, default=300.0, help="BC's sliding window (compress it for tests)"
    )
    parser.add_argument(
        "--bc-time-scale",
        type=float,
        default=1.0,
        help="divides BC's window, queue timeout, webhook debounce and webhook retry delays",
    )
    parser.add_argument("--bc-latency-ms", type=float, default=0.0, help="added to every BC answer")
    parser.add_argument(
        "--bc-latency-jitter-ms", type=float, default=0.0, help="random extra latency, up to this much"
    )
    parser.add_argument(
        "--bc-max-in-flight", type=int, default=5, help="BC requests in flight per identity before 429"
    )
    parser.add_argument(
        "--bc-custom-api",
        action="append",
        default=None,
        metavar="PUBLISHER/GROUP/VERSION",
        help="serve this custom API next to api/v2.0 (repeatable; replaces the default contoso/app/v1.0; '' for none)",
    )
    parser.add_argument(
        "--bc-webhook-delay-seconds",
        type=float,
        default=30.0,
        help="BC's webhook debounce after the first change (divided by --bc-time-scale)",
    )
    parser.add_argument(
        "--bc-webhook-max-notifications",
        type=int,
        default=1000,
        help="pending notification items per subscription above which BC sends one 'collection' notification",
    )
    parser.add_argument(
        "--extra-clients", type=int, default=0, help="extra app registrations (separate BC identities)"
    )
    parser.add_argument(
        "--federated-app",
        type=int,
        action="append",
        default=None,
        metavar="N",
        help="app N (0 = primary, n = extra client n) trusts the user-assigned managed identity as its federated "
        "credential and holds no client secret (repeatable)",
    )
    parser.add_argument(
        "--extra-tenants",
        type=int,
        default=1,
        help="customer tenants beside the primary one (each with BC production)",
    )
    parser.add_argument(
        "--consent-extra-tenants",
        action="store_true",
        help="consent every app in the customer tenants up front (default: an admin consents first)",
    )
    parser.add_argument(
        "--work-dir",
        type=Path,
        default=None,
        help="where the CA and certificates go (unset: a temporary folder)",
    )
    parser.add_argument(
        "--port-base",
        type=int,
        default=0,
        help="serve Entra, Key Vault, BC, admin, managed identity on base..base+4 (0 = free ports)",
    )
    return parser.parse_args(argv)


def config_from(args: argparse.Namespace) -> SandboxConfig:
    """A SandboxConfig from the CLI options."""
    base = args.port_base
    return SandboxConfig(
        seed=args.seed,
        token_lifetime_seconds=args.token_lifetime,
        bc_rate_limit=args.bc_rate_limit,
        bc_window_seconds=args.bc_window_seconds,
        bc_time_scale=args.bc_time_scale,
        bc_latency_ms=args.bc_latency_ms,
        bc_latency_jitter_ms=args.bc_latency_jitter_ms,
        bc_max_in_flight=args.bc_max_in_flight,
        bc_custom_apis=_custom_apis(args.bc_custom_api),
        bc_webhook_delay_seconds=args.bc_webhook_delay_seconds,
        bc_webhook_max_notifications=args.bc_webhook_max_notifications,
        extra_clients=args.extra_clients,
        secretless_apps=tuple(args.federated_app or ()),
        federated_credentials=tuple(
            FederatedCredentialConfig(app=n, name=f"sandbox-managed-identity-{n}")
            for n in args.federated_app or ()
        ),
        extra_tenants=args.extra_tenants,
        consent_extra_tenants=args.consent_extra_tenants,
        work_dir=args.work_dir,
        entra_port=base and base,
        vault_port=base and base + 1,
        bc_port=base and base + 2,
        admin_port=base and base + 3,
        identity_port=base and base + 4,
    )


def _custom_apis(given: list[str] | None) -> tuple[str, ...]:
    """The --bc-custom-api values (empty ones dropped), or the config's default when none was given."""
    if given is None:
        return SandboxConfig().bc_custom_apis
    return tuple(api for api in given if api)


def main(argv: list[str] | None = None) -> int:
    """Run until a signal arrives; the env file is removed on exit so a stale one is never trusted."""
    args = parse_args(sys.argv[1:] if argv is None else argv)
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    signal.signal(signal.SIGINT, lambda *_: stop.set())
    env_file: Path = args.write_env
    env_file.parent.mkdir(parents=True, exist_ok=True)
    with Sandbox(config_from(args)) as sandbox:
        sandbox.write_env_file(env_file)
        print(f"sandbox ready: {sandbox!r}; env file {env_file}", flush=True)
        while not stop.wait(0.5):
            pass
    env_file.unlink(missing_ok=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
