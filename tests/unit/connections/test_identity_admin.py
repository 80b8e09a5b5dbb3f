"""A connection's identities over the API without storage: each identity's client secret kept to Key Vault under
its own name, the pool's rules named with their fix, `primary` and the settings' connection refused with the way to
change them, DELETE taking the identity's secrets with it, GET showing each identity's health.
"""

from __future__ import annotations

import json
import logging
from typing import Any

import pytest

from shared.connections import Connection
from shared.connections.admin import ConnectionsAdmin, delete_connection, show_connection
from shared.connections.connection import Identity
from shared.connections.errors import RegistryUnavailableError
from shared.connections.identity_admin import delete_identity, list_identities, put_identity
from tests.unit.connections.test_admin import BASE, GOOD, SECRET, SETTINGS_CLIENT, World

SECOND_CLIENT = "33333333-3333-3333-3333-333333333333"
THIRD_CLIENT = "44444444-4444-4444-4444-444444444444"
MANAGED = "55555555-5555-5555-5555-555555555555"


class FakeHealth:
    """IdentityHealth from a dict; an identity not in it fails like an unreadable store."""

    def __init__(self) -> None:
        self.by_identity: dict[str, str] = {}

    async def status(self, connection: Connection, identity: Identity) -> dict[str, object]:
        if identity.name not in self.by_identity:
            raise RegistryUnavailableError("read the record", "ServiceRequestError")
        return {"health": self.by_identity[identity.name]}


async def registered(health: FakeHealth | None = None) -> World:
    world = World()
    if health is not None:
        world.services = ConnectionsAdmin(world.registry, world.vault, world.pending, SETTINGS_CLIENT, health)
    assert (await world.put("fabrikam", GOOD))[0] == 201
    return world


async def put(world: World, identity: str, body: object, name: str = "fabrikam") -> tuple[int, Any]:
    raw = json.dumps(body).encode()
    reply = await put_identity(world.admin, name, identity, raw, base_url=BASE)
    return reply.status, json.loads(reply.body) if reply.body else None


async def pool_of(world: World) -> tuple[Identity, ...]:
    found = await world.registry.find("fabrikam")
    assert found is not None
    return found.identities


async def test_an_identity_s_secret_goes_to_its_own_key_vault_secret_and_nowhere_else(
    caplog: pytest.LogCaptureFixture,
) -> None:
    world = await registered()
    caplog.set_level(logging.DEBUG)
    status, body = await put(world, "second", {"clientId": SECOND_CLIENT, "clientSecret": SECRET})
    assert status == 201
    assert world.vault.secrets == {"bc-conn-fabrikam--second-secret": SECRET}
    (second,) = await pool_of(world)
    assert second.secret_name == "bc-conn-fabrikam--second-secret"
    assert second.secret_version == "v1"
    assert SECRET not in json.dumps(body)
    assert SECRET not in caplog.text
    assert SECRET not in json.dumps([i.model_dump(mode="json") for i in await pool_of(world)])


async def test_an_added_identity_names_the_entra_applications_page_consent_and_check() -> None:
    world = await registered()
    status, body = await put(world, "second", {"clientId": SECOND_CLIENT, "clientSecret": SECRET})
    assert status == 201
    steps = " ".join(body["nextSteps"])
    assert f"add the app (client id {SECOND_CLIENT}) on the Microsoft Entra Applications page" in steps
    assert "consent?identity=second" in steps
    assert "check?identity=second" in steps
    assert body["links"]["check"].endswith("/api/connections/fabrikam/check?identity=second")


async def test_a_new_secret_is_a_new_version_and_a_resend_without_it_keeps_the_version() -> None:
    world = await registered()
    await put(world, "second", {"clientId": SECOND_CLIENT, "clientSecret": SECRET})
    status, _ = await put(world, "second", {"clientId": SECOND_CLIENT, "clientSecret": "another"})
    assert status == 200
    assert (await pool_of(world))[0].secret_version == "v2"
    same = {
        "clientId": SECOND_CLIENT,
        "credential": "key_vault_secret",
        "secretName": "bc-conn-fabrikam--second-secret",
    }
    assert (await put(world, "second", same))[0] == 200
    assert (await pool_of(world))[0].secret_version == "v2"


async def test_a_federated_identity_needs_its_managed_identity_and_holds_no_secret() -> None:
    world = await registered()
    status, body = await put(world, "fed", {"clientId": SECOND_CLIENT, "credential": "federated"})
    assert status == 400
    assert "managedIdentityClientId" in body["message"]
    federated = {"clientId": SECOND_CLIENT, "credential": "federated", "managedIdentityClientId": MANAGED}
    assert (await put(world, "fed", federated))[0] == 201
    assert world.vault.secrets == {}


async def test_two_identities_of_one_app_are_refused_naming_the_client_id() -> None:
    world = await registered()
    await put(world, "second", {"clientId": SECOND_CLIENT, "clientSecret": SECRET})
    status, body = await put(world, "third", {"clientId": SECOND_CLIENT, "clientSecret": SECRET})
    assert status == 400
    assert body["fields"][0]["field"] == "clientId"
    assert "own app" in body["fields"][0]["problem"]
    assert world.vault.writes == 1  # nothing written for a refused identity


