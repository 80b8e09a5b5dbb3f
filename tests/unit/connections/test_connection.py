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
