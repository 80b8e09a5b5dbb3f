"""BusinessCentralClient: companies, get, list (paged), create, update, delete, bound actions and $batch.

URL shapes: `{base}/v2.0/{tenant}/{environment}/api/v2.0/companies({id})/{entitySet}({id})`, custom APIs under
`api/{publisher}/{group}/{version}`, bound actions `.../Microsoft.NAV.{action}`
(learn.microsoft.com/dynamics365/business-central/dev-itpro/webservices/api-endpoint-structure). PATCH and
DELETE carry If-Match: the caller's ETag (optimistic concurrency), or `*` (last writer wins, see ANY_VERSION).
Paging: `Prefer: odata.maxpagesize` and `@odata.nextLink` followed verbatim — but only on the configured host,
since the bearer token goes with it
(learn.microsoft.com/dynamics365/business-central/dev-itpro/webservices/server-driven-paging-in-odata-web-services).
"""

from __future__ import annotations

import re
from collections.abc import AsyncIterator, Mapping, Sequence
from urllib.parse import urljoin, urlsplit
from uuid import UUID

import httpx

from shared.bc import batch as batching
from shared.bc.errors import (
    CLIENT_REQUEST_ID,
    BatchIncompleteError,
    BusinessCentralError,
    CompanyNotFoundError,
    Correlation,
    QueryError,
    UnexpectedResponseError,
    UnsafeNextLinkError,
    json_body,
)
from shared.bc.models import (
    STANDARD_API,
    ApiRoute,
    BatchOperation,
    BatchResult,
    BcEndpoint,
    Company,
    Entity,
    EntityKey,
    EntitySet,
    JsonObject,
    JsonValue,
    Method,
    Page,
)
from shared.bc.odata import ODataQuery, odata_field
from shared.bc.retry import surely_unprocessed
from shared.bc.sender import BcRequest, RequestSender

# BC's own cap is 20,000 per page (server-driven-paging-in-odata-web-services, above).
DEFAULT_PAGE_SIZE = 1000
# BC's subscription ids: 32 hex digits (sandbox/README.md "BC webhooks"; Learn's examples). Checked before they go
# into a URL, between the single quotes BC requires: subscriptions('{id}').
_SUBSCRIPTION_ID = re.compile(r"^[0-9A-Za-z-]{1,64}$")
# If-Match for "any version" (RFC 9110 §13.1.1). BC requires If-Match on PATCH and DELETE, "either with a
# retrieved ETag or with '*'"
# (learn.microsoft.com/dynamics365/business-central/dev-itpro/webservices/use-odata-to-modify-data).
ANY_VERSION = "*"


