"""`bcjobs connections identities list|put|delete NAME [IDENTITY]`: a connection's pool of identities.

BC's limits are per app: each identity is another app registration with its own budget (issue 23). Like
`connections put`, `identities put` reads an identity's client secret from stdin (`--client-secret-stdin`) or an
environment variable (`--client-secret-env VAR`), never from an argument; it goes to the app's Key Vault.
"""

from __future__ import annotations

from typing import Annotated

import typer

from bcjobs.cli.connection_commands import (
    DEFAULT_API_URL,
    ApiUrl,
    FunctionKey,
    Name,
    SecretFromEnv,
    SecretFromStdin,
    api_client,
    client_secret_from,
)
from bcjobs.cli.exits import ExitCode, fail
from bcjobs.cli.helptext import PlainCommand, PlainGroup
from bcjobs.cli.render import JsonOutput, emit, identities_table, identity_lines, identity_wire

identities_app = typer.Typer(
    name="identities",
    help="List, add or replace, and remove the identities (app registrations) of a connection's pool.",
    no_args_is_help=True,
    cls=PlainGroup,
)

IdentityName = Annotated[
    str, typer.Argument(metavar="IDENTITY", show_default=False, help="The identity's name (a-z, 0-9).")
]


@identities_app.command("list", cls=PlainCommand)
def list_identities(
    name: Name,
    json_output: JsonOutput = False,
    *,
    api_url: ApiUrl = DEFAULT_API_URL,
    function_key: FunctionKey = None,
) -> None:
    """NAME's pool, the primary identity (the connection's own app) first, each with its token health."""
    with api_client(api_url, function_key) as client:
        found = client.identities(name)
    emit(json_output, [identity_wire(i) for i in found], identities_table(name, found))


@identities_app.command(cls=PlainCommand)
def put(
    name: Name,
    identity: IdentityName,
    client_id: Annotated[str, typer.Option("--client-id", help="The identity's app registration client id.")],
    secret_name: Annotated[
        str | None,
        typer.Option("--secret-name", help="An existing Key Vault secret holding its client secret."),
    ] = None,
    managed_identity_client_id: Annotated[
        str | None,
        typer.Option(
            "--managed-identity-client-id",
            help="Federated, no secret: the user-assigned managed identity the app trusts.",
        ),
    ] = None,
    client_secret_stdin: SecretFromStdin = False,
    client_secret_env: SecretFromEnv = None,
    json_output: JsonOutput = False,
    *,
    api_url: ApiUrl = DEFAULT_API_URL,
    function_key: FunctionKey = None,
) -> None:
    """Add IDENTITY to NAME's pool, or replace it; prints the next steps (BC's Microsoft Entra Applications page of
    the environment, consent, the check)."""
    spec: dict[str, object] = {"clientId": client_id}
    if secret_name is not None:
        spec.update({"credential": "key_vault_secret", "secretName": secret_name})
    if managed_identity_client_id is not None:
        spec.update({"credential": "federated", "managedIdentityClientId": managed_identity_client_id})
    secret = client_secret_from(stdin=client_secret_stdin, env=client_secret_env)
    with api_client(api_url, function_key) as client:
        saved = client.put_identity(name, identity, spec, client_secret=secret)
    emit(json_output, identity_wire(saved), *identity_lines(name, saved))


@identities_app.command(cls=PlainCommand)
def delete(
    name: Name,
    identity: IdentityName,
    json_output: JsonOutput = False,
    *,
    api_url: ApiUrl = DEFAULT_API_URL,
    function_key: FunctionKey = None,
) -> None:
    """Remove IDENTITY from NAME's pool with its client secret and token set (a job running on it finishes). The
    primary identity is the connection's own: change it with `bcjobs connections put`. Exit 4 when there is none."""
    with api_client(api_url, function_key) as client:
        removed = client.delete_identity(name, identity)
    if not removed:
        fail(
            ExitCode.NOT_FOUND,
            f"no identity '{identity}' (bcjobs connections identities list {name} shows them)",
        )
    emit(json_output, {"deleted": True}, f"identity {identity} removed from connection {name}")
