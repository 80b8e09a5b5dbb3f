"""The sync and async clients are twins: the same public methods with the same parameters.

Both carry out the same flows (`bcjobs._flows`); this keeps their surfaces from drifting apart. The known
differences are listed here, each with why.
"""

from __future__ import annotations

import inspect
import re

import pytest

from bcjobs.aio import AsyncJobsClient, AsyncResultMessage, AsyncResultStream
from bcjobs.change_client import AsyncChangesClient, ChangesClient
from bcjobs.client import JobsClient, ResultMessage, ResultStream
from bcjobs.connections import AsyncConnectionsClient, ConnectionsClient

# What only one twin has, and why: the async client also wraps SDK clients its caller owns (the product's front
# door builds its own, with a managed identity and bounded timeouts); the async stream closes with `aclose`, the
# name async iterators and generators use.
ONLY_SYNC: dict[type, set[str]] = {ResultStream: {"close"}}
ONLY_ASYNC: dict[type, set[str]] = {
    AsyncJobsClient: {"from_clients"},
    AsyncResultStream: {"aclose"},
}
# `results()` only builds the stream (no I/O until it is iterated), so it is a plain method on both.
NOT_AWAITED = {"__init__", "from_clients", "from_connection_string", "results"}


def public(cls: type) -> dict[str, inspect.Signature]:
    """The class's constructor and public methods (its own and inherited) by name."""
    return {
        name: inspect.signature(member)
        for name, member in inspect.getmembers(cls, callable)
        if (name == "__init__" or not name.startswith("_")) and not inspect.isclass(member)
    }


def shape(signature: inspect.Signature) -> list[tuple[str, object, object, str]]:
    """Each parameter's name, kind, default and annotation, with the async spellings made sync."""
    return [
        (p.name, p.kind, p.default, re.sub(r"\bAsync", "", str(p.annotation)))
        for p in signature.parameters.values()
    ]


@pytest.mark.parametrize(
    ("sync", "aio"),
    [
        (JobsClient, AsyncJobsClient),
        (ResultStream, AsyncResultStream),
        (ResultMessage, AsyncResultMessage),
        (ConnectionsClient, AsyncConnectionsClient),
        (ChangesClient, AsyncChangesClient),
    ],
)
def test_the_sync_and_async_twins_have_the_same_public_methods_and_parameters(sync: type, aio: type) -> None:
    sync_methods, async_methods = public(sync), public(aio)
    assert set(sync_methods) - ONLY_SYNC.get(sync, set()) == set(async_methods) - ONLY_ASYNC.get(aio, set())
    for name in set(sync_methods) & set(async_methods):
        assert shape(sync_methods[name]) == shape(async_methods[name]), name
    for name in async_methods:
        awaited = inspect.iscoroutinefunction(getattr(aio, name)) or inspect.isasyncgenfunction(
            getattr(aio, name)
        )
        assert awaited is (name not in NOT_AWAITED), name
