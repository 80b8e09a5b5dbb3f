"""The change feed on the status page: each watch's BC subscription with its expiry, and each connection's use of
its environment's 200 subscriptions (ours / every subscriber's), as the subscription manager last saw them.

One query of `{BC_TABLE_PREFIX}subscriptions` (at most 200 rows per environment): the page never calls BC.
A subscription with less than ALARM_LEFT of its 3 days left is flagged: renewal is due at 36 h, so one that low
means the manager's renewals keep failing (see the `changes.subscription_failed` log events).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from html import escape

from shared.azure_clients import table_client
from shared.changes.subscriptions import (
    SUBSCRIPTIONS_TABLE_SUFFIX,
    SubscriptionRecord,
    SubscriptionUsage,
    TableSubscriptionStore,
)
from shared.settings import Settings

ALARM_LEFT = timedelta(hours=24)


@dataclass(frozen=True, slots=True)
class FeedStatus:
    """What the page shows of the change feed."""

    records: tuple[SubscriptionRecord, ...]
    usages: tuple[SubscriptionUsage, ...]


async def read_feed_status(settings: Settings) -> FeedStatus:
    """The subscription rows and usages (ChangeStorageError when the table cannot be read)."""
    owned = table_client(settings.storage, f"{settings.storage.table_prefix}{SUBSCRIPTIONS_TABLE_SUFFIX}")
    try:
        records, usages = await TableSubscriptionStore(owned.client).everything()
    finally:
        await owned.close()
    return FeedStatus(tuple(records), tuple(usages))


def feed_section_body(status: FeedStatus, now: datetime) -> str:
    """The section's HTML body: usage per connection, then a row per subscription."""
    if not status.records and not status.usages:
        return "<p>No watches have subscriptions yet (PUT /api/connections/{name}/watches/{watch}).</p>\n"
    usage = "".join(
        f"<li><code>{escape(u.connection)}</code>: {u.ours} ours of {u.total} in use, BC allows {u.limit} per "
        f"environment (as of {escape(u.at.strftime('%Y-%m-%d %H:%M UTC'))})</li>\n"
        for u in status.usages
    )
    rows = "".join(_row(record, now) for record in sorted(status.records, key=_order))
    table = (
        "<table><tr><th>Connection</th><th>Watch</th><th>Entity set</th><th>Company</th><th>Expires in</th></tr>\n"
        f"{rows}</table>\n"
    )
    return (f"<ul>\n{usage}</ul>\n" if usage else "") + table


def _order(record: SubscriptionRecord) -> tuple[str, str, str]:
    return record.connection, record.watch, str(record.company_id)


def _row(record: SubscriptionRecord, now: datetime) -> str:
    left = record.expiration - now
    css = " class='problem'" if left < ALARM_LEFT else ""
    hours = max(0.0, left.total_seconds() / 3600)
    return (
        f"<tr><td><code>{escape(record.connection)}</code></td><td>{escape(record.watch)}</td>"
        f"<td>{escape(record.entity_set)}</td><td><code>{escape(str(record.company_id))}</code></td>"
        f"<td{css}>{hours:.1f} h</td></tr>\n"
    )
