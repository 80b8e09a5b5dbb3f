"""The storage options, declared once, and the client they build.

Each command that talks to storage takes the same four options (`--connection-string`, `--queue-service-uri`,
`--table-service-uri`, `--table-prefix`) after its own, as it always has: `@storage_options` puts them in place of
the command's `storage: StorageOptions` parameter and hands them over as that one value. (A Typer callback on the
app would declare them once too, but would move them before the command name and break existing command lines.)
"""

from __future__ import annotations

import functools
import inspect
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, replace
from typing import Annotated, Any

import typer

from bcjobs import RESULTS_QUEUE
from bcjobs.cli.endpoints import LOCAL_WORLD_HINT, is_development, tried
from bcjobs.cli.exits import ExitCode, fail
from bcjobs.client import JobsClient
from bcjobs.common import DEFAULT_TABLE_PREFIX
from bcjobs.errors import BcJobsError, JobsStorageError

_PANEL = "Storage"
# A terminal waits for an answer: a few quick retries and a short connect timeout, not the SDK's ~80 s of
# backoff (queues back off 15 s, then 18 s, ...) before saying storage is down.
_FAIL_FAST: dict[str, Any] = {
    "retry_total": 2,
    "initial_backoff": 0.5,  # queues' ExponentialRetry
    "increment_base": 1,
    "retry_backoff_factor": 0.5,  # tables' azure-core RetryPolicy
    "connection_timeout": 3,
}
ConnectionString = Annotated[
    str | None,
    typer.Option(
        "--connection-string",
        envvar="JobsStorage",
        show_default=False,
        help="Storage connection string (Azurite locally).",
        rich_help_panel=_PANEL,
    ),
]
QueueServiceUri = Annotated[
    str | None,
    typer.Option(
        "--queue-service-uri",
        envvar="JobsStorage__queueServiceUri",
        help="Queue endpoint, with DefaultAzureCredential.",
        rich_help_panel=_PANEL,
    ),
]
TableServiceUri = Annotated[
    str | None,
    typer.Option(
        "--table-service-uri",
        envvar="JobsStorage__tableServiceUri",
        help="Table endpoint, with DefaultAzureCredential.",
        rich_help_panel=_PANEL,
    ),
]
TablePrefix = Annotated[
    str,
    typer.Option(
        "--table-prefix",
        envvar="BC_TABLE_PREFIX",
        help="Prefix of the product's tables.",
        rich_help_panel=_PANEL,
    ),
]
ResultsQueue = Annotated[
    str,
    typer.Option(
        "--results-queue", envvar="BC_RESULTS_QUEUE", help="The results queue.", rich_help_panel=_PANEL
    ),
]


@dataclass(frozen=True, slots=True)
class StorageOptions:
    """Where the deployment's queues and tables are, as the command line gave it."""

    connection_string: str | None
    queue_service_uri: str | None
    table_service_uri: str | None
    table_prefix: str
    results_queue: str = RESULTS_QUEUE

    def with_results_queue(self, results_queue: str) -> StorageOptions:
        """The same storage with another results queue (`results --results-queue`)."""
        return replace(self, results_queue=results_queue)

    def client(self) -> JobsClient:
        """A client for this storage; a usage error when neither a connection string nor both URIs are given."""
        if self.connection_string:
            return JobsClient.from_connection_string(
                self.connection_string,
                table_prefix=self.table_prefix,
                results_queue=self.results_queue,
                **_FAIL_FAST,
            )
        if not self.queue_service_uri or not self.table_service_uri:
            fail(
                ExitCode.USAGE,
                "no storage configured: set JobsStorage (a connection string) or --queue-service-uri and "
                "--table-service-uri (DefaultAzureCredential); for the local world of `make dev`: "
                "JobsStorage=UseDevelopmentStorage=true bcjobs list",
            )
        return JobsClient(
            self.queue_service_uri,
            self.table_service_uri,
            table_prefix=self.table_prefix,
            results_queue=self.results_queue,
            **_FAIL_FAST,
        )

    def explain(self, error: BcJobsError) -> str:
        """The error, and for one with no HTTP answer (unreachable) where the CLI tried and what to check."""
        if (
            not isinstance(error, JobsStorageError)
            or error.status is not None
            or error.error_code is not None
        ):
            return str(error)
        where = tried(self.connection_string, self.queue_service_uri, self.table_service_uri)
        message = f"{error}; tried {where}" if where else str(error)
        return f"{message} — {LOCAL_WORLD_HINT}" if is_development(self.connection_string) else message

    @contextmanager
    def connect(self) -> Iterator[JobsClient]:
        """The client, closed at the end; storage failures and unusable settings end the command."""
        with self._storage_errors(), self.client() as client:
            yield client

    @contextmanager
    def _storage_errors(self) -> Iterator[None]:
        try:
            yield
        except JobsStorageError as exc:
            fail(ExitCode.STORAGE, self.explain(exc))
        except ValueError as exc:  # connection string or URI the SDK cannot use
            fail(ExitCode.USAGE, f"storage settings: {exc}")


def _option(name: str, annotation: object, default: str | None) -> inspect.Parameter:
    return inspect.Parameter(name, inspect.Parameter.KEYWORD_ONLY, default=default, annotation=annotation)


_OPTIONS = (
    _option("connection_string", ConnectionString, None),
    _option("queue_service_uri", QueueServiceUri, None),
    _option("table_service_uri", TableServiceUri, None),
    _option("table_prefix", TablePrefix, DEFAULT_TABLE_PREFIX),
)


def storage_options(command: Callable[..., None]) -> Callable[..., None]:
    """`command` taking the four storage options where it declares `storage: StorageOptions` (keyword-only)."""

    @functools.wraps(command)
    def with_storage(
        *,
        connection_string: str | None = None,
        queue_service_uri: str | None = None,
        table_service_uri: str | None = None,
        table_prefix: str = DEFAULT_TABLE_PREFIX,
        **own: object,
    ) -> None:
        storage = StorageOptions(connection_string, queue_service_uri, table_service_uri, table_prefix)
        command(storage=storage, **own)

    declared = inspect.signature(command, eval_str=True)
    parameters: list[inspect.Parameter] = []
    for parameter in declared.parameters.values():
        parameters.extend(_OPTIONS if parameter.name == "storage" else (parameter,))
    with_storage.__signature__ = declared.replace(parameters=parameters)  # type: ignore[attr-defined]  # what Typer reads
    return with_storage
