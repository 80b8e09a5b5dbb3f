"""The BC client against httpx.MockTransport: URLs, headers, paging, ETags, 401 refresh, retries, recording."""

from __future__ import annotations

import json
import tomllib
import uuid
from datetime import timedelta
from pathlib import Path
from uuid import UUID

import httpx
import pytest

from shared.bc.errors import (
    AuthenticationError,
    CompanyNotFoundError,
    EntityChangedError,
    RequestTimeoutError,
    ServiceUnavailableError,
    ThrottledError,
    TokenAcquisitionError,
    TokenRefusedError,
    UnsafeNextLinkError,
)
from shared.bc.models import ApiRoute, EntitySet, Method
from shared.bc.odata import ODataQuery, odata_field
from shared.bc.sender import PRODUCT_VERSION, BcRequest, request_headers, user_agent
from shared.tokens import DEFAULT_MIN_VALIDITY, AccessToken, TokenProviderError
from tests.unit.bc.fakes import (
    API_ROOT,
    BASE,
    COMPANY,
    CountingTokens,
    RecordingThrottle,
    bc_error,
    json_response,
    make_client,
)

CUSTOMERS = EntitySet("customers")
CUSTOMER_ID = UUID("33333333-3333-3333-3333-333333333333")
CUSTOMER_URL = f"{API_ROOT}/companies({COMPANY})/customers({CUSTOMER_ID})"


def customer(number: int, etag: str = 'W/"1"') -> dict[str, object]:
    """A customer as BC returns it."""
    return {"@odata.etag": etag, "id": str(uuid.UUID(int=number)), "number": f"C{number:05d}"}


async def test_get_builds_the_v2_url_and_reads_the_etag() -> None:
    """GET goes to /v2.0/{tenant}/{env}/api/v2.0/companies({id})/customers({id}); the ETag is kept apart."""
    h = make_client(lambda request: json_response(200, {**customer(1, 'W/"abc"'), "displayName": "Ann"}))
    entity = await h.client.get(CUSTOMERS.key(CUSTOMER_ID))
    assert str(h.requests[0].url) == CUSTOMER_URL
    assert entity.etag == 'W/"abc"'
    assert entity["displayName"] == "Ann"
    assert "@odata.etag" not in entity.values


async def test_every_request_carries_a_fresh_client_request_id() -> None:
    """Each request has its own uuid client-request-id, and asks for JSON."""
    h = make_client(lambda request: json_response(200, customer(1)))
    await h.client.get(CUSTOMERS.key(CUSTOMER_ID))
    await h.client.get(CUSTOMERS.key(CUSTOMER_ID))
    ids = [request.headers["client-request-id"] for request in h.requests]
    assert len(set(ids)) == 2
    assert all(UUID(value) for value in ids)
    assert h.requests[0].headers["Accept"] == "application/json"


async def test_custom_api_url_shape() -> None:
    """A custom API lives under api/{publisher}/{group}/{version}."""
    h = make_client(lambda request: json_response(200, {"value": []}))
    await h.client.list(EntitySet("shipments", api=ApiRoute("contoso", "logistics", "v1.0")))
    assert (
        h.requests[0].url.path
        == f"/v2.0/11111111-1111-1111-1111-111111111111/production/api/contoso/logistics/v1.0/companies({COMPANY})/shipments"
    )


async def test_list_follows_next_links_to_the_end() -> None:
    """Pages are fetched until no @odata.nextLink comes back; every page asks for the page size."""

    def pages(request: httpx.Request) -> httpx.Response:
        page = int(request.url.params.get("$skiptoken", "0"))
        body: dict[str, object] = {"value": [customer(page * 2 + 1), customer(page * 2 + 2)]}
        if page < 2:
            body["@odata.nextLink"] = f"{API_ROOT}/companies({COMPANY})/customers?$skiptoken={page + 1}"
        return json_response(200, body)

    h = make_client(pages, page_size=2)
    found = await h.client.list(CUSTOMERS, ODataQuery(filter=odata_field("blocked").eq(" ")))
    assert [entity["number"] for entity in found] == [f"C{n:05d}" for n in range(1, 7)]
    assert len(h.requests) == 3
    assert all(request.headers["Prefer"] == "odata.maxpagesize=2" for request in h.requests)
    assert h.requests[0].url.params["$filter"] == "blocked eq ' '"
    assert "$filter" not in h.requests[1].url.params  # the next link is followed verbatim


