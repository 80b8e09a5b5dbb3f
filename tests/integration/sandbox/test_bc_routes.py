"""Sandbox BC API routes with httpx: api/v2.0 and the configured custom APIs are served, any other route is 404."""

from __future__ import annotations

import ssl

import httpx
import pytest

from sandbox import Sandbox

pytestmark = pytest.mark.integration


def environment_root(sandbox: Sandbox) -> str:
    """`{base}/v2.0/{tenant}/{environment}`: the part every API route hangs off."""
    env = sandbox.env
    return f"{env['BC_API_BASE_URL']}/v2.0/{env['BC_TENANT_ID']}/{env['BC_ENVIRONMENT']}"


async def test_default_custom_api_serves_the_standard_entity_sets(
    sandbox: Sandbox, bc: httpx.AsyncClient
) -> None:
    """contoso/app/v1.0 is configured by default: its customers are the company's customers."""
    assert sandbox.config.bc_custom_apis == ("contoso/app/v1.0",)
    company = sandbox.env["BC_COMPANY_ID"]
    url = f"{environment_root(sandbox)}/api/contoso/app/v1.0/companies({company})/customers"
    response = await bc.get(url, params={"$top": "2"})
    assert response.status_code == 200
    assert len(response.json()["value"]) == 2
    assert response.json()["@odata.context"].startswith(f"{environment_root(sandbox)}/api/contoso/app/v1.0/")


async def test_batch_under_a_custom_api_runs_its_operations(sandbox: Sandbox, bc: httpx.AsyncClient) -> None:
    """The custom API has its own $batch endpoint with URLs relative to its root."""
    company = sandbox.env["BC_COMPANY_ID"]
    operation = {"method": "GET", "id": "1", "url": f"companies({company})/items?$top=1"}
    response = await bc.post(
        f"{environment_root(sandbox)}/api/contoso/app/v1.0/$batch", json={"requests": [operation]}
    )
    assert response.status_code == 200
    assert [r["status"] for r in response.json()["responses"]] == [200]


@pytest.mark.parametrize(
    "route",
    [
        "api/fabrikam/app/v1.0",
        "api/contoso/app/v2.0",
        "api/contoso/sales/v1.0",
        "api/v1.0",
        "api/beta",
        "api",
    ],
)
async def test_unpublished_route_is_404_in_bcs_shape(
    sandbox: Sandbox, bc: httpx.AsyncClient, route: str
) -> None:
    """A route no installed app publishes: 404 BadRequest_NotFound naming the URL, and nothing is served."""
    company = sandbox.env["BC_COMPANY_ID"]
    url = f"{environment_root(sandbox)}/{route}/companies({company})/customers"
    response = await bc.get(url)
    assert response.status_code == 404
    error = response.json()["error"]
    assert error["code"] == "BadRequest_NotFound"
    assert error["message"] == f"No HTTP resource was found that matches the request URI '{url}'."


async def test_unpublished_route_asks_for_credentials_first(
    sandbox: Sandbox, ca_context: ssl.SSLContext
) -> None:
    """Without a token the answer is 401, as for every route: the route is only looked up for a known caller."""
    async with httpx.AsyncClient(verify=ca_context) as anonymous:
        response = await anonymous.get(f"{environment_root(sandbox)}/api/fabrikam/app/v1.0/companies")
    assert response.status_code == 401
