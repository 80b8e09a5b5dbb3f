"""Pure parts of the queue trigger: body decoding, idle back-off, the QueueMessage the function gets, and what
happens to a message before and after a run (poison queue or none)."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from azure.storage.queue import QueueMessage

from devhost.errors import MessageDecodeError
from devhost.queues import (
    Settle,
    after_failure,
    before_run,
    decode_body,
    function_message,
    poison_queue_name,
    polling_delay,
)


def test_base64_bodies_are_decoded() -> None:
    """With messageEncoding base64 the function sees the decoded bytes."""
    assert decode_body("eyJqb2JfaWQiOiAiajEifQ==", "base64") == b'{"job_id": "j1"}'


def test_plain_text_under_base64_encoding_is_a_decode_error() -> None:
    """A body that is not base64 fails to decode (it then counts as a failed try)."""
    with pytest.raises(MessageDecodeError):
        decode_body('{"job_id": "j1"}', "base64")


def test_encoding_none_passes_text_through() -> None:
    """With messageEncoding none the stored text is the body."""
    assert decode_body('{"a": 1}', "none") == b'{"a": 1}'


def test_idle_polling_backs_off_exponentially_up_to_the_maximum() -> None:
    """Empty polls double the wait from 0.1 s (jitter +-20 %) and never exceed maxPollingInterval."""
    delays = [polling_delay(n, maximum=2.0, jitter=0.5) for n in range(8)]
    assert delays[:4] == pytest.approx([0.1, 0.2, 0.4, 0.8])
    assert delays[-1] == 2.0
    assert polling_delay(0, 2.0, jitter=0.0) == pytest.approx(0.08)
    assert polling_delay(0, 2.0, jitter=1.0) == pytest.approx(0.12)
    assert polling_delay(1000, 2.0, jitter=1.0) == 2.0


def test_function_message_carries_dequeue_count_and_times() -> None:
    """The azure.functions QueueMessage has id, body, dequeue_count, pop receipt and the storage times."""
    inserted = datetime(2026, 1, 1, tzinfo=UTC)
    stored = QueueMessage(content="aGk=")
    stored.id, stored.dequeue_count, stored.pop_receipt, stored.inserted_on = "m1", 3, "pr", inserted
    message = function_message(stored, b"hi")
    assert (message.id, message.get_body(), message.dequeue_count, message.pop_receipt) == (
        "m1",
        b"hi",
        3,
        "pr",
    )
    assert message.insertion_time == inserted


def test_a_queue_gets_its_poison_queue_unless_it_is_one_already() -> None:
    """`<name>-poison` for a normal queue; none for a name ending in -poison or one too long to extend."""
    assert poison_queue_name("bc-jobs") == "bc-jobs-poison"
    assert poison_queue_name("bc-jobs-poison") is None
    assert poison_queue_name("a" * 56) == "a" * 56 + "-poison"  # 63 characters: still a valid queue name
    assert poison_queue_name("a" * 57) is None


def test_a_failed_message_on_a_queue_without_poison_queue_is_left_invisible() -> None:
    """No poison queue: a failure is never released nor moved, whatever the dequeue count."""
    assert [after_failure(count, 5, has_poison_queue=False) for count in (1, 4, 5)] == [Settle.LEAVE] * 3


def test_a_failed_message_with_a_poison_queue_is_released_then_moved_at_max_dequeue_count() -> None:
    """Normal queues keep the host's rule: released below maxDequeueCount, moved to poison at it."""
    assert [after_failure(count, 5, has_poison_queue=True) for count in (1, 4, 5, 6)] == [
        Settle.RELEASE,
        Settle.RELEASE,
        Settle.POISON,
        Settle.POISON,
    ]


def test_a_message_past_max_dequeue_count_is_not_run() -> None:
    """Received more than maxDequeueCount times: moved to poison, or with no poison queue left as it is."""
    assert before_run(5, 5, has_poison_queue=False) is Settle.RUN
    assert before_run(6, 5, has_poison_queue=True) is Settle.POISON
    assert before_run(6, 5, has_poison_queue=False) is Settle.LEAVE
