"""The change feed: BC's changes back to the application (docs/architecture.md, glossary: watch, subscription,
notification, change).

    BC ──notification──▶ receiver (anonymous route per connection) ──▶ bc-notifications queue
                         expansion (queue trigger): read the entity through the connection's lane ─┐
    reconciliation (timer): lastModifiedDateTime gt watermark - overlap ────────────────────────────┤
                                                                                                     ▼
                          ChangeFeed.publish: dedupe by change id ──▶ change log table ──▶ bc-changes queue
    subscription manager (timer): the subscriptions each watch needs: create, renew, re-create
"""

from shared.changes.feed import ChangeFeed, MemoryChangeFeed, Published
from shared.changes.watch import Watch

__all__ = ["ChangeFeed", "MemoryChangeFeed", "Published", "Watch"]
