"""Sandbox BC OData queries with httpx: $filter, $select, $orderby, $top/$skip, $count, $expand, paging."""

from __future__ import annotations

from typing import Any

import httpx
import pytest

from sandbox import Sandbox
from sandbox.config import SandboxConfig

pytestmark = pytest.mark.integration


async def values(bc: httpx.AsyncClient, url: str, **params: str) -> list[dict[str, Any]]:
    """GET a collection and return its value array (asserting 200)."""
    response = await bc.get(url, params=params)
    assert response.status_code == 200, response.text
    return list(response.json()["value"])


async def test_filter_comparisons_match_the_store(
    sandbox: Sandbox, bc: httpx.AsyncClient, company_url: str
) -> None:
    """eq, gt/le with and, or on one field, startswith and contains select exactly the matching records."""
    everyone = sandbox.bc.records("customers")
    url = f"{company_url}/customers"
    city = everyone[0]["city"]
    assert {c["id"] for c in await values(bc, url, **{"$filter": f"city eq '{city}'"})} == {
        c["id"] for c in everyone if c["city"] == city
    }
    ranged = await values(bc, url, **{"$filter": "creditLimit gt 1000 and creditLimit le 10000"})
    assert {c["id"] for c in ranged} == {c["id"] for c in everyone if 1000 < c["creditLimit"] <= 10000}
    either = await values(bc, url, **{"$filter": "city eq 'Miami' or city eq 'Denver'"})
    assert {c["id"] for c in either} == {c["id"] for c in everyone if c["city"] in ("Miami", "Denver")}
    prefix = await values(bc, url, **{"$filter": "startswith(displayName,'adatum')"})
    assert {c["id"] for c in prefix} == {
        c["id"] for c in everyone if c["displayName"].lower().startswith("adatum")
    }
    inner = await values(bc, url, **{"$filter": "contains(email,'7@')"})
    assert {c["id"] for c in inner} == {c["id"] for c in everyone if "7@" in c["email"]}


async def test_or_across_fields_is_refused_like_bc(bc: httpx.AsyncClient, company_url: str) -> None:
    """`or` over two different fields gives BC's 400."""
    response = await bc.get(
        f"{company_url}/customers", params={"$filter": "city eq 'Miami' or country eq 'US'"}
    )
    assert response.status_code == 400
    assert "The 'OR' operator is not supported on distinct fields" in response.json()["error"]["message"]


async def test_filter_on_unknown_property_is_a_bad_request(bc: httpx.AsyncClient, company_url: str) -> None:
    """A filter naming an unknown property gets 400."""
    response = await bc.get(f"{company_url}/customers", params={"$filter": "colour eq 'red'"})
    assert response.status_code == 400
    assert "Could not find a property named 'colour'" in response.json()["error"]["message"]


async def test_select_orderby_top_skip_and_count(
    sandbox: Sandbox, bc: httpx.AsyncClient, company_url: str
) -> None:
    """$select trims properties (ETag kept), $orderby desc sorts, $top/$skip window, $count reports the total."""
    response = await bc.get(
        f"{company_url}/items",
        params={
            "$select": "number,unitPrice",
            "$orderby": "unitPrice desc",
            "$top": "5",
            "$skip": "2",
            "$count": "true",
        },
    )
    body = response.json()
    prices = sorted((i["unitPrice"] for i in sandbox.bc.records("items")), reverse=True)
    assert body["@odata.count"] == len(prices)
    assert [i["unitPrice"] for i in body["value"]] == prices[2:7]
    assert set(body["value"][0]) == {"@odata.etag", "number", "unitPrice"}


async def test_count_segment_returns_plain_text(
    sandbox: Sandbox, bc: httpx.AsyncClient, company_url: str
) -> None:
    """/customers/$count answers the number as text/plain."""
    response = await bc.get(f"{company_url}/customers/$count")
    assert response.headers["content-type"].startswith("text/plain")
    assert int(response.text) == len(sandbox.bc.records("customers"))


async def test_expand_lines_on_orders(bc: httpx.AsyncClient, company_url: str) -> None:
    """$expand=salesOrderLines embeds each order's lines."""
    orders = await values(bc, f"{company_url}/salesOrders", **{"$expand": "salesOrderLines", "$top": "2"})
    assert all(
        order["salesOrderLines"]
        and all(line["documentId"] == order["id"] for line in order["salesOrderLines"])
        for order in orders
    )


async def test_paging_to_the_end_with_maxpagesize(
    sandbox: Sandbox, bc: httpx.AsyncClient, company_url: str
) -> None:
    """Prefer odata.maxpagesize gives pages of that size and absolute nextLinks until every record was read once."""
    url: str | None = f"{company_url}/customers?$filter=country eq 'US'"
    seen: list[str] = []
    pages = 0
    while url is not None:
        response = await bc.get(url, headers={"Prefer": "odata.maxpagesize=7"})
        assert response.status_code == 200
        assert response.headers["preference-applied"] == "odata.maxpagesize=7"
        body = response.json()
        assert len(body["value"]) <= 7
        seen.extend(c["id"] for c in body["value"])
        url = body.get("@odata.nextLink")
        assert url is None or url.startswith("https://127.0.0.1:")
        pages += 1
    expected = [c for c in sandbox.bc.records("customers") if c["country"] == "US"]
    assert sorted(seen) == sorted(c["id"] for c in expected)
    assert len(seen) == len(set(seen))
    assert pages == -(-len(expected) // 7)


async def test_records_created_while_paging_do_not_shift_pages(
    bc: httpx.AsyncClient, company_url: str
) -> None:
    """The skiptoken is key-based: inserting a record that sorts first does not repeat or skip later records."""
    first = await bc.get(f"{company_url}/vendors", headers={"Prefer": "odata.maxpagesize=5"})
    page_one = [v["number"] for v in first.json()["value"]]
    await bc.post(f"{company_url}/vendors", json={"number": "A0000", "displayName": "Sorts first"})
    rest: list[str] = []
    url = first.json().get("@odata.nextLink")
    while url:
        body = (await bc.get(url, headers={"Prefer": "odata.maxpagesize=5"})).json()
        rest.extend(v["number"] for v in body["value"])
        url = body.get("@odata.nextLink")
    assert not set(page_one) & set(rest)
    assert "A0000" not in rest
    assert len(page_one) + len(rest) == SandboxConfig().bc_seed_vendors + 1  # + the example vendor V-9
