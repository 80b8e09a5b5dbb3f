"""Where each identity of a pool keeps its token set, lease and health: names that never collide."""

from __future__ import annotations

from shared.auth.compose import auth_name
from shared.connections import Connection

APP = "33333333-3333-3333-3333-333333333333"
OTHER_APP = "44444444-4444-4444-4444-444444444444"


def test_the_primary_identity_keeps_the_connections_own_name_and_others_are_joined_by_two_dashes() -> None:
    """Nothing stored before pools existed moves; a second identity's rows sit beside, never on top."""
    pool = Connection.model_validate(
        {
            "name": "contoso-eu",
            "tenantId": "contoso.onmicrosoft.com",
            "environment": "production",
            "clientId": APP,
            "identities": [
                {"name": "second", "clientId": OTHER_APP, "credential": "key_vault_secret", "secretName": "s"}
            ],
        }
    )
    assert [auth_name(pool, identity) for identity in pool.pool] == ["contoso-eu", "contoso-eu--second"]
