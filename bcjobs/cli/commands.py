"""The Typer app and its five commands: enqueue, show, list, wait, results (the usage is in `bcjobs.cli`)."""

from __future__ import annotations

import sys
from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated, TypeVar

import typer

from bcjobs import RESULTS_QUEUE
from bcjobs.cli.change_commands import changes
from bcjobs.cli.connection_commands import connections_app
from bcjobs.cli.durations import since_option
from bcjobs.cli.exits import ExitCode, fail
from bcjobs.cli.helptext import PlainCommand, PlainGroup
from bcjobs.cli.identity_commands import identities_app
from bcjobs.cli.render import (
    JsonOutput,
    Rejected,
    emit,
    err,
    interactions_table,
    jobs_listing,
    print_json,
    progress_bar,
    report_enqueue,
    report_panel,
    result_line,
    spinner,
    wire,
)
from bcjobs.cli.storage import ResultsQueue, StorageOptions, storage_options
from bcjobs.cli.watch_commands import watches_app
from bcjobs.client import JobsClient, ResultStream
from bcjobs.common import EnqueueFailure, JobHandle
from bcjobs.errors import InvalidJobError, Problem, WaitTimeoutError
from bcjobs.jobfiles import Entry, read_entries
from bcjobs.results import JobReport, JobState
from bcjobs.submit import PreparedJob, prepare

_R = TypeVar("_R", bound=JobReport)

app = typer.Typer(
    name="bcjobs",
    help="Send Business Central jobs to the integration and follow them.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    cls=PlainGroup,
)

connections_app.add_typer(identities_app, name="identities")  # a connection's pool (issue 23)
app.add_typer(connections_app, name="connections")
app.command("changes", cls=PlainCommand)(changes)  # the change feed (issue 22)
app.add_typer(watches_app, name="watches")  # the change feed's watches (issue 22)

ConnectionOption = Annotated[
    str | None,
    typer.Option(
        "--connection",
        metavar="NAME",
        show_default=False,
        help="The BC connection (bcjobs connections list); default: the app settings' own.",
    ),
]
AllItems = Annotated[
    bool,
    typer.Option(
        "--all-items",
        help="A large batch: every item's outcome from the items table (the job row keeps only the first failing).",
    ),
]


# -- enqueue -------------------------------------------------------------------------------------------------


@app.command(cls=PlainCommand)
@storage_options
def enqueue(
    files: Annotated[
        list[str],
        typer.Argument(
            metavar="FILE",
            show_default=False,
            help="JSON (an object or an array) or JSONL files; - reads stdin.",
        ),
    ],
    strict: Annotated[bool, typer.Option("--strict", help="Send nothing when any job is invalid.")] = False,
    concurrency: Annotated[int, typer.Option("--concurrency", min=1, max=64, help="Sends in flight.")] = 8,
    connection: ConnectionOption = None,
    json_output: JsonOutput = False,
    *,
    storage: StorageOptions,
) -> None:
    """Validate every job in the FILEs, report each bad one by line, send the good ones to bc-jobs.

    A job id is an idempotency key: sending a job with an id already sent is not a new job. --connection sends
    the jobs that name no connection to that one.
    """
    entries = _on_connection(_read_files(files), connection)
    good, rejected = _validate(entries)
    sent: list[tuple[Entry, JobHandle]] = []
    failed: list[tuple[Entry, EnqueueFailure]] = []
    if good and not (strict and rejected):
        sent, failed = _send_entries(storage, good, concurrency=concurrency, quiet=json_output)
    report_enqueue(entries, sent, failed, rejected, strict=strict, json_output=json_output)
    if failed and not sent:
        fail(ExitCode.STORAGE, f"nothing sent: {storage.explain(failed[0][1].error)}")
    if failed or rejected:
        raise typer.Exit(int(ExitCode.INCOMPLETE))


def _on_connection(entries: list[Entry], connection: str | None) -> list[Entry]:
    """The entries, each job object that names no connection given `connection`."""
    if connection is None:
        return entries
    return [
        replace(e, value={"connection": connection, **e.value}) if isinstance(e.value, dict) else e
        for e in entries
    ]


