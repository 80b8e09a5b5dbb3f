"""`bcjobs`: send BC jobs and follow them from a terminal or a script (`python -m bcjobs`, or the `bcjobs` script).

    bcjobs enqueue jobs.jsonl          JSON (an object or an array) or JSONL; a progress bar; every bad line reported
    bcjobs show JOB_ID                 state, attempts, result, error with BC's code, the BC requests as a table
    bcjobs show JOB_ID --all-items     a large batch: every item's outcome (the job row keeps only the first failing)
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
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from enum import IntEnum
from pathlib import Path
from typing import Annotated, Any, NoReturn, TypeVar

import typer
from rich.console import Console, Group, RenderableType
from rich.panel import Panel
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table
from rich.text import Text

from bcjobs import RESULTS_QUEUE
from bcjobs.client import JobsClient, ResultStream
from bcjobs.common import DEFAULT_TABLE_PREFIX, EnqueueFailure, JobDetails, JobHandle
from bcjobs.errors import InvalidJobError, JobsStorageError, Problem, WaitTimeoutError
from bcjobs.jobfiles import Entry, read_entries
from bcjobs.results import ErrorInfo, ItemOutcome, JobReport, JobState, ResultSummary
from bcjobs.rows import Interaction
from bcjobs.submit import PreparedJob, prepare

_R = TypeVar("_R", bound=JobReport)


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
AllItems = Annotated[
    bool,
    typer.Option(
        "--all-items",
        help="A large batch: every item's outcome from the items table (the job row keeps only the first failing).",
    ),
]


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
    def connect(self) -> Iterator[JobsClient]:
        """The client, closed at the end; storage failures and unusable settings end the command."""
        with _storage_errors(), self.client() as client:
            yield client


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


def _emit(json_output: bool, value: Any, *renderables: RenderableType) -> None:
    """`value` as one line of JSON for scripts (--json), otherwise the renderables for people."""
    if json_output:
        _print_json(value)
        return
    for renderable in renderables:
        out.print(renderable)
    out.file.flush()


def _wire(report: JobReport) -> dict[str, Any]:
    value: dict[str, Any] = json.loads(report.model_dump_json(by_alias=True, exclude_none=True))
    return value


def _table(*columns: str, title: str | None = None, wide: str | None = None) -> Table:
    """The CLI's table: these columns, folding long cells; the `wide` one at least 24 characters."""
    table = Table(title=title, title_justify="left")
    for column in columns:
        table.add_column(column, overflow="fold", min_width=24 if column == wide else None)
    return table


def _add_fields(grid: Table, fields: Iterable[tuple[str, str | None]]) -> None:
    """A `name  value` row in the grid for each field that has a value."""
    for name, value in fields:
        if value:
            grid.add_row(name, Text(value))


def _codes(error: ErrorInfo | None) -> str:
    """The error's code and BC's error code when it has one (empty without an error)."""
    return " ".join(code for code in (error.code, error.bc_code) if code) if error else ""


# -- enqueue -------------------------------------------------------------------------------------------------

_Rejected = tuple[Entry, str | None, tuple[Problem, ...]]


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
    entries = read_entries(_read_input(file), name=file)
    good, rejected = _validate(entries)
    sent: list[tuple[Entry, JobHandle]] = []
    failed: list[tuple[Entry, EnqueueFailure]] = []
    if good and not (strict and rejected):
        storage = _Storage(connection_string, queue_service_uri, table_service_uri, table_prefix)
        sent, failed = _send(storage, good, concurrency=concurrency, quiet=json_output)
    _report_enqueue(entries, sent, failed, rejected, strict=strict, json_output=json_output)
    if failed and not sent:
        raise typer.Exit(int(ExitCode.STORAGE))
    if failed or rejected:
        raise typer.Exit(int(ExitCode.INCOMPLETE))


