"""Queue triggers of the job pipeline: `bc-jobs` (the main job) and `bc-jobs-poison` (nothing vanishes).

host.json sets messageEncoding `none`: the host hands over the stored text unchanged and the product decodes the
base64 itself, so a message that is not base64 becomes a `rejected` job with its reason instead of failing in
the host before any code runs (which would send it to poison without a word). Only storage failures raise here:
the host then redelivers, and after maxDequeueCount it moves the message to `bc-jobs-poison`, where the poison
trigger records the job as dead-lettered.

`bc-jobs-poison` has no poison queue on the real host (its name ends in "-poison"): a failed poison invocation is
retried only ten minutes later (the message's lease) and not at all after maxDequeueCount. So `jobs_poison` rides
out storage failures itself, and on the host's last delivery reports the job (`jobs.dead_letter_failed`) and
re-drives the message (shared/jobs/deadletter.py, PoisonHandler).
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING

import azure.functions as func

from bcjobs import JOBS_QUEUE, POISON_QUEUE
from shared.settings import get_settings

if TYPE_CHECKING:
    from bcjobs import JobState
    from shared.jobs import Delivery

bp = func.Blueprint()
logger = logging.getLogger(__name__)
CONNECTION = "JobsStorage"


def _delivery(message: func.QueueMessage) -> Delivery:
    # imported when it runs, not at the cold start (the host imports every trigger module to index it)
    from shared.jobs import Delivery

    text = message.get_body().decode("utf-8", errors="replace")
    return Delivery(message_id=str(message.id), text=text, dequeue_count=message.dequeue_count or 1)


@bp.function_name("jobs_process")
@bp.queue_trigger(arg_name="message", queue_name=JOBS_QUEUE, connection=CONNECTION)
async def jobs_process(message: func.QueueMessage) -> None:
    """Run one job delivery."""
    # imported when it runs, not at the cold start (the host imports every trigger module to index it)
    from shared.jobs import SELF_LOGGED, job_services

    services = await job_services()
    handled = await services.processor.handle(_delivery(message))
    logger.log(
        logging.DEBUG if handled in SELF_LOGGED else logging.INFO,  # processor.py SELF_LOGGED says why
        "delivery %s: %s",
        message.id,
        handled.value,
        extra={"event": "jobs.delivery", "message_id": message.id, "handled": handled.value},
    )


@bp.function_name("jobs_poison")
@bp.queue_trigger(arg_name="message", queue_name=POISON_QUEUE, connection=CONNECTION)
async def jobs_poison(message: func.QueueMessage) -> None:
    """Record a message the host gave up on as a dead-lettered job (or report and re-drive it on the last try)."""
    # imported when it runs, not at the cold start (the host imports every trigger module to index it)
    from shared.clock import SystemClock
    from shared.jobs.deadletter import poison_handler

    settings = get_settings()
    handler = poison_handler(_dead_letter, settings.jobs, settings.storage, SystemClock())
    await handler.handle(_delivery(message), message.expiration_time)


async def _dead_letter(delivery: Delivery) -> JobState:
    # imported when it runs, not at the cold start (the host imports every trigger module to index it)
    from shared.jobs import job_services

    services = await job_services()  # inside the retried call: building the pipeline touches storage too
    return await services.dead_letters.record(delivery)
