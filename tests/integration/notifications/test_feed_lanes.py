"""The feed's BC client comes from the job pipeline's lanes: the connection's token manager and shared throttle, at
low priority, one client per connection per process; it reads the sandbox page by page."""

from __future__ import annotations

import pytest

from sandbox import Sandbox
from shared.auth import close_auth_services
from shared.bc.models import EntitySet
from shared.connections.compose import close_registry_services
from shared.jobs import close_job_services, job_services
from shared.settings import load_settings
from tests.integration.jobs.conftest import jobs_env  # noqa: F401 - fixture

pytestmark = pytest.mark.integration


async def test_the_feed_reads_through_its_connections_lane(
    jobs_env: dict[str, str],  # noqa: F811
    sandbox: Sandbox,
) -> None:
    settings = load_settings(jobs_env)
    try:
        lanes = (await job_services(settings)).lanes
        assert lanes is not None
        connection, client = await lanes.feed_client(None)
        assert (await lanes.feed_client(connection.name))[1] is client  # one per connection and process
        company = await client.company_id()
        pages = [
            page async for page in client.pages(EntitySet("customers", company_id=company), page_size=25)
        ]
        first = await client.get(EntitySet("customers", company_id=company).key(str(pages[0][0].id)))
    finally:
        await close_job_services()
        await close_registry_services()
        await close_auth_services()
    assert connection.name == settings.auth.connection_name
    assert sum(len(page) for page in pages) == len(sandbox.bc.records("customers"))
    assert len(pages) > 1
    assert first.etag is not None
