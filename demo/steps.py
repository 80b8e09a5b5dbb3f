"""`make demo`: the product's main job end to end on the local world, under faults, checked against BC.

Azurite + the TLS sandbox + devhost worker processes running function_app.py (their storage calls counted by a
pass-through proxy). The admin signs in through the HTTP endpoints (delegated, the default); with `--mode s2s` the
app uses client credentials and exactly the app settings infra/ deploys: storage (Azurite with OAuth over HTTPS) and
Key Vault through the sandbox's managed-identity endpoint, no connection string. The app discovers the company and
sends a mixed workload of 300 jobs with the app client while the sandbox injects 429s, 503/504s, dropped
connections and one ambiguous write, and the access token expires mid-run. Live progress while it runs; then the
demo checks BC (every created record exists once), the admin registers a second connection (another tenant's
environment) whose jobs land there and nowhere else, the demo checks everything it kept (no secret) and the
credentials the workers used, shows one job with the CLI, stops the workers, and prints a summary table (a line
per connection) and one JSON line.

A sequence of named steps sharing one context; each prints a line of transcript. Cleanups run in reverse order
whatever happens. Exit code 0 when every step passed (every job final, nothing duplicated, no secret found).
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from contextlib import ExitStack, suppress
from datetime import UTC, datetime
from pathlib import Path

import httpx
from rich.console import Console

from bcjobs import RESULTS_QUEUE, JobState
from bcjobs.rows import report_from_row
from demo.admin import admin_signs_in, show_status_after_sign_in, show_status_before_sign_in
from demo.checks import (
    every_created_record_exists_once,
    logs_and_records_hold_no_secret,
    the_workers_used_the_deployed_credentials,
)
from demo.connections import admin_registers_a_second_connection, app_runs_jobs_on_the_second_connection
from demo.context import DemoContext, DemoError, DemoOptions
from demo.feed import (
    admin_watches_customers,
    bc_user_edits_customers,
    feed_settings,
    the_apps_own_creates_come_back_as_echoes,
)
from demo.main_run import TABLE_PREFIX, app_discovers_the_company, workload_runs_under_faults
from demo.report import collect, json_line, summary_table
from devhost.environment import process_environment
from devhost.help_format import DefaultsHelp
from localworld.azurite import ACCOUNT, Azurite, AzuriteTls
from localworld.infra_settings import (
    LOCAL_ADDITIONS,
    LOCAL_CHANGES,
    LocalResources,
    connection_strings,
    infra_app_settings,
    platform_environment,
    production_settings,
)
from localworld.instances import InstancePool
from localworld.processes import tail
from localworld.proxy import CountingProxy, ProxyTls, proxied_connection_string
from localworld.sandbox import SandboxProcess
from localworld.world import start_proxies

REPO_ROOT = Path(__file__).resolve().parent.parent
KEPT_LOGS = REPO_ROOT / ".local" / "demo-logs"  # a failed demo's workers' logs (.local is not committed)
# Retries and authorization re-checks in seconds rather than minutes, so a run under faults ends in time.
FAST_RETRIES = {
    "BC_JOB_BACKOFF_BASE_SECONDS": "1",
    "BC_JOB_BACKOFF_CAP_SECONDS": "8",
    "BC_JOB_AUTHORIZATION_RECHECK_SECONDS": "5",
}

Step = Callable[[DemoContext], str]


def start_sandbox(context: DemoContext) -> str:
    """Run `python -m sandbox` (BC latency, a fixed token lifetime) and wait for its env file."""
    folder = Path(context.cleanup.enter_context(tempfile.TemporaryDirectory(prefix="sandbox-demo-")))
    sandbox = SandboxProcess(folder, context.options.sandbox_flags())
    context.cleanup.callback(sandbox.stop)
    context.sandbox_env = sandbox.start()
    context.sandbox = sandbox
    env = context.sandbox_env
    return (
        f"Entra {env['BC_AUTHORITY_HOST']}, Key Vault {env['KEY_VAULT_URL']}, BC {env['BC_API_BASE_URL']} "
        f"(TLS from a local CA; test user {env.get('SANDBOX_USER', '?')}; {' '.join(sandbox.flags)})"
    )


def start_azurite(context: DemoContext) -> str:
    """Start Azurite's queue and table services on free ports (S2S: over HTTPS with OAuth, the sandbox's
    certificate, so the workers authenticate with the managed identity's tokens as in Azure)."""
    oauth = None
    if context.options.mode == "s2s":
        env = context.sandbox_env
        oauth = AzuriteTls(Path(env["SANDBOX_SERVER_CERT"]), Path(env["SANDBOX_SERVER_KEY"]))
    server = Azurite(oauth=oauth)
    context.azurite = server.start()
    context.cleanup.callback(server.stop)
    over = "HTTPS, --oauth basic" if oauth else "HTTP, shared key"
    return f"queue :{context.azurite.queue_port}, table :{context.azurite.table_port} ({over})"


