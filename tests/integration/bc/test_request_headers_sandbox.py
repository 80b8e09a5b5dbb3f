"""What BC's telemetry sees of our requests (RT0008 logs `userAgent` and the `Data-Access-Intent` header,
learn.microsoft.com/dynamics365/business-central/dev-itpro/administration/telemetry-webservices-trace): the sandbox
counts both per request and shows them in its stats, here checked with a real job run by the real client."""

from __future__ import annotations

from collections import Counter

import httpx
import pytest

from bcjobs import Job
from sandbox import Sandbox
from shared.bc import BusinessCentralClient
from shared.bc.factory import endpoint_from_settings, http_client_from_settings
from shared.bc.models import STANDARD_API, EntitySet
from shared.bc.sender import PRODUCT_VERSION
from shared.clock import SystemClock
from shared.jobs.audit import AuditBuffer
from shared.jobs.runner import Budget, EarlierRuns, JobRunner
from shared.settings import Settings
from testkit.sandbox_tokens import SandboxTokenProvider

Headers = Counter[tuple[str, str | None, str | None]]


def seen(sandbox: Sandbox) -> Headers:
    return Counter(
        {
            (row["method"], row["user_agent"], row["data_access_intent"]): row["count"]
            for row in sandbox.bc.stats().to_json()["client_headers"]
        }
    )


async def test_a_write_jobs_post_names_the_connection_and_its_reads_ask_for_a_replica(
    bc: BusinessCentralClient, bc_settings: Settings, sandbox: Sandbox
) -> None:
    """A create job's POST carries the User-Agent and no read intent; a GET carries both."""
    agent = f"bcjobs/{PRODUCT_VERSION} (connection={bc_settings.auth.connection_name}; identity=primary)"
    before = seen(sandbox)
    job = Job.model_validate(
        {"entitySet": "customers", "operation": "create", "data": {"displayName": "Telemetry Co"}}
    )
    created = await JobRunner(bc).run(job, EarlierRuns(), Budget(), AuditBuffer(1, SystemClock()))
    assert created.id is not None
    await bc.get(EntitySet("customers").key(created.id))
    sent = seen(sandbox) - before
    assert sent[("POST", agent, None)] == 1
    assert sent[("GET", agent, "ReadOnly")] >= 1
    assert {(method, intent) for method, _, intent in sent} <= {("POST", None), ("GET", "ReadOnly")}
    assert {user_agent for _, user_agent, _ in sent} == {agent}


@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("POST", "companies({company})/customers"),
        ("PATCH", "companies({company})/customers"),
        ("DELETE", "companies({company})/customers"),
        ("POST", "$batch"),
        ("POST", "subscriptions"),
    ],
)
async def test_the_sandbox_refuses_a_write_with_read_only_intent(
    bc: BusinessCentralClient, bc_settings: Settings, tokens: SandboxTokenProvider, method: str, path: str
) -> None:
    """BC refuses Data-Access-Intent: ReadOnly on a write (bc-facts.md §3b); so does the sandbox, a $batch and a
    webhook subscription included, and the product's sender never sends it (tests/unit/bc/test_client.py)."""
    company = await bc.company_id()
    root = endpoint_from_settings(bc_settings).api_root(STANDARD_API)
    url = f"{root}/{path.format(company=company)}"
    token = (await tokens.token()).value
    headers = {"Authorization": f"Bearer {token}", "Data-Access-Intent": "ReadOnly", "If-Match": "*"}
    async with http_client_from_settings(bc_settings) as http:
        answer = await http.request(method, url, json={"displayName": "x"}, headers=headers)
    assert answer.status_code == httpx.codes.BAD_REQUEST
    assert answer.json()["error"]["code"] == "BadRequest_InvalidOperation"
