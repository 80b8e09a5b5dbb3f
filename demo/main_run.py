"""The demo's main steps: the app discovers the company, then sends the workload while the sandbox misbehaves.

Everything goes through the product's front: jobs are sent with the app client (`bcjobs.client.JobsClient`) to
`bc-jobs`, the workers (devhost running function_app.py) run them against the sandbox's BC, and the demo reads
what happened from the jobs Table and the sandbox's counters, as an application and an operator would.
"""

from __future__ import annotations

import time
from collections import Counter
from datetime import UTC, datetime
from typing import Any

import httpx
from azure.core.exceptions import ResourceNotFoundError
from azure.data.tables import TableClient
from azure.storage.queue import QueueClient

from bcjobs import JOBS_QUEUE, InvalidJobError, JobReport, JobState
from bcjobs.client import JobsClient
from bcjobs.common import JobHandle
from bcjobs.rows import report_from_row
from demo.context import DemoContext, DemoError
from demo.progress import LiveProgress
from demo.workload import Company, build, discovery_jobs, invoice_count, invoice_jobs

TABLE_PREFIX = "bc"  # the product's default BC_TABLE_PREFIX
POLL_SECONDS = 0.5
# The product never sends a token with less than 5 minutes left (shared.tokens.DEFAULT_MIN_VALIDITY): a token
# issued with this much more reaches the end of its usable life that many seconds later.
MIN_VALIDITY_SECONDS = 300
REFRESH_MIN_AGE_SECONDS = 30  # shared.auth.timing.REFRESH_MIN_AGE
BC_REQUESTS_PER_SECOND = 19.0  # the product's throttle on BC's default limit (6000 / 300 s, 5 % margin)
DISCOVERY_SECONDS = (
    2.0  # discovery's fixed part (two list jobs, the first job of each worker); 0.2 s per invoice on top
)


def jobs_client(context: DemoContext) -> JobsClient:
    """The app's client on Azurite directly (the app's own calls are not the workers' storage calls)."""
    if context.azurite is None:
        raise DemoError("Azurite is not running")
    return JobsClient.from_connection_string(
        context.azurite.connection_string, table_prefix=TABLE_PREFIX, **context.storage_options()
    )


def _wait_all(jobs: JobsClient, handles: list[JobHandle], timeout: float) -> list[JobReport]:
    return [jobs.wait(handle.job_id, timeout=timeout, poll=0.2, max_poll=1.0) for handle in handles]


def app_discovers_the_company(context: DemoContext) -> str:
    """Through the queue: list customers and items, then create the draft invoices the run will post."""
    if context.sandbox is None:
        raise DemoError("the sandbox is not running")
    context.stats_before = context.sandbox.stats()
    if context.proxies is not None:
        for proxy in context.proxies:
            proxy.clear()
    _token_runs_out_mid_run(context)
    with jobs_client(context) as jobs:
        sent = jobs.enqueue_many(discovery_jobs())
        _note_sent(context, sent.handles)
        customers, items = (_entities(report) for report in _wait_all(jobs, sent.handles, 90))
        company = Company(customers, items)
        creates, expectations = invoice_jobs(company, invoice_count(context.options.jobs))
        sent = jobs.enqueue_many(creates)
        _note_sent(context, sent.handles)
        reports = _wait_all(jobs, sent.handles, 90)
    invoices = [r.result.id for r in reports if r.state is JobState.SUCCEEDED and r.result and r.result.id]
    if len(invoices) != len(reports):
        states = Counter(r.state.value for r in reports)
        raise DemoError(f"creating the draft invoices did not succeed: {dict(states)}")
    context.company = Company(customers, items, invoices)
    context.discovery_expectations = expectations
    return (
        f"2 list jobs -> {len(customers)} customers, {len(items)} items (ids and ETags from the results); "
        f"{len(invoices)} draft invoices created with lines (natural key externalDocumentNumber)"
    )


def _entities(report: JobReport) -> list[dict[str, Any]]:
    if report.state is not JobState.SUCCEEDED or report.result is None or not report.result.entities:
        raise DemoError(f"discovery job {report.job_id} ended {report.state.value}: {report.error}")
    if report.result.truncated:
        raise DemoError(f"discovery job {report.job_id} came back truncated")
    return list(report.result.entities)


def _note_sent(context: DemoContext, handles: list[JobHandle]) -> None:
    now = datetime.now(UTC)
    for handle in handles:
        context.sent_at.setdefault(handle.job_id, now)