async def test_list_stops_at_the_limit() -> None:
    """With a limit, no page beyond it is fetched and the result is cut to size."""

    def endless(request: httpx.Request) -> httpx.Response:
        return json_response(
            200,
            {
                "value": [customer(1), customer(2)],
                "@odata.nextLink": f"{API_ROOT}/companies({COMPANY})/customers?$skiptoken=x",
            },
        )

    h = make_client(endless, page_size=2)
    found = await h.client.list(CUSTOMERS, limit=3)
    assert len(found) == 3
    assert len(h.requests) == 2


async def test_next_link_to_another_host_is_refused() -> None:
    """A nextLink off the configured host is never requested (the bearer token would go with it)."""
    h = make_client(
        lambda request: json_response(
            200, {"value": [], "@odata.nextLink": "https://evil.test/steal?$skiptoken=1"}
        )
    )
    with pytest.raises(UnsafeNextLinkError):
        await h.client.list(CUSTOMERS)
    assert [request.url.host for request in h.requests] == ["bc.test"]


async def test_next_link_on_another_port_is_refused() -> None:
    """Same host name but another port is another server."""
    h = make_client(
        lambda request: json_response(
            200, {"value": [], "@odata.nextLink": "https://bc.test:8443/x?$skiptoken=1"}
        )
    )
    with pytest.raises(UnsafeNextLinkError):
        await h.client.list(CUSTOMERS)


async def test_company_is_looked_up_by_name_once() -> None:
    """A configured company name is resolved with a filtered companies query, then served from cache."""
    calls: list[str] = []

    def handler(request: httpx.Request) -> httpx.Response:
        calls.append(request.url.path)
        if request.url.path.endswith("/companies"):
            assert request.url.params["$filter"] == "name eq 'CRONUS USA, Inc.'"
            return json_response(200, {"value": [{"id": str(COMPANY), "name": "CRONUS USA, Inc."}]})
        return json_response(200, {"value": []})

    h = make_client(handler, company_id=None, company_name="CRONUS USA, Inc.")
    await h.client.list(CUSTOMERS)
    await h.client.list(CUSTOMERS)
    assert calls.count("/v2.0/11111111-1111-1111-1111-111111111111/production/api/v2.0/companies") == 1
    assert (await h.client.company()).id == COMPANY


async def test_unknown_company_is_a_company_not_found_error() -> None:
    """No match for the configured company name is a clear error."""
    h = make_client(lambda request: json_response(200, {"value": []}), company_id=None, company_name="Nope")
    with pytest.raises(CompanyNotFoundError):
        await h.client.list(CUSTOMERS)


async def test_update_with_a_given_etag_sends_if_match() -> None:
    """The caller's ETag goes to If-Match, the changes as the JSON body."""
    h = make_client(lambda request: json_response(200, customer(1, 'W/"2"')))
    updated = await h.client.update(CUSTOMERS.key(CUSTOMER_ID), {"displayName": "New"}, etag='W/"1"')
    patch = h.requests[0]
    assert patch.method == "PATCH"
    assert patch.headers["If-Match"] == 'W/"1"'
    assert json.loads(patch.content) == {"displayName": "New"}
    assert updated.etag == 'W/"2"'


async def test_update_and_delete_without_etag_send_if_match_star_without_reading_first() -> None:
    """No ETag from the caller: one PATCH or DELETE with `If-Match: *` (last writer wins), no GET before it."""

    def handler(request: httpx.Request) -> httpx.Response:
        return httpx.Response(204) if request.method == "DELETE" else json_response(200, customer(1, 'W/"2"'))

    h = make_client(handler)
    await h.client.update(CUSTOMERS.key(CUSTOMER_ID), {"displayName": "New"})
    await h.client.delete(CUSTOMERS.key(CUSTOMER_ID))
    assert [(request.method, request.headers["If-Match"]) for request in h.requests] == [
        ("PATCH", "*"),
        ("DELETE", "*"),
    ]


