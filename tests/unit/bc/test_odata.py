"""The OData builder: typed literals, validated names, and user text that can never change a filter's shape."""

from __future__ import annotations

import re
import urllib.parse
from datetime import UTC, date, datetime, timedelta, timezone
from decimal import Decimal
from uuid import UUID

import httpx
import pytest
from hypothesis import given
from hypothesis import strategies as st

from shared.bc.errors import BusinessCentralError, QueryError
from shared.bc.odata import ODataQuery, all_of, any_of, literal, odata_field

_WORD = re.compile(r"[A-Za-z0-9_./:+-]+")


def tokenize(text: str) -> list[tuple[str, str]]:
    """A minimal, independent OData tokenizer: string literals (with '' escapes), words, punctuation."""
    tokens: list[tuple[str, str]] = []
    index = 0
    while index < len(text):
        char = text[index]
        if char == " ":
            index += 1
        elif char == "'":
            value, index = _string(text, index + 1)
            tokens.append(("str", value))
        elif char in "(),":
            tokens.append(("punct", char))
            index += 1
        else:
            match = _WORD.match(text, index)
            if match is None:
                raise ValueError(f"unexpected {char!r} at {index}")
            tokens.append(("word", match.group()))
            index = match.end()
    return tokens


def _string(text: str, index: int) -> tuple[str, int]:
    chars: list[str] = []
    while True:
        if index >= len(text):
            raise ValueError("unterminated string literal")
        if text[index] == "'":
            if text[index + 1 : index + 2] == "'":
                chars.append("'")
                index += 2
                continue
            return "".join(chars), index + 1
        chars.append(text[index])
        index += 1


@given(st.text())
def test_any_string_is_one_literal_in_a_comparison(value: str) -> None:
    """Whatever the text, `eq` yields exactly: property, operator, one string literal equal to the text."""
    assert tokenize(odata_field("displayName").eq(value).text) == [
        ("word", "displayName"),
        ("word", "eq"),
        ("str", value),
    ]


@given(st.text(), st.text())
def test_user_text_cannot_change_a_combined_filter(first: str, second: str) -> None:
    """Two user values in an `and` of a comparison and a contains() keep the filter's token structure."""
    rendered = (odata_field("number").eq(first) & odata_field("displayName").contains(second)).text
    assert tokenize(rendered) == [
        ("punct", "("),
        ("word", "number"),
        ("word", "eq"),
        ("str", first),
        ("punct", ")"),
        ("word", "and"),
        ("punct", "("),
        ("word", "contains"),
        ("punct", "("),
        ("word", "displayName"),
        ("punct", ","),
        ("str", second),
        ("punct", ")"),
        ("punct", ")"),
    ]


@given(st.text())
def test_filter_survives_url_encoding_unchanged(value: str) -> None:
    """Percent-encoding by httpx and form-decoding by a server give back the exact filter text."""
    rendered = odata_field("displayName").eq(value).text
    url = httpx.URL("https://bc.test/customers", params={"$filter": rendered})
    decoded = urllib.parse.parse_qs(url.query.decode(), keep_blank_values=True)
    assert decoded["$filter"] == [rendered]


@given(st.lists(st.text(), min_size=1, max_size=5))
def test_in_lists_hold_one_literal_per_value(values: list[str]) -> None:
    """`in (...)` renders each value as its own string literal, nothing more."""
    tokens = tokenize(odata_field("number").in_(values).text)
    assert [value for kind, value in tokens if kind == "str"] == values
    assert tokens[:3] == [("word", "number"), ("word", "in"), ("punct", "(")]


def test_quotes_are_doubled() -> None:
    """A single quote in text becomes two, the OData escape."""
    assert literal("O'Brien ' or 1 eq 1") == "'O''Brien '' or 1 eq 1'"


def test_guids_are_bare_and_dates_typed() -> None:
    """GUIDs go unquoted, dates as YYYY-MM-DD, date-times in UTC with Z."""
    guid = UUID("f2a5738a-44e3-ea11-bb43-000d3a2feca1")
    assert odata_field("id").eq(guid).text == "id eq f2a5738a-44e3-ea11-bb43-000d3a2feca1"
    assert literal(date(2024, 2, 29)) == "2024-02-29"
    moment = datetime(2019, 8, 18, 22, 5, 51, 603000, tzinfo=timezone(timedelta(hours=2)))
    assert literal(moment) == "2019-08-18T20:05:51.603Z"
    assert literal(datetime(2020, 1, 1, tzinfo=UTC)) == "2020-01-01T00:00:00Z"


def test_scalars_render_as_odata_literals() -> None:
    """Booleans, null and numbers use OData's spelling."""
    assert [literal(True), literal(False), literal(None)] == ["true", "false", "null"]
    assert [literal(7), literal(2.5), literal(Decimal("10.50"))] == ["7", "2.5", "10.50"]


