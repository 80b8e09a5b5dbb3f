"""Retention of the feed's tables: the change log (`{prefix}changes`, its log and id-index rows) and the echo
journal (`{prefix}echoes`) would grow forever; a daily sweep (shared/triggers/change_timers.py) deletes

- echo rows past their `Expires` (echoes.py ignores them already: deleting one changes no answer);
- change-log rows `c~{cursor}` whose cursor is older than the retention (BC_CHANGES_RETENTION_DAYS), and the id
  index rows `i~{id}` whose `Cursor` is: both name the moment the version was published.

The rule on versions seen again: the id index is what makes a version published once. A version is seen again by
the reconciliation's overlap (minutes, BC_RECONCILE_OVERLAP_SECONDS), by BC's notification retries (they end after
about 18.5 h, reference (a) A4) and by a notification queue's redelivery (its messages live 7 days at most,
learn.microsoft.com/azure/storage/queues/storage-queues-introduction). The retention's floor (2 days, the echo
journal's TTL) is above the first two; a version seen again after its index row went is published again under the
same id, which consumers already dedupe (the queue is at-least-once). So: never republished within the
retention, at most once more after it, and only by a redelivery older than the retention.

Every delete is an entity group transaction of at most 100 rows of one partition
(learn.microsoft.com/rest/api/storageservices/performing-entity-group-transactions); a run deletes at most
`limit` rows per table (the rest go next run); a failed transaction is recorded and the others go on.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, Protocol

from azure.core.exceptions import AzureError, ResourceNotFoundError

from shared.azure_clients import table_client
from shared.changes.echoes import echoes_table_name
from shared.changes.log import INDEX, LOG, changes_table_name, cursor_at
from shared.clock import Clock, SystemClock
from shared.settings import Settings

BATCH = 100  # operations per entity group transaction
DEFAULT_LIMIT = 20_000  # rows per table per run: 200 transactions, well inside the timer's 10 minutes
MINIMUM_RETENTION = timedelta(days=2)
_COLUMNS = ["PartitionKey", "RowKey"]
# After the index's prefix "i~", "i~~" sorts after every id ("~" is the last printable ASCII character).
_INDEX_END = INDEX + "~"


class SweptTable(Protocol):
    """What the sweep uses of an aio TableClient."""

    def query_entities(
        self, query_filter: str, *, select: list[str], parameters: dict[str, Any]
    ) -> AsyncIterator[Any]: ...

    def submit_transaction(self, operations: list[Any]) -> Awaitable[Any]: ...


@dataclass(frozen=True, slots=True)
class SweepRun:
    """One table's sweep: rows deleted, whether it stopped at its limit, and the failures (safe messages)."""

    table: str
    deleted: int = 0
    limited: bool = False
    failures: tuple[str, ...] = ()


async def sweep(table: SweptTable, name: str, query: str, parameters: dict[str, Any], limit: int) -> SweepRun:
    """Delete up to `limit` rows matching `query`, per partition in transactions of BATCH."""
    pending: dict[str, list[dict[str, Any]]] = {}
    failures: list[str] = []
    deleted, seen = 0, 0
    try:
        async for row in table.query_entities(query, select=_COLUMNS, parameters=parameters):
            seen += 1
            if seen > limit:
                break
            keys = {"PartitionKey": row["PartitionKey"], "RowKey": row["RowKey"]}
            batch = pending.setdefault(str(row["PartitionKey"]), [])
            batch.append(keys)
            if len(batch) == BATCH:
                deleted += await _delete(table, pending.pop(str(row["PartitionKey"])), failures)
    except ResourceNotFoundError:
        pass  # no table yet: nothing to keep
    except AzureError as exc:
        failures.append(f"query of {name}: {type(exc).__name__}")
    for batch in pending.values():
        deleted += await _delete(table, batch, failures)
    return SweepRun(name, deleted, seen > limit, tuple(failures))


async def _delete(table: SweptTable, rows: list[dict[str, Any]], failures: list[str]) -> int:
    """One transaction; a failure (a row deleted meanwhile, a throttled call) is noted and left for next run."""
    try:
        await table.submit_transaction([("delete", row) for row in rows])
    except AzureError as exc:
        failures.append(
            f"delete of {len(rows)} rows of partition {rows[0]['PartitionKey']}: {type(exc).__name__}"
        )
        return 0
    return len(rows)


@dataclass(frozen=True, slots=True)
class Retention:
    """The sweep over the change log and the echo journal."""

    changes: SweptTable
    echoes: SweptTable
    clock: Clock
    keep: timedelta
    limit: int = DEFAULT_LIMIT

    async def run(self) -> tuple[SweepRun, SweepRun]:
        """(change log, echoes): each on its own, a failure of one leaving the other to go on."""
        return await self.sweep_changes(), await self.sweep_echoes()

    async def sweep_changes(self) -> SweepRun:
        """Log rows and index rows published before now - keep."""
        cutoff = cursor_at(self.cutoff())
        query = (
            "( RowKey ge @log and RowKey lt @log_cut ) or "
            "( RowKey ge @index and RowKey lt @index_end and Cursor lt @cut )"  # the SDK reads a name to a space
        )
        parameters = {
            "log": LOG,
            "log_cut": LOG + cutoff,
            "index": INDEX,
            "index_end": _INDEX_END,
            "cut": cutoff,
        }
        return await sweep(self.changes, "changes", query, parameters, self.limit)

    async def sweep_echoes(self) -> SweepRun:
        """Echo rows past their Expires."""
        parameters = {"now": self.clock.now()}
        return await sweep(self.echoes, "echoes", "Expires lt @now", parameters, self.limit)

    def cutoff(self) -> datetime:
        """Rows published before this go."""
        return self.clock.now() - max(self.keep, MINIMUM_RETENTION)


async def retention_sweep(settings: Settings) -> tuple[SweepRun, SweepRun]:
    """One run over the deployment's tables (BC_CHANGES_RETENTION_DAYS); its clients are closed after."""
    prefix = settings.storage.table_prefix
    changes = table_client(settings.storage, changes_table_name(prefix))
    try:
        echoes = table_client(settings.storage, echoes_table_name(prefix))
        try:
            keep = timedelta(days=settings.changes.changes_retention_days)
            return await Retention(changes.client, echoes.client, SystemClock(), keep).run()
        finally:
            await echoes.close()
    finally:
        await changes.close()
