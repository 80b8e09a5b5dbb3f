"""Hostile queue messages: thousands of generated texts, each ends in a job or a reasoned rejection, never a crash.

Through the real decoder (`bcjobs.wire.decode`, what the trigger runs) and through the real JobProcessor with the
real JobRunner and BC client, whose HTTP goes to a stand-in BC (httpx MockTransport): every message ends in one
terminal row and one report, nothing is re-enqueued, and whatever hostile text a valid job carries reaches BC as
a quoted literal or a JSON value, never as OData.
"""

from __future__ import annotations

import asyncio
import base64
import json
import re
import uuid
from typing import Any

import httpx
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

from bcjobs import InvalidJobError, Job, JobState, decode
from shared.jobs import Delivery, JobProcessor
from shared.jobs.policy import JobPolicy
from shared.jobs.runner import JobRunner
from shared.settings import JobSettings
from testkit.clock import ManualClock
from testkit.lanes import one_lane
from tests.fakes.jobs import MemoryAuditLog, MemoryJobQueues, MemoryJobStore
from tests.unit.bc.fakes import json_response, make_client

DEFAULT_POLICY = JobPolicy.from_settings(JobSettings())

GUID = "6f0b0c7e-1d2a-4c3b-9e8f-0a1b2c3d4e5f"
INJECTIONS = [
    "' or 1 eq 1 or displayName eq '",
    "x') or (1 eq 1",
    "'; DROP TABLE customers;--",
    "%27%20or%201%20eq%201",
    "&$filter=true",
    "$expand=*&$select=*",
    "customers?$top=1",
    "../companies",
    "\\' or ''='",
    "\u2019 or \u2018\u2019=\u2019",
    "\x00\x01\x7f",
    "<script>alert(1)</script>",
    "{{7*7}}",
    "\U0001f4a5" * 30,
]
hostile_text = st.one_of(
    st.sampled_from(INJECTIONS),
    st.text(max_size=40),
    st.tuples(st.text(min_size=1, max_size=3), st.integers(4090, 4100)).map(lambda t: (t[0] * t[1])[: t[1]]),
    st.text(st.characters(codec="utf-8"), max_size=20).map(lambda t: t + "'"),
)
json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | hostile_text,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=10), inner, max_size=4),
    max_leaves=12,
)

# Valid jobs of every operation: each string in them is a place to put hostile text.
TEMPLATES: list[dict[str, Any]] = [
    {"jobId": "t-get", "operation": "get", "entitySet": "customers", "id": GUID, "query": {"select": ["id"]}},
    {
        "jobId": "t-list",
        "operation": "list",
        "entitySet": "customers",
        "query": {
            "filter": [
                {"field": "displayName", "operator": "eq", "value": "x"},
                {"field": "number", "operator": "in", "value": ["a", "b"]},
                {"field": "displayName", "operator": "contains", "value": "y"},
            ],
            "orderBy": ["number desc"],
            "top": 3,
        },
    },
    {
        "jobId": "t-create",
        "operation": "create",
        "entitySet": "customers",
        "data": {"displayName": "x", "phoneNumber": "1"},
        "naturalKey": {"number": "N-1"},
        "correlationId": "c-1",
    },
    {
        "jobId": "t-update",
        "operation": "update",
        "entitySet": "customers",
        "id": GUID,
        "data": {"displayName": "x"},
        "etag": 'W/"1"',
    },
    {
        "jobId": "t-upsert",
        "operation": "upsert",
        "entitySet": "items",
        "naturalKey": {"number": "I-1"},
        "data": {"displayName": "x"},
    },
    {"jobId": "t-delete", "operation": "delete", "entitySet": "vendors", "id": GUID},
    {
        "jobId": "t-action",
        "operation": "action",
        "entitySet": "salesInvoices",
        "id": GUID,
        "action": "Microsoft.NAV.post",
    },
    {
        "jobId": "t-batch",
        "operation": "batch",
        "operations": [
            {"operation": "create", "entitySet": "items", "data": {"displayName": "x"}},
            {"operation": "get", "entitySet": "items", "id": GUID},
        ],
    },
    {
        "jobId": "t-custom",
        "operation": "list",
        "entitySet": "customers",
        "api": {"publisher": "contoso", "group": "app", "version": "v1.0"},
        "company": "CRONUS USA, Inc.",
        "deadline": "2999-01-01T00:00:00Z",
    },
]