def start_storage_proxy(context: DemoContext) -> str:
    """Put a counting pass-through proxy between the workers and Azurite (storage calls per job)."""
    if context.azurite is None:
        raise DemoError("Azurite is not running")
    azurite, tls = context.azurite, None
    if azurite.scheme == "https":  # terminate TLS with the sandbox's certificate, re-encrypt to Azurite
        env = context.sandbox_env
        tls = ProxyTls(
            *(Path(env[key]) for key in ("SANDBOX_SERVER_CERT", "SANDBOX_SERVER_KEY", "LOCAL_CA_BUNDLE"))
        )
    queue, table = start_proxies(azurite, tls)
    context.cleanup.callback(queue.stop)
    context.cleanup.callback(table.stop)
    context.proxies = (queue, table)
    over = " (TLS terminated and re-encrypted)" if tls else ""
    return f"queue :{queue.port} -> :{azurite.queue_port}, table :{table.port} -> :{azurite.table_port}{over}"


def start_workers(context: DemoContext) -> str:
    """Run N `python -m devhost` processes on function_app.py (one worker each), a random function key.
    S2S: with the app settings infra/ deploys (storage and Key Vault through the managed identity)."""
    if context.proxies is None:
        raise DemoError("the storage proxy is not running")
    log_dir = Path(context.cleanup.enter_context(tempfile.TemporaryDirectory(prefix="devhost-demo-")))
    keep_logs_on_failure(context, log_dir)
    pool = InstancePool({}, log_dir, count=context.options.workers)
    if context.options.mode == "s2s":
        settings = _infra_settings(context, pool, context.proxies)
    else:
        settings = _delegated_settings(context, pool, context.proxies)
    pool.settings |= feed_settings(pool.base_url, datetime.now(UTC))
    context.app_environment = pool.settings
    context.workers = pool
    context.cleanup.callback(pool.stop)
    pool.start()
    context.base_url, context.function_key = pool.base_url, pool.function_key
    errors = "".join(f"\n      function in error: {error}" for error in pool.function_errors())
    ports = ", ".join(f":{port}" for port in pool.ports)
    return f"{pool.count} worker process(es) on {ports} (function key: random for this run){settings}{errors}"


def _delegated_settings(context: DemoContext, pool: InstancePool, proxies: tuple[CountingProxy, ...]) -> str:
    """The sandbox's env file and a connection string through the proxies, as `make dev` runs the app."""
    storage = proxied_connection_string(proxies[0].port, proxies[1].port)
    pool.settings = {
        **context.sandbox_env,
        **FAST_RETRIES,
        "AzureWebJobsStorage": storage,
        "JobsStorage": storage,
        "BC_AUTH_MODE": "delegated",
        # As in local.settings.json.example: hourly, so the timer does not fire during the demo.
        "BC_TOKEN_REFRESH_SCHEDULE": "0 0 * * * *",
        "BC_REDIRECT_URI": f"{pool.base_url}/api/auth/callback",
    }
    return ""


