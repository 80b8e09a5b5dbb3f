"""OData $filter as BC accepts it: comparisons, and/or/not, in, startswith/endswith/contains, tolower/toupper/trim.

`or` across distinct fields is refused as BC does ("The 'OR' operator is not supported on distinct fields on
an OData filter.")
(learn.microsoft.com/dynamics365/business-central/dev-itpro/webservices/odata-known-limitations). Text
compares case-insensitively by default (SQL collation; a setting).
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime

from sandbox.bc.errors import BcError, syntax_error
from sandbox.bc.schema import EntityType, JsonValue

Record = dict[str, JsonValue]
Predicate = Callable[[Record], bool]

_TOKEN = re.compile(
    r"""\s*(?:
    (?P<string>'(?:[^']|'')*')
  | (?P<datetime>\d{4}-\d{2}-\d{2}T\d{2}:\d{2}(?::\d{2}(?:\.\d+)?)?(?:Z|[+-]\d{2}:\d{2})?)
  | (?P<guid>[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12})
  | (?P<date>\d{4}-\d{2}-\d{2})
  | (?P<number>-?\d+(?:\.\d+)?(?:[eE][+-]?\d+)?[mMdDfFlL]?)
  | (?P<name>[A-Za-z_][A-Za-z0-9_]*)
  | (?P<punct>[(),])
    )""",
    re.VERBOSE,
)
_COMPARE = {"eq", "ne", "gt", "ge", "lt", "le"}
_BOOL_FUNCS = {"startswith", "endswith", "contains"}
_STR_FUNCS: dict[str, Callable[[str], str]] = {"tolower": str.lower, "toupper": str.upper, "trim": str.strip}


@dataclass(frozen=True, slots=True)
class Token:
    """A lexical token of a filter expression."""

    kind: str
    text: str


def tokenize(text: str) -> list[Token]:
    """Split a filter expression into tokens."""
    tokens: list[Token] = []
    position = 0
    while position < len(text):
        if text[position:].strip() == "":
            break
        match = _TOKEN.match(text, position)
        if match is None or match.end() == position:
            raise syntax_error(f"Syntax error at position {position} in '{text}'.")
        kind = match.lastgroup or ""
        tokens.append(Token(kind, match.group(kind)))
        position = match.end()
    return tokens


@dataclass(frozen=True, slots=True)
class Value:
    """An operand: evaluates to a value for a record; `field` names the property it reads (if any)."""

    evaluate: Callable[[Record], JsonValue]
    field: str | None
    fields: frozenset[str]


@dataclass(frozen=True, slots=True)
class Condition:
    """A boolean expression and the fields it reads."""

    test: Predicate
    fields: frozenset[str]


class FilterParser:
    """Recursive-descent parser producing a predicate over records of one entity type."""

    def __init__(self, entity: EntityType, text: str, case_insensitive: bool) -> None:
        self._entity = entity
        self._text = text
        self._tokens = tokenize(text)
        self._index = 0
        self._ci = case_insensitive

    def parse(self) -> Predicate:
        """The predicate; BcError 400 on bad syntax, unknown properties or unsupported operators."""
        condition = self._or()
        if self._index != len(self._tokens):
            raise syntax_error(f"Unexpected '{self._tokens[self._index].text}' in '{self._text}'.")
        return condition.test

    # --- grammar ---------------------------------------------------------------------------------------
    def _peek(self, offset: int = 0) -> Token | None:
        index = self._index + offset
        return self._tokens[index] if index < len(self._tokens) else None

    def _take(self) -> Token:
        token = self._peek()
        if token is None:
            raise syntax_error(f"Expression expected at position {len(self._text)} in '{self._text}'.")
        self._index += 1
        return token

    def _expect(self, text: str) -> None:
        token = self._take()
        if token.text != text:
            raise syntax_error(f"'{text}' expected instead of '{token.text}' in '{self._text}'.")

    def _keyword(self, word: str) -> bool:
        token = self._peek()
        if token is not None and token.kind == "name" and token.text == word:
            self._index += 1
            return True
        return False

    def _or(self) -> Condition:
        left = self._and()
        while self._keyword("or"):
            right = self._and()
            fields = left.fields | right.fields
            if len(fields) > 1:
                raise BcError(
                    400,
                    "BadRequest_NotSupported",
                    "The 'OR' operator is not supported on distinct fields on an OData filter.",
                )
            left = Condition(_either(left.test, right.test), fields)
        return left

    def _and(self) -> Condition:
        left = self._not()
        while self._keyword("and"):
            right = self._not()
            left = Condition(_both(left.test, right.test), left.fields | right.fields)
        return left

    def _not(self) -> Condition:
        if self._keyword("not"):
            inner = self._not()
            return Condition(_negate(inner.test), inner.fields)
        return self._primary()

    def _primary(self) -> Condition:
        token = self._peek()
        if token is not None and token.text == "(":
            self._take()
            inner = self._or()
            self._expect(")")
            return inner
        if token is not None and token.kind == "name" and token.text in _BOOL_FUNCS:
            return self._bool_function()
        left = self._operand()
        operator = self._take()
        if operator.kind == "name" and operator.text == "in":
            return self._in(left)
        if operator.kind != "name" or operator.text not in _COMPARE:
            raise syntax_error(f"Unknown operator '{operator.text}' in '{self._text}'.")
        right = self._operand()
        return self._compare(left, operator.text, right)

    def _bool_function(self) -> Condition:
        name = self._take().text
        self._expect("(")
        subject = self._operand()
        self._expect(",")
        needle = self._operand()
        self._expect(")")
        fold = self._fold

        def test(record: Record) -> bool:
            haystack, part = subject.evaluate(record), needle.evaluate(record)
            if not isinstance(haystack, str) or not isinstance(part, str):
                return False
            haystack, part = fold(haystack), fold(part)
            if name == "startswith":
                return haystack.startswith(part)
            if name == "endswith":
                return haystack.endswith(part)
            return part in haystack

        return Condition(test, subject.fields | needle.fields)

    def _in(self, left: Value) -> Condition:
        self._expect("(")
        values = [self._literal(self._take(), left.field)]
        while self._peek() is not None and self._peek().text == ",":  # type: ignore[union-attr]
            self._take()
            values.append(self._literal(self._take(), left.field))
        self._expect(")")
        keys = [self._key(v) for v in values]
        return Condition(lambda r: self._key(left.evaluate(r)) in keys, left.fields)

    def _operand(self) -> Value:
        token = self._take()
        if token.kind == "name" and token.text in _STR_FUNCS:
            self._expect("(")
            inner = self._operand()
            self._expect(")")
            transform = _STR_FUNCS[token.text]

            def apply(record: Record, inner: Value = inner) -> JsonValue:
                value = inner.evaluate(record)
                return transform(value) if isinstance(value, str) else value

            return Value(apply, inner.field, inner.fields)
        if token.kind == "name" and token.text not in ("true", "false", "null"):
            if self._peek() is not None and self._peek().text == "(":  # type: ignore[union-attr]
                raise BcError(
                    400,
                    "BadRequest_NotSupported",
                    f"The function '{token.text}' is not supported on an OData filter.",
                )
            self._entity.field_named(token.text)
            name = token.text
            return Value(lambda r: r.get(name), name, frozenset({name}))
        literal = self._literal(token, None)
        return Value(lambda r: literal, None, frozenset())

    def _literal(self, token: Token, field: str | None) -> JsonValue:
        if token.kind == "string":
            return token.text[1:-1].replace("''", "'")
        if token.kind == "number":
            text = token.text.rstrip("mMdDfFlL")
            return float(text) if any(c in text for c in ".eE") else int(text)
        if token.kind in ("guid", "date", "datetime"):
            return token.text.lower() if token.kind == "guid" else token.text
        if token.kind == "name" and token.text in ("true", "false"):
            return token.text == "true"
        if token.kind == "name" and token.text == "null":
            return None
        raise syntax_error(f"Literal expected instead of '{token.text}' in '{self._text}'.")

    def _fold(self, text: str) -> str:
        return text.lower() if self._ci else text

    def _key(self, value: JsonValue) -> JsonValue:
        if isinstance(value, str):
            return self._fold(value)
        if isinstance(value, bool) or value is None:
            return value
        if isinstance(value, int | float):
            return float(value)
        return value

    def _compare(self, left: Value, operator: str, right: Value) -> Condition:
        key = self._key

        def test(record: Record) -> bool:
            a, b = comparable(key(left.evaluate(record)), key(right.evaluate(record)))
            if operator == "eq":
                return bool(a == b)
            if operator == "ne":
                return bool(a != b)
            if a is None or b is None:
                return False
            try:
                return bool({"gt": a > b, "ge": a >= b, "lt": a < b, "le": a <= b}[operator])
            except TypeError:
                return False

        return Condition(test, left.fields | right.fields)


def _either(a: Predicate, b: Predicate) -> Predicate:
    return lambda record: a(record) or b(record)


def _both(a: Predicate, b: Predicate) -> Predicate:
    return lambda record: a(record) and b(record)


def _negate(a: Predicate) -> Predicate:
    return lambda record: not a(record)


def comparable(a: JsonValue, b: JsonValue) -> tuple[JsonValue, JsonValue]:
    """Make two values comparable: date-times compare as instants, dates as text."""
    if isinstance(a, str) and isinstance(b, str) and _looks_like_instant(a) and _looks_like_instant(b):
        try:
            return _instant(a), _instant(b)
        except ValueError:
            return a, b
    return a, b


def _looks_like_instant(text: str) -> bool:
    return len(text) > 10 and text[:4].isdigit() and text[10] in "tT"


def _instant(text: str) -> datetime:
    return datetime.fromisoformat(text.upper().replace("Z", "+00:00"))


def parse_filter(entity: EntityType, text: str, case_insensitive: bool = True) -> Predicate:
    """Compile $filter text into a predicate over records of `entity`."""
    return FilterParser(entity, text, case_insensitive).parse()
