"""Azurite behaves like Azure Storage on the paths the product relies on (real SDKs, real server)."""

from __future__ import annotations

import base64
import json
import time
from collections.abc import Iterator

import pytest
from azure.core import MatchConditions
from azure.core.exceptions import ResourceModifiedError
from azure.data.tables import TableClient, UpdateMode
from azure.storage.queue import BinaryBase64DecodePolicy, QueueClient, QueueMessage, TextBase64EncodePolicy

from localworld.polling import wait_until

pytestmark = pytest.mark.integration


@pytest.fixture
def queue(azurite_connection_string: str, unique_name: str) -> Iterator[QueueClient]:
    client = QueueClient.from_connection_string(
        azurite_connection_string, unique_name, message_encode_policy=TextBase64EncodePolicy()
    )
    client.create_queue()
    yield client
    client.delete_queue()


@pytest.fixture
def table(azurite_connection_string: str, unique_name: str) -> Iterator[TableClient]:
    client = TableClient.from_connection_string(azurite_connection_string, unique_name)
    client.create_table()
    yield client
    client.delete_table()


def test_queue_message_round_trips_as_base64_like_the_functions_host_expects(
    queue: QueueClient, azurite_connection_string: str
) -> None:
    """A JSON job sent with TextBase64EncodePolicy is stored base64-encoded and decodes back unchanged."""
    job = {"job_id": "j1", "operation": "create", "note": "ünïcode ✓"}
    queue.send_message(json.dumps(job))

    raw_reader = QueueClient.from_connection_string(azurite_connection_string, queue.queue_name)
    stored = raw_reader.peek_messages()[0].content
    assert json.loads(base64.b64decode(stored)) == job

    decoding = QueueClient.from_connection_string(
        azurite_connection_string, queue.queue_name, message_decode_policy=BinaryBase64DecodePolicy()
    )
    received = decoding.receive_message()
    assert received is not None
    assert json.loads(received.content) == job
    assert received.dequeue_count == 1


def test_visibility_delayed_message_stays_hidden_until_its_time(queue: QueueClient) -> None:
    """send_message(visibility_timeout=2) is invisible at first and becomes receivable after about 2 s."""
    sent_at = time.monotonic()
    queue.send_message("later", visibility_timeout=2)
    assert queue.receive_message() is None

    received: list[QueueMessage] = []

    def visible() -> bool:
        message = queue.receive_message()
        received.extend([message] if message is not None else [])
        return message is not None

    wait_until(visible, timeout=15, what="the delayed message to become visible", interval=0.1)
    assert [base64.b64decode(message.content) for message in received] == [b"later"]  # no decode policy here
    assert time.monotonic() - sent_at >= 1.5


def test_table_update_with_stale_etag_is_refused(table: TableClient) -> None:
    """An update guarded by an old ETag fails with ResourceModifiedError and leaves the newer value."""
    table.create_entity({"PartitionKey": "p", "RowKey": "r", "state": "queued"})
    first = table.get_entity("p", "r")
    table.update_entity(
        {"PartitionKey": "p", "RowKey": "r", "state": "running"},
        mode=UpdateMode.MERGE,
        etag=first.metadata["etag"],
        match_condition=MatchConditions.IfNotModified,
    )

    with pytest.raises(ResourceModifiedError):
        table.update_entity(
            {"PartitionKey": "p", "RowKey": "r", "state": "stale-writer"},
            mode=UpdateMode.MERGE,
            etag=first.metadata["etag"],
            match_condition=MatchConditions.IfNotModified,
        )
    assert table.get_entity("p", "r")["state"] == "running"