async def test_stale_etag_is_an_entity_changed_error_with_correlation() -> None:
    """409 Request_EntityChanged -> EntityChangedError carrying BC's code and correlation headers."""
    h = make_client(
        lambda request: bc_error(
            409,
            "Request_EntityChanged",
            "Another user has already changed the record.",
            {"request-id": "r-1", "ms-correlation-x": "c-1"},
        )
    )
    with pytest.raises(EntityChangedError) as caught:
        await h.client.update(CUSTOMERS.key(CUSTOMER_ID), {"displayName": "x"}, etag='W/"old"')
    error = caught.value
    assert error.code == "Request_EntityChanged"
    assert error.correlation is not None
    assert (error.correlation.request_id, error.correlation.ms_correlation_x) == ("r-1", "c-1")
    assert error.correlation.client_request_id == h.requests[0].headers["client-request-id"]
    assert len(h.requests) == 1  # a conflict is not retried


async def test_delete_and_action_urls() -> None:
    """DELETE targets the entity with If-Match; a bound action POSTs to .../Microsoft.NAV.{action}."""
    h = make_client(lambda request: httpx.Response(204))
    invoices = EntitySet("salesInvoices")
    await h.client.delete(CUSTOMERS.key(CUSTOMER_ID), etag="*")
    await h.client.action(invoices.key(CUSTOMER_ID), "post")
    assert (h.requests[0].method, h.requests[0].headers["If-Match"]) == ("DELETE", "*")
    assert h.requests[1].method == "POST"
    assert h.requests[1].url.path.endswith(f"/salesInvoices({CUSTOMER_ID})/Microsoft.NAV.post")


async def test_401_refreshes_once_and_resends() -> None:
    """A 401 makes the provider refresh (told which token was rejected) and the request is sent again."""

    sent: list[str] = []

    def handler(request: httpx.Request) -> httpx.Response:
        sent.append(request.headers["Authorization"])  # the pipeline resends the same (mutated) request
        if request.headers["Authorization"] == "Bearer token-1":
            return bc_error(
                401, "Authentication_InvalidCredentials", "The credentials provided are incorrect"
            )
        return json_response(200, customer(1))

    h = make_client(handler)
    await h.client.get(CUSTOMERS.key(CUSTOMER_ID))
    assert h.tokens.replacement_calls == 1
    assert h.tokens.rejected[0] is not None
    assert h.tokens.rejected[0].value == "token-1"
    assert sent == ["Bearer token-1", "Bearer token-2"]
    assert h.throttle.permits == 2  # the resend takes a permit of its own
    assert [interaction.status for interaction in h.recorder.interactions] == [401, 200]


async def test_second_401_is_an_authentication_error() -> None:
    """If the refreshed token is refused too, the call fails after exactly one refresh."""
    h = make_client(lambda request: bc_error(401, "Authentication_InvalidCredentials", "nope"))
    with pytest.raises(AuthenticationError):
        await h.client.get(CUSTOMERS.key(CUSTOMER_ID))
    assert h.tokens.replacement_calls == 1
    assert len(h.requests) == 2


class ProviderDownError(Exception):
    """What a token provider might raise when its store is unreachable."""


class FailingTokens(CountingTokens):
    """A provider whose token() (or, with `refresh_only`, only replacement_for()) raises ProviderDownError."""

    def __init__(self, *, refresh_only: bool = False) -> None:
        super().__init__()
        self._refresh_only = refresh_only

    async def token(self, min_validity: timedelta = DEFAULT_MIN_VALIDITY) -> AccessToken:
        """Fail, unless only refreshes fail."""
        if not self._refresh_only:
            self.token_calls += 1
            raise ProviderDownError("token store unreachable")
        return await super().token(min_validity)

    async def replacement_for(self, rejected: AccessToken) -> AccessToken:
        """Fail."""
        self.replacement_calls += 1
        raise ProviderDownError("token store unreachable")


