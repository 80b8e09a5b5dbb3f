"""`bcjobs connections list|show|put|delete|check|consent|identities`: connections through the Function app's API.

These talk to the app (`--api-url`, env BCJOBS_API_URL; `--function-key`, env BCJOBS_FUNCTION_KEY), not to
storage: a client secret registered with `put` goes to the app's Key Vault. `put` reads that secret from stdin
(`--client-secret-stdin`) or from an environment variable (`--client-secret-env NAME`), never from an argument,
which would land in the shell's history and in the process list.
"""

from __future__ import annotations

import json
import os
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Annotated

import typer
from rich.text import Text

from bcjobs.cli.exits import ExitCode, fail
from bcjobs.cli.helptext import PlainCommand, PlainGroup
from bcjobs.cli.render import (
    JsonOutput,
    check_table,
    connection_panel,
    connection_wire,
    connections_table,
    emit,
    err,
    print_json,
)
from bcjobs.connections import ConnectionsApiError, ConnectionsClient

_PANEL = "Function app"
DEFAULT_API_URL = "http://localhost:7071"  # the local host (`make dev`)

connections_app = typer.Typer(
    name="connections",
    help="List, show, register, delete and check BC connections (through the Function app's /api/connections).",
    no_args_is_help=True,
    cls=PlainGroup,
)

ApiUrl = Annotated[
    str,
    typer.Option(
        "--api-url", envvar="BCJOBS_API_URL", help="The Function app's base URL.", rich_help_panel=_PANEL
    ),
]
# A client secret is read from stdin or an environment variable, never an argument (it would land in shell history).
SecretFromStdin = Annotated[
    bool,
    typer.Option(
        "--client-secret-stdin",
        help="Read the client secret from stdin (it goes to the app's Key Vault). Never pass a secret as an "
        "argument: it would land in your shell history.",
    ),
]
SecretFromEnv = Annotated[
    str | None,
    typer.Option("--client-secret-env", metavar="VAR", help="Read the client secret from this env variable."),
]
FunctionKey = Annotated[
    str | None,
    typer.Option(
        "--function-key",
        envvar="BCJOBS_FUNCTION_KEY",
        show_default=False,
        help="A function or host key of the app (prefer the env var).",
        rich_help_panel=_PANEL,
    ),
]
Name = Annotated[str, typer.Argument(metavar="NAME", show_default=False, help="The connection's name.")]


@contextmanager
def api_client(api_url: str, function_key: str | None) -> Iterator[ConnectionsClient]:
    """The client; an API error ends the command with its message (exit 2 for a refused request, 3 otherwise)."""
    try:
        with ConnectionsClient(api_url, function_key) as client:
            yield client
    except ConnectionsApiError as exc:
        code = ExitCode.USAGE if exc.status is not None and 400 <= exc.status < 500 else ExitCode.STORAGE
        fail(code, str(exc))


@connections_app.command("list", cls=PlainCommand)
def list_connections(
    json_output: JsonOutput = False, *, api_url: ApiUrl = DEFAULT_API_URL, function_key: FunctionKey = None
) -> None:
    """Every connection: the settings' one (BC_CONNECTION_NAME) first, then the registered ones."""
    with api_client(api_url, function_key) as client:
        found = client.connections()
    emit(json_output, [connection_wire(c) for c in found], connections_table(found))


@connections_app.command(cls=PlainCommand)
def show(
    name: Name,
    json_output: JsonOutput = False,
    *,
    api_url: ApiUrl = DEFAULT_API_URL,
    function_key: FunctionKey = None,
) -> None:
    """One connection's fields and links (exit 4 when there is none of that name)."""
    with api_client(api_url, function_key) as client:
        found = client.connection(name)
    if found is None:
        if json_output:
            print_json(None)
        fail(ExitCode.NOT_FOUND, f"no connection '{name}' (bcjobs connections list shows them)")
    emit(json_output, connection_wire(found), connection_panel(found))


