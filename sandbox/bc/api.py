"""The BC API itself, independent of HTTP: resolve an OData path, run the operation, shape the JSON.

Used for plain requests and for each operation of a $batch. Status codes as Learn's API v2.0 pages give them
(POST 201, GET/PATCH 200, DELETE 204, bound actions 204;
learn.microsoft.com/dynamics365/business-central/dev-itpro/api-reference/v2.0/); ETag rules per
learn.microsoft.com/dynamics365/business-central/dev-itpro/webservices/use-odata-to-modify-data.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from dataclasses import dataclass, field

from sandbox.bc.documents import Documents
from sandbox.bc.errors import BcError, invalid_body, not_found_segment, syntax_error
from sandbox.bc.query import next_link, page_of, parse_options, requested_page_size
from sandbox.bc.schema import COMPANY_SETS, ENTITY_TYPES, EntityType, JsonValue
from sandbox.bc.store import BcStore, Company, Row
from sandbox.config import SandboxConfig

_SEGMENT = re.compile(r"^(?P<name>[A-Za-z.$][A-Za-z0-9_.]*)(?:\((?:id=)?(?P<key>[^)]*)\))?$")
_GUID = re.compile(r"^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$")
_ETAG = re.compile(r'^(W/)?"[^"]*"$')
JSON_TYPE = (
    "application/json; odata.metadata=minimal; odata.streaming=true; IEEE754Compatible=false; charset=utf-8"
)
_ENTITY_CHANGED = "Another user has already changed the record."
_INVALID_TOKEN = "Could not validate the client concurrency token required by the service. Please provide a valid token in the client request."


@dataclass(frozen=True, slots=True)
class ApiRequest:
    """One API operation: method, path relative to the API root, query, headers (lower-case names), body."""

    method: str
    path: str
    query: Mapping[str, str]
    headers: Mapping[str, str]
    body: bytes
    root_url: str  # absolute API root, e.g. https://127.0.0.1:8443/v2.0/{tenant}/production/api/v2.0


@dataclass(frozen=True, slots=True)
class ApiResponse:
    """The outcome: status, JSON (or text) body, headers, and whether data changed."""

    status: int
    body: JsonValue = None
    headers: dict[str, str] = field(default_factory=dict)
    wrote: bool = False


@dataclass(frozen=True, slots=True)
class Segment:
    """A path segment: a name and an optional key."""

    name: str
    key: str | None


def parse_path(path: str) -> list[Segment]:
    """Split a relative OData path into segments; keys must be GUIDs (unquoted)
    (learn.microsoft.com/dynamics365/business-central/dev-itpro/webservices/api-endpoint-structure)."""
    segments = []
    for part in (p for p in path.strip("/").split("/") if p):
        match = _SEGMENT.match(part)
        if match is None:
            raise syntax_error(f"The segment '{part}' is not valid.")
        key = match.group("key")
        if key is not None:
            key = key.strip("'")
            if not _GUID.match(key):
                raise BcError(
                    400,
                    "BadRequest_NotFound",
                    f"Bad Request - Error in query syntax. The key '{key}' is not a valid GUID.",
                )
            key = key.lower()
        segments.append(Segment(match.group("name"), key))
    return segments


def refuse_read_only_write(method: str, headers: Mapping[str, str]) -> None:
    """BC refuses `Data-Access-Intent: ReadOnly` on anything but GET (reference bc-facts.md §3b, from Learn's
    devenv-connect-apps-tips: "ReadOnly on POST, PATCH or DELETE is an error"). UNCONFIRMED: the status, code and
    message BC answers with; none of the stored docs gives them, so these are the sandbox's own."""
    if headers.get("data-access-intent", "").lower() == "readonly" and method != "GET":
        raise BcError(
            400,
            "BadRequest_InvalidOperation",
            "The request is not allowed with Data-Access-Intent: ReadOnly.",
        )