def _paths(value: Any, prefix: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    """Every path to a string (a dict key is a path too, marked with a trailing None)."""
    if isinstance(value, str):
        return [prefix]
    if isinstance(value, dict):
        found: list[tuple[Any, ...]] = []
        for key, item in value.items():
            found.append((*prefix, key, None))
            found += _paths(item, (*prefix, key))
        return found
    if isinstance(value, list):
        return [path for index, item in enumerate(value) for path in _paths(item, (*prefix, index))]
    return []


def _replaced(value: Any, path: tuple[Any, ...], new: Any) -> Any:
    """`value` with the string (or the dict key, for a path ending in None) at `path` replaced by `new`."""
    if not path:
        return new
    head, rest = path[0], path[1:]
    if isinstance(value, dict):
        if rest == (None,):
            return {(str(new) if k == head else k): v for k, v in value.items()}
        return {k: (_replaced(v, rest, new) if k == head else v) for k, v in value.items()}
    return [(_replaced(v, rest, new) if i == head else v) for i, v in enumerate(value)]


@st.composite
def tampered_jobs(draw: st.DrawFn) -> dict[str, Any]:
    """A valid job with one or more of its strings (values or keys) replaced by hostile text or a wrong type."""
    job: Any = json.loads(json.dumps(draw(st.sampled_from(TEMPLATES))))
    for _ in range(draw(st.integers(1, 3))):
        path = draw(st.sampled_from(_paths(job)))
        job = _replaced(
            job, path, draw(hostile_text) if path[-1] is None else draw(hostile_text | json_values)
        )
    return dict(job)


# Where the contract takes free text (values, not names): a filter value, record data, a natural key, the
# company name, an ETag. Hostile text there must be accepted and travel as data.
FREE_TEXT: list[tuple[int, tuple[Any, ...]]] = [
    (1, ("query", "filter", 0, "value")),
    (1, ("query", "filter", 1, "value", 0)),
    (1, ("query", "filter", 2, "value")),
    (2, ("data", "displayName")),
    (2, ("naturalKey", "number")),
    (3, ("data", "displayName")),
    (3, ("etag",)),
    (4, ("naturalKey", "number")),
    (4, ("data", "displayName")),
    (7, ("operations", 0, "data", "displayName")),
    (8, ("company",)),
]
free_text = st.one_of(st.sampled_from(INJECTIONS), st.text(min_size=1, max_size=60))


@st.composite
def hostile_valid_jobs(draw: st.DrawFn) -> dict[str, Any]:
    """A job the contract accepts whose free-text fields hold injection text, quotes and odd unicode."""
    template, path = draw(st.sampled_from(FREE_TEXT))
    job: Any = json.loads(json.dumps(TEMPLATES[template]))
    for _ in range(draw(st.integers(1, 2))):
        job = _replaced(job, path, draw(free_text))
        template_path = draw(st.sampled_from([p for t, p in FREE_TEXT if t == template]))
        path = template_path
    return dict(job)


def wire(value: Any) -> str:
    return base64.b64encode(json.dumps(value).encode("utf-8")).decode("ascii")


def nested(depth: int) -> Any:
    value: Any = {"operation": "list", "entitySet": "customers"}
    for level in range(depth):
        value = {"x": value} if level % 2 else [value]
    return value


# Repeated text: 20,000 to 70,000 characters (over the 64 KiB a queue message holds, at the top).
huge = st.tuples(st.text(min_size=1, max_size=10), st.integers(20_000, 70_000)).map(
    lambda t: (t[0] * t[1])[: t[1]]
)
messages = st.one_of(
    st.text(max_size=300),  # anything at all, base64 or not
    st.binary(max_size=300).map(lambda raw: base64.b64encode(raw).decode()),  # not UTF-8, not JSON
    json_values.map(wire),  # JSON, mostly not an object
    st.integers(20, 400).map(lambda depth: wire(nested(depth))),  # deep nesting
    huge.map(lambda text: wire({"operation": "list", "entitySet": text})),  # huge strings
    huge,
    tampered_jobs().map(wire),  # a job with hostile text or a wrong type in one of its fields
    hostile_valid_jobs().map(wire),  # a valid job with hostile free text
    tampered_jobs().map(lambda job: json.dumps(job)),  # the same, sent without base64
    tampered_jobs().map(lambda job: "  " + wire(job) + "\n"),  # surrounded by whitespace
)


@settings(
    max_examples=3000, deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large]
)
@given(messages)
def test_decoding_answers_every_message_with_a_job_or_a_reasoned_rejection(text: str) -> None:
    """3,000 generated messages: `decode` returns a Job or raises InvalidJobError with a reason, nothing else."""
    outcome = _decoded(text)
    if isinstance(outcome, InvalidJobError):
        assert outcome.reason
        assert outcome.problems
    else:
        assert isinstance(outcome, Job)


