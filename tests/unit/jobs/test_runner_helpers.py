"""The runner's pure parts: a job's query as safe OData, batch steps and answers, and a batch job's error."""

from __future__ import annotations

import re
from typing import Any
from uuid import UUID

import pytest

from bcjobs import ErrorInfo, ItemOutcome, ResultSummary, Step
from bcjobs.models import Query as JobQuery
from shared.bc import (
    BatchOperation,
    BatchResult,
    Correlation,
    Entity,
    EntitySet,
    Method,
    RequestValidationError,
    ThrottledError,
)
from shared.jobs.outcomes import failed_items, item_error
from shared.jobs.runner import _batch_operation, _batch_summary, _item_outcomes, _query

GUID = "6f0b0c7e-1d2a-4c3b-9e8f-0a1b2c3d4e5f"
COMPANY = UUID("11111111-2222-3333-4444-555555555555")
HOSTILE = "x' or 1 eq 1 or displayName eq 'y"
# One OData string literal: quotes, then anything with every inner quote doubled, then a quote.
STRING_LITERAL = re.compile(r"'(?:[^']|'')*'")


def job_query(**fields: Any) -> JobQuery:
    return JobQuery.model_validate(fields)


def condition(field: str, value: Any, operator: str = "eq") -> dict[str, Any]:
    return {"field": field, "operator": operator, "value": value}


def test_no_query_means_no_query_options() -> None:
    """A job without `query` sends a bare GET."""
    assert _query(None).params() == {}


def test_hostile_filter_text_stays_one_string_literal() -> None:
    """A value that tries to close the quote and add a clause is rendered as one escaped literal."""
    params = _query(job_query(filter=[condition("displayName", HOSTILE)])).params()
    prefix = "displayName eq "
    assert params["$filter"].startswith(prefix)
    rendered = params["$filter"].removeprefix(prefix)
    assert STRING_LITERAL.fullmatch(rendered)
    assert rendered == "'x'' or 1 eq 1 or displayName eq ''y'"


@pytest.mark.parametrize("operator", ["startswith", "endswith", "contains"])
def test_hostile_text_in_a_string_function_stays_one_literal(operator: str) -> None:
    """startswith/endswith/contains take the text as their one literal argument."""
    text = _query(job_query(filter=[condition("displayName", HOSTILE, operator)])).params()["$filter"]
    match = re.fullmatch(rf"{operator}\(displayName,({STRING_LITERAL.pattern})\)", text)
    assert match is not None
    assert match.group(1) == "'x'' or 1 eq 1 or displayName eq ''y'"


def test_a_guid_shaped_string_stays_a_string() -> None:
    """Filter values are typed literals: text that looks like a GUID is still quoted text."""
    text = _query(job_query(filter=[condition("number", GUID)])).params()["$filter"]
    assert text == f"number eq '{GUID}'"


def test_conditions_are_combined_with_and_each_in_parentheses() -> None:
    """Several conditions: all must hold; parentheses keep each one whole."""
    query = job_query(
        filter=[
            condition("balance", 100, "gt"),
            condition("blocked", False, "ne"),
            condition("number", ["C1", "C'2"], "in"),
            condition("creditLimit", 1.5, "le"),
            condition("address/city", None),
        ]
    )
    assert _query(query).params()["$filter"] == (
        "((((balance gt 100) and (blocked ne false)) and (number in ('C1','C''2'))) and (creditLimit le 1.5))"
        " and (address/city eq null)"
    )


@pytest.mark.parametrize(
    ("operator", "rendered"),
    [("eq", "eq"), ("ne", "ne"), ("gt", "gt"), ("ge", "ge"), ("lt", "lt"), ("le", "le")],
)
def test_each_comparison_operator_maps_to_its_odata_operator(operator: str, rendered: str) -> None:
    """The contract's operator names are OData's."""
    text = _query(job_query(filter=[condition("balance", 5, operator)])).params()["$filter"]
    assert text == f"balance {rendered} 5"


def test_select_expand_order_and_top_are_passed_through() -> None:
    """$select, $expand, $orderby and $top come from the job's query; a list leaves $top to its own limit."""
    query = job_query(select=["id", "displayName"], expand=["picture"], orderBy=["displayName desc"], top=25)
    assert _query(query).params() == {
        "$select": "id,displayName",
        "$expand": "picture",
        "$orderby": "displayName desc",
        "$top": "25",
    }
    assert "$top" not in _query(query, with_top=False).params()


def step(**fields: Any) -> Step:
    return Step.model_validate(fields)


def test_batch_steps_become_batch_operations() -> None:
    """create posts data plus natural key; update/delete send If-Match (* when none given); actions post."""
    create = _batch_operation(
        step(operation="create", entitySet="customers", data={"name": "A"}, naturalKey={"number": "C1"}),
        COMPANY,
    )
    assert (create.method, create.body) == (Method.POST, {"number": "C1", "name": "A"})
    assert create.target == EntitySet("customers", company_id=COMPANY)
    update = _batch_operation(
        step(operation="update", entitySet="customers", id=GUID, data={"name": "B"}), COMPANY
    )
    assert (update.method, update.etag, update.body) == (Method.PATCH, "*", {"name": "B"})
    delete = _batch_operation(step(operation="delete", entitySet="customers", id=GUID, etag='W/"1"'), COMPANY)
    assert (delete.method, delete.etag) == (Method.DELETE, 'W/"1"')
    action = _batch_operation(
        step(operation="action", entitySet="salesInvoices", id=GUID, action="Microsoft.NAV.post"), COMPANY
    )
    assert (action.method, action.action) == (Method.POST, "post")
    get = _batch_operation(step(operation="get", entitySet="customers", id=GUID), COMPANY)
    assert (get.method, get.target) == (Method.GET, EntitySet("customers", company_id=COMPANY).key(GUID))