class BcApi:
    """Executes API operations against the store."""

    def __init__(self, config: SandboxConfig, store: BcStore, documents: Documents) -> None:
        self._config = config
        self._store = store
        self._documents = documents

    # --- entry ------------------------------------------------------------------------------------------------
    def execute(self, request: ApiRequest) -> ApiResponse:
        """Run one operation; BcError for every failure BC would answer with."""
        refuse_read_only_write(request.method, request.headers)
        segments = parse_path(request.path)
        if not segments:
            return self._service_document(request)
        if segments[0].name == "$metadata" and len(segments) == 1:
            return ApiResponse(200, self._metadata(), {"Content-Type": "application/xml"})
        if segments[0].name == "companies":
            if segments[0].key is None:
                if len(segments) > 1:
                    raise not_found_segment(segments[1].name)
                return self._collection(
                    request,
                    ENTITY_TYPES["companies"],
                    [c.row for c in self._store.companies.values()],
                    "companies",
                    None,
                )
            company = self._store.company(segments[0].key)
            if company is None:
                raise BcError(
                    404,
                    "Internal_CompanyNotFound",
                    f"The company with id '{segments[0].key}' does not exist.",
                )
            if len(segments) == 1:
                return self._single(
                    request, ENTITY_TYPES["companies"], company.row, "companies/$entity", None
                )
            return self._in_company(request, company, segments[1:], f"companies({company.id})")
        return self._in_company(request, self._company_from_request(request), segments, None)

    def _company_from_request(self, request: ApiRequest) -> Company:
        wanted = request.query.get("company") or request.headers.get("company")
        if not wanted:
            raise BcError(
                400,
                "Internal_CompanyNotFound",
                "Can't process the request because the default company can't be found. You can specify a company in the request URL or in the company query parameter.",
            )
        company = self._store.company(wanted) if _GUID.match(wanted) else self._store.company_by_name(wanted)
        if company is None:
            raise BcError(404, "Internal_CompanyNotFound", f"The company '{wanted}' does not exist.")
        return company

    # --- routing within a company ------------------------------------------------------------------------------
    def _in_company(
        self, request: ApiRequest, company: Company, segments: list[Segment], prefix: str | None
    ) -> ApiResponse:
        first = segments[0]
        if first.name not in COMPANY_SETS or not _served(ENTITY_TYPES[first.name], request):
            raise not_found_segment(first.name)
        entity = ENTITY_TYPES[first.name]
        context = f"{prefix}/{entity.set_name}" if prefix else entity.set_name
        rest = segments[1:]
        if first.key is None:
            if rest and rest[0].name == "$count" and len(rest) == 1:
                return self._count(
                    request, entity, list(self._store.table(company, entity.set_name).values())
                )
            if rest:
                raise not_found_segment(rest[0].name)
            return self._collection_or_create(request, company, entity, None, context)
        row = self._require(company, entity, first.key)
        if not rest:
            return self._entity_operation(request, company, entity, row, context)
        second = rest[0]
        if second.name.startswith("Microsoft.NAV."):
            if len(rest) != 1 or second.key is not None:
                raise not_found_segment(second.name)
            return self._action(request, company, entity, row, second.name.removeprefix("Microsoft.NAV."))
        if entity.nav is None or second.name != entity.nav:
            raise not_found_segment(second.name)
        lines = ENTITY_TYPES[entity.nav]
        line_context = f"{context}({row.data['id']})/{entity.nav}"
        if second.key is None:
            if len(rest) == 2 and rest[1].name == "$count":
                return self._count(request, lines, self._documents.lines(company, entity, row))
            if len(rest) > 1:
                raise not_found_segment(rest[1].name)
            return self._collection_or_create(request, company, lines, row, line_context)
        if len(rest) > 1:
            raise not_found_segment(rest[1].name)
        line = self._require(company, lines, second.key)
        if line.data["documentId"] != row.data["id"]:
            raise self._not_found(lines, second.key)
        return self._entity_operation(request, company, lines, line, line_context)

    def _require(self, company: Company, entity: EntityType, key: str) -> Row:
        row = self._store.get(company, entity.set_name, key)
        if row is None:
            raise self._not_found(entity, key)
        return row

    def _not_found(self, entity: EntityType, key: str) -> BcError:
        name = entity.type_name[0].upper() + entity.type_name[1:]
        return BcError(
            self._config.bc_not_found_status,
            self._config.bc_not_found_code,
            f"The {name} does not exist. Identification fields and values: Id='{key}'",
        )

    # --- operations -----------------------------------------------------------------------------------------
    def _collection_or_create(
        self, request: ApiRequest, company: Company, entity: EntityType, parent: Row | None, context: str
    ) -> ApiResponse:
        if request.method == "GET":
            if parent is not None:
                rows = self._documents.lines(company, ENTITY_TYPES[str(entity.parent)], parent)
            else:
                rows = list(self._store.table(company, entity.set_name).values())
            return self._collection(request, entity, rows, context, company)
        if request.method == "POST":
            row = self._documents.create(company, entity, self._json_body(request), parent)
            response = self._single(request, entity, row, f"{context}/$entity", company, status=201)
            response.headers["Location"] = f"{request.root_url}/{context}({row.data['id']})"
            return ApiResponse(201, response.body, response.headers, wrote=True)
        raise self._method_not_allowed(request.method, entity)

    def _entity_operation(
        self, request: ApiRequest, company: Company, entity: EntityType, row: Row, context: str
    ) -> ApiResponse:
        if request.method == "GET":
            return self._single(request, entity, row, f"{context}/$entity", company)
        if request.method == "PATCH":
            self._check_if_match(request, row, required=True)
            self._documents.update(company, entity, row, self._json_body(request))
            response = self._single(request, entity, row, f"{context}/$entity", company)
            return ApiResponse(200, response.body, response.headers, wrote=True)
        if request.method == "DELETE":
            self._check_if_match(request, row, required=self._config.bc_delete_requires_if_match)
            self._documents.delete(company, entity, row)
            return ApiResponse(204, None, {}, wrote=True)
        raise self._method_not_allowed(request.method, entity)

    def _action(
        self, request: ApiRequest, company: Company, entity: EntityType, row: Row, action: str
    ) -> ApiResponse:
        if request.method != "POST":
            raise self._method_not_allowed(request.method, entity)
        # Bound actions check the ETag only when If-Match is supplied (observed by BC clients; Learn says Required).
        self._check_if_match(request, row, required=False)
        self._documents.act(company, entity, row, action)
        return ApiResponse(204, None, {}, wrote=True)

    def _method_not_allowed(self, method: str, entity: EntityType) -> BcError:
        return BcError(
            405,
            "BadRequest_MethodNotAllowed",
            f"'{method}' requests for '{entity.set_name}' of EdmType 'Entity' are not allowed within Microsoft Dynamics 365 Business Central OData web services.",
        )

    def _check_if_match(self, request: ApiRequest, row: Row, required: bool) -> None:
        supplied = request.headers.get("if-match")
        if supplied is None:
            if required:
                raise BcError(400, "BadRequest_InvalidToken", _INVALID_TOKEN)
            return
        candidates = [c.strip() for c in supplied.split(",") if c.strip()]
        if not candidates or any(c != "*" and not _ETAG.match(c) for c in candidates):
            raise BcError(400, "BadRequest_InvalidToken", _INVALID_TOKEN)
        if "*" in candidates:
            return
        if row.etag.removeprefix("W/") not in {c.removeprefix("W/") for c in candidates}:
            raise BcError(409, "Request_EntityChanged", _ENTITY_CHANGED)

    def _json_body(self, request: ApiRequest) -> dict[str, JsonValue]:
        try:
            body = json.loads(request.body or b"{}")
        except ValueError as exc:
            raise invalid_body(f"The JSON could not be read: {exc}.") from None
        if not isinstance(body, dict):
            raise invalid_body("A JSON object was expected.")
        return body

    # --- shaping -------------------------------------------------------------------------------------------------
    def _render(
        self,
        entity: EntityType,
        row: Row,
        select: tuple[str, ...] | None,
        expand: tuple[str, ...],
        company: Company | None,
    ) -> dict[str, JsonValue]:
        record: dict[str, JsonValue] = {"@odata.etag": row.etag}
        names = select if select is not None else tuple(entity.fields)
        record.update({name: row.data.get(name) for name in names})
        if company is not None and entity.nav is not None and entity.nav in expand:
            lines = ENTITY_TYPES[entity.nav]
            record[entity.nav] = [
                self._render(lines, line, None, (), None)
                for line in self._documents.lines(company, entity, row)
            ]
        return record

    def _single(
        self,
        request: ApiRequest,
        entity: EntityType,
        row: Row,
        context: str,
        company: Company | None,
        status: int = 200,
    ) -> ApiResponse:
        options = parse_options(
            entity,
            {k: v for k, v in request.query.items() if k in ("$select", "$expand", "company")},
            self._config.bc_case_insensitive_text,
        )
        body = {
            "@odata.context": f"{request.root_url}/$metadata#{context}",
            **self._render(entity, row, options.select, options.expand, company),
        }
        return ApiResponse(status, body, {"ETag": row.etag})

    def _collection(
        self, request: ApiRequest, entity: EntityType, rows: list[Row], context: str, company: Company | None
    ) -> ApiResponse:
        if request.method != "GET":
            raise self._method_not_allowed(request.method, entity)
        ci = self._config.bc_case_insensitive_text
        options = parse_options(entity, request.query, ci)
        size, applied = requested_page_size(request.headers.get("prefer"), self._config.bc_max_page_size)
        by_id = {str(r.data["id"]): r for r in rows}
        page = page_of([r.data for r in rows], options, size, ci)
        body: dict[str, JsonValue] = {"@odata.context": f"{request.root_url}/$metadata#{context}"}
        if page.count is not None:
            body["@odata.count"] = page.count
        body["value"] = [
            self._render(entity, by_id[str(r["id"])], options.select, options.expand, company)
            for r in page.records
        ]
        if page.next_token is not None:
            body["@odata.nextLink"] = next_link(
                f"{request.root_url}/{request.path.strip('/')}", request.query, page.next_token
            )
        headers = {"Preference-Applied": f"odata.maxpagesize={size}"} if applied else {}
        return ApiResponse(200, body, headers)

    def _count(self, request: ApiRequest, entity: EntityType, rows: list[Row]) -> ApiResponse:
        if request.method != "GET":
            raise self._method_not_allowed(request.method, entity)
        options = parse_options(
            entity,
            {k: v for k, v in request.query.items() if k in ("$filter", "company")},
            self._config.bc_case_insensitive_text,
        )
        matching = [r for r in rows if options.filter is None or options.filter(r.data)]
        return ApiResponse(200, str(len(matching)), {"Content-Type": "text/plain"})

    def _service_document(self, request: ApiRequest) -> ApiResponse:
        sets = ["companies", *(name for name in COMPANY_SETS if _served(ENTITY_TYPES[name], request))]
        body = {
            "@odata.context": f"{request.root_url}/$metadata",
            "value": [{"name": s, "kind": "EntitySet", "url": s} for s in sets],
        }
        return ApiResponse(200, body)

    def _metadata(self) -> str:
        edm = {
            "string": "Edm.String",
            "decimal": "Edm.Decimal",
            "int": "Edm.Int32",
            "bool": "Edm.Boolean",
            "date": "Edm.Date",
            "datetime": "Edm.DateTimeOffset",
            "guid": "Edm.Guid",
        }
        types = []
        for entity in ENTITY_TYPES.values():
            props = "".join(f'<Property Name="{n}" Type="{edm[f.kind]}"/>' for n, f in entity.fields.items())
            nav = (
                f'<NavigationProperty Name="{entity.nav}" Type="Collection(Microsoft.NAV.{ENTITY_TYPES[entity.nav].type_name})"/>'
                if entity.nav
                else ""
            )
            types.append(
                f'<EntityType Name="{entity.type_name}"><Key><PropertyRef Name="id"/></Key>{props}{nav}</EntityType>'
            )
            types.extend(
                f'<Action Name="{a}" IsBound="true"><Parameter Name="bindingParameter" Type="Microsoft.NAV.{entity.type_name}"/></Action>'
                for a in entity.actions
            )
        sets = "".join(
            f'<EntitySet Name="{e.set_name}" EntityType="Microsoft.NAV.{e.type_name}"/>'
            for e in ENTITY_TYPES.values()
        )
        return (
            '<?xml version="1.0" encoding="utf-8"?><edmx:Edmx Version="4.0" xmlns:edmx="http://docs.oasis-open.org/odata/ns/edmx">'
            '<edmx:DataServices><Schema Namespace="Microsoft.NAV" xmlns="http://docs.oasis-open.org/odata/ns/edm">'
            f'{"".join(types)}<EntityContainer Name="NAV">{sets}</EntityContainer></Schema></edmx:DataServices></edmx:Edmx>'
        )


def _served(entity: EntityType, request: ApiRequest) -> bool:
    """Whether the request's API publishes the entity set: a custom API page is not part of v2.0."""
    return not entity.custom_api or not request.root_url.endswith("/api/v2.0")