@pytest.mark.parametrize("bad", [float("nan"), float("inf"), Decimal("NaN")])
def test_non_finite_numbers_are_refused(bad: float | Decimal) -> None:
    """NaN and infinity have no OData literal."""
    with pytest.raises(QueryError, match="NaN or infinity"):
        literal(bad)


def test_naive_datetimes_are_refused() -> None:
    """A date-time without a zone would be read in an unknown zone, so it is refused."""
    with pytest.raises(QueryError, match="time zone"):
        literal(datetime(2020, 1, 1))  # noqa: DTZ001 -- the point of the test


@pytest.mark.parametrize("name", ["", "1abc", "name eq 'x'", "a)or(b", "a b", "a//b", "a/"])
def test_property_names_are_validated(name: str) -> None:
    """Only identifiers (and navigation paths) are accepted as property names."""
    with pytest.raises(QueryError, match="property path"):
        odata_field(name)


def test_combinations_are_parenthesised() -> None:
    """and/or/not wrap each side, so precedence never depends on the values."""
    a, b, c = odata_field("a").eq(1), odata_field("b").eq(2), odata_field("c").eq(3)
    assert all_of(a, b, c).text == "((a eq 1) and (b eq 2)) and (c eq 3)"
    assert any_of(a, b).text == "(a eq 1) or (b eq 2)"
    assert (~a).text == "not (a eq 1)"


def test_empty_in_list_is_refused() -> None:
    """`in ()` is not valid OData."""
    with pytest.raises(QueryError, match="field 'number': `in` needs at least one value"):
        odata_field("number").in_([])


def test_query_renders_every_option() -> None:
    """Each set option becomes its $-parameter; unset ones are left out."""
    query = ODataQuery(
        filter=odata_field("blocked").eq(" "),
        select=("id", "displayName"),
        expand=("salesOrderLines",),
        orderby=("displayName desc", "number"),
        top=5,
        skip=10,
    )
    assert query.params() == {
        "$filter": "blocked eq ' '",
        "$select": "id,displayName",
        "$expand": "salesOrderLines",
        "$orderby": "displayName desc,number",
        "$top": "5",
        "$skip": "10",
    }
    assert ODataQuery().params() == {}


@pytest.mark.parametrize(
    "kwargs", [{"select": ("a,b",)}, {"orderby": ("a; drop",)}, {"top": -1}, {"expand": ("x($filter=1)",)}]
)
def test_query_options_are_validated(kwargs: dict[str, object]) -> None:
    """Select/expand/orderby accept only property paths; counts cannot be negative."""
    with pytest.raises(QueryError):
        ODataQuery(**kwargs)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("kwargs", "named"),
    [
        ({"select": ("a,b",)}, "$select"),
        ({"expand": ("x(y)",)}, "$expand"),
        ({"orderby": ("a;",)}, "$orderby"),
    ],
)
def test_query_errors_name_the_option(kwargs: dict[str, object], named: str) -> None:
    """The message says which option was refused."""
    with pytest.raises(QueryError, match=re.escape(named)):
        ODataQuery(**kwargs)  # type: ignore[arg-type]


def test_query_errors_are_final_integration_errors() -> None:
    """A bad query is a BusinessCentralError the job layer must not retry: the input has to change."""
    with pytest.raises(QueryError) as caught:
        odata_field("amount").eq(float("nan"))
    assert isinstance(caught.value, BusinessCentralError)
    assert not caught.value.retriable
    assert "field 'amount'" in str(caught.value)


def test_refused_value_is_never_echoed() -> None:
    """A value OData cannot express is described by its type only (it may be customer data or a secret)."""
    with pytest.raises(QueryError) as caught:
        odata_field("notes").eq({"password": "hunter2"})  # type: ignore[arg-type]
    assert "hunter2" not in str(caught.value)
    assert "field 'notes'" in str(caught.value)
    assert "dict" in str(caught.value)


def test_huge_names_are_shortened_in_the_message() -> None:
    """A megabyte of job input used as a field name yields a short message, not the megabyte."""
    with pytest.raises(QueryError) as caught:
        odata_field("x" * 1_000_000 + "!")
    assert len(str(caught.value)) < 200
    assert "1000001 characters" in str(caught.value)


@pytest.mark.parametrize("top", [-1, "5", 2.5, True])
def test_top_must_be_a_whole_number(top: object) -> None:
    """$top from job input must be a non-negative int (not a string, float or bool)."""
    with pytest.raises(QueryError, match=r"\$top"):
        ODataQuery(top=top)  # type: ignore[arg-type]
