"""`bcjobs`: send BC jobs and follow them from a terminal or a script (`python -m bcjobs`, or the `bcjobs` script).

    bcjobs enqueue jobs.jsonl          JSON (an object or an array) or JSONL; a progress bar; every bad line reported
    bcjobs show JOB_ID                 state, attempts, result, error with BC's code, the BC requests as a table
    bcjobs list --state failed --since 2h
    bcjobs wait JOB_ID --timeout 600
    bcjobs results --follow

Storage: `--connection-string` / env `JobsStorage`, or `--queue-service-uri` + `--table-service-uri` (env
`JobsStorage__queueServiceUri`, `JobsStorage__tableServiceUri`) with DefaultAzureCredential; `--table-prefix` /
env `BC_TABLE_PREFIX`. Human-readable output by default; `--json` prints JSON for scripts.

Exit codes: 0 done (wait: the job succeeded) · 1 done, but not everything went well (enqueue: some jobs rejected
or not sent; wait: the job ended failed, rejected, expired or dead-lettered) · 2 usage error (bad option, unreadable
file, no storage configured) · 3 storage unreachable or refused (network, credential, role, missing queue or table)
· 4 no such job (show) · 5 wait timed out · 130 interrupted.
"""

from __future__ import annotations

import json
import re
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from enum import IntEnum
from pathlib import Path
from typing import Annotated, Any, NoReturn

import typer
from rich.console import Console, Group
from rich.panel import Panel
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table
from rich.text import Text

from bcjobs import RESULTS_QUEUE
from bcjobs.client import JobsClient
from bcjobs.common import DEFAULT_TABLE_PREFIX, EnqueueFailure, JobDetails, JobHandle
from bcjobs.errors import InvalidJobError, JobsStorageError, Problem, WaitTimeoutError
from bcjobs.jobfiles import Entry, read_entries
from bcjobs.results import JobReport, JobState
from bcjobs.rows import Interaction
from bcjobs.submit import PreparedJob, prepare


class ExitCode(IntEnum):
    """What the process tells its caller (documented in bcjobs/README.md)."""

    OK = 0
    INCOMPLETE = 1
    USAGE = 2
    STORAGE = 3
    NOT_FOUND = 4
    TIMEOUT = 5
    INTERRUPTED = 130


