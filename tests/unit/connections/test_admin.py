"""The registry's HTTP API without storage: validation (each field named with its fix, never a value), the
client secret kept to Key Vault, the settings' connection read-only, DELETE disabling while jobs are pending, 503.
"""

from __future__ import annotations

import json
import logging
from typing import Any

import pytest

from shared.connections import Connection, ConnectionRegistry, MemoryRegistryStore, RegistryUnavailableError
from shared.connections.admin import (
    Admin,
    ConnectionsAdmin,
    VaultUnavailableError,
    client_secret_name,
    delete_connection,
    list_connections,
    put_connection,
    show_connection,
)
from testkit.clock import ManualClock

BASE = "https://bc-app.example"
SETTINGS_CLIENT = "11111111-1111-1111-1111-111111111111"
OTHER_CLIENT = "22222222-2222-2222-2222-222222222222"
SECRET = "s3cr3t-Value~never-shown"
BASE_FIELDS: dict[str, Any] = {
    "tenantId": "fabrikam.onmicrosoft.com",
    "environment": "production",
    "clientId": OTHER_CLIENT,
    "companyName": "CRONUS",
}
GOOD = {
    **BASE_FIELDS,
    "credential": "key_vault_secret",
    "secretName": "fabrikam-app",
}  # the admin's own secret
WITH_SECRET = {**BASE_FIELDS, "clientSecret": SECRET}


class FakeVault:
    """SecretVault in a dict, versions counted; `failing` makes every call fail."""

    def __init__(self) -> None:
        self.secrets: dict[str, str] = {}
        self.deleted: list[str] = []
        self.writes = 0
        self.failing = False

    async def write(self, name: str, value: str, *, connection: str) -> str:
        if self.failing:
            raise VaultUnavailableError(f"write secret {name}", "ServiceRequestError")
        self.writes += 1
        self.secrets[name] = value
        return f"v{self.writes}"

    async def delete(self, name: str) -> None:
        self.secrets.pop(name, None)
        self.deleted.append(name)


class FakePending:
    def __init__(self, count: int = 0) -> None:
        self.pending = count

    async def count(self, connection: str, limit: int) -> int:
        return min(self.pending, limit)


class FailingStore(MemoryRegistryStore):
    async def all(self) -> list[Connection]:
        raise RegistryUnavailableError("be read", "ServiceRequestError")


def settings_connection() -> Connection:
    return Connection(
        name="default",
        tenant_id="contoso.onmicrosoft.com",
        environment="production",
        client_id=SETTINGS_CLIENT,
        from_settings=True,
    )


class World:
    def __init__(self, pending: int = 0, store: MemoryRegistryStore | None = None) -> None:
        self.store = store or MemoryRegistryStore()
        self.registry = ConnectionRegistry(settings_connection(), self.store, ManualClock())
        self.vault = FakeVault()
        self.pending = FakePending(pending)
        self.services = ConnectionsAdmin(self.registry, self.vault, self.pending, SETTINGS_CLIENT)

    @property
    def admin(self) -> Admin:
        async def get() -> ConnectionsAdmin:
            return self.services

        return get

    async def put(self, name: str, body: object) -> tuple[int, Any]:
        raw = body if isinstance(body, bytes) else json.dumps(body).encode()
        reply = await put_connection(self.admin, name, raw, base_url=BASE)
        return reply.status, json.loads(reply.body) if reply.body else None


async def test_a_new_connection_is_created_with_its_location_and_links() -> None:
    world = World()
    reply = await put_connection(world.admin, "fabrikam", json.dumps(GOOD).encode(), base_url=BASE)
    assert reply.status == 201
    assert reply.headers["Location"] == f"{BASE}/api/connections/fabrikam"
    body = json.loads(reply.body)
    assert body["name"] == "fabrikam"
    assert body["links"]["self"] == f"{BASE}/api/connections/fabrikam"
    assert (await world.put("fabrikam", {**GOOD, "companyName": "Other"}))[0] == 200


