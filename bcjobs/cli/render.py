"""Everything the CLI prints: rich tables, panels, a progress bar and a spinner for people; JSON for scripts."""

from __future__ import annotations

import json
import re
import sys
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from typing import Annotated

import rich.box
import rich.progress
import typer
from rich.console import Console, Group, RenderableType
from rich.panel import Panel
from rich.table import Table
from rich.text import Text

from bcjobs.common import EnqueueFailure, JobDetails, JobHandle
from bcjobs.connections import CheckResult, ConnectionInfo, IdentityInfo, WatchInfo
from bcjobs.errors import Problem
from bcjobs.jobfiles import Entry
from bcjobs.results import ErrorInfo, ItemOutcome, JobReport, JobState, ResultSummary
from bcjobs.rows import AuditedInteraction

out = Console(highlight=False, soft_wrap=False)
err = Console(stderr=True, highlight=False)

Rejected = tuple[Entry, str | None, tuple[Problem, ...]]
# Every command's --json flag (declared here, beside the output it switches).
JsonOutput = Annotated[bool, typer.Option("--json", help="Print JSON for scripts instead of tables.")]


def print_json(value: object) -> None:
    """`value` as one line of JSON on stdout."""
    sys.stdout.write(json.dumps(value, ensure_ascii=False, default=str) + "\n")
    sys.stdout.flush()


def emit(json_output: bool, value: object, *renderables: RenderableType) -> None:
    """`value` as one line of JSON for scripts (--json), otherwise the renderables for people."""
    if json_output:
        print_json(value)
        return
    for renderable in renderables:
        out.print(renderable)
    out.file.flush()


def wire(report: JobReport) -> dict[str, object]:
    """The report as its JSON wire form (camelCase, without empty fields)."""
    value: dict[str, object] = json.loads(report.model_dump_json(by_alias=True, exclude_none=True))
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


def _code(error: ErrorInfo | None) -> str:
    """One code for a narrow column: BC's when it gave one (it says more than `bc_error`), else the error's."""
    return (error.bc_code or error.code) if error else ""


# -- enqueue -------------------------------------------------------------------------------------------------


@contextmanager
def progress_bar(disabled: bool) -> Iterator[rich.progress.Progress]:
    """A transient progress bar on stderr (none when disabled)."""
    bar = rich.progress.Progress(
        rich.progress.TextColumn("[progress.description]{task.description}"),
        rich.progress.BarColumn(),
        rich.progress.MofNCompleteColumn(),
        rich.progress.TimeElapsedColumn(),
        console=err,
        disable=disabled,
        transient=True,
    )
    with bar:
        yield bar


def report_enqueue(
    entries: list[Entry],
    sent: list[tuple[Entry, JobHandle]],
    failed: list[tuple[Entry, EnqueueFailure]],
    rejected: list[Rejected],
    *,
    strict: bool,
    json_output: bool,
) -> None:
    """What `enqueue` did with each entry: rejected and unsent ones as tables, then a summary."""
    parts: list[RenderableType] = []
    if rejected:
        parts.append(_rejected_table(rejected))
    if failed:
        parts.append(_failed_table(failed))
    parts.append(_enqueue_summary(len(entries), len(sent), len(failed), len(rejected), strict=strict))
    if len(sent) == 1:
        parts.append(Text(f"job id: {sent[0][1].job_id}"))
    emit(json_output, _enqueue_json(entries, sent, failed, rejected), *parts)


def _place(entry: Entry) -> dict[str, object]:
    """`{"line": 12}` or `{"item": 3}`, with `"file"` when several files were read."""
    place: dict[str, object] = {entry.kind: entry.number}
    return {"file": entry.file, **place} if entry.file else place


def _enqueue_json(
    entries: list[Entry],
    sent: list[tuple[Entry, JobHandle]],
    failed: list[tuple[Entry, EnqueueFailure]],
    rejected: list[Rejected],
) -> dict[str, object]:
    return {
        "total": len(entries),
        "enqueued": [{**_place(entry), "jobId": handle.job_id} for entry, handle in sent],
        "rejected": [
            {
                **_place(entry),
                "jobId": job_id,
                "problems": [{"path": p.path, "expected": p.expected} for p in problems],
            }
            for entry, job_id, problems in rejected
        ],
        "failed": [
            {**_place(entry), "jobId": failure.job_id, "error": str(failure.error)}
            for entry, failure in failed
        ],
    }


def _rejected_table(rejected: list[Rejected]) -> Table:
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


# -- show and wait -------------------------------------------------------------------------------------------


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


def report_panel(report: JobReport) -> Panel:
    """The job's state, fields, result (with its items) or error, in a panel."""
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


