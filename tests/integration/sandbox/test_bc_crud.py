"""Sandbox BC with httpx: CRUD, ETags, documents and lines, bound actions, error bodies, authentication."""

from __future__ import annotations

import re
import ssl
from collections.abc import Callable

import httpx
import jwt
import msal
import pytest

from sandbox import Sandbox
from tests.integration.sandbox.flows import delegated_tokens

pytestmark = pytest.mark.integration

CORRELATION = re.compile(r"  CorrelationId:  [0-9a-f-]{36}\.$")


async def test_post_patch_delete_customer_round_trip(bc: httpx.AsyncClient, company_url: str) -> None:
    """POST 201 with a number from the series, PATCH with If-Match 200 and a new ETag, DELETE 204, then 404."""
    created = await bc.post(
        f"{company_url}/customers", json={"displayName": "Sandbox Traders", "city": "Oslo"}
    )
    assert created.status_code == 201
    customer = created.json()
    assert customer["number"].startswith("C")
    assert created.headers["location"].endswith(f"customers({customer['id']})")
    url = f"{company_url}/customers({customer['id']})"
    patched = await bc.patch(url, json={"city": "Bergen"}, headers={"If-Match": customer["@odata.etag"]})
    assert patched.status_code == 200
    assert patched.json()["city"] == "Bergen"
    assert patched.json()["@odata.etag"] != customer["@odata.etag"]
    deleted = await bc.delete(url, headers={"If-Match": patched.json()["@odata.etag"]})
    assert deleted.status_code == 204
    gone = await bc.get(url)
    assert gone.status_code == 404


async def test_stale_etag_is_refused_with_entity_changed(bc: httpx.AsyncClient, company_url: str) -> None:
    """A PATCH with an outdated ETag gets 409 Request_EntityChanged in BC's error shape."""
    customer = (await bc.get(f"{company_url}/customers", params={"$top": "1"})).json()["value"][0]
    url = f"{company_url}/customers({customer['id']})"
    first = await bc.patch(url, json={"city": "One"}, headers={"If-Match": customer["@odata.etag"]})
    assert first.status_code == 200
    stale = await bc.patch(url, json={"city": "Two"}, headers={"If-Match": customer["@odata.etag"]})
    assert stale.status_code == 409
    error = stale.json()["error"]
    assert error["code"] == "Request_EntityChanged"
    assert error["message"].startswith("Another user has already changed the record.")
    assert CORRELATION.search(error["message"])


async def test_patch_without_if_match_is_a_bad_request(bc: httpx.AsyncClient, company_url: str) -> None:
    """PATCH needs If-Match: without it 400 BadRequest_InvalidToken; with '*' it passes."""
    customer = (await bc.get(f"{company_url}/customers", params={"$top": "1"})).json()["value"][0]
    url = f"{company_url}/customers({customer['id']})"
    missing = await bc.patch(url, json={"city": "X"})
    assert missing.status_code == 400
    assert missing.json()["error"]["code"] == "BadRequest_InvalidToken"
    star = await bc.patch(url, json={"city": "X"}, headers={"If-Match": "*"})
    assert star.status_code == 200


async def test_duplicate_number_is_a_conflict(bc: httpx.AsyncClient, company_url: str) -> None:
    """Creating a customer with an existing number gives 409 Internal_EntityWithSameKeyExists."""
    existing = (await bc.get(f"{company_url}/customers", params={"$top": "1"})).json()["value"][0]
    duplicate = await bc.post(
        f"{company_url}/customers", json={"number": existing["number"], "displayName": "Dup"}
    )
    assert duplicate.status_code == 409
    assert duplicate.json()["error"]["code"] == "Internal_EntityWithSameKeyExists"


async def test_unknown_property_and_bad_option_are_refused(bc: httpx.AsyncClient, company_url: str) -> None:
    """Unknown properties, bad option values and over-long strings get BC's 400 codes."""
    unknown = await bc.post(f"{company_url}/customers", json={"displayName": "A", "colour": "red"})
    assert unknown.status_code == 400
    assert "does not exist on type 'Microsoft.NAV.customer'" in unknown.json()["error"]["message"]
    option = await bc.post(f"{company_url}/items", json={"displayName": "A", "type": "Invalid Type"})
    assert option.json()["error"]["code"] == "Application_EvaluateException"
    long_name = await bc.post(f"{company_url}/customers", json={"displayName": "x" * 101})
    assert long_name.json()["error"]["code"] == "Application_StringExceededLength"


async def test_sales_invoice_with_lines_posts_and_updates_balance(
    bc: httpx.AsyncClient, company_url: str
) -> None:
    """Deep insert computes totals; Microsoft.NAV.post gives 204, status Open, and raises the customer's balance."""
    customer = (await bc.get(f"{company_url}/customers", params={"$top": "1"})).json()["value"][0]
    item = (await bc.get(f"{company_url}/items", params={"$top": "1"})).json()["value"][0]
    invoice = await bc.post(
        f"{company_url}/salesInvoices",
        json={
            "customerNumber": customer["number"],
            "salesInvoiceLines": [{"lineObjectNumber": item["number"], "quantity": 3}],
        },
    )
    assert invoice.status_code == 201
    body = invoice.json()
    assert body["status"] == "Draft"
    assert body["totalAmountExcludingTax"] == pytest.approx(3 * item["unitPrice"])
    lines = (await bc.get(f"{company_url}/salesInvoices({body['id']})/salesInvoiceLines")).json()["value"]
    assert [line["quantity"] for line in lines] == [3]
    posted = await bc.post(f"{company_url}/salesInvoices({body['id']})/Microsoft.NAV.post")
    assert posted.status_code == 204
    after = (await bc.get(f"{company_url}/salesInvoices({body['id']})")).json()
    assert after["status"] == "Open"
    balance = (await bc.get(f"{company_url}/customers({customer['id']})")).json()["balanceDue"]
    assert balance == pytest.approx(customer["balanceDue"] + body["totalAmountIncludingTax"])
    again = await bc.post(f"{company_url}/salesInvoices({body['id']})/Microsoft.NAV.post")
    assert again.json()["error"]["code"] == "Application_DialogException"