class ThrottleWatchingTokens(CountingTokens):
    """Notes how many throttle permits were held whenever a token was asked for."""

    def __init__(self) -> None:
        super().__init__()
        self.throttle: RecordingThrottle | None = None
        self.held_when_asked: list[int] = []

    async def token(self, min_validity: timedelta = DEFAULT_MIN_VALIDITY) -> AccessToken:
        """Note, then hand out the token."""
        self.held_when_asked.append(self.throttle.held if self.throttle else -1)
        return await super().token(min_validity)

    async def replacement_for(self, rejected: AccessToken) -> AccessToken:
        """Note, then refresh."""
        self.held_when_asked.append(self.throttle.held if self.throttle else -1)
        return await super().replacement_for(rejected)


async def test_tokens_are_fetched_outside_the_throttle() -> None:
    """Neither the token nor the refresh after a 401 is asked for while a throttle permit is held."""
    answers = iter([bc_error(401, "Authentication_InvalidCredentials", "expired")])
    tokens = ThrottleWatchingTokens()
    h = make_client(lambda request: next(answers, json_response(200, customer(1))), tokens=tokens)
    tokens.throttle = h.throttle
    await h.client.get(CUSTOMERS.key(CUSTOMER_ID))
    assert tokens.held_when_asked == [0, 0]
    assert h.throttle.permits == 2


async def test_failing_token_provider_takes_no_permit_and_is_recorded() -> None:
    """A provider that raises: nothing is sent, no permit is taken, the failure is recorded and typed."""
    h = make_client(lambda request: json_response(200, customer(1)), tokens=FailingTokens())
    with pytest.raises(TokenAcquisitionError) as caught:
        await h.client.get(CUSTOMERS.key(CUSTOMER_ID))
    assert isinstance(caught.value.__cause__, ProviderDownError)
    assert caught.value.retriable
    assert not caught.value.request_sent
    assert h.throttle.permits == 0
    assert h.requests == []
    assert h.tokens.token_calls == 1  # not retried in-request: the provider retries on its own
    (interaction,) = h.recorder.interactions
    assert interaction.status is None
    assert interaction.error == "TokenAcquisitionError(ProviderDownError)"
    assert interaction.path.endswith(f"/customers({CUSTOMER_ID})")


class SignInNeededError(TokenProviderError):
    """What a provider raises when only an admin can fix it (not transient)."""


class StoreBusyError(TokenProviderError):
    """A provider failure that passes on its own."""

    transient = True


class RaisingTokens(CountingTokens):
    """A provider whose token() raises the given error."""

    def __init__(self, error: Exception) -> None:
        super().__init__()
        self._error = error

    async def token(self, min_validity: timedelta = DEFAULT_MIN_VALIDITY) -> AccessToken:
        """Raise."""
        raise self._error


@pytest.mark.parametrize(
    ("error", "expected", "retriable"),
    [
        (SignInNeededError("an admin must sign in"), TokenRefusedError, False),
        (StoreBusyError("key vault busy"), TokenAcquisitionError, True),
        (ProviderDownError("unknown failure"), TokenAcquisitionError, True),
    ],
)
async def test_provider_says_whether_waiting_helps(
    error: Exception, expected: type[TokenAcquisitionError], retriable: bool
) -> None:
    """A non-transient provider error is not retriable (no job loops on a dead sign-in); others are."""
    h = make_client(lambda request: json_response(200, customer(1)), tokens=RaisingTokens(error))
    with pytest.raises(TokenAcquisitionError) as caught:
        await h.client.get(CUSTOMERS.key(CUSTOMER_ID))
    assert type(caught.value) is expected
    assert caught.value.retriable is retriable
    assert caught.value.__cause__ is error