def _validate(entries: list[Entry]) -> tuple[list[tuple[Entry, PreparedJob]], list[_Rejected]]:
    """The entries ready to send, and the ones rejected with their problems (nothing stops at the first)."""
    good: list[tuple[Entry, PreparedJob]] = []
    rejected: list[_Rejected] = []
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


def _send(
    storage: _Storage, good: list[tuple[Entry, PreparedJob]], *, concurrency: int, quiet: bool
) -> tuple[list[tuple[Entry, JobHandle]], list[tuple[Entry, EnqueueFailure]]]:
    """Send the good jobs with a progress bar (unless quiet); what was sent and what was not, by entry."""
    with storage.connect() as client, _progress(quiet) as progress:
        task = progress.add_task("sending", total=len(good))

        def advance(index: int, outcome: JobHandle | EnqueueFailure) -> None:
            del index, outcome
            progress.advance(task)

        result = client.enqueue_many([p for _, p in good], max_concurrency=concurrency, on_progress=advance)
    sent = [(good[i][0], handle) for i, handle in sorted(result.sent.items())]
    failed = [(good[i][0], failure) for i, failure in sorted(result.failed.items())]
    return sent, failed


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
    rejected: list[_Rejected],
    *,
    strict: bool,
    json_output: bool,
) -> None:
    parts: list[RenderableType] = []
    if rejected:
        parts.append(_rejected_table(rejected))
    if failed:
        parts.append(_failed_table(failed))
    parts.append(_enqueue_summary(len(entries), len(sent), len(failed), len(rejected), strict=strict))
    if len(sent) == 1:
        parts.append(Text(f"job id: {sent[0][1].job_id}"))
    _emit(json_output, _enqueue_json(entries, sent, failed, rejected), *parts)


