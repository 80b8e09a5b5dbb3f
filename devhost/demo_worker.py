"""Demo step a worker runs: token from Key Vault via the token manager, then BC calls under the shared throttle.

The job processor (queue trigger) will wrap exactly this; here it runs in the demo's own process so the
transcript can show each BC interaction as the audit log records it.
"""

from __future__ import annotations

import asyncio
import ssl
import uuid

import httpx

from devhost.demo_context import DemoContext
from shared.auth.compose import build_auth_services
from shared.bc import EntitySet, MemoryRecorder, build_client, build_throttle
from shared.bc.throttle.table_store import TableCoordinationStore
from shared.settings import Settings, load_settings

CUSTOMERS = EntitySet("customers")


def app_settings(context: DemoContext) -> Settings:
    """The same settings devhost gives function_app.py (sandbox env + Azurite + delegated mode)."""
    return load_settings(context.app_environment)


async def _work(settings: Settings, recorder: MemoryRecorder) -> list[str]:
    services = build_auth_services(settings)
    store = TableCoordinationStore.from_settings(settings.storage)
    throttle = build_throttle(settings, store)
    client = build_client(settings, services.manager, throttle, recorder=recorder)
    try:
        company = await client.company(name=settings.bc.company_name)
        existing = await client.list(CUSTOMERS, limit=3)
        created = await client.create(
            CUSTOMERS, {"displayName": f"Demo customer {uuid.uuid4().hex[:6]}", "type": "Company"}
        )
        if created.id is None:
            raise RuntimeError("BC created a customer without an id")
        updated = await client.update(CUSTOMERS.key(created.id), {"city": "Seattle"}, etag=created.etag)
        return [
            f"company {company.name} ({company.id})",
            f"first customers: {', '.join(str(c['displayName']) for c in existing)}",
            f"created customer {created['number']} '{created['displayName']}', "
            f"then PATCH with its ETag -> city={updated['city']}",
        ]
    finally:
        await client.aclose()
        await throttle.close()
        await store.close()
        await services.aclose()


def worker_calls_business_central(context: DemoContext) -> str:
    """Read companies and customers, create one and update it with its ETag; every call is audited."""
    settings = app_settings(context)
    recorder = MemoryRecorder()
    lines = asyncio.run(_work(settings, recorder))
    audit = [
        f"{i.method} {i.path} -> {i.status} in {i.duration_ms:.0f} ms (attempt {i.attempt}, "
        f"client-request-id {i.client_request_id[:8]}…)"
        for i in recorder.interactions
    ]
    return "\n      ".join([*lines, "audit log:", *audit])


def key_vault_and_entra_counters(context: DemoContext) -> str:
    """What the sandbox counted: Key Vault reads/writes and token-endpoint calls by grant type."""
    ca = ssl.create_default_context(cafile=context.sandbox_env["LOCAL_CA_BUNDLE"])
    stats = httpx.get(f"{context.sandbox_env['SANDBOX_ADMIN_URL']}/stats", verify=ca, timeout=10).json()
    vault, entra, bc = stats["vault"], stats["entra"], stats["bc"]
    return (
        f"Key Vault reads={vault.get('reads')} writes={vault.get('writes')}; "
        f"Entra token calls={entra.get('token_calls')}; BC peak in flight={bc.get('peak_in_flight')}"
    )
