"""The demo's counting proxy: requests found in a raw HTTP/1.1 byte stream however it is split; calls split by who
made them."""

from __future__ import annotations

from collections import Counter

import pytest

from localworld.proxy import _RequestCounter, background_calls, kind, split_calls

STREAM = (
    b"POST /devstoreaccount1/bc-results/messages?timeout=30 HTTP/1.1\r\nHost: x\r\nContent-Length: 11\r\n\r\n"
    b"hello world"
    b"GET /devstoreaccount1/bc-jobs/messages?numofmessages=16 HTTP/1.1\r\nHost: x\r\n\r\n"
    b"PUT /devstoreaccount1/bcjobs(PartitionKey='a',RowKey='job') HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n"
    b'5\r\n{"a":\r\n3\r\n 1}\r\n0\r\n\r\n'
    b"DELETE /devstoreaccount1/bc-jobs/messages/abc?popreceipt=x HTTP/1.1\r\nContent-Length: 0\r\n\r\n"
)
EXPECTED = ["POST bc-results/messages", "GET bc-jobs/messages", "PUT bcjobs", "DELETE bc-jobs/messages"]


@pytest.mark.parametrize("size", [1, 2, 7, 64, len(STREAM)])
def test_every_request_is_counted_once_whatever_the_chunking(size: int) -> None:
    """Content-Length and chunked bodies are skipped, pipelined requests found, splits anywhere."""
    seen: list[str] = []
    counter = _RequestCounter(lambda method, path: seen.append(kind(method, path)))
    for start in range(0, len(STREAM), size):
        counter.feed(STREAM[start : start + size])
    assert seen == EXPECTED


def test_calls_are_split_into_host_product_and_throttle() -> None:
    """The trigger's receive/delete, the throttle's heartbeats, and the rest (the product's own)."""
    queue = Counter(
        {"GET bc-jobs/messages": 2, "DELETE bc-jobs/messages": 10, "POST bc-results/messages": 10}
    )
    table = Counter({"POST bcjobs": 10, "PUT bcjobs": 10, "POST $batch": 10, "PUT bcthrottle": 1})
    calls = split_calls(queue, table)
    assert (calls.host, calls.product, calls.throttle, calls.total) == (12, 40, 1, 53)


def test_the_storage_cost_bench_tells_background_calls_from_a_jobs_calls() -> None:
    """background_calls (the storage_cost bench's split): timers' and idle polls' calls, not the job's claim, transaction, report,
    receive and delete (the kinds one storage_cost run counted)."""
    per_job = {
        "POST t1jobs": 10,
        "POST $batch": 10,
        "POST bc-results/messages": 10,
        "GET bc-jobs/messages": 1,
        "DELETE bc-jobs/messages": 10,
        "GET t1jobs": 2,
        "PUT t1jobs": 1,
    }
    background = {
        "GET bc-jobs": 1,
        "GET bc-jobs-poison": 1,
        "GET bc-jobs-poison/messages": 4,
        "GET bc-notifications/messages": 4,
        "GET t1auth": 1,
        "GET t1connections": 1,
        "POST Tables": 1,
    }
    assert background_calls(per_job) == 0
    assert background_calls({**per_job, **background}) == sum(background.values())