def _read_files(files: list[str]) -> list[Entry]:
    """The entries of every file, in order; each names its file when there are several."""
    if len(files) == 1:
        return read_entries(_read_input(files[0]), name=files[0])
    return [replace(e, file=name) for name in files for e in read_entries(_read_input(name), name=name)]


def _read_input(file: str) -> str:
    try:
        if file == "-":
            return sys.stdin.read()
        return Path(file).read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        fail(ExitCode.USAGE, f"cannot read {file}: {exc.__class__.__name__}: {getattr(exc, 'strerror', '')}")


def _validate(entries: list[Entry]) -> tuple[list[tuple[Entry, PreparedJob]], list[Rejected]]:
    """The entries ready to send, and the ones rejected with their problems (nothing stops at the first)."""
    good: list[tuple[Entry, PreparedJob]] = []
    rejected: list[Rejected] = []
    for entry in entries:
        if entry.problem is not None:
            rejected.append((entry, None, (entry.problem,)))
            continue
        try:
            if not isinstance(entry.value, dict):
                raise InvalidJobError((Problem("", "a JSON object"),))
            good.append((entry, prepare(entry.value)))
        except InvalidJobError as exc:
            rejected.append((entry, exc.job_id, exc.problems))
    return good, rejected


def _send_entries(
    storage: StorageOptions, good: list[tuple[Entry, PreparedJob]], *, concurrency: int, quiet: bool
) -> tuple[list[tuple[Entry, JobHandle]], list[tuple[Entry, EnqueueFailure]]]:
    """Send the good jobs with a progress bar (unless quiet); what was sent and what was not, by entry."""
    with storage.connect() as client, progress_bar(quiet) as bar:
        task = bar.add_task("sending", total=len(good))

        def advance(index: int, outcome: JobHandle | EnqueueFailure) -> None:
            del index, outcome
            bar.advance(task)

        result = client.enqueue_many([p for _, p in good], max_concurrency=concurrency, on_progress=advance)
    sent = [(good[i][0], handle) for i, handle in sorted(result.sent.items())]
    failed = [(good[i][0], failure) for i, failure in sorted(result.failed.items())]
    return sent, failed


# -- show ----------------------------------------------------------------------------------------------------


@app.command(cls=PlainCommand)
@storage_options
def show(
    job_id: Annotated[str, typer.Argument(metavar="JOB_ID", show_default=False, help="The job's id.")],
    all_items: AllItems = False,
    json_output: JsonOutput = False,
    *,
    storage: StorageOptions,
) -> None:
    """A job's state, attempts, result or error (with BC's code) and the BC requests it made."""
    with storage.connect() as client:
        details = client.get(job_id, interactions=True)
        if details is not None and all_items:
            details = _with_all_items(client, details)
    if details is None:
        if json_output:
            print_json(None)
        fail(ExitCode.NOT_FOUND, f"job {job_id} not found (not processed yet, or a wrong id or table prefix)")
    emit(json_output, wire(details), report_panel(details), interactions_table(details))


def _with_all_items(client: JobsClient, report: _R) -> _R:
    """The report with every item's outcome when its row kept only some (as GET /api/jobs/{jobId} answers)."""
    result = report.result
    if result is None or not result.items_truncated:
        return report
    items = client.items(report)
    full = result.model_copy(update={"items": items, "items_truncated": False})
    return report.model_copy(update={"result": full})


# -- list ----------------------------------------------------------------------------------------------------


@app.command("list", cls=PlainCommand)
@storage_options
def list_jobs(
    state: Annotated[JobState | None, typer.Option("--state", help="Only jobs in this state.")] = None,
    since: Annotated[
        str | None,
        typer.Option("--since", help="Only jobs updated since: 30m, 2h, 7d or an ISO-8601 date-time."),
    ] = None,
    limit: Annotated[int, typer.Option("--limit", min=1, help="Show the newest this many jobs.")] = 100,
    connection: ConnectionOption = None,
    json_output: JsonOutput = False,
    *,
    storage: StorageOptions,
) -> None:
    """The --limit newest jobs, by last update, newest first.

    Reads every job row that --state and --since let through to find the newest (the Table keeps rows in job-id
    order, not by time): on a large table, narrow the read with --since.
    """
    after = since_option(since)
    with storage.connect() as client:
        reports = list(client.list(state, after, connection=connection))
    reports.sort(key=lambda r: r.updated_at or r.created_at or datetime.min.replace(tzinfo=UTC), reverse=True)
    newest = reports[:limit]
    emit(json_output, [wire(report) for report in newest], *jobs_listing(newest, limit, total=len(reports)))