async def test_adding_a_line_changes_the_order_etag(bc: httpx.AsyncClient, company_url: str) -> None:
    """A new line recalculates the header: its totals and ETag change."""
    order = (await bc.get(f"{company_url}/salesOrders", params={"$top": "1"})).json()["value"][0]
    item = (await bc.get(f"{company_url}/items", params={"$top": "1"})).json()["value"][0]
    line = await bc.post(
        f"{company_url}/salesOrders({order['id']})/salesOrderLines",
        json={"itemId": item["id"], "quantity": 1},
    )
    assert line.status_code == 201
    after = (await bc.get(f"{company_url}/salesOrders({order['id']})")).json()
    assert after["@odata.etag"] != order["@odata.etag"]
    assert after["totalAmountExcludingTax"] == pytest.approx(
        order["totalAmountExcludingTax"] + item["unitPrice"]
    )


async def test_order_without_customer_is_a_dialog_error(bc: httpx.AsyncClient, company_url: str) -> None:
    """A sales order without customerId/customerNumber gets BC's dialog message."""
    response = await bc.post(f"{company_url}/salesOrders", json={})
    assert response.status_code == 400
    assert response.json()["error"]["message"].startswith(
        "A customerNumber or a customerID must be provided."
    )


async def test_companies_list_and_company_query_parameter(
    bc: httpx.AsyncClient, api_root: str, sandbox: Sandbox
) -> None:
    """GET companies lists the demo company; ?company= addresses it without the companies() segment."""
    companies = (await bc.get(f"{api_root}/companies")).json()["value"]
    assert [c["name"] for c in companies] == [sandbox.env["BC_COMPANY_NAME"]]
    vendors = await bc.get(
        f"{api_root}/vendors", params={"company": sandbox.env["BC_COMPANY_ID"], "$top": "2"}
    )
    assert vendors.status_code == 200
    assert len(vendors.json()["value"]) == 2


async def test_unknown_entity_set_is_resource_not_found(bc: httpx.AsyncClient, company_url: str) -> None:
    """An unknown segment gives 404 BadRequest_ResourceNotFound."""
    response = await bc.get(f"{company_url}/unicorns")
    assert response.status_code == 404
    assert response.json()["error"]["code"] == "BadRequest_ResourceNotFound"


async def test_expired_token_gets_401_invalid_credentials(
    sandbox: Sandbox, bc: httpx.AsyncClient, company_url: str
) -> None:
    """Once the sandbox clock passes the token's exp, BC answers 401 Authentication_InvalidCredentials."""
    assert (await bc.get(f"{company_url}/customers", params={"$top": "1"})).status_code == 200
    sandbox.clock.advance(2 * 3600)
    response = await bc.get(f"{company_url}/customers", params={"$top": "1"})
    assert response.status_code == 401
    assert response.json()["error"]["code"] == "Authentication_InvalidCredentials"
    assert "www-authenticate" in response.headers


@pytest.mark.parametrize("problem", ["missing", "vault_audience", "bad_signature"])
async def test_unusable_tokens_get_401(
    problem: str,
    sandbox: Sandbox,
    msal_app: Callable[..., msal.ConfidentialClientApplication],
    app_token: str,
    ca_context: ssl.SSLContext,
    company_url: str,
) -> None:
    """Missing, wrong-audience and forged tokens are all 401 Authentication_InvalidCredentials."""
    if problem == "missing":
        headers = {}
    elif problem == "vault_audience":
        vault = msal_app().acquire_token_for_client(scopes=["https://vault.azure.net/.default"])[
            "access_token"
        ]
        headers = {"Authorization": f"Bearer {vault}"}
    else:
        claims = jwt.decode(app_token, options={"verify_signature": False})
        forged = jwt.encode(claims, "not-the-key" * 4, algorithm="HS256")
        headers = {"Authorization": f"Bearer {forged}"}
    async with httpx.AsyncClient(verify=ca_context) as client:
        response = await client.get(f"{company_url}/customers", headers=headers)
    assert response.status_code == 401
    assert response.json()["error"]["code"] == "Authentication_InvalidCredentials"
    assert sandbox.bc.stats().count(401) == 1


async def test_delegated_token_is_accepted_and_counted_under_the_user(
    sandbox: Sandbox,
    msal_app: Callable[..., msal.ConfidentialClientApplication],
    ca_context: ssl.SSLContext,
    company_url: str,
) -> None:
    """A delegated token (scp) works and BC counts the request against the user's oid."""
    tokens = delegated_tokens(msal_app(), ca_context)
    user_oid = jwt.decode(tokens["access_token"], options={"verify_signature": False})["oid"]
    async with httpx.AsyncClient(
        verify=ca_context, headers={"Authorization": f"Bearer {tokens['access_token']}"}
    ) as client:
        response = await client.get(f"{company_url}/items", params={"$top": "1"})
    assert response.status_code == 200
    assert sandbox.bc.stats().count(200, identity=user_oid) == 1