OPERATION = BatchOperation(Method.POST, EntitySet("customers", company_id=COMPANY))
REFUSED = RequestValidationError(
    "Name is too long",
    status=400,
    code="Application_StringExceededLength",
    correlation=Correlation("cr-9", request_id="bc-9"),
)


def result(
    status: int, *, entity: Entity | None = None, error: Any = None, rolled_back: bool = False
) -> BatchResult:
    return BatchResult(OPERATION, status, entity=entity, error=error, rolled_back=rolled_back)


def test_batch_answers_become_item_outcomes_under_the_steps_own_index() -> None:
    """Results of a resent subset keep the indexes of the job's steps, with id, ETag and BC's error."""
    created = Entity.from_json({"id": GUID, "@odata.etag": 'W/"5"', "number": "C9"})
    items = _item_outcomes([2, 5], [result(201, entity=created), result(400, error=REFUSED)])
    assert items[2] == ItemOutcome(index=2, status=201, id=GUID, etag='W/"5"')
    failed = items[5]
    assert (failed.index, failed.status, failed.id) == (5, 400, None)
    assert failed.error is not None
    assert (failed.error.code, failed.error.bc_code, failed.error.status) == (
        "bc_validation",
        "Application_StringExceededLength",
        400,
    )
    assert (failed.error.client_request_id, failed.error.bc_request_id) == ("cr-9", "bc-9")


def test_rolled_back_answers_are_marked_rolled_back() -> None:
    """An atomic batch's 2xx answers that BC reverted say so."""
    items = _item_outcomes([0], [result(201, entity=Entity.from_json({"id": GUID}), rolled_back=True)])
    assert items[0].rolled_back is True
    assert failed_items(ResultSummary(count=1, items=list(items.values()))) == [items[0]]


def test_the_batch_summary_lists_items_in_step_order() -> None:
    """Items merged from several runs come out ordered by index, with the job's step count."""
    summary = _batch_summary(3, {2: ItemOutcome(index=2), 0: ItemOutcome(index=0), 1: ItemOutcome(index=1)})
    assert summary.count == 3
    assert [item.index for item in summary.items or []] == [0, 1, 2]


def error(code: str, message: str, **fields: Any) -> ErrorInfo:
    return ErrorInfo(code=code, message=message, **fields)


def test_a_batch_whose_items_all_succeeded_has_no_error() -> None:
    """No failed or rolled-back item: the job succeeded."""
    summary = ResultSummary(
        count=2, items=[ItemOutcome(index=0, status=201), ItemOutcome(index=1, status=204)]
    )
    assert item_error(summary) is None
    assert item_error(ResultSummary(id=GUID)) is None


def test_a_rolled_back_atomic_batch_is_reported_as_rolled_back() -> None:
    """Every item rolled back: batch_rolled_back, with the failing item's BC code and correlation."""
    cause = error(
        "bc_validation",
        "Name is too long",
        bc_code="Application_StringExceededLength",
        status=400,
        client_request_id="cr-9",
    )
    summary = ResultSummary(
        count=3,
        items=[
            ItemOutcome(index=0, status=201, rolled_back=True),
            ItemOutcome(index=1, status=400, rolled_back=True, error=cause),
            ItemOutcome(index=2, status=424, rolled_back=True),
        ],
    )
    found = item_error(summary)
    assert found is not None
    assert found.code == "batch_rolled_back"
    assert found.message == "the atomic batch was rolled back; see result.items (first: Name is too long)"
    assert (found.bc_code, found.status, found.client_request_id) == (
        "Application_StringExceededLength",
        400,
        "cr-9",
    )


def test_a_partly_failed_batch_counts_its_failed_items() -> None:
    """Some items kept, some failed: batch_items_failed, `n of m operations failed`, the first error's code."""
    first = error("bc_validation", "bad name", bc_code="BadRequest", status=400)
    later = error("bc_not_found", "gone", bc_code="BadRequest_NotFound", status=404)
    summary = ResultSummary(
        count=4,
        items=[
            ItemOutcome(index=0, status=201),
            ItemOutcome(index=1, status=400, error=first),
            ItemOutcome(index=2, status=204),
            ItemOutcome(index=3, status=404, error=later),
        ],
    )
    found = item_error(summary)
    assert found is not None
    assert found.code == "batch_items_failed"
    assert found.message == "2 of 4 operations failed; see result.items (first: bad name)"
    assert (found.bc_code, found.status) == ("BadRequest", 400)


def test_a_throttled_batch_item_keeps_its_retriable_flag() -> None:
    """An item refused with 429 is recorded as retriable (the runner then retries the job)."""
    items = _item_outcomes([0], [result(429, error=ThrottledError("slow down", status=429, retry_after=3))])
    assert items[0].error is not None
    assert (items[0].error.code, items[0].error.retriable) == ("bc_throttled", True)