def _infra_settings(context: DemoContext, pool: InstancePool, proxies: tuple[CountingProxy, ...]) -> str:
    """infra/app/function.bicep's app settings pointed at the proxies (localworld/infra_settings.py), the platform's
    managed-identity endpoint and trust store; refused if any connection string or key reaches the workers."""
    queue, table = proxies
    world = LocalResources(
        context.sandbox_env,
        queue_service_uri=f"{queue.url}/{ACCOUNT}",
        table_service_uri=f"{table.url}/{ACCOUNT}",
        host_name=f"127.0.0.1:{pool.reserve_ports()[0]}",
        table_prefix=TABLE_PREFIX,
        results_queue=RESULTS_QUEUE,
        credential=context.options.credential,
    )
    pool.settings = {**production_settings(world), **FAST_RETRIES}
    pool.platform = platform_environment(context.sandbox_env)
    pool.production = True
    leaked = connection_strings(pool.environment())
    if leaked:
        raise DemoError(f"a connection string or key would reach the workers: {', '.join(leaked)}")
    changed = sorted({*LOCAL_CHANGES, *FAST_RETRIES})
    return (
        f"\n      S2S with the {len(infra_app_settings())} app settings infra/app/function.bicep deploys: "
        "JobsStorage__* and AzureWebJobsStorage__* identity-based (managedidentity, clientId), Key Vault as the "
        f"managed identity, BC_CREDENTIAL={context.options.credential}\n      added: {', '.join(sorted(LOCAL_ADDITIONS))}; changed: {', '.join(changed)}"
        f"\n      platform: {', '.join(sorted(pool.platform))}; "
        "no connection string or account key anywhere in the workers' environment"
    )


def call_health(context: DemoContext) -> str:
    """GET /api/health and expect 200 {"status": "ok"}."""
    response = httpx.get(f"{context.base_url}/api/health", timeout=10)
    if response.status_code != 200 or response.json() != {"status": "ok"}:
        raise DemoError(f"health answered {response.status_code} {response.text!r}")
    return f"GET /api/health -> {response.status_code} {response.text}"


def connect_to_business_central(context: DemoContext) -> str:
    """Delegated: the admin signs in through the HTTP endpoints. S2S: client credentials, nothing to sign in."""
    if context.options.mode == "s2s":
        with httpx.Client(
            base_url=context.base_url, headers={"x-functions-key": context.function_key}
        ) as admin:
            response = admin.get("/api/auth/status", timeout=30)
        if response.status_code != 200:
            raise DemoError(f"status answered {response.status_code} {response.text!r}")
        status = response.json()
        return f"client credentials (S2S): GET /api/auth/status -> health={status.get('health')}, mode={status.get('mode')}"
    lines = [show_status_before_sign_in(context), admin_signs_in(context), show_status_after_sign_in(context)]
    return "\n      ".join(lines)


