"""`make demo`: the product's main job end to end on the local world, under faults, checked against BC.

Azurite + the TLS sandbox + devhost worker processes running function_app.py (their storage calls counted by a
pass-through proxy). The admin signs in through the HTTP endpoints (or client credentials with `--mode s2s`);
the app discovers the company and sends a mixed workload of 300 jobs with the app client while the sandbox
injects 429s, 503/504s, dropped connections and one ambiguous write, and the access token expires mid-run.
Live progress while it runs; then the demo checks BC (every created record exists once) and everything it kept
(no secret), shows one job with the CLI, stops the workers, and prints a summary table and one JSON line.

A sequence of named steps sharing one context; each prints a line of transcript. Cleanups run in reverse order
whatever happens. Exit code 0 when every step passed (every job final, nothing duplicated, no secret found).
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from contextlib import ExitStack, suppress
from pathlib import Path

import httpx
from rich.console import Console

from bcjobs import JobState
from bcjobs.rows import report_from_row
from devhost.azurite import Azurite
from devhost.demo_admin import admin_signs_in, show_status_after_sign_in, show_status_before_sign_in
from devhost.demo_checks import every_created_record_exists_once, logs_and_records_hold_no_secret
from devhost.demo_context import DemoContext, DemoError, DemoOptions
from devhost.demo_proxy import CountingProxy, proxied_connection_string
from devhost.demo_report import collect, json_line, summary_table
from devhost.demo_run import TABLE_PREFIX, app_discovers_the_company, workload_runs_under_faults
from devhost.demo_world import WorkerPool, start_sandbox, tail
from devhost.environment import process_environment

REPO_ROOT = Path(__file__).resolve().parent.parent
# Retries and authorization re-checks in seconds rather than minutes, so a run under faults ends in time.
FAST_RETRIES = {
    "BC_JOB_BACKOFF_BASE_SECONDS": "1",
    "BC_JOB_BACKOFF_CAP_SECONDS": "8",
    "BC_JOB_AUTHORIZATION_RECHECK_SECONDS": "5",
}

Step = Callable[[DemoContext], str]


def start_azurite(context: DemoContext) -> str:
    """Start Azurite's queue and table services on free ports."""
    server = Azurite()
    context.azurite = server.start()
    context.cleanup.callback(server.stop)
    return f"queue :{context.azurite.queue_port}, table :{context.azurite.table_port}"


def start_storage_proxy(context: DemoContext) -> str:
    """Put a counting pass-through proxy between the workers and Azurite (storage calls per job)."""
    if context.azurite is None:
        raise DemoError("Azurite is not running")
    queue = CountingProxy(f"http://127.0.0.1:{context.azurite.queue_port}").start()
    context.cleanup.callback(queue.stop)
    table = CountingProxy(f"http://127.0.0.1:{context.azurite.table_port}").start()
    context.cleanup.callback(table.stop)
    context.proxies = (queue, table)
    return f"queue :{queue.port} -> :{context.azurite.queue_port}, table :{table.port} -> :{context.azurite.table_port}"


def start_workers(context: DemoContext) -> str:
    """Run N `python -m devhost` processes on function_app.py (one worker each), a random function key."""
    if context.proxies is None:
        raise DemoError("the storage proxy is not running")
    log_dir = Path(context.cleanup.enter_context(tempfile.TemporaryDirectory(prefix="devhost-demo-")))
    context.log_dir = log_dir
    storage = proxied_connection_string(context.proxies[0].port, context.proxies[1].port)
    pool = WorkerPool({}, log_dir, count=context.options.workers)
    delegated = context.options.mode == "delegated"
    context.app_environment = {
        **context.sandbox_env,
        **FAST_RETRIES,
        "AzureWebJobsStorage": storage,
        "JobsStorage": storage,
        "BC_AUTH_MODE": "delegated" if delegated else "client_credentials",
        # As in local.settings.json.example: hourly, so the timer does not fire during the demo.
        "BC_TOKEN_REFRESH_SCHEDULE": "0 0 * * * *",
    }
    if delegated:
        context.app_environment["BC_REDIRECT_URI"] = f"{pool.base_url}/api/auth/callback"
    pool.settings = context.app_environment
    context.workers = pool
    context.cleanup.callback(pool.stop)
    pool.start()
    context.base_url, context.function_key = pool.base_url, pool.function_key
    errors = "".join(f"\n      function in error: {error}" for error in pool.function_errors())
    ports = ", ".join(f":{port}" for port in pool.ports)
    return f"{pool.count} worker process(es) on {ports} (function key: random for this run){errors}"


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


def _interesting_job(context: DemoContext) -> str:
    reports = sorted((report_from_row(row) for row in context.rows.values()), key=lambda r: r.job_id)
    reconciled = [r.job_id for r in reports if r.result is not None and r.result.reconciled]
    failed = [r.job_id for r in reports if r.state is JobState.FAILED]
    return (reconciled + failed + ["demo-customer-create-001"])[0]


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
    start_azurite,
    start_sandbox,
    start_storage_proxy,
    start_workers,
    call_health,
    connect_to_business_central,
    app_discovers_the_company,
    workload_runs_under_faults,
    every_created_record_exists_once,
    logs_and_records_hold_no_secret,
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


def _keep(context: DemoContext, out: Callable[[str], None]) -> None:
    """Leave Azurite up so the jobs can be inspected with the CLI; stop on Enter or Ctrl-C."""
    if context.azurite is None:
        return
    out("Azurite stays up for inspection; in another shell:")
    out(f"  export JobsStorage='{context.azurite.connection_string}' BC_TABLE_PREFIX={TABLE_PREFIX}")
    out("  .venv/bin/bcjobs list --state failed; .venv/bin/bcjobs show demo-customer-create-001")
    out("Press Enter (or Ctrl-C) to stop.")
    with suppress(EOFError, KeyboardInterrupt):
        input()


def parse_args(argv: Sequence[str]) -> DemoOptions:
    """The demo's options."""
    defaults = DemoOptions()
    parser = argparse.ArgumentParser(prog="python -m devhost.demo", description=__doc__.split("\n\n")[0])
    parser.add_argument("--jobs", type=int, default=defaults.jobs, help="distinct jobs (at least 30)")
    parser.add_argument("--workers", type=int, default=defaults.workers, help="devhost worker processes")
    parser.add_argument(
        "--mode",
        choices=["delegated", "s2s"],
        default=os.environ.get("DEMO_MODE", defaults.mode),
        help="delegated: the admin signs in (default); s2s: client credentials (or DEMO_MODE=s2s)",
    )
    parser.add_argument(
        "--timeout", type=float, default=defaults.timeout_seconds, help="seconds for the jobs"
    )
    parser.add_argument("--seed", type=int, default=defaults.seed)
    parser.add_argument("--no-progress", action="store_true", help="no live progress")
    parser.add_argument("--keep", action="store_true", help="keep Azurite up afterwards to inspect jobs")
    args = parser.parse_args(argv)
    if args.jobs < 30:
        parser.error("--jobs must be at least 30")
    return DemoOptions(
        jobs=args.jobs,
        workers=args.workers,
        mode=args.mode,
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