def _decoded(text: str) -> Job | InvalidJobError:
    try:
        return decode(text)
    except InvalidJobError as invalid:
        return invalid


# -- through the processor, the runner and the BC client -----------------------------------------------------

_LITERAL = re.compile(r"'(?:[^']|'')*'")
_FILTER_REST = re.compile(r"[A-Za-z0-9_/ (),.\-:]*")
_PATH = re.compile(r"(/[A-Za-z0-9_.\-]+(\([0-9a-f-]{36}\))?|/\$batch)+")


def stand_in_bc(request: httpx.Request) -> httpx.Response:
    """Answers like BC would for records that do not exist: empty lists, 404 for ids, 201 for creates."""
    if request.url.path.endswith("/$batch"):
        return json_response(400, {"error": {"code": "BadRequest", "message": "no batch here"}})
    if request.method == "GET" and request.url.path.endswith(")"):
        return json_response(404, {"error": {"code": "Internal_RecordNotFound", "message": "gone"}})
    if request.method == "GET":
        if request.url.path.endswith("/companies"):
            return json_response(200, {"value": [{"id": str(uuid.UUID(int=7)), "name": "CRONUS USA, Inc."}]})
        return json_response(200, {"value": []})
    if (
        request.method == "POST"
        and not request.url.path.endswith(")")
        and "Microsoft.NAV" not in request.url.path
    ):
        body = json.loads(request.content or b"{}")
        return json_response(201, {**body, "id": str(uuid.uuid4()), "@odata.etag": 'W/"1"'})
    return json_response(404, {"error": {"code": "Internal_RecordNotFound", "message": "gone"}})


def strings_in(value: Any) -> set[str]:
    """Every string value in a JSON value."""
    if isinstance(value, str):
        return {value}
    if isinstance(value, dict):
        return {text for item in value.values() for text in strings_in(item)}
    if isinstance(value, list):
        return {text for item in value for text in strings_in(item)}
    return set()


def literal_only(requests: list[httpx.Request], values: set[str]) -> list[str]:
    """Requests whose path or $filter carries anything but identifiers, keys and quoted literals, or a literal
    that is not exactly one of the job's own values (what escaping that broke would produce)."""
    bad: list[str] = []
    for request in requests:
        path = request.url.path
        if not _PATH.fullmatch(path):
            bad.append(f"path {path!r}")
        query_filter = request.url.params.get("$filter")
        if query_filter is None:
            continue
        if not _FILTER_REST.fullmatch(_LITERAL.sub("", query_filter)):
            bad.append(f"$filter {query_filter!r}")
        literals = [found[1:-1].replace("''", "'") for found in _LITERAL.findall(query_filter)]
        bad += [f"literal {text!r} is no value of the job" for text in literals if text not in values]
    return bad