async def test_bad_fields_are_named_with_their_fix_and_never_echoed() -> None:
    world = await registered()
    status, body = await put(world, "second", {"clientId": "not-a-guid-" + SECRET})
    assert status == 400
    assert body["fields"][0]["field"] == "clientId"
    assert "fix" in body["fields"][0]
    assert SECRET not in json.dumps(body)
    assert (await put(world, "Bad_Name", {"clientId": SECOND_CLIENT}))[0] == 400
    settings_app = {"clientId": THIRD_CLIENT, "credential": "settings"}
    status, body = await put(world, "third", settings_app)
    assert (status, body["fields"][0]["field"]) == (400, "credential")


async def test_primary_and_the_settings_connection_are_refused_with_how_to_change_them() -> None:
    world = await registered()
    status, body = await put(world, "primary", {"clientId": SECOND_CLIENT})
    assert status == 409
    assert "PUT /api/connections/fabrikam" in body["message"]
    reply = await delete_identity(world.admin, "fabrikam", "primary")
    assert reply.status == 409
    assert "delete the connection instead" in json.loads(reply.body)["message"]
    status, body = await put(world, "second", {"clientId": SECOND_CLIENT}, name="default")
    assert status == 409
    assert (await put(world, "second", {"clientId": SECOND_CLIENT}, name="nobody"))[0] == 404


async def test_deleting_an_identity_takes_its_secret_and_token_set() -> None:
    world = await registered()
    await put(world, "second", {"clientId": SECOND_CLIENT, "clientSecret": SECRET})
    reply = await delete_identity(world.admin, "fabrikam", "second")
    assert reply.status == 204
    assert await pool_of(world) == ()
    assert world.vault.deleted == ["bc-conn-fabrikam--second-secret", "bc-token-fabrikam--second"]
    missing = await delete_identity(world.admin, "fabrikam", "second")
    assert missing.status == 404
    assert "identities list fabrikam" in json.loads(missing.body)["message"]


async def test_the_list_shows_the_pool_primary_first_with_each_identity_s_health() -> None:
    health = FakeHealth()
    world = await registered(health)
    await put(world, "second", {"clientId": SECOND_CLIENT, "clientSecret": SECRET})
    health.by_identity["primary"] = "healthy"
    reply = await list_identities(world.admin, "fabrikam", base_url=BASE)
    assert reply.status == 200
    listed = json.loads(reply.body)["identities"]
    assert [i["name"] for i in listed] == ["primary", "second"]
    assert listed[0]["primary"] is True
    assert listed[0]["health"] == {"health": "healthy"}
    assert listed[1]["health"]["health"] == "unknown"  # its record unreadable: said, the others still shown
    assert "check" in listed[1]["health"]["next_step"]


async def test_the_connection_put_keeps_the_pool_and_refuses_a_secret_inside_an_identity() -> None:
    world = await registered()
    await put(world, "second", {"clientId": SECOND_CLIENT, "clientSecret": SECRET})
    assert (await world.put("fabrikam", {**GOOD, "companyName": "Other"}))[0] == 200
    assert [i.name for i in await pool_of(world)] == ["second"]
    inline = {**GOOD, "identities": [{"name": "third", "clientId": THIRD_CLIENT, "clientSecret": SECRET}]}
    status, body = await world.put("fabrikam", inline)
    assert status == 400
    assert body["fields"][0]["field"] == "identities.0.clientSecret"
    assert "PUT /api/connections/fabrikam/identities/third" in body["fields"][0]["fix"]
    assert SECRET not in json.dumps(body)


async def test_a_connection_put_that_drops_an_identity_deletes_its_secrets() -> None:
    world = await registered()
    await put(world, "second", {"clientId": SECOND_CLIENT, "clientSecret": SECRET})
    assert (await world.put("fabrikam", {**GOOD, "identities": []}))[0] == 200
    assert await pool_of(world) == ()
    assert "bc-conn-fabrikam--second-secret" in world.vault.deleted


async def test_deleting_the_connection_deletes_every_identity_s_secrets() -> None:
    world = await registered()
    await put(world, "second", {"clientId": SECOND_CLIENT, "clientSecret": SECRET})
    assert (await delete_connection(world.admin, "fabrikam")).status == 204
    assert "bc-conn-fabrikam--second-secret" in world.vault.deleted
    assert "bc-token-fabrikam--second" in world.vault.deleted
    assert (await show_connection(world.admin, "fabrikam", base_url=BASE)).status == 404


async def test_a_vault_failure_answers_503_and_changes_nothing() -> None:
    world = await registered()
    world.vault.failing = True
    status, body = await put(world, "second", {"clientId": SECOND_CLIENT, "clientSecret": SECRET})
    assert status == 503
    assert "reference" in body
    assert await pool_of(world) == ()


async def test_an_identity_that_stops_using_its_stored_secret_takes_it_out_of_key_vault() -> None:
    world = await registered()
    await put(world, "second", {"clientId": SECOND_CLIENT, "clientSecret": SECRET})
    federated = {"clientId": SECOND_CLIENT, "credential": "federated", "managedIdentityClientId": MANAGED}
    assert (await put(world, "second", federated))[0] == 200
    assert world.vault.secrets == {}
    assert world.vault.deleted == ["bc-conn-fabrikam--second-secret"]
