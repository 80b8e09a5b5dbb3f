"""A safe OData v4 query builder: user values only ever become single, typed literals.

Field names are checked against an identifier pattern (navigation paths like `address/city` allowed); values are
rendered as OData literals (OData v4 ABNF, part 2 URL conventions): strings in single quotes with every quote
doubled, GUIDs bare, dates as YYYY-MM-DD, date-times as ISO 8601 with an explicit offset, numbers in decimal
form. Every combination is parenthesised, so a value can never change the filter's structure.
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, date, datetime
from decimal import Decimal
from typing import TypeAlias
from uuid import UUID

LiteralValue: TypeAlias = str | bool | int | float | Decimal | UUID | date | datetime | None

_IDENTIFIER = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*(/[A-Za-z_][A-Za-z0-9_]*)*$")
_ORDER = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*(/[A-Za-z_][A-Za-z0-9_]*)*( (asc|desc))?$")


def _checked_name(name: str) -> str:
    if not _IDENTIFIER.fullmatch(name):
        raise ValueError(f"not an OData property path: {name!r}")
    return name


def literal(value: LiteralValue) -> str:
    """Render one value as an OData literal; raise ValueError for values OData cannot express."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str):
        return "'" + value.replace("'", "''") + "'"
    if isinstance(value, UUID):
        return str(value)
    if isinstance(value, datetime):
        return _datetime_literal(value)
    if isinstance(value, date):
        return value.isoformat()
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        if not math.isfinite(value):
            raise ValueError("OData filters cannot compare with NaN or infinity")
        return repr(value)
    if isinstance(value, Decimal):
        if not value.is_finite():
            raise ValueError("OData filters cannot compare with NaN or infinity")
        return format(value, "f")
    raise TypeError(f"no OData literal for {type(value).__name__}")


def _datetime_literal(value: datetime) -> str:
    if value.tzinfo is None or value.utcoffset() is None:
        raise ValueError("a date-time literal needs a time zone (BC stores UTC)")
    utc = value.astimezone(UTC)
    text = utc.strftime("%Y-%m-%dT%H:%M:%S")
    if utc.microsecond:
        text += f".{utc.microsecond:06d}".rstrip("0")
    return text + "Z"


@dataclass(frozen=True, slots=True)
class Filter:
    """A rendered boolean expression; build it with `field(...)` and combine with `&`, `|`, `~`."""

    text: str

    def __and__(self, other: Filter) -> Filter:
        return Filter(f"({self.text}) and ({other.text})")

    def __or__(self, other: Filter) -> Filter:
        return Filter(f"({self.text}) or ({other.text})")

    def __invert__(self) -> Filter:
        return Filter(f"not ({self.text})")


@dataclass(frozen=True, slots=True)
class Field:
    """A property (or navigation path) to compare; comparisons return Filters."""

    name: str

    def __post_init__(self) -> None:
        _checked_name(self.name)

    def _compare(self, operator: str, value: LiteralValue) -> Filter:
        return Filter(f"{self.name} {operator} {literal(value)}")

    def eq(self, value: LiteralValue) -> Filter:
        """`name eq value`."""
        return self._compare("eq", value)

    def ne(self, value: LiteralValue) -> Filter:
        """`name ne value`."""
        return self._compare("ne", value)

    def gt(self, value: LiteralValue) -> Filter:
        """`name gt value`."""
        return self._compare("gt", value)

    def ge(self, value: LiteralValue) -> Filter:
        """`name ge value`."""
        return self._compare("ge", value)

    def lt(self, value: LiteralValue) -> Filter:
        """`name lt value`."""
        return self._compare("lt", value)

    def le(self, value: LiteralValue) -> Filter:
        """`name le value`."""
        return self._compare("le", value)

    def contains(self, text: str) -> Filter:
        """`contains(name,'text')`."""
        return Filter(f"contains({self.name},{literal(text)})")

    def startswith(self, text: str) -> Filter:
        """`startswith(name,'text')`."""
        return Filter(f"startswith({self.name},{literal(text)})")

    def endswith(self, text: str) -> Filter:
        """`endswith(name,'text')`."""
        return Filter(f"endswith({self.name},{literal(text)})")

    def in_(self, values: Iterable[LiteralValue]) -> Filter:
        """`name in (v1,v2,...)`; an empty list is refused (it would match nothing and BC rejects it)."""
        rendered = [literal(value) for value in values]
        if not rendered:
            raise ValueError("`in` needs at least one value")
        return Filter(f"{self.name} in ({','.join(rendered)})")


def field(name: str) -> Field:
    """The property `name` (e.g. "displayName", "address/city")."""
    return Field(name)


def all_of(first: Filter, *rest: Filter) -> Filter:
    """All filters must hold."""
    result = first
    for item in rest:
        result = result & item
    return result


def any_of(first: Filter, *rest: Filter) -> Filter:
    """At least one filter must hold (BC refuses `or` across different fields)."""
    result = first
    for item in rest:
        result = result | item
    return result


@dataclass(frozen=True, slots=True)
class Query:
    """OData query options for a GET; every part is validated, the filter is built safely."""

    filter: Filter | None = None
    select: tuple[str, ...] = ()
    expand: tuple[str, ...] = ()
    orderby: tuple[str, ...] = ()
    top: int | None = None
    skip: int | None = None

    def __post_init__(self) -> None:
        for name in (*self.select, *self.expand):
            _checked_name(name)
        for clause in self.orderby:
            if not _ORDER.fullmatch(clause):
                raise ValueError(f"not an OData order clause: {clause!r}")
        for number in (self.top, self.skip):
            if number is not None and number < 0:
                raise ValueError("$top and $skip cannot be negative")

    def params(self) -> dict[str, str]:
        """The query string parameters (httpx percent-encodes them)."""
        params: dict[str, str] = {}
        if self.filter is not None:
            params["$filter"] = self.filter.text
        if self.select:
            params["$select"] = ",".join(self.select)
        if self.expand:
            params["$expand"] = ",".join(self.expand)
        if self.orderby:
            params["$orderby"] = ",".join(self.orderby)
        if self.top is not None:
            params["$top"] = str(self.top)
        if self.skip is not None:
            params["$skip"] = str(self.skip)
        return params
