"""A safe OData v4 query builder: user values only ever become single, typed literals.

Field names are checked against an identifier pattern (navigation paths like `address/city` allowed); values are
rendered as OData literals (OData v4 ABNF, part 2 URL conventions): strings in single quotes with every quote
doubled, GUIDs bare, dates as YYYY-MM-DD, date-times as ISO 8601 with an explicit offset, numbers in decimal
form. Every combination is parenthesised, so a value can never change the filter's structure.

Names and values often come from job input, so anything OData cannot express raises QueryError (not
retriable: the input must change) naming the field or option — never echoing a value, and a name only shortened.
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

from shared.bc.errors import QueryError

LiteralValue: TypeAlias = str | bool | int | float | Decimal | UUID | date | datetime | None

_IDENTIFIER = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*(/[A-Za-z_][A-Za-z0-9_]*)*$")
_ORDER = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*(/[A-Za-z_][A-Za-z0-9_]*)*( (asc|desc))?$")
_SHOWN_CHARS = 40


def _shown(text: object) -> str:
    """A short, quoted preview of a name for an error message (input may be huge or hostile)."""
    if not isinstance(text, str):
        return f"(a value of type {type(text).__name__})"
    if len(text) <= _SHOWN_CHARS:
        return repr(text)
    return f"{text[:_SHOWN_CHARS]!r}... ({len(text)} characters)"


def _checked_name(name: str, where: str = "field") -> str:
    if not isinstance(name, str) or not _IDENTIFIER.fullmatch(name):
        raise QueryError(f"{where} {_shown(name)} is not an OData property path")
    return name


def literal(value: LiteralValue, *, field: str | None = None) -> str:
    """Render one value as an OData literal; QueryError (naming `field`) for values OData cannot express."""
    try:
        return _literal(value)
    except QueryError as error:
        where = f"field {_shown(field)}" if field is not None else "value"
        raise QueryError(f"{where}: {error.message}") from None


def _literal(value: LiteralValue) -> str:
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
            raise QueryError("OData filters cannot compare with NaN or infinity")
        return repr(value)
    if isinstance(value, Decimal):
        if not value.is_finite():
            raise QueryError("OData filters cannot compare with NaN or infinity")
        return format(value, "f")
    raise QueryError(f"no OData literal for {_shown(value)}")


def _datetime_literal(value: datetime) -> str:
    if value.tzinfo is None or value.utcoffset() is None:
        raise QueryError("a date-time literal needs a time zone (BC stores UTC)")
    utc = value.astimezone(UTC)
    text = utc.strftime("%Y-%m-%dT%H:%M:%S")
    if utc.microsecond:
        text += f".{utc.microsecond:06d}".rstrip("0")
    return text + "Z"


@dataclass(frozen=True, slots=True)
class Filter:
    """A rendered boolean expression; build it with `odata_field(...)` and combine with `&`, `|`, `~`."""

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
        return Filter(f"{self.name} {operator} {literal(value, field=self.name)}")

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
        return Filter(f"contains({self.name},{literal(text, field=self.name)})")

    def startswith(self, text: str) -> Filter:
        """`startswith(name,'text')`."""
        return Filter(f"startswith({self.name},{literal(text, field=self.name)})")

    def endswith(self, text: str) -> Filter:
        """`endswith(name,'text')`."""
        return Filter(f"endswith({self.name},{literal(text, field=self.name)})")

    def in_(self, values: Iterable[LiteralValue]) -> Filter:
        """`name in (v1,v2,...)`; an empty list is refused (it would match nothing and BC rejects it)."""
        rendered = [literal(value, field=self.name) for value in values]
        if not rendered:
            raise QueryError(f"field {_shown(self.name)}: `in` needs at least one value")
        return Filter(f"{self.name} in ({','.join(rendered)})")


def odata_field(name: str) -> Field:
    """The property `name` (e.g. "displayName", "address/city"); not `field`, which is dataclasses'."""
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
class ODataQuery:
    """OData query options for a GET; every part is validated, the filter is built safely.

    Named apart from the job contract's `bcjobs.models.Query`, which the job runner translates into this one.
    """

    filter: Filter | None = None
    select: tuple[str, ...] = ()
    expand: tuple[str, ...] = ()
    orderby: tuple[str, ...] = ()
    top: int | None = None
    skip: int | None = None

    def __post_init__(self) -> None:
        for name in self.select:
            _checked_name(name, "$select")
        for name in self.expand:
            _checked_name(name, "$expand")
        for clause in self.orderby:
            if not isinstance(clause, str) or not _ORDER.fullmatch(clause):
                raise QueryError(f"$orderby {_shown(clause)} is not an OData order clause")
        for option, number in (("$top", self.top), ("$skip", self.skip)):
            if number is None:
                continue
            if isinstance(number, bool) or not isinstance(number, int) or number < 0:
                raise QueryError(f"{option} must be a whole number of at least 0")

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