class BusinessCentralClient:
    """Async BC API client for one environment; every request goes through the sender (token, throttle, retry)."""

    def __init__(
        self,
        sender: RequestSender,
        endpoint: BcEndpoint,
        *,
        page_size: int = DEFAULT_PAGE_SIZE,
        max_batch_operations: int = batching.MAX_BATCH_OPERATIONS,
    ) -> None:
        self._sender = sender
        self._endpoint = endpoint
        self._page_size = page_size
        self._max_batch = max_batch_operations
        self._companies_by_name: dict[str, Company] = {}
        self._companies_by_id: dict[UUID, Company] = {}

    @property
    def endpoint(self) -> BcEndpoint:
        """Where this client sends requests (the change feed names an entity's URL as its event's reference)."""
        return self._endpoint

    async def aclose(self) -> None:
        """Close the HTTP connections (the throttle is the process's and stays open)."""
        await self._sender.aclose()

    # ----- companies ----------------------------------------------------------------------------------

    async def companies(self, api: ApiRoute = STANDARD_API) -> tuple[Company, ...]:
        """Every company of the environment (and refresh the cache)."""
        url = f"{self._endpoint.api_root(api)}/companies"
        found = tuple(_company(entity) for entity in await self._collect(url, {}, limit=None, page_size=None))
        for company in found:
            self._remember(company)
        return found

    async def company(self, *, company_id: UUID | None = None, name: str | None = None) -> Company:
        """A company by id or name (default: the configured one); looked up once, then cached."""
        company_id = company_id or (None if name else self._endpoint.company_id)
        name = name or (None if company_id else self._endpoint.company_name)
        if company_id is not None and company_id in self._companies_by_id:
            return self._companies_by_id[company_id]
        if name is not None and name in self._companies_by_name:
            return self._companies_by_name[name]
        if company_id is None and name is None:
            raise CompanyNotFoundError(
                "no company id or name given or configured (BC_COMPANY_ID / BC_COMPANY_NAME)"
            )
        query = ODataQuery(
            filter=odata_field("id").eq(company_id) if company_id else odata_field("name").eq(name)
        )
        url = f"{self._endpoint.api_root(STANDARD_API)}/companies"
        matches = await self._collect(url, query.params(), limit=1, page_size=None)
        if not matches:
            raise CompanyNotFoundError(
                f"no company {company_id or name!s} in environment {self._endpoint.environment}"
            )
        company = _company(matches[0])
        self._remember(company)
        return company

    async def company_id(self) -> UUID:
        """The configured company's id (resolving a configured name once)."""
        if self._endpoint.company_id is not None:
            return self._endpoint.company_id
        return (await self.company()).id

    # ----- entities -----------------------------------------------------------------------------------

    async def get(self, key: EntityKey, query: ODataQuery | None = None, *, primary: bool = False) -> Entity:
        """One entity (with its ETag). Like every GET it may be served by a read replica (the sender's rule,
        `Data-Access-Intent: ReadOnly`); `primary`: the answer decides a write, read BC's primary database."""
        params = (query or ODataQuery()).params()
        url = await self._url(key)
        response = await self._sender.send(BcRequest(Method.GET, url, params=params, primary=primary))
        return _entity(json_body(response), _request_id(response))

    async def list(
        self,
        entity_set: EntitySet,
        query: ODataQuery | None = None,
        *,
        limit: int | None = None,
        page_size: int | None = None,
        primary: bool = False,
    ) -> tuple[Entity, ...]:
        """All entities (or the first `limit`), across as many pages as it takes (`primary`: as in `get`)."""
        url, params = await self._url(entity_set), (query or ODataQuery()).params()
        return await self._collect(url, params, limit, page_size, primary=primary)

    async def pages(
        self, entity_set: EntitySet, query: ODataQuery | None = None, *, page_size: int | None = None
    ) -> AsyncIterator[tuple[Entity, ...]]:
        """Page by page: a caller can act on each before reading the next."""
        url: str | None = await self._url(entity_set)
        params = (query or ODataQuery()).params()
        while url is not None:
            page = await self._page(url, params, page_size or self._page_size)
            yield page.entities
            url, params = page.next_link, {}

    # ----- webhook subscriptions (environment-wide, per API route) -----------------------------------
    # learn.microsoft.com/dynamics365/business-central/dev-itpro/api-reference/v2.0/dynamics-subscriptions

    async def subscriptions(self, api: ApiRoute = STANDARD_API) -> tuple[Entity, ...]:
        """Every subscription of the environment under this API route (anyone's), with ETags."""
        return await self._collect(f"{self._endpoint.api_root(api)}/subscriptions", {}, None, None)

    async def create_subscription(self, api: ApiRoute, body: JsonObject) -> Entity:
        """POST `{notificationUrl, resource, clientState}`; BC answers 201 only after the handshake succeeded."""
        url = f"{self._endpoint.api_root(api)}/subscriptions"
        response = await self._sender.send(BcRequest(Method.POST, url, body=dict(body)))
        return _entity(json_body(response), _request_id(response))

    async def renew_subscription(
        self, api: ApiRoute, subscription_id: str, body: JsonObject, *, etag: str
    ) -> Entity:
        """PATCH with If-Match and the full body (BC refuses an empty one: MicrosoftDocs
        dynamics365smb-devitpro-pb issue #2863); a new handshake, then 3 more days."""
        response = await self._sender.send(
            BcRequest(
                Method.PATCH,
                self._subscription_url(api, subscription_id),
                body=dict(body),
                headers={"If-Match": etag},
            )
        )
        return _entity(json_body(response), _request_id(response))

    async def delete_subscription(self, api: ApiRoute, subscription_id: str, *, etag: str | None) -> None:
        """DELETE with If-Match (`*` when the ETag is unknown); BC answers 204."""
        url = self._subscription_url(api, subscription_id)
        await self._sender.send(BcRequest(Method.DELETE, url, headers={"If-Match": etag or ANY_VERSION}))

    def _subscription_url(self, api: ApiRoute, subscription_id: str) -> str:
        if not _SUBSCRIPTION_ID.fullmatch(subscription_id):
            raise QueryError(f"not a subscription id ({len(subscription_id)} characters)")
        return f"{self._endpoint.api_root(api)}/subscriptions('{subscription_id}')"

    async def create(self, entity_set: EntitySet, values: JsonObject) -> Entity:
        """POST a new entity (deep insert allowed); BC answers 201 with the entity."""
        response = await self._sender.send(
            BcRequest(Method.POST, await self._url(entity_set), body=dict(values))
        )
        return _entity(json_body(response), _request_id(response))

    async def update(self, key: EntityKey, changes: JsonObject, *, etag: str | None = None) -> Entity:
        """PATCH with If-Match. Pass the ETag you read for optimistic concurrency (stale -> EntityChangedError).

        Without `etag` it sends `If-Match: *`: last writer wins, whatever changed since (nothing is read first,
        so no change between a read and the PATCH can refuse it).
        """
        response = await self._sender.send(
            BcRequest(
                Method.PATCH,
                await self._url(key),
                body=dict(changes),
                headers={"If-Match": etag or ANY_VERSION},
            )
        )
        return _entity(json_body(response), _request_id(response))

    async def delete(self, key: EntityKey, *, etag: str | None = None) -> None:
        """DELETE with If-Match; BC answers 204. Pass the ETag you read for optimistic concurrency.

        Without `etag` it sends `If-Match: *`: last writer wins, the entity is deleted whatever changed since.
        """
        await self._sender.send(
            BcRequest(Method.DELETE, await self._url(key), headers={"If-Match": etag or ANY_VERSION})
        )

    async def action(self, key: EntityKey, action: str, *, etag: str | None = None) -> None:
        """Run a bound action (`Microsoft.NAV.{action}`, e.g. post on a salesInvoice); BC answers 204."""
        operation = BatchOperation(Method.POST, key, action=action, etag=etag)
        company_id = await self.company_id()
        url = f"{self._endpoint.api_root(key.api)}/{operation.relative_url(company_id)}"
        headers = {"If-Match": etag} if etag else {}
        await self._sender.send(BcRequest(Method.POST, url, headers=headers))

    async def batch(
        self, operations: Sequence[BatchOperation], *, atomic: bool = False
    ) -> tuple[BatchResult, ...]:
        """Run operations as JSON $batch requests of at most 100; results in the same order as `operations`.

        `atomic` sends `Isolation: snapshot`: all or nothing — and refuses more than fit in one request. If BC
        answers any operation of an atomic batch with a non-2xx status it kept none of them:
        AtomicBatchFailedError carries every result (rolled back), the failing index and its error.
        Without `atomic` each result stands alone. When a later request of a split batch fails, the earlier
        ones are committed already: that raises BatchIncompleteError with their results and the operations
        left, so a retry does not repeat them. If the first request fails, nothing was committed and its own
        error is raised unchanged.
        """
        groups = batching.split(operations, self._max_batch, atomic=atomic)
        company_id = await self.company_id()
        if atomic:
            return await self._batch_request(groups[0], company_id, atomic=True) if groups else ()
        mapped: list[BatchResult] = []
        for index, group in enumerate(groups):
            try:
                mapped.extend(await self._batch_request(group, company_id, atomic=False))
            except BusinessCentralError as error:
                if not mapped:
                    raise
                raise _incomplete(mapped, group, groups[index + 1 :], error) from error
        return tuple(mapped)

    async def _batch_request(
        self, group: Sequence[BatchOperation], company_id: UUID, *, atomic: bool
    ) -> tuple[BatchResult, ...]:
        url = f"{self._endpoint.api_root(group[0].api)}/$batch"
        body = batching.request_body(group, company_id)
        headers = {"Isolation": "snapshot"} if atomic else {}
        response = await self._sender.send(BcRequest(Method.POST, url, body=body, headers=headers))
        read = batching.atomic_results if atomic else batching.results
        return read(group, json_body(response), Correlation(_request_id(response)))

    # ----- helpers ------------------------------------------------------------------------------------

    async def _url(self, target: EntitySet | EntityKey) -> str:
        company_id = await self.company_id()
        return f"{self._endpoint.api_root(target.api)}/{target.relative_path(company_id)}"

    async def _collect(
        self,
        url: str,
        params: Mapping[str, str],
        limit: int | None,
        page_size: int | None,
        *,
        primary: bool = False,
    ) -> tuple[Entity, ...]:
        collected: list[Entity] = []
        size = min(page_size or self._page_size, limit) if limit else (page_size or self._page_size)
        next_url: str | None = url
        while next_url is not None and (limit is None or len(collected) < limit):
            page = await self._page(next_url, params, size, primary=primary)
            collected.extend(page.entities)
            next_url, params = page.next_link, {}
        return tuple(collected[:limit] if limit is not None else collected)

    async def _page(
        self, url: str, params: Mapping[str, str], page_size: int, *, primary: bool = False
    ) -> Page:
        prefer = {"Prefer": f"odata.maxpagesize={page_size}"}
        request = BcRequest(Method.GET, url, params=params, headers=prefer, primary=primary)
        response = await self._sender.send(request)
        body = json_body(response)
        correlation = Correlation(_request_id(response))
        values = body.get("value") if isinstance(body, Mapping) else None
        if not isinstance(values, Sequence) or isinstance(values, str):
            raise UnexpectedResponseError("a collection answer has no `value` list", correlation=correlation)
        entities = tuple(Entity.from_json(item) for item in values if isinstance(item, Mapping))
        next_link = body.get("@odata.nextLink") if isinstance(body, Mapping) else None
        if next_link is not None and not isinstance(next_link, str):
            raise UnexpectedResponseError("@odata.nextLink is not a string", correlation=correlation)
        return Page(entities, self._checked_next_link(url, next_link, correlation))

    def _checked_next_link(self, current: str, link: str | None, correlation: Correlation) -> str | None:
        if link is None:
            return None
        absolute = urljoin(current, link)
        expected, actual = urlsplit(self._endpoint.base_url), urlsplit(absolute)
        if (actual.scheme, actual.hostname, actual.port) != (
            expected.scheme,
            expected.hostname,
            expected.port,
        ):
            raise UnsafeNextLinkError(
                f"refusing to follow @odata.nextLink to {actual.scheme}://{actual.netloc}",
                correlation=correlation,
            )
        return absolute

    def _remember(self, company: Company) -> None:
        self._companies_by_id[company.id] = company
        self._companies_by_name[company.name] = company


