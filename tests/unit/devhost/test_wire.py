"""What crosses between devhost and a worker process: requests, results and trigger values, framed."""

from __future__ import annotations

import asyncio

import azure.functions as func
from azure.functions.http import HttpRequest as WorkerHttpRequest

from devhost.wire import CallRequest, CallResult, frame, read_frame


async def _through_a_stream(*messages: object) -> list[object | None]:
    reader = asyncio.StreamReader()
    for message in messages:
        reader.feed_data(frame(message))
    reader.feed_eof()
    return [await read_frame(reader) for _ in range(len(messages) + 1)]


async def test_an_http_request_crosses_with_everything_the_function_reads() -> None:
    """Method, URL, headers, query, route params and body survive (the request's mappingproxy does not pickle)."""
    request = WorkerHttpRequest(
        method="POST",
        url="http://127.0.0.1/api/items/1?x=1",
        headers={"X-Sample": "hello"},
        params={"x": "1"},
        route_params={"id": "1"},
        body_type="bytes",
        body=b"payload",
    )
    [crossed, end] = await _through_a_stream(CallRequest("i", "f", "req", request))
    assert end is None  # the end of the stream reads as None, not an error
    assert isinstance(crossed, CallRequest)
    rebuilt = crossed.trigger_value
    assert isinstance(rebuilt, WorkerHttpRequest)
    assert (rebuilt.method, rebuilt.url, rebuilt.get_body()) == ("POST", request.url, b"payload")
    assert (rebuilt.headers["x-sample"], dict(rebuilt.params), dict(rebuilt.route_params)) == (
        "hello",
        {"x": "1"},
        {"id": "1"},
    )


async def test_results_cross_in_order_with_return_and_out_values() -> None:
    """Two results written back to back arrive in order, with an HttpResponse and Out values intact."""
    response = func.HttpResponse("ok", status_code=201, headers={"Location": "/x"})
    first, second = CallResult("1", True, response), CallResult("2", True, None, {"out": ["a", "b"]})
    crossed = await _through_a_stream(first, second)
    assert [getattr(c, "invocation_id", None) for c in crossed] == ["1", "2", None]
    assert isinstance(crossed[0], CallResult)
    assert isinstance(crossed[1], CallResult)
    assert (crossed[0].value.status_code, crossed[0].value.headers["Location"]) == (201, "/x")
    assert crossed[1].outs == {"out": ["a", "b"]}
