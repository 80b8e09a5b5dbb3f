"""devhost's queue triggers against Azurite, with the sample host.json (batchSize 2, newBatchThreshold 1,
maxDequeueCount 3, visibilityTimeout 1 s, maxPollingInterval 0.5 s, base64)."""

from __future__ import annotations

import itertools
import json
import time
from collections.abc import Callable

import httpx
import pytest
from azure.core.exceptions import ResourceNotFoundError
from azure.storage.queue import QueueClient, TextBase64DecodePolicy, TextBase64EncodePolicy

from devhost.host import DevHost
from localworld.azurite import AzuriteEndpoints
from localworld.ports import free_port
from tests.integration.devhost.sample_app import Recorder

pytestmark = pytest.mark.integration

StartHost = Callable[[dict[str, str]], DevHost]


def _queue(settings: dict[str, str], name: str, *, base64: bool = True) -> QueueClient:
    if not base64:
        return QueueClient.from_connection_string(settings["JobsStorage"], name)
    return QueueClient.from_connection_string(
        settings["JobsStorage"],
        name,
        message_encode_policy=TextBase64EncodePolicy(),
        message_decode_policy=TextBase64DecodePolicy(),
    )


def _receive_one(client: QueueClient, timeout: float = 15.0) -> str:
    """Poll the queue until a message is there (deadline), delete it, return its content."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            messages = list(client.receive_messages(max_messages=1))
        except ResourceNotFoundError:  # devhost creates output/poison queues on first use
            continue
        for message in messages:
            client.delete_message(message)
            return str(message.content)
    raise AssertionError(f"no message on {client.queue_name} after {timeout}s")


def _becomes_empty(client: QueueClient, timeout: float = 5.0) -> bool:
    """Poll until the queue holds no message, visible or not (devhost deletes right after settling)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if client.get_queue_properties().approximate_message_count == 0:
            return True
    return False


def test_queue_message_is_processed_and_output_written(
    start_devhost: StartHost, sample_settings: dict[str, str], recorder: Recorder
) -> None:
    """A base64 message runs the function once (dequeue_count 1), its queue output is written, the message is gone."""
    start_devhost(sample_settings)
    with _queue(sample_settings, sample_settings["SAMPLE_QUEUE"]) as inbox:
        inbox.send_message(json.dumps({"job": "j1"}))
        with _queue(sample_settings, sample_settings["SAMPLE_OUT_QUEUE"]) as outbox:
            output = json.loads(_receive_one(outbox))
        assert output == {"done": '{"job": "j1"}', "dequeue_count": 1}
        [run] = recorder.wait_for("work")
        assert run.data["dequeue_count"] == 1
        assert len(str(run.data["invocation_id"])) == 36  # the context argument was passed
        assert _becomes_empty(inbox)


def test_failing_message_goes_to_poison_after_max_dequeue_count(
    start_devhost: StartHost, sample_settings: dict[str, str], recorder: Recorder
) -> None:
    """A message that always fails is tried 3 times (dequeue counts 1, 2, 3, >= 1 s apart), then moved, unchanged, to -poison."""
    start_devhost(sample_settings)
    queue_name = sample_settings["SAMPLE_QUEUE"]
    with (
        _queue(sample_settings, queue_name) as inbox,
        _queue(sample_settings, f"{queue_name}-poison", base64=False) as poison,
    ):
        inbox.send_message("fail-always")
        poisoned = _receive_one(poison)
        tries = recorder.events("work")
        assert [run.data["dequeue_count"] for run in tries] == [1, 2, 3]
        assert all(later.at - earlier.at >= 0.9 for earlier, later in itertools.pairwise(tries))
        assert poisoned == "ZmFpbC1hbHdheXM="  # the original base64 text, still base64
        assert _becomes_empty(inbox)


def test_message_that_is_not_base64_goes_to_poison_without_running(
    start_devhost: StartHost, sample_settings: dict[str, str], recorder: Recorder
) -> None:
    """With messageEncoding base64, a plain-text message never reaches the function and ends in -poison."""
    start_devhost(sample_settings)
    queue_name = sample_settings["SAMPLE_QUEUE"]
    with (
        _queue(sample_settings, queue_name, base64=False) as inbox,
        _queue(sample_settings, f"{queue_name}-poison", base64=False) as poison,
    ):
        inbox.send_message("plain text!")
        assert _receive_one(poison) == "plain text!"
        assert recorder.events("work") == []


def test_concurrency_stays_within_batch_size_plus_threshold(
    start_devhost: StartHost, sample_settings: dict[str, str], recorder: Recorder
) -> None:
    """Eight slow messages run in parallel, never more than batchSize + newBatchThreshold (2 + 1) at once."""
    queue_name = sample_settings["SAMPLE_QUEUE"]
    with _queue(sample_settings, queue_name) as inbox:
        inbox.create_queue()  # fill it before devhost starts, so the first poll finds a full batch
        for index in range(8):
            inbox.send_message(f"slow-{index}")
        start_devhost(sample_settings)
        recorder.wait_for("slow-done", count=8, timeout=20)
    running = [int(str(event.data["running"])) for event in recorder.events("slow-start")]
    assert 2 <= max(running) <= 3


def test_a_run_longer_than_its_lease_keeps_the_message_by_renewing_it(
    start_devhost: StartHost, sample_settings: dict[str, str], recorder: Recorder
) -> None:
    """A run three times its one-second lease is delivered once: the lease is renewed halfway, as the host does."""
    start_devhost({**sample_settings, "DEVHOST_MESSAGE_LEASE_SECONDS": "1"})
    with _queue(sample_settings, sample_settings["SAMPLE_QUEUE"]) as inbox:
        inbox.send_message("linger-3")
        with _queue(sample_settings, sample_settings["SAMPLE_OUT_QUEUE"]) as outbox:
            output = json.loads(_receive_one(outbox))
        assert output == {"done": "linger-3", "dequeue_count": 1}
        assert [run.data["dequeue_count"] for run in recorder.events("work")] == [1]
        assert _becomes_empty(inbox)


def test_a_listener_that_cannot_reach_its_queue_does_not_hold_the_start_and_http_serves(
    start_devhost: StartHost, sample_settings: dict[str, str], caplog: pytest.LogCaptureFixture
) -> None:
    """Queue account refusing connections: start() returns once its one attempt failed, HTTP answers, and the
    listener says it was unable to start (the host's partial start-up; it retries in the background)."""
    dead = AzuriteEndpoints("127.0.0.1", free_port(), free_port())  # nothing listens there
    settings = {**sample_settings, "JobsStorage": dead.connection_string}
    started = time.monotonic()
    host = start_devhost(settings)
    assert time.monotonic() - started < 20  # the SDK's retries alone (15 s, 18 s, ...) would take a minute
    assert httpx.get(f"{host.base_url}/api/open", timeout=10).status_code == 200
    assert "was unable to start" in caplog.text
