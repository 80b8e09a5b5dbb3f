"""The notification receiver: BC's handshake answered from nothing, notifications queued, never a 4xx to BC."""

from __future__ import annotations

import json
from dataclasses import dataclass, field

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from shared.changes.notifications import (
    MAX_MESSAGE_JSON_BYTES,
    NotificationMessage,
    NotificationQueue,
    NotificationQueueError,
)
from shared.changes.receiver import MAX_BODY_BYTES, Incoming, QueueGetter, handshake, receive
from testkit.clock import ManualClock

KEY = "0123456789abcdef0123456789abcdef"
SUB = "5b3b7a2f-49a6-4b0a-9a51-0d0e7f3e5b11"


@dataclass
class MemoryQueue:
    """NotificationQueue in memory; `failing` makes every send raise as storage trouble would."""

    sent: list[str] = field(default_factory=list)
    failing: bool = False

    async def send(self, message: NotificationMessage) -> None:
        if self.failing:
            raise NotificationQueueError("storage down (test)")
        self.sent.append(message.encode())

    def messages(self) -> list[NotificationMessage]:
        return [NotificationMessage.decode(text) for text in self.sent]


def _source(queue: MemoryQueue) -> QueueGetter:
    async def get() -> NotificationQueue:
        return queue

    return get


def _item(n: int, change: str = "updated") -> dict[str, str]:
    return {
        "subscriptionId": SUB,
        "clientState": "f" * 32,
        "expirationDateTime": "2026-01-08T08:00:00Z",
        "resource": f"api/v2.0/companies(11111111-1111-1111-1111-111111111111)/customers({n:08d}-0000-0000-0000-000000000000)",
        "changeType": change,
        "lastModifiedDateTime": "2026-01-05T08:00:00Z",
    }


def _post(body: bytes, connection: str = "contoso", key: str = KEY) -> Incoming:
    headers = {
        "x-ms-correlation-id": "c0ffee00-0000-0000-0000-000000000001",
        "clientrequestid": "c0ffee00-0000-0000-0000-000000000001",
    }
    return Incoming(connection, key, {}, headers, body)


def test_the_handshake_returns_the_exact_token_as_text() -> None:
    """GET or POST with `validationToken`: 200 text/plain with the token, whatever it holds."""
    token = "a token with spaces/+&=?é"
    reply = handshake(Incoming("any", "thing", {"validationToken": token}))
    assert reply is not None
    assert (reply.status, reply.body, reply.mimetype) == (200, token, "text/plain")


def test_the_handshake_builds_nothing() -> None:
    """Even for a route no connection has, the handshake answers without a queue (no service on that path)."""
    reply = handshake(Incoming("Not A Name", "x", {"validationToken": "t"}, {}, b""))
    assert reply is not None
    assert reply.status == 200


async def test_a_notification_is_queued_as_it_came_with_bc_ids_and_answered_202() -> None:
    queue, clock = MemoryQueue(), ManualClock()
    items = [_item(1), _item(2, "deleted")]
    reply = await receive(_post(json.dumps({"value": items}).encode()), _source(queue), clock)
    assert reply.status == 202
    [message] = queue.messages()
    assert list(message.value) == items
    assert (message.connection, message.key, message.received_at) == ("contoso", KEY, clock.now())
    assert message.correlation_id == message.client_request_id == "c0ffee00-0000-0000-0000-000000000001"


async def test_a_big_notification_is_split_into_messages_under_the_queue_limit() -> None:
    """1,000 items of one subscription (BC's most before `collection`) times three: every item, in parts < 64 KiB."""
    queue = MemoryQueue()
    items = [_item(n) for n in range(3000)]
    reply = await receive(_post(json.dumps({"value": items}).encode()), _source(queue), ManualClock())
    assert reply.status == 202
    messages = queue.messages()
    assert len(messages) > 1
    assert all(len(text) <= 64 * 1024 for text in queue.sent)
    assert [item for message in messages for item in message.value] == items
    assert {(message.part, message.parts) for message in messages} == {
        (i + 1, len(messages)) for i in range(len(messages))
    }
    assert MAX_MESSAGE_JSON_BYTES * 4 / 3 < 64 * 1024


async def test_storage_trouble_is_a_503_bc_retries() -> None:
    queue = MemoryQueue(failing=True)
    reply = await receive(_post(json.dumps({"value": [_item(1)]}).encode()), _source(queue), ManualClock())
    assert reply.status == 503


async def test_garbage_wrong_routes_and_absurd_bodies_get_202_and_nothing_is_queued() -> None:
    queue = MemoryQueue()
    cases = [
        _post(b"{not json"),
        _post(b"[]"),
        _post(b'{"value": "x"}'),
        _post(b'{"value": [1, 2]}'),
        _post(b"\xff\xfe\x00"),
        _post(b"[" * 100_000),
        _post(json.dumps({"value": [_item(1)]}).encode(), key="short"),
        _post(json.dumps({"value": [_item(1)]}).encode(), connection="../etc"),
        _post(b" " * (MAX_BODY_BYTES + 1)),
    ]
    for incoming in cases:
        reply = await receive(incoming, _source(queue), ManualClock())
        assert reply.status == 202
    assert queue.sent == []


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=20),
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=10), children, max_size=4)
    ),
    max_leaves=20,
)


@settings(max_examples=300, suppress_health_check=[HealthCheck.too_slow])
@given(
    connection=st.text(max_size=50),
    key=st.text(max_size=40),
    body=st.one_of(st.binary(max_size=2000), json_values.map(lambda value: json.dumps(value).encode())),
    headers=st.dictionaries(st.text(max_size=20), st.text(max_size=60), max_size=3),
)
async def test_no_request_gets_a_4xx_or_an_error(
    connection: str, key: str, body: bytes, headers: dict[str, str]
) -> None:
    """Whatever arrives is answered 2xx (BC deletes every subscription on a URL that answers a 4xx)."""
    queue = MemoryQueue()
    incoming = Incoming(connection, key, {}, {name.lower(): value for name, value in headers.items()}, body)
    reply = handshake(incoming) or await receive(incoming, _source(queue), ManualClock())
    assert 200 <= reply.status < 300
    for message in queue.messages():
        assert message.connection == connection
        assert message.key == key
