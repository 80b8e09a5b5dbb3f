"""The feed's Table stores share one failure: storage could not be read or written (the caller retries)."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

from azure.core.exceptions import AzureError

from shared.errors import IntegrationError
from shared.table_cas import TableStorageError


class ChangeStorageError(IntegrationError):
    """A table of the change feed (watches, subscriptions, watermarks) failed; `cause` names the SDK error."""

    def __init__(self, what: str, operation: str, cause: str) -> None:
        self.cause = cause
        super().__init__(
            f"the {what} table could not {operation} ({cause}); check JobsStorage and BC_TABLE_PREFIX, "
            "then retry"
        )


@contextmanager
def table_errors(what: str, operation: str) -> Iterator[None]:
    """Table failures (table_cas's and the SDK's own calls) as ChangeStorageError."""
    try:
        yield
    except TableStorageError as exc:
        raise ChangeStorageError(what, operation, exc.cause) from exc
    except AzureError as exc:
        raise ChangeStorageError(what, operation, type(exc).__name__) from exc
