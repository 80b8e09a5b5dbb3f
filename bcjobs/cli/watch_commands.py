"""`bcjobs watches list|show|put|delete --connection C`: what the change feed follows, through the Function app's
`/api/connections/{connection}/watches` (`--api-url`, `--function-key`, as `bcjobs connections`).

    bcjobs watches put customers --connection fabrikam --entity-set customers --include-data
    bcjobs watches list --connection fabrikam
"""

from __future__ import annotations

from typing import Annotated

import typer

from bcjobs.cli.connection_commands import DEFAULT_API_URL, ApiUrl, FunctionKey, api_client
from bcjobs.cli.exits import ExitCode, fail
from bcjobs.cli.helptext import PlainCommand, PlainGroup
from bcjobs.cli.render import JsonOutput, emit, print_json, watch_wire, watches_table

watches_app = typer.Typer(
    name="watches",
    help="List, show, create and delete a connection's watches (what the change feed follows).",
    no_args_is_help=True,
    cls=PlainGroup,
)

OnConnection = Annotated[
    str, typer.Option("--connection", show_default=False, help="The connection the watches belong to.")
]
WatchName = Annotated[str, typer.Argument(metavar="WATCH", show_default=False, help="The watch's name.")]


@watches_app.command("list", cls=PlainCommand)
def list_watches(
    connection: OnConnection,
    json_output: JsonOutput = False,
    *,
    api_url: ApiUrl = DEFAULT_API_URL,
    function_key: FunctionKey = None,
) -> None:
    """Every watch of the connection."""
    with api_client(api_url, function_key) as client:
        found = client.watches(connection)
    emit(json_output, [watch_wire(w) for w in found], watches_table(found))


@watches_app.command(cls=PlainCommand)
def show(
    name: WatchName,
    connection: OnConnection,
    json_output: JsonOutput = False,
    *,
    api_url: ApiUrl = DEFAULT_API_URL,
    function_key: FunctionKey = None,
) -> None:
    """One watch (exit 4 when there is none of that name)."""
    with api_client(api_url, function_key) as client:
        found = client.watch(connection, name)
    if found is None:
        if json_output:
            print_json(None)
        fail(ExitCode.NOT_FOUND, f"no watch '{name}' (bcjobs watches list --connection {connection})")
    emit(json_output, watch_wire(found), watches_table([found]))


@watches_app.command(cls=PlainCommand)
def put(
    name: WatchName,
    connection: OnConnection,
    entity_set: Annotated[str, typer.Option("--entity-set", help="customers, salesOrders, items, ...")],
    company_id: Annotated[str | None, typer.Option("--company-id", help="Default: the connection's.")] = None,
    api: Annotated[str | None, typer.Option("--api", help="A custom API: publisher/group/version.")] = None,
    include_data: Annotated[
        bool, typer.Option("--include-data", help="Carry the entity in each event.")
    ] = False,
    select: Annotated[list[str] | None, typer.Option("--select", help="A field to carry (repeat).")] = None,
    disabled: Annotated[bool, typer.Option("--disabled", help="Keep it, follow nothing.")] = False,
    json_output: JsonOutput = False,
    *,
    api_url: ApiUrl = DEFAULT_API_URL,
    function_key: FunctionKey = None,
) -> None:
    """Create or replace a watch; the subscription manager's next run subscribes in BC."""
    spec: dict[str, object] = {"entitySet": entity_set, "includeData": include_data, "enabled": not disabled}
    optional = {"companyId": company_id, "api": api, "select": select}
    spec.update({key: value for key, value in optional.items() if value})
    with api_client(api_url, function_key) as client:
        saved = client.put_watch(connection, name, spec)
    emit(json_output, watch_wire(saved), watches_table([saved]))


@watches_app.command(cls=PlainCommand)
def delete(
    name: WatchName,
    connection: OnConnection,
    json_output: JsonOutput = False,
    *,
    api_url: ApiUrl = DEFAULT_API_URL,
    function_key: FunctionKey = None,
) -> None:
    """Delete a watch (exit 4 when there is none); its BC subscriptions go at the manager's next run."""
    with api_client(api_url, function_key) as client:
        deleted = client.delete_watch(connection, name)
    if not deleted:
        fail(ExitCode.NOT_FOUND, f"no watch '{name}' (bcjobs watches list --connection {connection})")
    emit(json_output, {"deleted": True}, f"watch {connection}/{name} deleted")
