"""A queue whose name ends in `-poison` has no poison queue on the host (QueueListenerFactory.
CreatePoisonQueueReference): devhost leaves its failed messages invisible for the rest of their lease and stops
running them after maxDequeueCount, as the host does. Sample host.json: maxDequeueCount 3, visibilityTimeout 1 s."""

from __future__ import annotations

from collections.abc import Callable

import pytest
from azure.core.exceptions import ResourceNotFoundError
from azure.storage.queue import QueueClient, TextBase64EncodePolicy

from devhost.host import DevHost
from localworld.polling import wait_until
from tests.integration.devhost.sample_app import Recorder

pytestmark = pytest.mark.integration

StartHost = Callable[[dict[str, str]], DevHost]
LEASE_SECONDS = (
    3  # well above the sample's visibilityTimeout (1 s) plus polling (0.5 s): the two are told apart
)


def _queue(settings: dict[str, str], name: str) -> QueueClient:
    return QueueClient.from_connection_string(
        settings["JobsStorage"], name, message_encode_policy=TextBase64EncodePolicy()
    )


def _peeked_dequeue_count(client: QueueClient) -> int:
    """The dequeue count of the first visible message (0 when none is visible)."""
    return max((message.dequeue_count or 0 for message in client.peek_messages(max_messages=1)), default=0)


def test_a_poison_queue_failure_waits_for_the_lease_and_is_never_moved_or_run_again(
    start_devhost: StartHost, sample_settings: dict[str, str], recorder: Recorder
) -> None:
    """On `<x>-poison`: tries come a lease apart (not visibilityTimeout), stop after 3, and the message stays put."""
    queue_name = f"{sample_settings['SAMPLE_QUEUE']}-poison"
    settings = {
        **sample_settings,
        "SAMPLE_QUEUE": queue_name,
        "DEVHOST_MESSAGE_LEASE_SECONDS": str(LEASE_SECONDS),
    }
    start_devhost(settings)
    with _queue(settings, queue_name) as queue:
        queue.send_message("fail-always")
        runs = recorder.wait_for("work", count=3, timeout=20)
        # A 4th receive happened (and its lease ran out) once a peek shows dequeue count 4: it was not run.
        wait_until(lambda: _peeked_dequeue_count(queue) >= 4, timeout=20, what="a 4th receive of the message")
        assert [run.data["dequeue_count"] for run in recorder.events("work")] == [1, 2, 3]
        # Runs 2 and 3 (the worker process is warm by then: the first run also waits for it to start) come a
        # lease apart; a release after visibilityTimeout would bring the message back within 1.5 s.
        assert runs[2].at - runs[1].at >= LEASE_SECONDS - 0.5
        assert queue.get_queue_properties().approximate_message_count == 1
    with _queue(settings, f"{queue_name}-poison") as poison_poison, pytest.raises(ResourceNotFoundError):
        poison_poison.get_queue_properties()