def inspect_one_job_with_the_cli(context: DemoContext) -> str:
    """`bcjobs show <jobId>` for the job that met the ambiguous write (or a failed one), as an app developer would."""
    if context.azurite is None:
        raise DemoError("Azurite is not running")
    job_id = _interesting_job(context)
    environment = {
        **process_environment(),
        "JobsStorage": context.azurite.connection_string,
        "BC_TABLE_PREFIX": TABLE_PREFIX,
        "COLUMNS": "160",
        **_trust(context),
    }
    shown = subprocess.run(  # noqa: S603 - fixed argv: this interpreter running the app client's CLI
        [sys.executable, "-m", "bcjobs", "show", job_id],
        cwd=REPO_ROOT,
        env=environment,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    if shown.returncode != 0:
        raise DemoError(f"bcjobs show {job_id} exited {shown.returncode}: {shown.stderr[-500:]}")
    output = "\n".join(f"      {line}".rstrip() for line in shown.stdout.splitlines())
    return f"bcjobs show {job_id}\n{output}"


def _trust(context: DemoContext) -> dict[str, str]:
    """The CLI's SDK clients (requests) trust the sandbox CA when Azurite serves HTTPS."""
    verify = context.storage_options().get("connection_verify")
    return {"REQUESTS_CA_BUNDLE": str(verify)} if verify else {}


def _interesting_job(context: DemoContext) -> str:
    reports = sorted((report_from_row(row) for row in context.rows.values()), key=lambda r: r.job_id)
    reconciled = [r.job_id for r in reports if r.result is not None and r.result.reconciled]
    failed = [r.job_id for r in reports if r.state is JobState.FAILED]
    # Without a main run (a shorter list of steps), a job discovery sent.
    fallback = "demo-customer-create-001" if context.rows else min(context.sent_at, default="")
    return (reconciled + failed + [fallback])[0]


def stop_workers(context: DemoContext) -> str:
    """SIGTERM every worker and expect a clean exit (code 0) after in-flight work."""
    if context.workers is None:
        raise DemoError("the workers are not running")
    codes = context.workers.stop()
    if any(code != 0 for code in codes):
        logs = "\n".join(tail(log) for log in context.workers.logs)
        raise DemoError(f"workers exited with {codes}; their logs:\n{logs}")
    return f"{len(codes)} worker(s) exited 0 after finishing in-flight work"


STEPS: list[Step] = [
    start_sandbox,  # first: an HTTPS Azurite serves the sandbox's certificate
    start_azurite,
    start_storage_proxy,
    start_workers,
    call_health,
    connect_to_business_central,
    admin_watches_customers,
    app_discovers_the_company,
    workload_runs_under_faults,
    every_created_record_exists_once,
    bc_user_edits_customers,
    the_apps_own_creates_come_back_as_echoes,
    admin_registers_a_second_connection,
    app_runs_jobs_on_the_second_connection,
    logs_and_records_hold_no_secret,
    the_workers_used_the_deployed_credentials,
    inspect_one_job_with_the_cli,
    stop_workers,
]


def run(
    steps: Sequence[Step],
    out: Callable[[str], None] = print,
    options: DemoOptions | None = None,
    console: Console | None = None,
) -> int:
    """Run the steps in order, print a transcript (and, after a main run, the summary and the JSON line), clean
    up; 0 if all passed."""
    options = options or DemoOptions()
    started = time.monotonic()
    out("demo: Azurite + TLS sandbox (Entra ID, Key Vault, BC) + devhost workers running function_app.py")
    with ExitStack() as cleanup:
        context = DemoContext(cleanup, options=options, out=out, console=console)
        failure = ""
        for number, step in enumerate(steps, start=1):
            title = (step.__doc__ or step.__name__).splitlines()[0]
            step_started = time.monotonic()
            try:
                outcome = step(context)
            except Exception as exc:
                out(f"[{number}/{len(steps)}] {step.__name__}: FAILED - {exc}")
                failure = f"demo failed at step '{step.__name__}' ({title})"
                context.failed = True
                break
            out(
                f"[{number}/{len(steps)}] {step.__name__} ({time.monotonic() - step_started:.1f}s): {outcome}"
            )
        figures = None
        if context.rows:
            figures = {**collect(context), **context.figures, "seconds": round(time.monotonic() - started, 1)}
            figures["passed"] = not failure
            out(summary_table(figures))
        if failure:
            out(failure)
        else:
            out(
                "demo passed: every job final, nothing duplicated in BC, no secret kept, workers stopped cleanly"
            )
        if figures is not None:
            out(json_line(figures))
        if options.keep and context.azurite is not None:
            _keep(context, out)
    return 1 if failure else 0


def keep_logs_on_failure(context: DemoContext, log_dir: Path) -> None:
    """The workers log to `log_dir`; if a step fails, the logs are copied to KEPT_LOGS when the demo cleans up
    (registered before the workers' stop, so it runs after it, and before the folder goes)."""
    context.log_dir = log_dir
    context.cleanup.callback(_keep_logs, context)


def _keep_logs(context: DemoContext) -> None:
    """A failed demo keeps its workers' logs (redacted as every log is: step `logs_and_records_hold_no_secret`),
    which its temporary folder would take with it, and says where."""
    if not context.failed or context.log_dir is None:
        return
    kept = KEPT_LOGS / datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
    shutil.copytree(context.log_dir, kept)
    context.out(
        f"the workers' logs are kept in {kept} (worker-N.log: what each worker process did, and when)"
    )


def _keep(context: DemoContext, out: Callable[[str], None]) -> None:
    """Leave Azurite up so the jobs can be inspected with the CLI; stop on Enter or Ctrl-C."""
    if context.azurite is None:
        return
    out("Azurite stays up for inspection; in another shell:")
    trust = "".join(f" {name}={value}" for name, value in _trust(context).items())
    out(f"  export JobsStorage='{context.azurite.connection_string}' BC_TABLE_PREFIX={TABLE_PREFIX}{trust}")
    out("  .venv/bin/bcjobs list --state failed; .venv/bin/bcjobs show demo-customer-create-001")
    out("Press Enter (or Ctrl-C) to stop.")
    with suppress(EOFError, KeyboardInterrupt):
        input()


def parse_args(argv: Sequence[str]) -> DemoOptions:
    """The demo's options."""
    defaults = DemoOptions()
    parser = argparse.ArgumentParser(
        prog="python -m demo", description=__doc__.split("\n\n")[0], formatter_class=DefaultsHelp
    )
    parser.add_argument("--jobs", type=int, default=defaults.jobs, help="distinct jobs (at least 30)")
    parser.add_argument("--workers", type=int, default=defaults.workers, help="devhost worker processes")
    parser.add_argument(
        "--mode",
        choices=["delegated", "s2s"],
        default=os.environ.get("DEMO_MODE", defaults.mode),
        help="delegated: the admin signs in; s2s: client credentials (or DEMO_MODE=s2s)",
    )
    parser.add_argument(
        "--credential",
        choices=["secret", "federated"],
        default=os.environ.get("DEMO_CREDENTIAL", defaults.credential),
        help="s2s: the app registration's client secret, or federated: no secret anywhere, the managed identity's "
        "token is the assertion (or DEMO_CREDENTIAL=federated)",
    )
    parser.add_argument(
        "--timeout",
        type=float,
        default=defaults.timeout_seconds,
        help="seconds for every job to finish once sent",
    )
    parser.add_argument(
        "--seed",
        type=int,
        default=defaults.seed,
        help="seeds the sandbox and the workload (same seed, same run)",
    )
    parser.add_argument("--no-progress", action="store_true", help="no live progress")
    parser.add_argument("--keep", action="store_true", help="keep Azurite up afterwards to inspect jobs")
    args = parser.parse_args(argv)
    if args.jobs < 30:
        parser.error("--jobs must be at least 30")
    if args.credential == "federated" and args.mode != "s2s":
        parser.error("--credential federated needs --mode s2s (client credentials)")
    return DemoOptions(
        jobs=args.jobs,
        workers=args.workers,
        mode=args.mode,
        credential=args.credential,
        timeout_seconds=args.timeout,
        seed=args.seed,
        progress=not args.no_progress,
        keep=args.keep,
    )


def main(argv: Sequence[str] | None = None) -> int:
    """Run the demo with live progress on stderr; the transcript, summary and JSON line go to stdout."""
    options = parse_args(sys.argv[1:] if argv is None else argv)
    return run(STEPS, options=options, console=Console(stderr=True))


if __name__ == "__main__":
    sys.exit(main())