_INTERACTION_COLUMNS: list[tuple[str, Callable[[AuditedInteraction], str]]] = [
    ("attempt", lambda i: str(i.attempt)),
    ("#", lambda i: str(i.sequence)),
    ("at (UTC)", lambda i: _short_when(i.at)),
    ("method", lambda i: i.method),
    ("path", lambda i: short_path(i.path)),
    ("status", lambda i: str(i.status) if i.status is not None else "-"),
    ("ms", lambda i: f"{i.duration_ms:.0f}"),
    ("BC code", lambda i: i.bc_error_code or ""),
    ("request id", lambda i: _short_id(i.client_request_id)),
    ("error", lambda i: i.error or ""),
]
_OPTIONAL_COLUMNS = {"at (UTC)", "BC code", "request id", "error"}
_GUID = re.compile(r"[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}")


def short_path(path: str) -> str:
    """A BC URL path for a table: what follows `companies(…)` (API root and company elided), GUIDs cut to 8.

    `/v2.0/<tenant>/<env>/api/v2.0/companies(<guid>)/salesOrders(<guid>)` becomes `…/salesOrders(5e6f7a8b…)`;
    `--json` keeps the full path.
    """
    company = re.search(r"/companies\([^)]*\)", path)
    elide = company is not None and company.start() > 0 and company.end() < len(path)
    shown = f"…{path[company.end() :]}" if company is not None and elide else path
    return _GUID.sub(lambda guid: f"{guid.group(0)[:8]}…", shown)


def _short_id(value: str | None) -> str:
    """A GUID's first 8 characters (enough to find it in a log; `--json` has it whole)."""
    return f"{value[:8]}…" if value and _GUID.fullmatch(value) else value or ""


def _short_when(value: datetime | None) -> str:
    """`12-06 05:00:00`: a table's time, UTC in the column's name."""
    return _when(value)[5:-4] if value else "-"


def interactions_table(details: JobDetails) -> Table | Text:
    """The BC requests the job made, one row each; columns no request has a value for are left out."""
    log = details.interactions or []
    if not log:
        return Text("no BC requests recorded")
    shown = [
        (name, cell)
        for name, cell in _INTERACTION_COLUMNS
        if name not in _OPTIONAL_COLUMNS or any(cell(i) not in ("", "-") for i in log)
    ]
    table = _compact(_table(*(name for name, _ in shown), title="BC requests", wide="path"))
    for item in log:
        table.add_row(*(Text(cell(item)) for _, cell in shown))
    return table


def _compact(table: Table) -> Table:
    """Many columns in 120: a space between them, a rule under the header, no frame."""
    table.box, table.padding, table.show_edge = rich.box.SIMPLE_HEAD, (0, 0, 0, 0), False
    return table


@contextmanager
def spinner(job_id: str, *, quiet: bool) -> Iterator[Callable[[JobReport | None], None]]:
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


# -- list and results ----------------------------------------------------------------------------------------


def jobs_listing(reports: list[JobReport], limit: int, *, total: int) -> list[RenderableType]:
    """The jobs as a table ("no jobs" when none), with a note when `limit` cut `total` short."""
    parts: list[RenderableType] = [_jobs_table(reports) if reports else "no jobs"]
    if total > limit:
        parts.append(Text(f"(newest {limit} of {total}; raise --limit for more)", style="dim"))
    return parts


def _jobs_table(reports: list[JobReport]) -> Table:
    """One row per job: id, state, operation, attempts, last update, error codes."""
    table = _compact(_table("job id", "state", "operation", "attempts", "updated (UTC)", "error"))
    table.columns[0].no_wrap = True  # an id is copied whole into `bcjobs show`
    for report in reports:
        table.add_row(
            Text(report.job_id),
            _state(report.state),
            Text(report.operation or "-"),
            str(report.attempts),
            _short_when(report.updated_at),
            Text(_code(report.error)),
        )
    return table


def result_line(report: JobReport) -> Text:
    """One report from bc-results on one line: state, job id, operation, key result fields or the error."""
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


# -- connections ---------------------------------------------------------------------------------------------


def connection_wire(connection: ConnectionInfo) -> dict[str, object]:
    """The connection as the API answered it (camelCase, without empty fields)."""
    value: dict[str, object] = connection.model_dump(mode="json", by_alias=True, exclude_none=True)
    return value


def connections_table(connections: list[ConnectionInfo]) -> RenderableType:
    """One line per connection: name, tenant, environment, company, mode, credential, state (the reason of a
    disabled one is in `show`)."""
    if not connections:
        return "no connections"
    table = _compact(_table("name", "tenant", "environment", "company", "mode", "credential", "state"))
    for index, column in enumerate(table.columns):
        column.no_wrap = index != 3  # whole names (copied into `show`); the company folds
    for connection in connections:
        table.add_row(
            Text(connection.name + (" (settings)" if connection.from_settings else "")),
            Text(connection.tenant_id),
            Text(connection.environment),
            Text(connection.company_name or connection.company_id or "-"),
            Text(_MODES.get(connection.mode, connection.mode)),
            Text(_CREDENTIALS.get(connection.credential, connection.credential)),
            Text("enabled", style="green") if connection.enabled else Text("disabled", style="red"),
        )
    return table


