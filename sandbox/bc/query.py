"""OData query options on a collection: $filter, $orderby, $select, $expand, $top, $skip, $count and paging.

Server-driven paging: `Prefer: odata.maxpagesize=N` (capped at 20,000) yields an absolute `@odata.nextLink`
(learn.microsoft.com/dynamics365/business-central/dev-itpro/webservices/server-driven-paging-in-odata-web-services).
The link's format is unconfirmed, so clients must follow it verbatim; here it carries an opaque key-based
`$skiptoken` (rows inserted while a client pages do not shift the pages it has yet to read).
"""

from __future__ import annotations

import base64
import json
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from urllib.parse import urlencode

from sandbox.bc.errors import BcError, syntax_error
from sandbox.bc.odata import Record, parse_filter
from sandbox.bc.schema import EntityType, JsonValue

_PAGE_SIZE = re.compile(r"odata\.maxpagesize\s*=\s*(\d+)", re.IGNORECASE)
_SAFE = "$(),'"
_ALLOWED = {
    "$filter",
    "$orderby",
    "$select",
    "$expand",
    "$top",
    "$skip",
    "$count",
    "$skiptoken",
    "company",
    "$schemaversion",
}


@dataclass(frozen=True, slots=True)
class QueryOptions:
    """Parsed query options for one collection request."""

    filter: Callable[[Record], bool] | None
    order: tuple[tuple[str, bool], ...]  # (field, descending), always ending with ("id", False)
    select: tuple[str, ...] | None
    expand: tuple[str, ...]
    top: int | None
    skip: int
    count: bool
    skiptoken: str | None


def _integer(name: str, raw: str | None) -> int | None:
    if raw is None:
        return None
    if not raw.isdigit():
        raise syntax_error(f"The value '{raw}' of '{name}' is not a non-negative integer.")
    return int(raw)


def default_order(entity: EntityType) -> tuple[tuple[str, bool], ...]:
    """BC returns rows in primary-key order: No. for master data and documents, sequence for lines, name for companies."""
    if entity.set_name == "companies":
        return (("name", False), ("id", False))
    if "sequence" in entity.fields:
        return (("documentId", False), ("sequence", False), ("id", False))
    if "number" in entity.fields:
        return (("number", False), ("id", False))
    return (("id", False),)


def parse_options(entity: EntityType, query: Mapping[str, str], case_insensitive: bool) -> QueryOptions:
    """Validate and parse the query string of a collection GET."""
    for key in query:
        if key.startswith("$") and key not in _ALLOWED:
            raise BcError(400, "BadRequest_NotSupported", f"The query parameter '{key}' is not supported.")
    raw_filter = query.get("$filter")
    predicate = parse_filter(entity, raw_filter, case_insensitive) if raw_filter else None
    order: list[tuple[str, bool]] = []
    for clause in (query.get("$orderby") or "").split(","):
        parts = clause.split()
        if not parts:
            continue
        if len(parts) > 2 or (len(parts) == 2 and parts[1] not in ("asc", "desc")):
            raise syntax_error(f"Invalid $orderby clause '{clause}'.")
        entity.field_named(parts[0])
        order.append((parts[0], len(parts) == 2 and parts[1] == "desc"))
    order_tuple = (*tuple(order), ("id", False)) if order else default_order(entity)
    select = None
    if query.get("$select"):
        select = tuple(name.strip() for name in query["$select"].split(","))
        for name in select:
            entity.field_named(name)
    expand = tuple(name.strip() for name in (query.get("$expand") or "").split(",") if name.strip())
    for name in expand:
        if name != entity.nav:
            raise BcError(
                400,
                "BadRequest_NotFound",
                f"Could not find a property named '{name}' on type 'Microsoft.NAV.{entity.type_name}'.",
            )
    count = (query.get("$count") or "false").lower()
    if count not in ("true", "false"):
        raise syntax_error(f"The value '{count}' of '$count' is not valid.")
    return QueryOptions(
        filter=predicate,
        order=order_tuple,
        select=select,
        expand=expand,
        top=_integer("$top", query.get("$top")),
        skip=_integer("$skip", query.get("$skip")) or 0,
        count=count == "true",
        skiptoken=query.get("$skiptoken"),
    )