def workload_runs_under_faults(context: DemoContext) -> str:
    """The main run: faults on, jobs sent with the client, the token expires mid-run; until every job is final."""
    if context.sandbox is None or context.company is None:
        raise DemoError("discovery did not run")
    options = context.options
    work = build(options.jobs, context.company, seed=options.seed)
    context.workload = work
    context.sandbox.admin("/bc/faults", options.fault_rates())
    context.sandbox.admin("/bc/fail-next", {"count": 1, "kind": "ambiguous_write"})
    context.events.append(
        f"faults on: 429 {options.rate_429:.1%}, 503 {options.rate_503:.1%}, 504 {options.rate_504:.1%}, "
        f"dropped {options.rate_drop:.1%} of BC requests; the next write's answer is lost (ambiguous write)"
    )
    expected = set(context.sent_at) | set(work.kinds)
    context.stats_run = context.sandbox.stats()
    started = time.monotonic()
    with jobs_client(context) as jobs, LiveProgress(context, len(expected) + len(work.invalid)) as progress:
        refused = _client_refuses_an_invalid_job(jobs)
        context.events.append(f"the client refused an invalid job before sending it: {refused}")
        _send(context, jobs, work.jobs[: work.first_wave])
        _send_invalid(context, work.invalid)
        _send(context, jobs, work.jobs[work.first_wave :])
        sent_seconds = time.monotonic() - started
        finished = _until_final(context, expected, len(work.invalid), progress)
    context.sandbox.admin("/bc/faults", {"rate_429": 0, "rate_503": 0, "rate_504": 0, "rate_drop": 0})
    context.run_seconds = time.monotonic() - started
    if not finished:
        final = sum(1 for row in context.rows.values() if JobState(row["State"]).terminal)
        raise DemoError(
            f"not every job reached a terminal state within {options.timeout_seconds:.0f}s "
            f"({final} of {len(expected) + len(work.invalid)} final)"
        )
    events = "\n      ".join([*context.events, *_failures(context)])
    return (
        f"{work.distinct_jobs} jobs ({len(work.resent)} sent twice) and {len(work.invalid)} invalid messages sent "
        f"in {sent_seconds:.1f}s; all final after {context.run_seconds:.1f}s\n      {events}"
    )


def _token_runs_out_mid_run(context: DemoContext) -> None:
    """Before discovery, the admin refreshes the token while the sandbox issues tokens that live 300 s + E: the
    product's minimum validity is reached E seconds later, about 40 % into the main run, and the workers must
    refresh. Before discovery, not before the run: each function group runs in its own worker process (as on
    Flex), and jobs_process keeps the token it loaded with its first job in memory while that token stays fresh,
    so an admin's refresh after discovery would reach only the HTTP group's worker."""
    if context.sandbox is None:
        raise DemoError("the sandbox is not running")
    discovery = DISCOVERY_SECONDS + 0.2 * invoice_count(context.options.jobs)
    into_run = max(1, round(0.4 * context.options.jobs * 1.3 / BC_REQUESTS_PER_SECOND))
    usable = round(discovery) + into_run
    writes = _token_writes(context.sandbox.stats())
    with httpx.Client(base_url=context.base_url, headers={"x-functions-key": context.function_key}) as admin:
        _wait_for_refresh_min_age(context, admin)
        context.sandbox.admin("/entra/token-lifetime", {"seconds": MIN_VALIDITY_SECONDS + usable})
        try:
            response = admin.post("/api/auth/refresh", timeout=30)
        finally:
            context.sandbox.admin(
                "/entra/token-lifetime", {"seconds": context.options.token_lifetime_seconds}
            )
    if response.status_code != 200:
        raise DemoError(f"POST /api/auth/refresh answered {response.status_code} {response.text!r}")
    context.token_writes = _token_writes(context.sandbox.stats())
    if context.token_writes <= writes:
        raise DemoError("POST /api/auth/refresh did not refresh the token (no new Key Vault version)")
    context.token_runs_out = time.monotonic() + usable
    context.events.append(
        f"POST /api/auth/refresh before discovery, while Entra issues {MIN_VALIDITY_SECONDS + usable}s tokens: "
        f"the access token runs out (under the product's {MIN_VALIDITY_SECONDS}s minimum validity) {usable}s "
        f"later, about {into_run}s into the run; each worker loads it with its first job, then must refresh it"
    )


