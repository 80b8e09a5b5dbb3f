"""Output binding values: what the queue and table bindings accept and write."""

from __future__ import annotations

import json

import azure.functions as func
import pytest

from devhost.errors import DevHostError
from devhost.outputs import OutValue, queue_payloads, table_entities, wire_text


def test_queue_output_accepts_str_bytes_message_and_lists() -> None:
    """str, bytes, QueueMessage and a list of them become message bodies, in order."""
    value = ["a", b"b", func.QueueMessage(body=b"c")]
    assert queue_payloads(value) == [b"a", b"b", b"c"]
    assert queue_payloads("single") == [b"single"]


def test_queue_output_refuses_other_types() -> None:
    """A dict is not a queue message (the worker refuses it too)."""
    with pytest.raises(DevHostError, match="dict"):
        queue_payloads({"job": 1})


def test_wire_text_is_base64_like_text_base64_encode_policy() -> None:
    """Under base64 encoding the stored text is base64 of the UTF-8 bytes; under none it is the text."""
    assert wire_text(b'{"job_id": "j1"}', "base64") == "eyJqb2JfaWQiOiAiajEifQ=="
    assert wire_text(b"plain", "none") == "plain"


def test_table_output_fills_keys_from_the_binding() -> None:
    """partitionKey/rowKey from the binding fill missing keys; the entity's own keys win."""
    entities = table_entities(
        json.dumps([{"RowKey": "r1", "x": 1}, {"PartitionKey": "own", "RowKey": "r2"}]), "p", None
    )
    assert entities == [
        {"RowKey": "r1", "x": 1, "PartitionKey": "p"},
        {"PartitionKey": "own", "RowKey": "r2"},
    ]


def test_table_output_without_keys_is_refused() -> None:
    """An entity with no RowKey from anywhere is an error."""
    with pytest.raises(DevHostError, match="RowKey"):
        table_entities('{"PartitionKey": "p"}', None, None)


def test_out_value_keeps_what_was_set() -> None:
    """OutValue.get returns the value set (None before)."""
    out = OutValue()
    assert out.get() is None
    out.set("x")
    assert out.get() == "x"