def _enqueue_json(
    entries: list[Entry],
    sent: list[tuple[Entry, JobHandle]],
    failed: list[tuple[Entry, EnqueueFailure]],
    rejected: list[_Rejected],
) -> dict[str, Any]:
    return {
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


def _rejected_table(rejected: list[_Rejected]) -> Table:
    table = _table("where", "jobId", "field", "expected", title="Rejected")
    for entry, job_id, problems in rejected:
        for problem in problems:
            table.add_row(
                Text(entry.where), Text(job_id or "-"), Text(problem.path or "(job)"), Text(problem.expected)
            )
    return table


def _failed_table(failed: list[tuple[Entry, EnqueueFailure]]) -> Table:
    table = _table("where", "jobId", "error", title="Not sent")
    for entry, failure in failed:
        table.add_row(Text(entry.where), Text(failure.job_id or "-"), Text(str(failure.error)))
    return table


def _enqueue_summary(total: int, sent: int, failed: int, rejected: int, *, strict: bool) -> Text:
    summary = Text(f"{sent} of {total} jobs enqueued")
    if rejected:
        summary.append(f", {rejected} rejected", style="red")
        if strict:
            summary.append(" (--strict: nothing sent)")
    if failed:
        summary.append(f", {failed} not sent", style="red")
    return summary


# -- show ----------------------------------------------------------------------------------------------------


@app.command()
def show(
    job_id: Annotated[str, typer.Argument(help="The job's id.")],
    all_items: AllItems = False,
    json_output: JsonOutput = False,
    connection_string: ConnectionString = None,
    queue_service_uri: QueueServiceUri = None,
    table_service_uri: TableServiceUri = None,
    table_prefix: TablePrefix = DEFAULT_TABLE_PREFIX,
) -> None:
    """A job's state, attempts, result or error (with BC's code) and the BC requests it made."""
    storage = _Storage(connection_string, queue_service_uri, table_service_uri, table_prefix)
    with storage.connect() as client:
        details = client.get(job_id, interactions=True)
        if details is not None and all_items:
            details = _with_all_items(client, details)
    if details is None:
        if json_output:
            _print_json(None)
        _fail(
            ExitCode.NOT_FOUND, f"job {job_id} not found (not processed yet, or a wrong id or table prefix)"
        )
    _emit(json_output, _wire(details), _report_panel(details), _interactions_table(details))


def _with_all_items(client: JobsClient, report: _R) -> _R:
    """The report with every item's outcome when its row kept only some (as GET /api/jobs/{jobId} answers)."""
    result = report.result
    if result is None or not result.items_truncated:
        return report
    items = client.items(report)
    full = result.model_copy(update={"items": items, "items_truncated": False})
    return report.model_copy(update={"result": full})


def _truncation_note(report: JobReport) -> Text | None:
    """What a bounded batch result leaves out, and how to see it all (None when nothing is left out)."""
    result = report.result
    if result is None or not result.items_truncated:
        return None
    shown, total = len(result.items or []), (result.items_succeeded or 0) + (result.items_failed or 0)
    return Text(
        f"items truncated: {shown} of {total} shown ({result.items_succeeded or 0} succeeded, "
        f"{result.items_failed or 0} failed); every item: bcjobs show {report.job_id} --all-items",
        style="yellow",
    )


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
    _add_fields(grid, _report_fields(report))
    parts: list[RenderableType] = [grid]
    if report.result is not None:
        grid.add_row("result", Text(_result_fields(report.result) or "-"))
        if report.result.items:
            parts.append(_items_table(report.result.items))
        note = _truncation_note(report)
        if note is not None:
            parts.append(note)
    if report.error is not None:
        grid.add_row("error", Text(report.error.code, style="red"))
        _add_fields(grid, _error_fields(report.error))
    return Panel(Group(*parts), title=Text(f"job {report.job_id}"), title_align="left", expand=False)


def _report_fields(report: JobReport) -> list[tuple[str, str | None]]:
    return [
        ("operation", report.operation),
        ("attempts", str(report.attempts)),
        ("correlation id", report.correlation_id),
        ("created", _when(report.created_at)),
        ("updated", _when(report.updated_at)),
        ("finished", _when(report.finished_at) if report.finished_at else None),
        ("next attempt", _when(report.next_attempt_at) if report.next_attempt_at else None),
    ]


def _result_fields(result: ResultSummary) -> str:
    """The summary's set fields as `name=value`, records counted rather than shown."""
    shown = result.model_dump(by_alias=True, exclude_none=True, exclude={"items", "entities"})
    shown = {key: value for key, value in shown.items() if value is not False}
    if result.entities is not None:
        shown["entities"] = f"{len(result.entities)} record(s)"
    return ", ".join(f"{k}={v}" for k, v in shown.items())


def _items_table(items: list[ItemOutcome]) -> Table:
    table = _table("#", "status", "id", "rolled back", "error", title="batch items")
    for item in items:
        table.add_row(
            str(item.index),
            str(item.status or "-"),
            Text(item.id or "-"),
            "yes" if item.rolled_back else "",
            Text(_codes(item.error)),
        )
    return table


def _error_fields(error: ErrorInfo) -> list[tuple[str, str | None]]:
    return [
        ("BC error code", error.bc_code),
        ("HTTP status", str(error.status) if error.status else None),
        ("message", error.message),
        ("client request id", error.client_request_id),
        ("BC request id", error.bc_request_id),
        ("retriable", "yes" if error.retriable else None),
    ]


_INTERACTION_COLUMNS: list[tuple[str, Callable[[Interaction], str]]] = [
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
_OPTIONAL_COLUMNS = {"at", "BC code", "request id", "error"}


def _interactions_table(details: JobDetails) -> Table | Text:
    log = details.interactions or []
    if not log:
        return Text("no BC requests recorded")
    shown = [
        (name, cell)
        for name, cell in _INTERACTION_COLUMNS
        if name not in _OPTIONAL_COLUMNS or any(cell(i) not in ("", "-") for i in log)
    ]
    table = _table(*(name for name, _ in shown), title="BC requests", wide="path")
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
    with storage.connect() as client:
        reports = list(client.list(state, after, limit=limit))
    reports.sort(key=lambda r: r.updated_at or r.created_at or datetime.min.replace(tzinfo=UTC), reverse=True)
    parts: list[RenderableType] = [_jobs_table(reports) if reports else "no jobs"]
    if len(reports) == limit:
        parts.append(Text(f"(first {limit}; raise --limit for more)", style="dim"))
    _emit(json_output, [_wire(report) for report in reports], *parts)


def _jobs_table(reports: list[JobReport]) -> Table:
    table = _table("job id", "state", "operation", "attempts", "updated", "error")
    for report in reports:
        table.add_row(
            Text(report.job_id),
            _state(report.state),
            Text(report.operation or "-"),
            str(report.attempts),
            _when(report.updated_at),
            Text(_codes(report.error)),
        )
    return table


# -- wait ----------------------------------------------------------------------------------------------------


@app.command()
def wait(
    job_id: Annotated[str, typer.Argument(help="The job's id.")],
    timeout: Annotated[float, typer.Option("--timeout", min=0, help="Seconds to wait at most.")] = 300.0,
    poll: Annotated[float, typer.Option("--poll", min=0.05, help="First poll interval (backs off).")] = 1.0,
    all_items: AllItems = False,
    json_output: JsonOutput = False,
    connection_string: ConnectionString = None,
    queue_service_uri: QueueServiceUri = None,
    table_service_uri: TableServiceUri = None,
    table_prefix: TablePrefix = DEFAULT_TABLE_PREFIX,
) -> None:
    """Wait until the job reaches a terminal state; exit 0 if it succeeded, 1 if not, 5 on timeout."""
    storage = _Storage(connection_string, queue_service_uri, table_service_uri, table_prefix)
    with storage.connect() as client, _spinner(job_id, quiet=json_output) as seen:
        try:
            report = client.wait(job_id, timeout=timeout, poll=poll, on_poll=seen)
        except WaitTimeoutError as exc:
            last = exc.last
            if json_output:
                _print_json({"jobId": job_id, "timedOut": True, "last": _wire(last) if last else None})
            _fail(ExitCode.TIMEOUT, str(exc))
        if all_items:
            report = _with_all_items(client, report)
    _emit(json_output, _wire(report), _report_panel(report))
    if report.state is not JobState.SUCCEEDED:
        raise typer.Exit(int(ExitCode.INCOMPLETE))


@contextmanager
def _spinner(job_id: str, *, quiet: bool) -> Iterator[Callable[[JobReport | None], None]]:
    """A spinner on stderr showing the job's state while the block runs (none when quiet); yields the poll hook."""
    status = None if quiet else err.status(Text(f"waiting for job {job_id}"), spinner="dots")

    def seen(report: JobReport | None) -> None:
        if status is not None:
            state = report.state.value if report else "not recorded yet"
            status.update(Text(f"waiting for job {job_id}: {state}"))

    if status is None:
        yield seen
        return
    with status:
        yield seen


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
    try:
        with (
            storage.connect() as client,
            client.results(
                follow=follow, idle_timeout=idle_timeout, visibility_timeout=visibility_timeout
            ) as stream,
        ):
            _print_results(stream, max_count, json_output=json_output)
    except KeyboardInterrupt:
        raise typer.Exit(int(ExitCode.INTERRUPTED)) from None


def _print_results(stream: ResultStream, max_count: int | None, *, json_output: bool) -> None:
    """Print each result as it comes (the stream deletes it when the next is asked for), at most `max_count`."""
    count = 0
    for item in stream:
        _emit(json_output, _wire(item.report), _result_line(item.report))
        count += 1
        if max_count is not None and count >= max_count:
            return
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
        line.append(f"  {_codes(report.error)}: {report.error.message}", style="red")
    return line


def main() -> None:
    """Console entry point (`bcjobs`, `python -m bcjobs`)."""
    app()
