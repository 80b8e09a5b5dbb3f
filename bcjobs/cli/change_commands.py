"""`bcjobs changes`: BC's changes from the change log (`GET /api/changes` of the Function app), with a cursor.

    bcjobs changes --connection contoso --entity-set customers                 what the log holds, oldest first
    bcjobs changes --connection contoso --entity-set customers --after CURSOR  what came after a cursor
    bcjobs changes --connection contoso --entity-set customers --follow        and keep polling until Ctrl-C

One line per change (JSON Lines of the CloudEvents with --json). The cursor to resume from is printed on stderr
at the end (`next: ...`), also after Ctrl-C, so a script can carry on where it stopped.
"""

from __future__ import annotations

import json
import time
from typing import Annotated

import typer
from rich.text import Text

from bcjobs.change_client import ChangesApiError, ChangesClient
from bcjobs.changes import ChangeEvent
from bcjobs.cli.connection_commands import DEFAULT_API_URL, ApiUrl, FunctionKey
from bcjobs.cli.exits import ExitCode, fail
from bcjobs.cli.render import emit, err

PAGE = 500


def changes(  # the options of one read, and of following
    connection: Annotated[
        str, typer.Option("--connection", metavar="NAME", show_default=False, help="The BC connection.")
    ],
    entity_set: Annotated[
        str, typer.Option("--entity-set", metavar="SET", show_default=False, help="A watched entity set.")
    ],
    after: Annotated[
        str | None,
        typer.Option("--after", metavar="CURSOR", show_default=False, help="Start after this cursor."),
    ] = None,
    follow: Annotated[bool, typer.Option("--follow", "-f", help="Keep polling until Ctrl-C.")] = False,
    interval: Annotated[
        float,
        typer.Option("--interval", metavar="SECONDS", min=0.1, help="With --follow: seconds between polls."),
    ] = 5.0,
    json_output: Annotated[
        bool, typer.Option("--json", help="Print each event's JSON (JSON Lines).")
    ] = False,
    *,
    api_url: ApiUrl = DEFAULT_API_URL,
    function_key: FunctionKey = None,
) -> None:
    """Print BC's changes to ENTITY SET of CONNECTION, oldest first, one line each (--json: the CloudEvents)."""
    cursor = after
    try:
        with ChangesClient(api_url, function_key) as client:
            while True:
                page = client.changes(connection, entity_set, after=cursor, limit=PAGE)
                for event in page.changes:
                    emit(json_output, _wire(event), change_line(event))
                cursor = page.next or cursor
                if not follow:
                    break
                if len(page.changes) < PAGE:  # caught up: wait; a full page reads on at once
                    time.sleep(interval)
    except KeyboardInterrupt:
        _resume_hint(cursor)
        raise typer.Exit(int(ExitCode.INTERRUPTED)) from None
    except ChangesApiError as exc:
        fail(_exit_code(exc.status), str(exc))
    _resume_hint(cursor)


def _exit_code(status: int | None) -> ExitCode:
    """4 for an unknown connection, 2 for another refused request, 3 for an unreachable or failing app."""
    if status == 404:
        return ExitCode.NOT_FOUND
    return ExitCode.USAGE if status is not None and 400 <= status < 500 else ExitCode.STORAGE


def _wire(event: ChangeEvent) -> dict[str, object]:
    value: dict[str, object] = json.loads(event.to_json())
    return value


def change_line(event: ChangeEvent) -> Text:
    """`time  change  subject  origin  [echo of job J]` for people."""
    line = Text(f"{event.time.isoformat()}  {event.bcentityset} {event.bcchange.value:<7}  {event.subject}")
    line.append(f"  {event.bcorigin.value}", style="dim")
    if event.bcecho:
        line.append(f"  echo of job {event.bcecho}", style="yellow")
    return line


def _resume_hint(cursor: str | None) -> None:
    if cursor:
        err.print(Text(f"next: {cursor}  (resume with --after {cursor})", style="dim"))
