"""ASP.NET-style route templates as the Functions host matches them: {name}, {name:constraint}, {name?}, {*rest}.

Literal segments match case-insensitively; a trailing slash is ignored; a request whose method the function
does not accept is answered 404, not 405, as the host does (Azure/azure-functions-host#10098).
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Generic, TypeVar

from devhost.errors import FunctionLoadError

T = TypeVar("T")

_PARAMETER = re.compile(r"\{([^{}]+)\}")
# Constraints whose test is a pattern; the numeric/length ones are checked after matching.
_PATTERN_CONSTRAINTS = {
    "int": r"-?\d+",
    "long": r"-?\d+",
    "bool": r"(?i:true|false)",
    "alpha": r"[A-Za-z]+",
    "guid": r"\{?[0-9A-Fa-f]{8}-?(?:[0-9A-Fa-f]{4}-?){3}[0-9A-Fa-f]{12}\}?",
    "float": r"-?\d+(?:\.\d+)?",
    "double": r"-?\d+(?:\.\d+)?",
    "decimal": r"-?\d+(?:\.\d+)?",
    "datetime": r"[^/]+",
}
_CHECKED_CONSTRAINT = re.compile(r"^(min|max|range|minlength|maxlength|length)\((-?\d+)(?:,(-?\d+))?\)$")


@dataclass(frozen=True, slots=True)
class _Parameter:
    name: str
    pattern: str
    checks: tuple[Callable[[str], bool], ...]
    optional: bool
    catch_all: bool
    default: str | None


@dataclass(frozen=True, slots=True)
class RouteTemplate:
    """A compiled route template; match() returns the route params or None."""

    template: str
    regex: re.Pattern[str] = field(repr=False)
    parameters: tuple[_Parameter, ...] = field(repr=False)
    precedence: tuple[int, int, int, int] = field(repr=False)

    def match(self, path: str) -> dict[str, str] | None:
        """Route params for a path relative to the route prefix (no leading slash), or None."""
        found = self.regex.match("/" + path.strip("/"))
        if found is None:
            return None
        params: dict[str, str] = {}
        for parameter in self.parameters:
            value = found.group(parameter.name)
            if value is None or value == "":
                if parameter.default is not None:
                    params[parameter.name] = parameter.default
                continue
            if not all(check(value) for check in parameter.checks):
                return None
            params[parameter.name] = value
        return params


def _split_constraints(body: str) -> list[str]:
    """Split "id:int:min(1)" on colons outside parentheses (regex(...) may hold colons)."""
    parts, depth, current = [], 0, ""
    for char in body:
        if char == ":" and depth == 0:
            parts.append(current)
            current = ""
            continue
        depth += {"(": 1, ")": -1}.get(char, 0)
        current += char
    parts.append(current)
    return parts


def _searches(inner: re.Pattern[str]) -> Callable[[str], bool]:
    return lambda value: inner.search(value) is not None


def _checked(kind: str, low: int, high: int | None) -> Callable[[str], bool]:
    def number(value: str) -> int | None:
        return int(value) if re.fullmatch(r"-?\d+", value) else None

    bounds: dict[str, Callable[[str], bool]] = {
        "min": lambda v: (n := number(v)) is not None and n >= low,
        "max": lambda v: (n := number(v)) is not None and n <= low,
        "range": lambda v: (n := number(v)) is not None and low <= n <= (high if high is not None else low),
        "minlength": lambda v: len(v) >= low,
        "maxlength": lambda v: len(v) <= low,
        "length": lambda v: low <= len(v) <= (high if high is not None else low),
    }
    return bounds[kind]


def _parse_parameter(body: str, template: str) -> _Parameter:
    catch_all = body.startswith("*")
    body = body.lstrip("*")
    default = None
    if "=" in body:
        body, default = body.split("=", 1)
    optional = body.endswith("?")
    body = body.rstrip("?")
    name, *constraints = _split_constraints(body)
    if not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", name):
        raise FunctionLoadError(f"route {template!r}: bad parameter name {name!r}")
    pattern = r".*" if catch_all else r"[^/]+"
    checks: list[Callable[[str], bool]] = []
    for constraint in constraints:
        regex = re.fullmatch(r"regex\((.*)\)", constraint)
        checked = _CHECKED_CONSTRAINT.match(constraint)
        if constraint in _PATTERN_CONSTRAINTS:
            pattern = _PATTERN_CONSTRAINTS[constraint]
        elif regex is not None:
            checks.append(_searches(re.compile(regex.group(1))))
        elif checked is not None:
            high = int(checked.group(3)) if checked.group(3) is not None else None
            checks.append(_checked(checked.group(1), int(checked.group(2)), high))
        else:
            raise FunctionLoadError(f"route {template!r}: devhost does not know constraint {constraint!r}")
    return _Parameter(name, pattern, tuple(checks), optional or default is not None, catch_all, default)


def _segment(segment: str, template: str) -> tuple[str, list[_Parameter], str]:
    """Regex for one path segment, its parameters, and its kind: literal, plain, optional or catch-all."""
    pieces = _PARAMETER.split(segment)  # literal, parameter body, literal, parameter body, ...
    params = [_parse_parameter(body, template) for body in pieces[1::2]]
    if not params:
        return "/" + re.escape(segment), params, "literal"
    inner = "".join(
        re.escape(piece) if index % 2 == 0 else f"(?P<{params[index // 2].name}>{params[index // 2].pattern})"
        for index, piece in enumerate(pieces)
    )
    if any(p.catch_all for p in params):
        return f"(?:/{inner})?", params, "catch-all"
    if len(params) == 1 and params[0].optional and pieces[0] == pieces[2] == "":
        return f"(?:/{inner})?", params, "optional"
    return f"/{inner}", params, "plain"


def compile_route(template: str) -> RouteTemplate:
    """Compile a route template; a malformed one raises FunctionLoadError."""
    segments = [segment for segment in template.strip("/").split("/") if segment]
    compiled = [_segment(segment, template) for segment in segments]
    regex = re.compile("^" + "".join(part for part, _, _ in compiled) + "/?$", re.IGNORECASE)
    parameters = tuple(p for _, params, _ in compiled for p in params)
    kinds = [kind for _, _, kind in compiled]
    # More literal segments win, then fewer catch-alls and optionals, then longer templates.
    precedence = (-kinds.count("literal"), kinds.count("catch-all"), kinds.count("optional"), -len(segments))
    return RouteTemplate(template, regex, parameters, precedence)


@dataclass(frozen=True, slots=True)
class RouteEntry(Generic[T]):
    """One routable target: its template, the methods it accepts (None = any) and what it leads to."""

    route: RouteTemplate
    methods: frozenset[str] | None
    target: T


class Router(Generic[T]):
    """Picks the most specific route that matches a path and accepts the method."""

    def __init__(self, entries: Iterable[RouteEntry[T]]) -> None:
        self._entries = sorted(entries, key=lambda entry: entry.route.precedence)

    def match(self, method: str, path: str) -> tuple[T, Mapping[str, str]] | None:
        """The target and its route params, or None (the host answers 404 for both no route and wrong method)."""
        for entry in self._entries:
            if entry.methods is not None and method.upper() not in entry.methods:
                continue
            params = entry.route.match(path)
            if params is not None:
                return entry.target, params
        return None
