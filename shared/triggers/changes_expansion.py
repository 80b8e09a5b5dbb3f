"""Queue triggers of the change feed's expansion (issue 22): `bc-notifications` and its poison queue.

Thin: the text to shared/changes/expansion_compose.py. Only storage or BC trouble that may pass raises: the host
delivers again, and after maxDequeueCount (host.json) moves the message to `bc-notifications-poison`, whose
trigger records it (an ERROR log line naming the connection, BC's correlation id and the items; no storage call,
so it cannot fail) and the reconciliation reads what it would have brought.
"""

from __future__ import annotations

import logging

import azure.functions as func

from bcjobs import NOTIFICATIONS_QUEUE

bp = func.Blueprint()
logger = logging.getLogger(__name__)
CONNECTION = "JobsStorage"


def _text(message: func.QueueMessage) -> str:
    return message.get_body().decode("utf-8", errors="replace")


@bp.function_name("changes_expand")
@bp.queue_trigger(arg_name="message", queue_name=NOTIFICATIONS_QUEUE, connection=CONNECTION)
async def changes_expand(message: func.QueueMessage) -> None:
    """Expand one notification message into change events."""
    # imported when it runs, not at the cold start (the host imports every trigger module to index it)
    from shared.changes.expansion_compose import expand_text

    await expand_text(_text(message))


@bp.function_name("changes_expand_poison")
@bp.queue_trigger(arg_name="message", queue_name=f"{NOTIFICATIONS_QUEUE}-poison", connection=CONNECTION)
def changes_expand_poison(message: func.QueueMessage) -> None:
    """Record a notification message the host gave up on."""
    # imported when it runs, not at the cold start (the host imports every trigger module to index it)
    from shared.changes.expansion_compose import record_dead

    record_dead(_text(message), message.dequeue_count or 0)
