"""Federated identity credential records and their matching, without HTTP (sandbox/entra/federation.py)."""

from __future__ import annotations

import random

import pytest

from sandbox import SandboxConfig
from sandbox.__main__ import config_from, parse_args
from sandbox.clock import SandboxClock
from sandbox.config import FederatedCredentialConfig
from sandbox.entra.control import EntraControl
from sandbox.entra.directory import build_directory
from sandbox.entra.errors import EntraProtocolError
from sandbox.entra.federation import (
    TOKEN_EXCHANGE_APP_ID,
    FederatedCredential,
    GraphRequestError,
    Trust,
    check_new,
    entra_issuer,
    match,
)

KEY = b"not a real key"
HOME = "11111111-1111-4111-8111-111111111111"
ISSUER = entra_issuer(HOME)
TRUST = Trust(HOME, frozenset({"system-principal"}), 401)


def _claims(
    sub: str = "mi-principal", aud: str = TOKEN_EXCHANGE_APP_ID, iss: str = ISSUER
) -> dict[str, object]:
    return {"iss": iss, "sub": sub, "aud": aud}


def _code(records: list[FederatedCredential], claims: dict[str, object]) -> int:
    with pytest.raises(EntraProtocolError) as refused:
        match(records, claims, TRUST)
    return refused.value.code


def test_secretless_app_holds_no_secret_and_moves_no_seeded_id() -> None:
    """secretless_apps drops the secret only: every id is what it is with the secret."""
    plain = build_directory(SandboxConfig(extra_clients=1), random.Random(1), KEY)
    secretless = build_directory(SandboxConfig(extra_clients=1, secretless_apps=(1,)), random.Random(1), KEY)
    assert secretless.apps[1].client_secret is None
    assert "None" in repr(secretless.apps[1])
    assert [a.client_id for a in plain.apps] == [a.client_id for a in secretless.apps]
    assert (plain.identities, plain.user) == (secretless.identities, secretless.user)


def test_config_refuses_apps_and_identities_that_do_not_exist() -> None:
    """An app index beyond extra_clients, or the system identity without system_assigned_identity, says so."""
    with pytest.raises(ValueError, match="app 1"):
        SandboxConfig(secretless_apps=(1,))
    with pytest.raises(ValueError, match="app 2"):
        SandboxConfig(extra_clients=1, federated_credentials=(FederatedCredentialConfig(app=2),))
    with pytest.raises(ValueError, match="system_assigned_identity"):
        SandboxConfig(federated_credentials=(FederatedCredentialConfig(identity=1),))


def test_configured_record_trusts_the_identity_by_home_issuer_and_principal_id() -> None:
    """ "App 0 trusts identity 0": issuer of the primary tenant, subject = principal id; reset restores it."""
    config = SandboxConfig(federated_credentials=(FederatedCredentialConfig(name="uami"),))
    directory = build_directory(config, random.Random(1), KEY)
    entra = EntraControl(config, directory, SandboxClock())
    app = directory.primary.client_id
    (record,) = entra.federated_credentials(app)
    assert (record.issuer, record.subject) == (
        entra_issuer(directory.tenant_id),
        directory.identities[0].principal_id,
    )
    assert record.audiences == ("api://AzureADTokenExchange",)
    entra.add_federated_credential(app, FederatedCredential("other", ISSUER, "x"))
    entra.remove_federated_credential(app, "uami")
    assert [r.name for r in entra.federated_credentials(app)] == ["other"]
    entra.reset()
    assert [r.name for r in entra.federated_credentials(app)] == ["uami"]
    with pytest.raises(ValueError, match="no federated identity credential"):
        entra.remove_federated_credential(app, "missing")


def test_graph_rules_on_creation() -> None:
    """At most 20 per app; name 3-120; one audience; unique name; unique issuer + subject."""
    twenty = [FederatedCredential(f"fic-{n}", ISSUER, f"s{n}") for n in range(20)]
    with pytest.raises(GraphRequestError, match="20"):
        check_new(twenty, FederatedCredential("fic-21", ISSUER, "s21"))
    refused = [
        FederatedCredential("ab", ISSUER, "s"),
        FederatedCredential("x" * 121, ISSUER, "s"),
        FederatedCredential("two-audiences", ISSUER, "s", ("api://AzureADTokenExchange", "other")),
        FederatedCredential("fic-0", ISSUER, "new"),
        FederatedCredential("same-pair", ISSUER, "s0"),
        FederatedCredential("no-subject", ISSUER, ""),
    ]
    for record in refused:
        with pytest.raises(GraphRequestError):
            check_new(twenty[:1], record)
    check_new(twenty[:19], FederatedCredential("fic-20", ISSUER, "s20"))


def test_match_names_the_part_that_differs() -> None:
    """No record at all: 70021; else the first of issuer (700211), subject (700213), audience (700212)."""
    records = [FederatedCredential("uami", ISSUER, "mi-principal")]
    match(records, _claims(), TRUST)
    match(records, _claims(aud="api://AzureADTokenExchange"), TRUST)
    assert _code([], _claims()) == 70021
    assert _code(records, _claims(iss=entra_issuer("other-tenant"))) == 700211
    assert _code(records, _claims(sub="MI-PRINCIPAL")) == 700213  # case-sensitive
    assert _code(records, _claims(aud="https://vault.azure.net")) == 700212


def test_system_assigned_or_foreign_identities_are_refused_even_when_a_record_names_them() -> None:
    """Records are accepted at creation and fail at the exchange: system-assigned, or another tenant's identity."""
    system = [FederatedCredential("sami", ISSUER, "system-principal")]
    assert _code(system, _claims(sub="system-principal")) == 70021
    foreign_issuer = entra_issuer("22222222-2222-4222-8222-222222222222")
    foreign = [FederatedCredential("foreign", foreign_issuer, "mi-principal")]
    assert _code(foreign, _claims(iss=foreign_issuer)) == 70021


def test_cli_federated_app_makes_it_secretless_and_trusting_the_user_assigned_identity() -> None:
    """`--federated-app 1`: app 1 holds no secret and has one record for identity 0."""
    config = config_from(parse_args(["--write-env", "x.env", "--extra-clients", "1", "--federated-app", "1"]))
    assert config.secretless_apps == (1,)
    assert [(f.app, f.identity) for f in config.federated_credentials] == [(1, 0)]