def job_values(text: str) -> set[str]:
    try:
        return strings_in(json.loads(base64.b64decode(text.strip())))
    except ValueError:
        return set()


async def one_delivery(text: str) -> tuple[MemoryJobStore, MemoryJobQueues, list[httpx.Request], str]:
    harness = make_client(stand_in_bc)
    store, queues = MemoryJobStore(), MemoryJobQueues()
    processor = JobProcessor(
        store=store,
        audit=MemoryAuditLog(),
        queues=queues,
        lanes=one_lane(JobRunner(harness.client), harness.tokens),
        policy=DEFAULT_POLICY,
        clock=ManualClock(),
        request_timeout=DEFAULT_POLICY.claim_lease / 20,
    )
    handled = await processor.handle(Delivery("m-1", text))
    return store, queues, harness.requests, handled.value


@settings(
    max_examples=600, deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large]
)
@given(st.one_of(hostile_valid_jobs().map(wire), hostile_valid_jobs().map(wire), messages))
def test_every_hostile_message_ends_in_one_terminal_row_and_one_report_and_reaches_bc_only_as_literals(
    text: str,
) -> None:
    """A rejected or a finished job after one delivery: one report, no retry copy, no raw text in a BC URL."""
    store, queues, requests, handled = asyncio.run(one_delivery(text))
    rows = [store.peek(job_id) for job_id in store.job_ids]
    assert len(rows) == 1
    row = rows[0]
    assert row is not None
    event(row.state.value)
    assert row.state.terminal, (handled, row.state, row.error)
    assert row.state in (JobState.REJECTED, JobState.SUCCEEDED, JobState.FAILED)
    assert [report.job_id for report in queues.published] == [row.job_id]
    assert queues.requeued == []
    if row.state is JobState.REJECTED:
        assert requests == []
        assert row.error is not None
        assert row.error.message
    assert literal_only(requests, job_values(text) | {"CRONUS USA, Inc."}) == []


def test_the_literal_check_catches_text_that_escaped_its_quotes() -> None:
    """The check above can fail: a value whose quotes were not doubled, or a stray path segment, is reported."""
    base = (
        "https://bc.test/v2.0/t/production/api/v2.0/companies(6f0b0c7e-1d2a-4c3b-9e8f-0a1b2c3d4e5f)/customers"
    )
    value = "x' or 1 eq 1 or 'y"
    escaped = httpx.Request("GET", base, params={"$filter": "displayName eq 'x'' or 1 eq 1 or ''y'"})
    injected = httpx.Request("GET", base, params={"$filter": f"displayName eq '{value}'"})
    dollar = httpx.Request("GET", base, params={"$filter": "displayName eq 'a' and $expand eq 1"})
    stray = httpx.Request("GET", base + "%3F$top=1")
    assert literal_only([escaped], {value}) == []
    assert literal_only([injected], {value}) == [
        "literal 'x' is no value of the job",
        "literal 'y' is no value of the job",
    ]
    assert literal_only([dollar], {"a"}) != []
    assert literal_only([stray], set()) != []


def test_an_etag_that_cannot_travel_in_a_header_is_rejected_not_retried() -> None:
    """Found by the fuzzing above: a non-ASCII `etag` passed the contract, then the BC client failed to encode
    its If-Match header (UnicodeEncodeError, not a job outcome), so the host retried the message into poison.
    The contract now takes visible ASCII only: the job is rejected at once, naming the field."""
    for etag in ("\x80", 'W/"caf\u00e9"', "W/ 1", "\n"):
        job = {"jobId": "etag-1", "operation": "update", "entitySet": "customers", "id": GUID}
        text = wire({**job, "data": {"displayName": "x"}, "etag": etag})
        store, _, requests, handled = asyncio.run(one_delivery(text))
        assert handled == "rejected"
        row = store.peek("etag-1")
        assert row is not None
        assert row.error is not None
        assert "etag" in row.error.message
        assert requests == []