def requested_page_size(prefer: str | None, server_max: int) -> tuple[int, bool]:
    """The page size from `Prefer: odata.maxpagesize` (capped) and whether the preference was applied."""
    match = _PAGE_SIZE.search(prefer or "")
    if match is None:
        return server_max, False
    return max(1, min(int(match.group(1)), server_max)), True


def _sort_key(value: JsonValue, case_insensitive: bool) -> tuple[int, JsonValue]:
    if value is None:
        return (0, 0)
    if isinstance(value, bool):
        return (1, int(value))
    if isinstance(value, int | float):
        return (1, float(value))
    text = str(value)
    return (1, text.lower() if case_insensitive else text)


def _field_key(name: str, case_insensitive: bool) -> Callable[[Record], tuple[int, JsonValue]]:
    return lambda record: _sort_key(record.get(name), case_insensitive)


def _compare_rows(
    order: tuple[tuple[str, bool], ...], case_insensitive: bool
) -> Callable[[list[JsonValue], list[JsonValue]], int]:
    def compare(a: list[JsonValue], b: list[JsonValue]) -> int:
        for (_, descending), left, right in zip(order, a, b, strict=True):
            ka, kb = _sort_key(left, case_insensitive), _sort_key(right, case_insensitive)
            if ka == kb:
                continue
            try:
                less = ka < kb
            except TypeError:
                less = str(ka) < str(kb)
            result = -1 if less else 1
            return -result if descending else result
        return 0

    return compare


@dataclass(frozen=True, slots=True)
class Page:
    """One page of a collection: records, total count (when asked) and the next page's $skiptoken."""

    records: list[Record]
    count: int | None
    next_token: str | None


def page_of(records: list[Record], options: QueryOptions, page_size: int, case_insensitive: bool) -> Page:
    """Filter, order, skip/top and cut one page, resuming after the row encoded in $skiptoken."""
    rows = [r for r in records if options.filter is None or options.filter(r)]
    total = len(rows) if options.count else None
    compare = _compare_rows(options.order, case_insensitive)

    def keys(record: Record) -> list[JsonValue]:
        return [record.get(name) for name, _ in options.order]

    # Stable multi-pass sort (least significant key first) keeps comparisons in C for large tables.
    for index in reversed(range(len(options.order))):
        name, descending = options.order[index]
        rows.sort(key=_field_key(name, case_insensitive), reverse=descending)
    remaining = options.top
    if options.skiptoken is not None:
        token = _decode_token(options.skiptoken)
        after = token["k"]
        remaining = token.get("n")
        rows = [r for r in rows if compare(keys(r), after) > 0]
    else:
        rows = rows[options.skip :]
    if remaining is not None:
        rows = rows[:remaining]
    page = rows[:page_size]
    next_token = None
    if len(rows) > page_size:
        left = None if remaining is None else remaining - len(page)
        next_token = _encode_token({"k": keys(page[-1]), "n": left})
    return Page(page, total, next_token)


def _encode_token(payload: dict[str, JsonValue]) -> str:
    return base64.urlsafe_b64encode(json.dumps(payload, separators=(",", ":")).encode()).decode().rstrip("=")


def _decode_token(token: str) -> dict[str, JsonValue]:
    try:
        decoded = json.loads(base64.urlsafe_b64decode(token + "=" * (-len(token) % 4)))
    except ValueError:
        raise syntax_error("The $skiptoken is not valid.") from None
    if not isinstance(decoded, dict) or not isinstance(decoded.get("k"), list):
        raise syntax_error("The $skiptoken is not valid.")
    return decoded


def next_link(url_without_query: str, query: Mapping[str, str], token: str) -> str:
    """The absolute next link: the same request with the $skiptoken replaced (and $skip dropped)."""
    params = {k: v for k, v in query.items() if k not in ("$skiptoken", "$skip")}
    params["$skiptoken"] = token
    return f"{url_without_query}?{urlencode(params, safe=_SAFE)}"
