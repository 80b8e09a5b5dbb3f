"""Issue 23, point 1, over the real app: an admin adds an identity to a connection through the app's HTTP API (the
bcjobs client), its secret lands in Key Vault only, the pool lists it with its health, the check of that identity
names what Entra refused and the fix (the consent link of that identity's app), and removing it takes its secret.

The world is tests/integration/connections's (function_app.py under devhost, Azurite, the sandbox). The identity's
app is one Entra does not know (a fresh client id): its token request is refused as an app that is not in the
tenant (AADSTS700016), which is what an identity whose app was never consented there meets.
"""

from __future__ import annotations

import json
import uuid

import pytest

from bcjobs.connections import ConnectionsApiError, ConnectionsClient
from sandbox import Sandbox
from tests.integration.connections.test_acceptance import Place, admin, app, register
from tests.integration.jobs.conftest import JobsWorld, leaked

pytestmark = pytest.mark.integration
__all__ = ["admin", "app"]  # the fixtures, used by name

IDENTITY_SECRET = "second-app-secret-" + uuid.uuid4().hex


def test_an_identity_is_added_checked_and_removed_through_the_app(
    app: JobsWorld, admin: ConnectionsClient, sandbox: Sandbox, jobs_env: dict[str, str]
) -> None:
    register(admin, sandbox, Place("pool", sandbox.tenant_ids[0], "sandbox"))
    other_app = str(uuid.uuid4())

    saved = admin.put_identity("pool", "second", {"clientId": other_app}, client_secret=IDENTITY_SECRET)
    assert saved.secret_name == "bc-conn-pool--second-secret"
    assert sandbox.vault.peek("bc-conn-pool--second-secret") == IDENTITY_SECRET
    assert any(f"client id {other_app}" in step and "Entra Applications" in step for step in saved.next_steps)

    listed = admin.identities("pool")
    assert [i.name for i in listed] == ["primary", "second"]
    assert all(i.health is not None and "health" in i.health for i in listed)

    checked = admin.check_connection("pool", identity="second")
    assert checked is not None
    assert (checked.identity, checked.ok) == ("second", False)
    token = checked.steps[0]
    assert token.name == "token"
    assert token.fix is not None
    assert "grant admin consent" in token.fix
    assert other_app in token.fix  # the link names the identity's own app, not the connection's

    with pytest.raises(ConnectionsApiError) as refused:
        admin.delete_identity("pool", "primary")
    assert refused.value.status == 409
    assert admin.delete_identity("pool", "second") is True
    assert sandbox.vault.peek("bc-conn-pool--second-secret") is None
    assert [i.name for i in admin.identities("pool")] == ["primary"]
    with app.table("connections") as table:
        rows = [json.dumps(dict(row), default=str) for row in table.list_entities()]
    assert rows
    assert leaked(rows + app.everything_kept(), {jobs_env["BC_CLIENT_SECRET"], IDENTITY_SECRET}) == []