async def test_the_client_secret_goes_to_key_vault_and_nowhere_else(caplog: pytest.LogCaptureFixture) -> None:
    """The row names the secret and its version; the reply, the stored row and the log never hold the value."""
    world = World()
    caplog.set_level(logging.DEBUG)
    status, body = await world.put("fabrikam", WITH_SECRET)
    assert status == 201
    assert world.vault.secrets == {"bc-conn-fabrikam-secret": SECRET}
    assert body["credential"] == "key_vault_secret"
    assert body["secretName"] == client_secret_name("fabrikam")
    assert body["secretVersion"] == "v1"
    stored = world.store.rows["fabrikam"].model_dump_json(by_alias=True)
    listed = (await list_connections(world.admin, base_url=BASE)).body
    assert SECRET not in stored + listed + json.dumps(body) + caplog.text


async def test_a_new_client_secret_changes_the_definition_so_processes_rebuild() -> None:
    world = World()
    await world.put("fabrikam", WITH_SECRET)
    first = world.store.rows["fabrikam"]
    await world.put("fabrikam", {**BASE_FIELDS, "clientSecret": "another"})
    assert world.store.rows["fabrikam"].secret_version == "v2"
    assert world.store.rows["fabrikam"] != first


async def test_a_replace_without_the_secret_keeps_the_secrets_version() -> None:
    world = World()
    await world.put("fabrikam", WITH_SECRET)
    kept = {
        **GOOD,
        "credential": "key_vault_secret",
        "secretName": "bc-conn-fabrikam-secret",
        "enabled": False,
    }
    status, body = await world.put("fabrikam", kept)
    assert status == 200
    assert body["secretVersion"] == "v1"
    assert body["enabled"] is False


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({**GOOD, "tenantId": "common"}, "tenantId"),
        ({**GOOD, "tenantId": "not a tenant!"}, "tenantId"),
        ({**GOOD, "environment": "x" * 31}, "environment"),
        ({**GOOD, "clientId": "not-a-guid"}, "clientId"),
        ({**GOOD, "companyId": "nope"}, "companyId"),
        ({**GOOD, "mode": "password"}, "mode"),
        ({**GOOD, "credential": "plaintext"}, "credential"),
        ({**BASE_FIELDS, "credential": "key_vault_secret"}, "body"),
        ({**GOOD, "secretName": "has spaces"}, "secretName"),
        ({**GOOD, "customApis": ["not/an api"]}, "customApis.0"),
        ({**GOOD, "colour": "red"}, "colour"),
        ({k: v for k, v in GOOD.items() if k != "clientId"}, "clientId"),
        ({**GOOD, "name": "other"}, "name"),
        ({**GOOD, "fromSettings": True}, "fromSettings"),
        ({**BASE_FIELDS, "clientSecret": ""}, "clientSecret"),
        ({**BASE_FIELDS, "clientSecret": 42}, "clientSecret"),
        ({**WITH_SECRET, "secretName": "mine"}, "clientSecret"),
        ({**WITH_SECRET, "credential": "settings"}, "clientSecret"),
        (BASE_FIELDS, "credential"),
    ],
)
async def test_each_bad_field_is_named_with_a_fix_and_nothing_is_stored(
    body: dict[str, Any], field: str
) -> None:
    world = World()
    status, answer = await world.put("fabrikam", body)
    assert status == 400, answer
    assert field in [problem["field"] for problem in answer["fields"]]
    assert world.store.rows == {}
    assert world.vault.secrets == {}


@pytest.mark.parametrize("value", ["not a tenant!", "not-a-guid", "x" * 31])
async def test_a_400_never_echoes_a_submitted_value(value: str) -> None:
    world = World()
    status, answer = await world.put(
        "fabrikam", {**GOOD, "tenantId": value, "clientId": value, "environment": value}
    )
    assert status == 400
    assert value not in json.dumps(answer)


async def test_a_bad_client_secret_is_refused_without_echoing_it() -> None:
    world = World()
    status, answer = await world.put("fabrikam", {**WITH_SECRET, "clientId": "nope"})
    assert status == 400
    assert SECRET not in json.dumps(answer)
    assert world.vault.secrets == {}