app = typer.Typer(
    name="bcjobs",
    help="Send Business Central jobs to the integration and follow them.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)

out = Console(highlight=False, soft_wrap=False)
err = Console(stderr=True, highlight=False)

_STORAGE = "Storage"
ConnectionString = Annotated[
    str | None,
    typer.Option(
        "--connection-string",
        envvar="JobsStorage",
        show_default=False,
        help="Storage connection string (Azurite locally).",
        rich_help_panel=_STORAGE,
    ),
]
QueueServiceUri = Annotated[
    str | None,
    typer.Option(
        "--queue-service-uri",
        envvar="JobsStorage__queueServiceUri",
        help="Queue endpoint, with DefaultAzureCredential.",
        rich_help_panel=_STORAGE,
    ),
]
TableServiceUri = Annotated[
    str | None,
    typer.Option(
        "--table-service-uri",
        envvar="JobsStorage__tableServiceUri",
        help="Table endpoint, with DefaultAzureCredential.",
        rich_help_panel=_STORAGE,
    ),
]
TablePrefix = Annotated[
    str,
    typer.Option(
        "--table-prefix",
        envvar="BC_TABLE_PREFIX",
        help="Prefix of the product's tables.",
        rich_help_panel=_STORAGE,
    ),
]
ResultsQueue = Annotated[
    str,
    typer.Option(
        "--results-queue", envvar="BC_RESULTS_QUEUE", help="The results queue.", rich_help_panel=_STORAGE
    ),
]
JsonOutput = Annotated[bool, typer.Option("--json", help="Print JSON for scripts instead of tables.")]


class _Storage:
    def __init__(
        self,
        connection_string: str | None,
        queue_service_uri: str | None,
        table_service_uri: str | None,
        table_prefix: str,
        results_queue: str = RESULTS_QUEUE,
    ) -> None:
        self.connection_string = connection_string
        self.queue_service_uri = queue_service_uri
        self.table_service_uri = table_service_uri
        self.table_prefix = table_prefix
        self.results_queue = results_queue

    def client(self) -> JobsClient:
        if self.connection_string:
            return JobsClient.from_connection_string(
                self.connection_string, table_prefix=self.table_prefix, results_queue=self.results_queue
            )
        if not self.queue_service_uri or not self.table_service_uri:
            _fail(
                ExitCode.USAGE,
                "no storage configured: set JobsStorage (a connection string) or --queue-service-uri and "
                "--table-service-uri (DefaultAzureCredential)",
            )
        return JobsClient(
            self.queue_service_uri,
            self.table_service_uri,
            table_prefix=self.table_prefix,
            results_queue=self.results_queue,
        )


@contextmanager
def _storage_errors() -> Iterator[None]:
    try:
        yield
    except JobsStorageError as exc:
        _fail(ExitCode.STORAGE, str(exc))
    except ValueError as exc:  # connection string or URI the SDK cannot use
        _fail(ExitCode.USAGE, f"storage settings: {exc}")


def _fail(code: ExitCode, message: str) -> NoReturn:
    err.print(Text(f"bcjobs: {message}", style="red"))
    raise typer.Exit(int(code))


def _print_json(value: Any) -> None:
    sys.stdout.write(json.dumps(value, ensure_ascii=False, default=str) + "\n")
    sys.stdout.flush()


def _wire(report: JobReport) -> dict[str, Any]:
    value: dict[str, Any] = json.loads(report.model_dump_json(by_alias=True, exclude_none=True))
    return value


# -- enqueue -------------------------------------------------------------------------------------------------


@app.command()
def enqueue(
    file: Annotated[str, typer.Argument(help="JSON (an object or an array) or JSONL file; - reads stdin.")],
    strict: Annotated[bool, typer.Option("--strict", help="Send nothing when any job is invalid.")] = False,
    concurrency: Annotated[int, typer.Option("--concurrency", min=1, max=64, help="Sends in flight.")] = 8,
    json_output: JsonOutput = False,
    connection_string: ConnectionString = None,
    queue_service_uri: QueueServiceUri = None,
    table_service_uri: TableServiceUri = None,
    table_prefix: TablePrefix = DEFAULT_TABLE_PREFIX,
) -> None:
    """Validate every job in FILE, report each bad one by line, send the good ones to bc-jobs."""
    text = _read_input(file)
    entries = read_entries(text, name=file)
    good: list[tuple[Entry, PreparedJob]] = []
    rejected: list[tuple[Entry, str | None, tuple[Problem, ...]]] = []
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
    sent: list[tuple[Entry, JobHandle]] = []
    failed: list[tuple[Entry, EnqueueFailure]] = []
    if good and not (strict and rejected):
        storage = _Storage(connection_string, queue_service_uri, table_service_uri, table_prefix)
        with _storage_errors(), storage.client() as client, _progress(json_output) as progress:
            task = progress.add_task("sending", total=len(good))

            def advance(index: int, outcome: JobHandle | EnqueueFailure) -> None:
                del index, outcome
                progress.advance(task)

            result = client.enqueue_many(
                [p for _, p in good], max_concurrency=concurrency, on_progress=advance
            )
        sent = [(good[i][0], handle) for i, handle in sorted(result.sent.items())]
        failed = [(good[i][0], failure) for i, failure in sorted(result.failed.items())]
    _report_enqueue(entries, sent, failed, rejected, strict=strict, json_output=json_output)
    if failed and not sent:
        raise typer.Exit(int(ExitCode.STORAGE))
    if failed or rejected:
        raise typer.Exit(int(ExitCode.INCOMPLETE))


def _read_input(file: str) -> str:
    try:
        if file == "-":
            return sys.stdin.read()
        return Path(file).read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        _fail(ExitCode.USAGE, f"cannot read {file}: {exc.__class__.__name__}: {getattr(exc, 'strerror', '')}")


@contextmanager
def _progress(disabled: bool) -> Iterator[Progress]:
    progress = Progress(
        TextColumn("[progress.description]{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        console=err,
        disable=disabled,
        transient=True,
    )
    with progress:
        yield progress


def _report_enqueue(
    entries: list[Entry],
    sent: list[tuple[Entry, JobHandle]],
    failed: list[tuple[Entry, EnqueueFailure]],
    rejected: list[tuple[Entry, str | None, tuple[Problem, ...]]],
    *,
    strict: bool,
    json_output: bool,
) -> None:
    if json_output:
        _print_json(
            {
                "total": len(entries),
                "enqueued": [{entry.kind: entry.number, "jobId": handle.job_id} for entry, handle in sent],
                "rejected": [
                    {
                        entry.kind: entry.number,
                        "jobId": job_id,
                        "problems": [{"path": p.path, "expected": p.expected} for p in problems],
                    }
                    for entry, job_id, problems in rejected
                ],
                "failed": [
                    {entry.kind: entry.number, "jobId": failure.job_id, "error": str(failure.error)}
                    for entry, failure in failed
                ],
            }
        )
        return
    if rejected:
        table = Table(title="Rejected", title_justify="left", show_lines=False)
        for column in ("where", "jobId", "field", "expected"):
            table.add_column(column, overflow="fold")
        for entry, job_id, problems in rejected:
            for problem in problems:
                table.add_row(
                    Text(entry.where),
                    Text(job_id or "-"),
                    Text(problem.path or "(job)"),
                    Text(problem.expected),
                )
        out.print(table)
    if failed:
        table = Table(title="Not sent", title_justify="left")
        for column in ("where", "jobId", "error"):
            table.add_column(column, overflow="fold")
        for entry, failure in failed:
            table.add_row(Text(entry.where), Text(failure.job_id or "-"), Text(str(failure.error)))
        out.print(table)
    summary = Text(f"{len(sent)} of {len(entries)} jobs enqueued")
    if rejected:
        summary.append(f", {len(rejected)} rejected", style="red")
        if strict:
            summary.append(" (--strict: nothing sent)")
    if failed:
        summary.append(f", {len(failed)} not sent", style="red")
    out.print(summary)
    if len(sent) == 1:
        out.print(Text(f"job id: {sent[0][1].job_id}"))


# -- show ----------------------------------------------------------------------------------------------------


@app.command()
def show(
    job_id: Annotated[str, typer.Argument(help="The job's id.")],
    json_output: JsonOutput = False,
    connection_string: ConnectionString = None,
    queue_service_uri: QueueServiceUri = None,
    table_service_uri: TableServiceUri = None,
    table_prefix: TablePrefix = DEFAULT_TABLE_PREFIX,
) -> None:
    """A job's state, attempts, result or error (with BC's code) and the BC requests it made."""
    storage = _Storage(connection_string, queue_service_uri, table_service_uri, table_prefix)
    with _storage_errors(), storage.client() as client:
        details = client.get(job_id, interactions=True)
    if details is None:
        if json_output:
            _print_json(None)
        _fail(
            ExitCode.NOT_FOUND, f"job {job_id} not found (not processed yet, or a wrong id or table prefix)"
        )
    if json_output:
        _print_json(_wire(details))
        return
    out.print(_report_panel(details))
    out.print(_interactions_table(details))


def _when(value: datetime | None) -> str:
    if value is None:
        return "-"
    aware = value if value.tzinfo else value.replace(tzinfo=UTC)
    return aware.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S UTC")


_STATE_STYLE = {
    JobState.SUCCEEDED: "green",
    JobState.FAILED: "red",
    JobState.REJECTED: "red",
    JobState.EXPIRED: "red",
    JobState.DEAD_LETTERED: "red",
}


def _state(state: JobState) -> Text:
    return Text(state.value, style=_STATE_STYLE.get(state, "yellow"))


def _report_panel(report: JobReport) -> Panel:
    grid = Table.grid(padding=(0, 2))
    grid.add_column(style="bold")
    grid.add_column(overflow="fold")
    grid.add_row("state", _state(report.state))
    rows: list[tuple[str, str | None]] = [
        ("operation", report.operation),
        ("attempts", str(report.attempts)),
        ("correlation id", report.correlation_id),
        ("created", _when(report.created_at)),
        ("updated", _when(report.updated_at)),
        ("finished", _when(report.finished_at) if report.finished_at else None),
        ("next attempt", _when(report.next_attempt_at) if report.next_attempt_at else None),
    ]
    for name, value in rows:
        if value is not None:
            grid.add_row(name, Text(value))
    parts: list[Any] = [grid]
    if report.result is not None:
        result = report.result.model_dump(by_alias=True, exclude_none=True, exclude={"items", "entities"})
        result = {key: value for key, value in result.items() if value is not False}
        if report.result.entities is not None:
            result["entities"] = f"{len(report.result.entities)} record(s)"
        grid.add_row("result", Text(", ".join(f"{k}={v}" for k, v in result.items()) or "-"))
        if report.result.items:
            items = Table(title="batch items", title_justify="left")
            for column in ("#", "status", "id", "rolled back", "error"):
                items.add_column(column, overflow="fold")
            for item in report.result.items:
                codes = f"{item.error.code} {item.error.bc_code or ''}".strip() if item.error else ""
                items.add_row(
                    str(item.index),
                    str(item.status or "-"),
                    Text(item.id or "-"),
                    "yes" if item.rolled_back else "",
                    Text(codes),
                )
            parts.append(items)
    if report.error is not None:
        error = report.error
        grid.add_row("error", Text(error.code, style="red"))
        details = [
            ("BC error code", error.bc_code),
            ("HTTP status", str(error.status) if error.status else None),
            ("message", error.message),
            ("client request id", error.client_request_id),
            ("BC request id", error.bc_request_id),
            ("retriable", "yes" if error.retriable else None),
        ]
        for name, value in details:
            if value:
                grid.add_row(name, Text(value))
    return Panel(Group(*parts), title=Text(f"job {report.job_id}"), title_align="left", expand=False)


def _interactions_table(details: JobDetails) -> Table | Text:
    log = details.interactions or []
    if not log:
        return Text("no BC requests recorded")
    columns: list[tuple[str, Callable[[Interaction], str]]] = [
        ("attempt", lambda i: str(i.attempt)),
        ("#", lambda i: str(i.sequence)),
        ("at", lambda i: _when(i.at)),
        ("method", lambda i: i.method),
        ("path", lambda i: i.path),
        ("status", lambda i: str(i.status) if i.status is not None else "-"),
        ("ms", lambda i: f"{i.duration_ms:.0f}"),
        ("BC code", lambda i: i.bc_error_code or ""),
        ("request id", lambda i: i.client_request_id or ""),
        ("error", lambda i: i.error or ""),
    ]
    optional = {"at", "BC code", "request id", "error"}
    shown = [
        (name, cell)
        for name, cell in columns
        if name not in optional or any(cell(i) not in ("", "-") for i in log)
    ]
    table = Table(title="BC requests", title_justify="left")
    for name, _ in shown:
        table.add_column(name, overflow="fold", min_width=24 if name == "path" else None)
    for item in log:
        table.add_row(*(Text(cell(item)) for _, cell in shown))
    return table


# -- list ----------------------------------------------------------------------------------------------------

_DURATION = re.compile(r"^(\d+(?:\.\d+)?)([smhdw])$")
_UNITS = {"s": "seconds", "m": "minutes", "h": "hours", "d": "days", "w": "weeks"}


def parse_since(value: str, *, now: Callable[[], datetime] = lambda: datetime.now(UTC)) -> datetime:
    """`90s`, `15m`, `2h`, `7d`, `1w` ago, or an ISO-8601 date-time (UTC when it has no offset)."""
    text = value.strip()
    match = _DURATION.match(text)
    if match:
        return now() - timedelta(**{_UNITS[match.group(2)]: float(match.group(1))})
    try:
        when = datetime.fromisoformat(text)
    except ValueError:
        raise ValueError("a duration such as 30m, 2h, 7d, or an ISO-8601 date-time") from None
    return when if when.tzinfo else when.replace(tzinfo=UTC)


def _since_option(value: str | None) -> datetime | None:
    if value is None:
        return None
    try:
        return parse_since(value)
    except ValueError as exc:
        raise typer.BadParameter(str(exc)) from None


@app.command("list")
def list_jobs(
    state: Annotated[JobState | None, typer.Option("--state", help="Only jobs in this state.")] = None,
    since: Annotated[
        str | None,
        typer.Option("--since", help="Only jobs updated since: 30m, 2h, 7d or an ISO-8601 date-time."),
    ] = None,
    limit: Annotated[int, typer.Option("--limit", min=1, help="At most this many jobs.")] = 100,
    json_output: JsonOutput = False,
    connection_string: ConnectionString = None,
    queue_service_uri: QueueServiceUri = None,
    table_service_uri: TableServiceUri = None,
    table_prefix: TablePrefix = DEFAULT_TABLE_PREFIX,
) -> None:
    """Jobs from the jobs Table (at most --limit), sorted by last update, newest first."""
    after = _since_option(since)
    storage = _Storage(connection_string, queue_service_uri, table_service_uri, table_prefix)
    with _storage_errors(), storage.client() as client:
        reports = list(client.list(state, after, limit=limit))
    reports.sort(key=lambda r: r.updated_at or r.created_at or datetime.min.replace(tzinfo=UTC), reverse=True)
    if json_output:
        _print_json([_wire(report) for report in reports])
        return
    if not reports:
        out.print("no jobs")
        return
    table = Table()
    for column in ("job id", "state", "operation", "attempts", "updated", "error"):
        table.add_column(column, overflow="fold")
    for report in reports:
        error = report.error
        table.add_row(
            Text(report.job_id),
            _state(report.state),
            Text(report.operation or "-"),
            str(report.attempts),
            _when(report.updated_at),
            Text(f"{error.code} {error.bc_code or ''}".strip() if error else ""),
        )
    out.print(table)
    if len(reports) == limit:
        out.print(Text(f"(first {limit}; raise --limit for more)", style="dim"))


# -- wait ----------------------------------------------------------------------------------------------------


@app.command()
def wait(
    job_id: Annotated[str, typer.Argument(help="The job's id.")],
    timeout: Annotated[float, typer.Option("--timeout", min=0, help="Seconds to wait at most.")] = 300.0,
    poll: Annotated[float, typer.Option("--poll", min=0.05, help="First poll interval (backs off).")] = 1.0,
    json_output: JsonOutput = False,
    connection_string: ConnectionString = None,
    queue_service_uri: QueueServiceUri = None,
    table_service_uri: TableServiceUri = None,
    table_prefix: TablePrefix = DEFAULT_TABLE_PREFIX,
) -> None:
    """Wait until the job reaches a terminal state; exit 0 if it succeeded, 1 if not, 5 on timeout."""
    storage = _Storage(connection_string, queue_service_uri, table_service_uri, table_prefix)
    with _storage_errors(), storage.client() as client:
        status = err.status(Text(f"waiting for job {job_id}"), spinner="dots") if not json_output else None

        def seen(report: JobReport | None) -> None:
            if status is not None:
                state = report.state.value if report else "not recorded yet"
                status.update(Text(f"waiting for job {job_id}: {state}"))

        try:
            if status is not None:
                status.start()
            report = client.wait(job_id, timeout=timeout, poll=poll, on_poll=seen)
        except WaitTimeoutError as exc:
            last = exc.last
            if json_output:
                _print_json({"jobId": job_id, "timedOut": True, "last": _wire(last) if last else None})
            _fail(ExitCode.TIMEOUT, str(exc))
        finally:
            if status is not None:
                status.stop()
    if json_output:
        _print_json(_wire(report))
    else:
        out.print(_report_panel(report))
    if report.state is not JobState.SUCCEEDED:
        raise typer.Exit(int(ExitCode.INCOMPLETE))


# -- results -------------------------------------------------------------------------------------------------


@app.command()
def results(
    follow: Annotated[bool, typer.Option("--follow", "-f", help="Keep waiting for new results.")] = False,
    max_count: Annotated[int | None, typer.Option("--max", min=1, help="Stop after this many.")] = None,
    idle_timeout: Annotated[
        float | None, typer.Option("--idle-timeout", min=0, help="With --follow: stop after this long idle.")
    ] = None,
    visibility_timeout: Annotated[
        int, typer.Option("--visibility-timeout", min=1, help="Seconds a result stays hidden while printed.")
    ] = 60,
    json_output: JsonOutput = False,
    connection_string: ConnectionString = None,
    queue_service_uri: QueueServiceUri = None,
    table_service_uri: TableServiceUri = None,
    table_prefix: TablePrefix = DEFAULT_TABLE_PREFIX,
    results_queue: ResultsQueue = RESULTS_QUEUE,
) -> None:
    """Print the reports on bc-results (JSON Lines with --json), deleting each once it has been printed."""
    storage = _Storage(connection_string, queue_service_uri, table_service_uri, table_prefix, results_queue)
    count = 0
    try:
        with (
            _storage_errors(),
            storage.client() as client,
            client.results(
                follow=follow, idle_timeout=idle_timeout, visibility_timeout=visibility_timeout
            ) as stream,
        ):
            for item in stream:
                if json_output:
                    _print_json(_wire(item.report))
                else:
                    out.print(_result_line(item.report))
                    out.file.flush()
                count += 1
                if max_count is not None and count >= max_count:
                    break
    except KeyboardInterrupt:
        raise typer.Exit(int(ExitCode.INTERRUPTED)) from None
    if not json_output and count == 0:
        err.print("no results")


def _result_line(report: JobReport) -> Text:
    line = Text()
    line.append(f"{report.state.value:<14}", style=_STATE_STYLE.get(report.state, "yellow"))
    line.append(f" {report.job_id}")
    if report.operation:
        line.append(f"  {report.operation}")
    if report.result is not None:
        shown = {k: v for k, v in (("id", report.result.id), ("number", report.result.number)) if v}
        if report.result.count is not None:
            shown["count"] = str(report.result.count)
        line.append("  " + " ".join(f"{k}={v}" for k, v in shown.items()))
    if report.error is not None:
        code = " ".join(c for c in (report.error.code, report.error.bc_code) if c)
        line.append(f"  {code}: {report.error.message}", style="red")
    return line


def main() -> None:
    """Console entry point (`bcjobs`, `python -m bcjobs`)."""
    app()