async def test_failing_refresh_after_a_401_is_recorded_and_typed() -> None:
    """If the refresh after a 401 fails, the 401 and the failure are recorded and no resend goes out."""
    h = make_client(
        lambda request: bc_error(401, "Authentication_InvalidCredentials", "expired"),
        tokens=FailingTokens(refresh_only=True),
    )
    with pytest.raises(TokenAcquisitionError):
        await h.client.get(CUSTOMERS.key(CUSTOMER_ID))
    assert h.throttle.permits == 1
    assert [(i.status, i.error) for i in h.recorder.interactions] == [
        (401, None),
        (None, "TokenAcquisitionError(ProviderDownError)"),
    ]


async def test_short_retry_after_is_honoured_and_shared() -> None:
    """A 429 with Retry-After: 1 pauses every instance for 1 s, waits 1 s, and retries."""
    answers = iter([bc_error(429, "Application_TooManyRequests", "Too many", {"Retry-After": "1"})])
    h = make_client(lambda request: next(answers, json_response(200, customer(1))))
    await h.client.get(CUSTOMERS.key(CUSTOMER_ID))
    assert h.throttle.pauses == [1.0]
    assert h.clock.slept == [1.0]
    assert len(h.requests) == 2
    assert [interaction.try_number for interaction in h.recorder.interactions] == [1, 2]


async def test_long_retry_after_is_raised_for_the_job_layer() -> None:
    """A 429 with Retry-After: 30 pauses everyone but is raised at once, carrying retry_after."""
    h = make_client(
        lambda request: bc_error(429, "Application_TooManyRequests", "Too many", {"Retry-After": "30"})
    )
    with pytest.raises(ThrottledError) as caught:
        await h.client.get(CUSTOMERS.key(CUSTOMER_ID))
    assert caught.value.retry_after == 30.0
    assert h.throttle.pauses == [30.0]
    assert h.clock.slept == []
    assert len(h.requests) == 1


async def test_post_is_retried_after_503_but_not_after_a_read_timeout() -> None:
    """503 means BC did not process the POST (retry); a read timeout is ambiguous (raise)."""
    answers = iter([httpx.Response(503, headers={"Retry-After": "1"})])
    h = make_client(lambda request: next(answers, json_response(201, customer(1))))
    await h.client.create(CUSTOMERS, {"displayName": "A"})
    assert len(h.requests) == 2

    def timeout(request: httpx.Request) -> httpx.Response:
        raise httpx.ReadTimeout("slow", request=request)

    h = make_client(timeout)
    with pytest.raises(RequestTimeoutError) as caught:
        await h.client.create(CUSTOMERS, {"displayName": "A"})
    assert caught.value.request_sent is True
    assert len(h.requests) == 1


async def test_connect_failure_is_retried_then_raised() -> None:
    """A refused connection is retried with backoff up to the attempt limit, then raised as unavailable."""

    def refused(request: httpx.Request) -> httpx.Response:
        raise httpx.ConnectError("refused", request=request)

    h = make_client(refused)
    with pytest.raises(ServiceUnavailableError) as caught:
        await h.client.create(CUSTOMERS, {"displayName": "A"})
    assert caught.value.request_sent is False
    assert len(h.requests) == 3
    assert h.clock.slept == [0.25, 0.5]
    assert [i.error for i in h.recorder.interactions] == ["ConnectError"] * 3


async def test_interactions_hold_no_token_no_query_no_body() -> None:
    """The recorder sees method, path, status, ids and BC's code; never the token, query values or body."""
    h = make_client(
        lambda request: bc_error(400, "BadRequest", "Invalid Request Body", {"request-id": "r-9"})
    )
    with pytest.raises(Exception):  # noqa: B017, PT011 -- the error type is covered elsewhere
        await h.client.list(CUSTOMERS, ODataQuery(filter=odata_field("email").eq("secret@example.com")))
    (interaction,) = h.recorder.interactions
    assert interaction.path.endswith("/customers")
    assert (interaction.method, interaction.status, interaction.bc_error_code) == ("GET", 400, "BadRequest")
    assert interaction.request_id == "r-9"
    rendered = repr(interaction)
    assert "token-1" not in rendered
    assert "secret@example.com" not in rendered