def _wait_for_refresh_min_age(context: DemoContext, admin: httpx.Client) -> None:
    """ "Refresh now" hands back a token refreshed less than 30 s ago as it is (a client-credentials token is
    refreshed, not signed in, at the first job): wait until the current one is old enough."""
    status = admin.get("/api/auth/status", timeout=30).json()
    last = status.get("last_refresh_at")
    if not last or status.get("mode") != "client_credentials":
        return
    age = (datetime.now(UTC) - datetime.fromisoformat(str(last))).total_seconds()
    wait = REFRESH_MIN_AGE_SECONDS + 1 - age
    if wait > 0:
        context.events.append(
            f"waited {wait:.0f}s before the admin's refresh: the product refreshes on request at most every "
            f"{REFRESH_MIN_AGE_SECONDS}s"
        )
        time.sleep(wait)


def _failures(context: DemoContext) -> list[str]:
    """One line per failed job: its kind, the product's code and the start of the message."""
    kinds = context.workload.kinds if context.workload else {}
    lines = []
    for job_id, row in sorted(context.rows.items()):
        report = report_from_row(row)
        if report.state is JobState.FAILED and report.error is not None:
            kind = kinds.get(job_id, "?")
            lines.append(f"failed: {job_id} ({kind}): {report.error.code} - {report.error.message[:110]}")
    return lines


def _client_refuses_an_invalid_job(jobs: JobsClient) -> str:
    try:
        jobs.enqueue({"operation": "update", "entitySet": "customers", "data": {"city": "Paris"}})
    except InvalidJobError as exc:
        return str(exc)
    raise DemoError("the client sent an update without an id")


def _send(context: DemoContext, jobs: JobsClient, batch: list[dict[str, Any]]) -> None:
    result = jobs.enqueue_many(batch, max_concurrency=8)
    if not result.ok:
        raise DemoError(f"the client could not send {len(result.failures)} jobs: {result.failures[0].error}")
    _note_sent(context, result.handles)


def _send_invalid(context: DemoContext, messages: list[tuple[str, str]]) -> None:
    """As an application in another language would: straight onto the queue, no client in between."""
    if context.azurite is None:
        raise DemoError("Azurite is not running")
    with QueueClient.from_connection_string(
        context.azurite.connection_string, JOBS_QUEUE, **context.storage_options()
    ) as queue:
        for _, text in messages:
            message = queue.send_message(text)
            context.sent_at.setdefault(f"msg-{message.id}", datetime.now(UTC))


def _until_final(context: DemoContext, expected: set[str], invalid: int, progress: LiveProgress) -> bool:
    """Poll the jobs Table and the sandbox until every job is final; expire the token once on the way."""
    if context.sandbox is None or context.azurite is None:
        raise DemoError("the world is not running")
    deadline = time.monotonic() + context.options.timeout_seconds
    refreshed = False
    main_run = expected - set(context.discovery_ids())
    with TableClient.from_connection_string(
        context.azurite.connection_string, f"{TABLE_PREFIX}jobs", **context.storage_options()
    ) as table:
        while True:
            rows = _rows(table)
            stats = context.sandbox.stats()
            progress.update(rows, stats)
            final = {job_id for job_id, row in rows.items() if JobState(row["State"]).terminal}
            if not refreshed and _token_writes(stats) > context.token_writes:
                refreshed = True
                late = time.monotonic() - context.token_runs_out
                line = (
                    f"the workers refreshed the token {late:+.1f}s after it ran out "
                    f"({len(final & main_run)}/{len(main_run)} jobs of the run final)"
                )
                context.events.append(line)
                progress.note(line)
            done = expected <= final and len(final) >= len(expected) + invalid
            if done or time.monotonic() > deadline:
                context.rows = rows
                context.stats_after = stats
                return done
            time.sleep(POLL_SECONDS)


def _rows(table: TableClient) -> dict[str, dict[str, Any]]:
    try:
        # job rows only: a job's audit rows share its partition (shared/jobs/audit.py)
        rows = table.query_entities("RowKey eq 'job'")
        return {str(row["PartitionKey"]): dict(row) for row in rows}
    except ResourceNotFoundError:
        return {}


def _token_writes(stats: dict[str, Any]) -> int:
    """Key Vault writes: every refresh of the token set writes one version."""
    return int(stats.get("vault", {}).get("writes", 0))


def reports(context: DemoContext) -> list[JobReport]:
    """Every job row of the run as the app's report."""
    return [report_from_row(row) for row in context.rows.values()]
