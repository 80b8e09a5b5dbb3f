"""What devhost and its worker processes say to each other: pickled messages in length-prefixed frames.

The real host and worker speak gRPC (FunctionRpc.proto: InvocationRequest, InvocationResponse, RpcLog,
WorkerTerminate); devhost keeps the same conversation over a socketpair with pickle, since both ends are Python.
azure.functions.HttpRequest (and azure.functions.http.HttpRequest, the one the worker builds and devhost too)
keeps its params in a mappingproxy, which does not pickle: it crosses as its parts and is rebuilt on the other
side (every other trigger and return type of azure-functions 1.26.0 pickles).
"""

from __future__ import annotations

import asyncio
import copyreg
import pickle
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from azure.functions import HttpRequest
from azure.functions.http import HttpRequest as WorkerHttpRequest

_HEADER_BYTES = 4


@dataclass(frozen=True, slots=True)
class CallRequest:
    """Host → worker: run one invocation (the InvocationRequest)."""

    invocation_id: str
    function: str
    trigger_arg: str
    trigger_value: Any = field(repr=False)
    outputs: tuple[str, ...] = ()
    wants_context: bool = False
    retry_count: int = 0
    max_retry_count: int = 0


@dataclass(frozen=True, slots=True)
class CallResult:
    """Worker → host: how one invocation ended, its return value and the values of its Out parameters."""

    invocation_id: str
    succeeded: bool
    value: Any = field(default=None, repr=False)
    outs: Mapping[str, Any] = field(default_factory=dict, repr=False)
    error: str | None = None  # redacted "Type: message"
    stack: str | None = None  # redacted traceback


@dataclass(frozen=True, slots=True)
class LogLine:
    """Worker → host: one log record's attributes (the RpcLog), message rendered and already redacted."""

    attributes: Mapping[str, Any]


@dataclass(frozen=True, slots=True)
class Ready:
    """Worker → host: the app is imported and indexed; invocations may come."""

    pid: int


@dataclass(frozen=True, slots=True)
class LoadFailed:
    """Worker → host: the app could not be imported (redacted reason); the worker exits."""

    error: str


@dataclass(frozen=True, slots=True)
class Close:
    """Host → worker: run the app's close_services() and exit (the WorkerTerminate)."""


def _http_request(
    worker_type: bool,
    method: str,
    url: str,
    parts: tuple[dict[str, str], dict[str, str], dict[str, str]],
    body: bytes,
) -> HttpRequest:
    headers, params, route_params = parts
    if worker_type:
        return WorkerHttpRequest(
            method=method,
            url=url,
            headers=headers,
            params=params,
            route_params=route_params,
            body_type="bytes",
            body=body,
        )
    return HttpRequest(
        method=method, url=url, headers=headers, params=params, route_params=route_params, body=body
    )


def _reduce_http_request(request: HttpRequest) -> tuple[Any, tuple[Any, ...]]:
    parts = (dict(request.headers), dict(request.params), dict(request.route_params))
    worker_type = isinstance(request, WorkerHttpRequest)
    return _http_request, (worker_type, request.method, request.url, parts, request.get_body())


copyreg.pickle(HttpRequest, _reduce_http_request)
copyreg.pickle(WorkerHttpRequest, _reduce_http_request)


def frame(message: object) -> bytes:
    """The bytes that carry one message: a 4-byte big-endian length, then the pickle."""
    data = pickle.dumps(message, protocol=pickle.HIGHEST_PROTOCOL)
    return len(data).to_bytes(_HEADER_BYTES, "big") + data


async def read_frame(reader: asyncio.StreamReader) -> object | None:
    """The next message, or None once the other side has closed the connection (or died)."""
    try:
        header = await reader.readexactly(_HEADER_BYTES)
        data = await reader.readexactly(int.from_bytes(header, "big"))
    except (asyncio.IncompleteReadError, ConnectionError):
        return None
    message: object = pickle.loads(data)  # noqa: S301 - our own child process, over our own socketpair
    return message