async def test_the_settings_credential_is_accepted_with_the_deployments_own_client_id() -> None:
    world = World()
    status, body = await world.put("prod-two", {**BASE_FIELDS, "clientId": SETTINGS_CLIENT})
    assert status == 201
    assert body["credential"] == "settings"


@pytest.mark.parametrize("name", ["Fabrikam", "a" * 41, "with_underscore", "sp ace", ""])
async def test_a_name_no_connection_can_have_is_refused(name: str) -> None:
    world = World()
    assert (await world.put(name, GOOD))[0] == 400
    assert (await show_connection(world.admin, name, base_url=BASE)).status == 400
    assert (await delete_connection(world.admin, name)).status == 400


@pytest.mark.parametrize("body", [b"", b"not json", b"[1]", b"x" * 20000])
async def test_a_body_that_is_not_a_json_object_is_refused(body: bytes) -> None:
    assert (await World().put("fabrikam", body))[0] in {400, 413}


async def test_the_settings_connection_is_listed_first_and_read_only() -> None:
    world = World()
    await world.put("fabrikam", GOOD)
    listed = json.loads((await list_connections(world.admin, base_url=BASE)).body)["connections"]
    assert [(c["name"], c["fromSettings"]) for c in listed] == [("default", True), ("fabrikam", False)]
    status, answer = await world.put("default", GOOD)
    assert status == 409
    assert "BC_CONNECTION_NAME" in answer["message"]
    deleted = await delete_connection(world.admin, "default")
    assert deleted.status == 409
    assert "BC_CONNECTION_NAME" in json.loads(deleted.body)["message"]


async def test_an_unknown_connection_is_404_naming_how_to_list() -> None:
    world = World()
    for reply in (
        await show_connection(world.admin, "nobody", base_url=BASE),
        await delete_connection(world.admin, "nobody"),
    ):
        assert reply.status == 404
        assert "GET /api/connections" in json.loads(reply.body)["message"]


async def test_delete_removes_the_row_its_client_secret_and_its_token_set() -> None:
    world = World()
    await world.put("fabrikam", WITH_SECRET)
    reply = await delete_connection(world.admin, "fabrikam")
    assert reply.status == 204
    assert reply.body == ""
    assert world.store.rows == {}
    assert world.vault.secrets == {}
    assert set(world.vault.deleted) == {"bc-conn-fabrikam-secret", "bc-token-fabrikam"}


async def test_delete_with_pending_jobs_disables_instead_and_says_so() -> None:
    world = World(pending=3)
    await world.put("fabrikam", WITH_SECRET)
    reply = await delete_connection(world.admin, "fabrikam")
    assert reply.status == 202
    body = json.loads(reply.body)
    assert body["disabled"] is True
    assert body["pendingJobs"] == 3
    assert "disabled, not deleted" in body["message"]
    kept = world.store.rows["fabrikam"]
    assert kept.enabled is False
    assert kept.disabled_reason == "deleted by an admin while 3 jobs were pending"
    assert world.vault.deleted == []
    assert world.vault.secrets


async def test_storage_or_key_vault_failures_answer_503_with_retry_after() -> None:
    failing = World(store=FailingStore())
    for reply in (
        await list_connections(failing.admin, base_url=BASE),
        await show_connection(failing.admin, "fabrikam", base_url=BASE),
    ):
        assert reply.status == 503
        assert reply.headers["Retry-After"] == "10"
    world = World()
    world.vault.failing = True
    status, body = await world.put("fabrikam", WITH_SECRET)
    assert status == 503
    assert "reference" in body
    assert world.store.rows == {}


async def test_a_new_name_holding_the_identity_separator_is_refused() -> None:
    """`--` joins a connection and an identity in storage names: a new connection may not take it."""
    world = World()
    status, body = await world.put("fab--rikam", GOOD)
    assert status == 400
    assert body["fields"][0]["field"] == "name"
    assert "fab--rikam" not in world.store.rows
