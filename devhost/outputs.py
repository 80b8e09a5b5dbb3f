"""Queue and table output bindings: collect what a function set, write it after the function succeeded.

The queue binding takes str, bytes, QueueMessage or a list of those (azure.functions queue.py); it cannot delay
a message (no such option in learn.microsoft.com/azure/azure-functions/functions-bindings-storage-queue-output;
github.com/Azure/azure-functions-host/issues/4176). The table binding is insert-only: an existing entity fails
with 409 (github.com/Azure/azure-functions-python-worker/issues/1726).
"""

from __future__ import annotations

import base64
import json
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import azure.functions as func

from devhost.catalog import OutputBinding
from devhost.errors import DevHostError
from devhost.storage import StorageClients


class OutValue(func.Out[Any]):
    """The object a function's Out[...] parameter receives (in the worker process; its value crosses back)."""

    def __init__(self) -> None:
        self._value: Any = None

    def set(self, val: Any) -> None:
        """Keep the value to write once the function succeeds."""
        self._value = val

    def get(self) -> Any:
        """The value set so far (None if nothing was set)."""
        return self._value


def queue_payloads(value: object) -> list[bytes]:
    """The message bodies an output value stands for."""
    if isinstance(value, str):
        return [value.encode("utf-8")]
    if isinstance(value, bytes):
        return [value]
    if isinstance(value, func.QueueMessage):
        return [value.get_body()]
    if isinstance(value, Sequence):
        return [payload for item in value for payload in queue_payloads(item)]
    raise DevHostError(
        f"queue output takes str, bytes, QueueMessage or a list of them, not {type(value).__name__}"
    )


def wire_text(payload: bytes, encoding: str) -> str:
    """The text stored in the queue: base64 of the bytes (TextBase64EncodePolicy's output) or the text itself."""
    if encoding == "base64":
        return base64.b64encode(payload).decode("ascii")
    return payload.decode("utf-8")


def table_entities(value: object, partition_key: str | None, row_key: str | None) -> list[dict[str, Any]]:
    """Entities from a JSON object or array; the binding's partitionKey/rowKey fill in missing keys."""
    if isinstance(value, bytes | str):
        value = json.loads(value)
    items = value if isinstance(value, list) else [value]
    entities = []
    for item in items:
        if not isinstance(item, Mapping):
            raise DevHostError(f"table output takes JSON objects, not {type(item).__name__}")
        entity = dict(item)
        if partition_key is not None:
            entity.setdefault("PartitionKey", partition_key)
        if row_key is not None:
            entity.setdefault("RowKey", row_key)
        if "PartitionKey" not in entity or "RowKey" not in entity:
            raise DevHostError("table output entity needs PartitionKey and RowKey")
        entities.append(entity)
    return entities


class OutputWriter:
    """Writes collected output values to Azure Storage."""

    def __init__(
        self, storage: StorageClients, encoding: str, on_enqueued: Callable[[str], None] = lambda _: None
    ) -> None:
        self._storage = storage
        self._encoding = encoding
        self._on_enqueued = on_enqueued

    async def flush(self, bindings: Sequence[OutputBinding], values: Mapping[str, Any]) -> None:
        """Write every binding whose value was set (the worker's Out values, by binding name)."""
        for binding in bindings:
            value = values.get(binding.name)
            if value is None:
                continue
            if binding.kind == "queue":
                await self._enqueue(binding, value)
            else:
                await self._insert(binding, value)

    async def _enqueue(self, binding: OutputBinding, value: object) -> None:
        client = await self._storage.queue(binding.connection, binding.target)
        for payload in queue_payloads(value):
            await client.send_message(wire_text(payload, self._encoding))
        self._on_enqueued(binding.target)

    async def _insert(self, binding: OutputBinding, value: object) -> None:
        client = await self._storage.table(binding.connection, binding.target)
        for entity in table_entities(value, binding.partition_key, binding.row_key):
            await client.create_entity(entity)