async def test_throttle_permit_is_taken_per_request() -> None:
    """Every HTTP request (pages included) goes through the throttle."""

    def pages(request: httpx.Request) -> httpx.Response:
        link = f"{BASE}/v2.0/x?$skiptoken=1" if "$skiptoken" not in str(request.url) else None
        body: dict[str, object] = {"value": [customer(1)]}
        if link:
            body["@odata.nextLink"] = link
        return json_response(200, body)

    h = make_client(pages)
    await h.client.list(CUSTOMERS)
    assert h.throttle.permits == 2


async def test_every_get_asks_for_bcs_read_replica_and_no_write_does() -> None:
    """One rule in the sender: GETs (a job's and the feed's, pages included) carry Data-Access-Intent: ReadOnly;
    POST, PATCH and DELETE never do, even when a caller's headers ask for it (BC refuses it on a write)."""

    def answer(request: httpx.Request) -> httpx.Response:
        listing = request.method == "GET" and request.url.path.endswith("/customers")
        return json_response(200, {"value": [customer(1)]} if listing else customer(1))

    h = make_client(answer)
    await h.client.get(CUSTOMERS.key(CUSTOMER_ID))
    await h.client.list(CUSTOMERS)
    await h.client.create(CUSTOMERS, {"displayName": "x"})
    await h.client.update(CUSTOMERS.key(CUSTOMER_ID), {"displayName": "y"})
    await h.client.delete(CUSTOMERS.key(CUSTOMER_ID))
    intents = [(r.method, r.headers.get("Data-Access-Intent")) for r in h.requests]
    assert intents == [
        ("GET", "ReadOnly"),
        ("GET", "ReadOnly"),
        ("POST", None),
        ("PATCH", None),
        ("DELETE", None),
    ]


async def test_every_request_names_the_product_its_version_and_connection() -> None:
    """User-Agent (BC's telemetry logs it, RT0008): product and version, connection and identity; nothing else."""
    h = make_client(lambda request: json_response(200, customer(1)), agent=user_agent("acme", "second"))
    await h.client.get(CUSTOMERS.key(CUSTOMER_ID))
    await h.client.create(CUSTOMERS, {"displayName": "x"})
    agents = {request.headers["User-Agent"] for request in h.requests}
    assert agents == {f"bcjobs/{PRODUCT_VERSION} (connection=acme; identity=second)"}


async def test_a_read_that_decides_a_write_goes_to_the_primary_database() -> None:
    """`primary`: no read intent (a replica may lag behind a write the read must see), pages included."""

    def answer(request: httpx.Request) -> httpx.Response:
        listing = request.url.path.endswith("/customers")
        return json_response(200, {"value": [customer(1)]} if listing else customer(1))

    h = make_client(answer)
    await h.client.get(CUSTOMERS.key(CUSTOMER_ID), primary=True)
    await h.client.list(CUSTOMERS, limit=2, primary=True)
    assert [request.headers.get("Data-Access-Intent") for request in h.requests] == [None, None]


def test_a_callers_read_intent_never_reaches_a_write() -> None:
    """The rule wins over a caller's headers: a write never carries Data-Access-Intent, whatever its case."""
    request = BcRequest(Method.POST, f"{BASE}/x", headers={"data-access-intent": "ReadOnly"})
    headers = request_headers(request, "id-1", user_agent())
    assert {name.lower() for name in headers} == {"accept", "client-request-id", "user-agent"}


def test_the_user_agent_version_is_the_products() -> None:
    """PRODUCT_VERSION is a constant (no pyproject.toml nor package metadata is deployed): it must follow both."""
    root = Path(__file__).resolve().parents[3]
    for pyproject in (root / "pyproject.toml", root / "bcjobs" / "pyproject.toml"):
        assert tomllib.loads(pyproject.read_text())["project"]["version"] == PRODUCT_VERSION