# -- wait ----------------------------------------------------------------------------------------------------


@app.command(cls=PlainCommand)
@storage_options
def wait(
    job_id: Annotated[str, typer.Argument(metavar="JOB_ID", show_default=False, help="The job's id.")],
    timeout: Annotated[float, typer.Option("--timeout", min=0, help="Seconds to wait at most.")] = 300.0,
    poll: Annotated[float, typer.Option("--poll", min=0.05, help="First poll interval (backs off).")] = 1.0,
    all_items: AllItems = False,
    json_output: JsonOutput = False,
    *,
    storage: StorageOptions,
) -> None:
    """Wait until the job reaches a terminal state; exit 0 if it succeeded, 1 if not, 5 on timeout."""
    with storage.connect() as client, spinner(job_id, quiet=json_output) as seen:
        try:
            report = client.wait(job_id, timeout=timeout, poll=poll, on_poll=seen)
        except WaitTimeoutError as exc:
            last = exc.last
            if json_output:
                print_json({"jobId": job_id, "timedOut": True, "last": wire(last) if last else None})
            fail(ExitCode.TIMEOUT, str(exc))
        if all_items:
            report = _with_all_items(client, report)
    emit(json_output, wire(report), report_panel(report))
    if report.state is not JobState.SUCCEEDED:
        raise typer.Exit(int(ExitCode.INCOMPLETE))


# -- results -------------------------------------------------------------------------------------------------


@app.command(cls=PlainCommand)
@storage_options
def results(
    follow: Annotated[bool, typer.Option("--follow", "-f", help="Keep waiting for new results.")] = False,
    max_count: Annotated[int | None, typer.Option("--max", min=1, help="Stop after this many.")] = None,
    idle_timeout: Annotated[
        float | None, typer.Option("--idle-timeout", min=0, help="With --follow: stop after this long idle.")
    ] = None,
    visibility_timeout: Annotated[
        int, typer.Option("--visibility-timeout", min=1, help="Seconds a result stays hidden while printed.")
    ] = 60,
    peek: Annotated[
        bool, typer.Option("--peek", help="Print the first reports (at most 32) and leave them on the queue.")
    ] = False,
    json_output: JsonOutput = False,
    *,
    storage: StorageOptions,
    results_queue: ResultsQueue = RESULTS_QUEUE,
) -> None:
    """Print the reports on bc-results (JSON Lines with --json), deleting each once printed (not with --peek)."""
    if peek:
        _peek_results(
            storage.with_results_queue(results_queue), max_count, follow=follow, json_output=json_output
        )
        return
    try:
        with (
            storage.with_results_queue(results_queue).connect() as client,
            client.results(
                follow=follow, idle_timeout=idle_timeout, visibility_timeout=visibility_timeout
            ) as stream,
        ):
            _print_results(stream, max_count, json_output=json_output)
    except KeyboardInterrupt:
        raise typer.Exit(int(ExitCode.INTERRUPTED)) from None


def _peek_results(storage: StorageOptions, max_count: int | None, *, follow: bool, json_output: bool) -> None:
    """Print the first reports on the results queue without taking them off it."""
    if follow:
        fail(ExitCode.USAGE, "--peek shows what is on the queue now; leave out --follow (or --peek)")
    with storage.connect() as client:
        reports = client.peek_results(max_count or 32)
    for report in reports:
        emit(json_output, wire(report), result_line(report))
    if not json_output and not reports:
        err.print("no results")


def _print_results(stream: ResultStream, max_count: int | None, *, json_output: bool) -> None:
    """Print each result as it comes (the stream deletes it when the next is asked for), at most `max_count`."""
    count = 0
    for item in stream:
        emit(json_output, wire(item.report), result_line(item.report))
        count += 1
        if max_count is not None and count >= max_count:
            return
    if not json_output and count == 0:
        err.print("no results")