_MODES = {"client_credentials": "app", "delegated": "delegated"}
_CREDENTIALS = {"settings": "settings", "key_vault_secret": "key vault", "federated": "federated"}


def identity_wire(identity: IdentityInfo) -> dict[str, object]:
    """The identity as the API sent it (for --json)."""
    return identity.model_dump(mode="json", by_alias=True, exclude_none=True)


def identities_table(connection: str, identities: list[IdentityInfo]) -> RenderableType:
    """One line per identity of the pool: name, app, credential, token health and its next step."""
    table = _table(
        "identity", "client id", "credential", "health", "next step", title=f"pool of {connection}"
    )
    for identity in identities:
        health = identity.health or {}
        state = str(health.get("health", "-"))
        table.add_row(
            Text(identity.name),
            Text(identity.client_id, no_wrap=True),
            Text(_CREDENTIALS.get(identity.credential, identity.credential)),
            Text(state, style="green" if state == "ok" else "red" if state != "-" else ""),
            Text(str(health.get("next_step") or "")),
        )
    return table


def identity_lines(connection: str, identity: IdentityInfo) -> list[RenderableType]:
    """A saved identity and the admin's next steps, numbered."""
    where = f" ({identity.secret_name})" if identity.secret_name else ""
    lines: list[RenderableType] = [
        Text(
            f"identity {identity.name} of connection {connection}: app {identity.client_id}, "
            f"credential {identity.credential}{where}"
        )
    ]
    lines.extend(Text(f"{n}. {step}") for n, step in enumerate(identity.next_steps, start=1))
    return lines


def connection_panel(connection: ConnectionInfo) -> Panel:
    """Every field of one connection (never a secret: the API has none to give) and its links."""
    grid = Table.grid(padding=(0, 2))
    grid.add_column(style="bold")
    grid.add_column(overflow="fold")
    grid.add_row("state", _enabled(connection))
    fields = connection_wire(connection)
    for name, value in fields.items():
        if name == "identities" and isinstance(
            value, list
        ):  # the pool: names and apps (`identities list` has more)
            pool = ", ".join(f"{i.get('name')} ({i.get('clientId')})" for i in value if isinstance(i, dict))
            grid.add_row(name, Text(pool))
        elif name not in {"name", "enabled", "links"}:
            grid.add_row(name, Text(", ".join(map(str, value)) if isinstance(value, list) else str(value)))
    for name, url in connection.links.items():
        grid.add_row(f"link {name}", Text(url))
    return Panel(grid, title=Text(f"connection {connection.name}"), title_align="left", expand=False)


def _enabled(connection: ConnectionInfo) -> Text:
    if connection.enabled:
        return Text("enabled", style="green")
    return Text(f"disabled: {connection.disabled_reason or '-'}", style="red")


def check_table(result: CheckResult) -> RenderableType:
    """The check's steps, in order: passed or failed, what was found, and the fix of a failed one; a check of a
    pool of several identities, one table per identity."""
    if len(result.identities) > 1:
        return Group(*(_steps_table(each, f", identity {each.identity}") for each in result.identities))
    named = "" if result.identity == "primary" else f", identity {result.identity}"
    return _steps_table(result, named)


def _steps_table(result: CheckResult, named: str) -> Table:
    title = f"check of connection {result.connection}{named}"
    table = _table("step", "ok", "detail", title=title, wide="detail")
    for step in result.steps:
        detail = Text(step.detail)
        if step.fix:
            detail.append(f"\nfix: {step.fix}", style="bold")
        table.add_row(
            Text(step.name), Text("yes" if step.ok else "NO", style="green" if step.ok else "red"), detail
        )
    return table


def watch_wire(watch: WatchInfo) -> dict[str, object]:
    """The watch as the API sent it (for --json)."""
    return watch.model_dump(mode="json", by_alias=True, exclude_none=True)


def watches_table(watches: list[WatchInfo]) -> RenderableType:
    """One line per watch: name, entity set, company, API, data, state."""
    if not watches:
        return "no watches (bcjobs watches put NAME --connection C --entity-set customers)"
    table = _compact(_table("name", "entity set", "company", "api", "data", "state"))
    for watch in watches:
        table.add_row(
            Text(watch.name),
            Text(watch.entity_set),
            Text(watch.company_id or "(connection's)"),
            Text(watch.api or "v2.0"),
            Text(
                ("entity" if watch.include_data else "reference")
                + (f" {','.join(watch.select)}" if watch.select else "")
            ),
            Text("enabled", style="green") if watch.enabled else Text("disabled", style="red"),
        )
    return table