@connections_app.command(cls=PlainCommand)
def put(  # one option per registry field, as the API takes them
    name: Name,
    tenant_id: Annotated[
        str | None, typer.Option("--tenant-id", help="The customer's tenant id or domain.")
    ] = None,
    environment: Annotated[
        str | None, typer.Option("--environment", help="The BC environment's name.")
    ] = None,
    client_id: Annotated[
        str | None, typer.Option("--client-id", help="The app registration's client id.")
    ] = None,
    company_id: Annotated[str | None, typer.Option("--company-id", help="The default company's id.")] = None,
    company_name: Annotated[
        str | None, typer.Option("--company-name", help="The default company's name.")
    ] = None,
    mode: Annotated[str | None, typer.Option("--mode", help="client_credentials or delegated.")] = None,
    custom_api: Annotated[
        list[str] | None, typer.Option("--custom-api", help="publisher/group/version it may call (repeat).")
    ] = None,
    secret_name: Annotated[
        str | None,
        typer.Option("--secret-name", help="An existing Key Vault secret holding the client secret."),
    ] = None,
    disabled_reason: Annotated[
        str | None,
        typer.Option("--disable", metavar="REASON", help="Register it disabled, with this reason."),
    ] = None,
    spec_file: Annotated[
        Path | None, typer.Option("--file", help="The connection's fields as JSON (options override them).")
    ] = None,
    client_secret_stdin: SecretFromStdin = False,
    client_secret_env: SecretFromEnv = None,
    json_output: JsonOutput = False,
    *,
    api_url: ApiUrl = DEFAULT_API_URL,
    function_key: FunctionKey = None,
) -> None:
    """Register NAME, or replace it (every field: show it first to keep what you do not change)."""
    spec = _file_spec(spec_file)
    options = {
        "tenantId": tenant_id,
        "environment": environment,
        "clientId": client_id,
        "companyId": company_id,
        "companyName": company_name,
        "mode": mode,
        "customApis": custom_api or None,
        "secretName": secret_name,
    }
    spec.update({key: value for key, value in options.items() if value is not None})
    if disabled_reason is not None:
        spec.update({"enabled": False, "disabledReason": disabled_reason})
    secret = client_secret_from(stdin=client_secret_stdin, env=client_secret_env)
    if secret is not None:
        spec.pop("credential", None)
        spec.pop("secretName", None)
    with api_client(api_url, function_key) as client:
        saved = client.put_connection(name, spec, client_secret=secret)
    emit(json_output, connection_wire(saved), connection_panel(saved))


def _file_spec(path: Path | None) -> dict[str, object]:
    if path is None:
        return {}
    try:
        value = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        fail(ExitCode.USAGE, f"cannot read {path}: {type(exc).__name__}")
    if not isinstance(value, dict):
        fail(ExitCode.USAGE, f"{path}: a JSON object of the connection's fields")
    return value


def client_secret_from(*, stdin: bool, env: str | None) -> str | None:
    """The secret from stdin (its first line) or the named variable; never echoed."""
    if stdin and env:
        fail(ExitCode.USAGE, "use --client-secret-stdin or --client-secret-env, not both")
    if stdin:
        secret = sys.stdin.readline().strip()
    elif env:
        secret = os.environ.get(env, "").strip()
    else:
        return None
    if not secret:
        where = "stdin" if stdin else f"the variable {env}"
        fail(ExitCode.USAGE, f"no client secret on {where}")
    return secret


@connections_app.command(cls=PlainCommand)
def delete(
    name: Name,
    json_output: JsonOutput = False,
    *,
    api_url: ApiUrl = DEFAULT_API_URL,
    function_key: FunctionKey = None,
) -> None:
    """Delete NAME with its client secret and token set; with jobs pending, the app disables it instead (exit 1)."""
    with api_client(api_url, function_key) as client:
        if client.connection(name) is None:
            fail(ExitCode.NOT_FOUND, f"no connection '{name}' (bcjobs connections list shows them)")
        outcome = client.delete_connection(name)
    value = {"deleted": outcome.deleted, "pendingJobs": outcome.pending_jobs, "message": outcome.message}
    emit(json_output, value, outcome.message or f"connection {name} deleted")
    if not outcome.deleted:
        err.print("not deleted: disabled while its jobs are pending")
        raise typer.Exit(int(ExitCode.INCOMPLETE))


IdentityOption = Annotated[
    str | None,
    typer.Option(
        "--identity", metavar="IDENTITY", help="Only this identity of the pool (default: every one)."
    ),
]


@connections_app.command(cls=PlainCommand)
def check(
    name: Name,
    identity: IdentityOption = None,
    json_output: JsonOutput = False,
    *,
    api_url: ApiUrl = DEFAULT_API_URL,
    function_key: FunctionKey = None,
) -> None:
    """Check NAME: token, environment, BC accepts the token, company, a read of customers, for each identity of its
    pool (or --identity). Stops at the first failed step and names its fix (exit 1); exit 4 when there is no such
    connection."""
    with api_client(api_url, function_key) as client:
        result = client.check_connection(name, identity=identity)
    if result is None:
        fail(ExitCode.NOT_FOUND, f"no connection '{name}' (bcjobs connections list shows them)")
    emit(json_output, result.model_dump(mode="json"), check_table(result))
    if not result.ok:
        raise typer.Exit(int(ExitCode.INCOMPLETE))


@connections_app.command(cls=PlainCommand)
def consent(
    name: Name,
    identity: IdentityOption = None,
    json_output: JsonOutput = False,
    *,
    api_url: ApiUrl = DEFAULT_API_URL,
    function_key: FunctionKey = None,
) -> None:
    """A one-time admin-consent link (10 minutes) for NAME's tenant: an administrator of that tenant opens it and
    accepts; the page Entra returns to runs the check. One consent covers the connection's app; an identity that is
    another app needs its own (--identity). Exit 4 when there is no such connection."""
    with api_client(api_url, function_key) as client:
        link = client.consent_link(name, identity=identity)
    if link is None:
        fail(ExitCode.NOT_FOUND, f"no connection '{name}' (bcjobs connections list shows them)")
    url = Text(link.consent_url, no_wrap=True, overflow="ignore")  # one line: copied whole from the terminal
    emit(json_output, link.model_dump(mode="json", by_alias=True), url, Text(f"expires at {link.expires_at}"))
