"""A connection's definition: what is refused, and which budget it spends."""

from __future__ import annotations

from typing import Any

import pytest
from pydantic import ValidationError

from shared.connections import Connection, Credential, connection_from_settings
from shared.settings import load_settings
from shared.tokens import AuthMode

TENANT_A = "11111111-1111-1111-1111-111111111111"
TENANT_B = "22222222-2222-2222-2222-222222222222"
APP = "33333333-3333-3333-3333-333333333333"
OTHER_APP = "44444444-4444-4444-4444-444444444444"


def connection(**changes: Any) -> Connection:
    fields: dict[str, Any] = {
        "name": "contoso",
        "tenantId": TENANT_A,
        "environment": "production",
        "clientId": APP,
    }
    return Connection.model_validate({**fields, **changes})


@pytest.mark.parametrize(
    ("changes", "named"),
    [
        ({"name": "Contoso"}, "name"),
        ({"name": "x" * 41}, "name"),
        ({"name": "a/b"}, "name"),
        ({"tenantId": "common"}, "tenantId"),
        ({"tenantId": "organizations"}, "tenantId"),
        ({"clientId": "not-a-guid"}, "clientId"),
        ({"environment": "prod/../x"}, "environment"),
        ({"credential": "key_vault_secret"}, "secretName"),
        ({"secretName": "bc-conn-contoso-secret"}, "secretName"),
        ({"customApis": ["contoso/app"]}, "customApis"),
        ({"clientSecret": "s3cr3t"}, "clientSecret"),
    ],
    ids=[
        "uppercase-name",
        "long-name",
        "slash-in-name",
        "common-tenant",
        "organizations-tenant",
        "client-id",
        "environment-path",
        "vault-secret-unnamed",
        "secret-name-without-vault-credential",
        "custom-api-without-version",
        "a-secret-is-never-a-field",
    ],
)
def test_a_malformed_definition_is_refused_naming_the_field(changes: dict[str, Any], named: str) -> None:
    with pytest.raises(ValidationError) as refused:
        connection(**changes)
    assert named in str(refused.value)
    assert "s3cr3t" not in str(refused.value.errors(include_input=False))


def test_connections_on_one_environment_and_app_share_one_budget() -> None:
    """BC's limits are per identity per environment: several companies of one environment share a budget."""
    first = connection(name="contoso-us", companyName="CRONUS USA")
    second = connection(name="contoso-ca", companyName="CRONUS Canada")
    assert first.budget_key == second.budget_key


@pytest.mark.parametrize(
    "changes",
    [{"environment": "sandbox"}, {"tenantId": TENANT_B}, {"clientId": OTHER_APP}],
    ids=["other-environment", "other-tenant-same-environment-name", "other-app"],
)
def test_another_environment_or_identity_has_its_own_budget(changes: dict[str, Any]) -> None:
    assert connection().budget_key != connection(**changes).budget_key


def test_delegated_connections_each_spend_their_own_users_budget() -> None:
    """A delegated connection acts as its signed-in user: two of them are two identities."""
    one = connection(name="one", mode=AuthMode.DELEGATED)
    two = connection(name="two", mode=AuthMode.DELEGATED)
    assert one.budget_key != two.budget_key


def test_custom_apis_limit_what_a_connection_may_call() -> None:
    limited = connection(customApis=["contoso/app/v1.0"])
    assert limited.allows_api(None)
    assert limited.allows_api("contoso/app/v1.0")
    assert not limited.allows_api("fabrikam/app/v1.0")
    assert connection().allows_api("fabrikam/app/v1.0")  # None: any, as the settings' connection always could


def test_the_settings_define_the_default_connection_as_before() -> None:
    settings = load_settings(
        {
            "BC_TENANT_ID": TENANT_A,
            "BC_CLIENT_ID": APP,
            "BC_ENVIRONMENT": "sandbox",
            "BC_COMPANY_NAME": "CRONUS USA, Inc.",
        }
    )
    default = connection_from_settings(settings)
    assert (default.name, default.tenant_id, default.environment, default.client_id) == (
        "default",
        TENANT_A,
        "sandbox",
        APP,
    )
    assert (default.from_settings, default.credential, default.enabled) == (True, Credential.SETTINGS, True)


THIRD_APP = "55555555-5555-5555-5555-555555555555"
MANAGED = "66666666-6666-6666-6666-666666666666"


def test_a_connection_without_identities_has_a_pool_of_its_own_one() -> None:
    """The primary identity is the connection's clientId and credential, with the budget key it always had."""
    one = connection()
    assert [identity.name for identity in one.pool] == ["primary"]
    assert one.budget_key_of(one.primary) == one.budget_key == f"{TENANT_A}-production-app-{APP}"


def test_each_identity_of_a_pool_spends_its_own_budget() -> None:
    """Two more apps: three budget keys on one environment (BC's limits are per identity, reference (c))."""
    pool = connection(
        identities=[
            {"name": "second", "clientId": OTHER_APP, "credential": "key_vault_secret", "secretName": "s2"},
            {
                "name": "third",
                "clientId": THIRD_APP,
                "credential": "federated",
                "managedIdentityClientId": MANAGED,
            },
        ]
    )
    keys = {pool.budget_key_of(identity) for identity in pool.pool}
    assert len(keys) == 3
    assert pool.pool[2].credential is Credential.FEDERATED


@pytest.mark.parametrize(
    ("identities", "named"),
    [
        ([{"name": "primary", "clientId": OTHER_APP}], "identity names"),
        ([{"name": "two", "clientId": APP}], "clientId"),
        ([{"name": "Two-B", "clientId": OTHER_APP}], "name"),
        ([{"name": "two", "clientId": OTHER_APP, "credential": "federated"}], "managedIdentityClientId"),
        (
            [{"name": "two", "clientId": OTHER_APP, "managedIdentityClientId": MANAGED}],
            "managedIdentityClientId",
        ),
        (
            [{"name": f"i{n}", "clientId": f"{n:08d}-0000-0000-0000-000000000000"} for n in range(10)],
            "at most",
        ),
    ],
    ids=[
        "primary-taken",
        "same-app",
        "bad-name",
        "federated-unnamed",
        "managed-without-federated",
        "too-many",
    ],
)
def test_a_malformed_pool_is_refused_saying_why(identities: list[dict[str, Any]], named: str) -> None:
    """Duplicate names or apps, a federated identity without its managed identity, more than ten: refused."""
    with pytest.raises(ValidationError, match=named):
        connection(identities=identities)


def test_a_federated_connection_names_its_managed_identity() -> None:
    """The primary identity may be federated: no secret anywhere, the managed identity named instead."""
    federated = connection(credential="federated", managedIdentityClientId=MANAGED)
    assert federated.primary.managed_identity_client_id == MANAGED
    with pytest.raises(ValidationError, match="managedIdentityClientId"):
        connection(credential="federated")