def _incomplete(
    completed: Sequence[BatchResult],
    failed: Sequence[BatchOperation],
    later: Sequence[Sequence[BatchOperation]],
    error: BusinessCentralError,
) -> BatchIncompleteError:
    not_attempted = tuple(operation for group in later for operation in group)
    return BatchIncompleteError(
        f"$batch stopped after {len(completed)} operations: {len(failed)} failed "
        f"({type(error).__name__}), {len(not_attempted)} not attempted",
        completed=tuple(completed),
        failed=tuple(failed),
        not_attempted=not_attempted,
        failed_may_have_applied=not surely_unprocessed(error),
        cause=error,
    )


def _request_id(response: httpx.Response) -> str:
    value: str = response.request.headers.get(CLIENT_REQUEST_ID, "")
    return value


def _entity(body: JsonValue, request_id: str) -> Entity:
    if not isinstance(body, Mapping):
        raise UnexpectedResponseError(
            "BC answered without an entity body", correlation=Correlation(request_id)
        )
    return Entity.from_json(body)


def _company(entity: Entity) -> Company:
    values = entity.values
    name, display, version = values.get("name"), values.get("displayName"), values.get("systemVersion")
    if entity.id is None or not isinstance(name, str):
        raise UnexpectedResponseError("a company without id or name")
    return Company(
        id=entity.id,
        name=name,
        display_name=display if isinstance(display, str) else None,
        system_version=version if isinstance(version, str) else None,
    )
