"""Customer tenants and BC environments without HTTP: the layout, the seeded ids, consent and registration state."""

from __future__ import annotations

import random

import pytest

from sandbox import SandboxConfig
from sandbox.__main__ import config_from, parse_args
from sandbox.bc.control import BcControl
from sandbox.clock import SandboxClock
from sandbox.config import BcEnvironmentConfig
from sandbox.entra.control import EntraControl
from sandbox.entra.directory import build_directory

KEY = b"not a real key"


def test_default_layout_is_primary_production_and_sandbox_then_one_production_per_customer() -> None:
    """Two customer tenants: four environments, the primary one named by bc_environment first."""
    envs = SandboxConfig(extra_tenants=2).environments
    assert [(e.tenant, e.name, e.type) for e in envs] == [
        (0, "production", "Production"),
        (0, "sandbox", "Sandbox"),
        (1, "production", "Production"),
        (2, "production", "Production"),
    ]
    assert envs[0].company_name == "CRONUS USA, Inc."


def test_environments_must_name_existing_tenants_and_keep_the_primary_one() -> None:
    """A tenant index beyond extra_tenants, or no primary environment, is refused with the reason."""
    with pytest.raises(ValueError, match="tenant 3"):
        SandboxConfig(
            bc_environments=(BcEnvironmentConfig(0, "production", "A"), BcEnvironmentConfig(3, "x", "B"))
        )
    with pytest.raises(ValueError, match="must include"):
        SandboxConfig(bc_environments=(BcEnvironmentConfig(0, "other", "A"),))


def test_customer_tenants_do_not_move_the_primary_ids() -> None:
    """With 0 or 3 customer tenants the primary tenant, apps, user and identities are the same."""
    none = build_directory(SandboxConfig(extra_tenants=0), random.Random(1), KEY)
    three = build_directory(SandboxConfig(extra_tenants=3), random.Random(1), KEY)
    assert (none.tenant_id, none.apps, none.user, none.identities) == (
        three.tenant_id,
        three.apps,
        three.user,
        three.identities,
    )
    assert none.customers == ()
    assert [t.user.upn for t in three.customers] == [f"admin@customer{n}.onmicrosoft.com" for n in (1, 2, 3)]
    assert len({t.tenant_id for t in three.tenants}) == 4


def test_consent_is_per_tenant_and_client_and_reset_restores_the_config() -> None:
    """Primary consented, customer not (unless configured); grant and revoke are undone by reset."""
    config = SandboxConfig()
    directory = build_directory(config, random.Random(1), KEY)
    entra = EntraControl(config, directory, SandboxClock())
    customer, app = directory.customers[0].tenant_id, directory.primary.client_id
    assert entra.consented(directory.tenant_id, app)
    assert not entra.consented(customer, app)
    entra.grant_consent(customer.upper(), app)
    assert entra.consented(customer, app)
    entra.reset()
    assert not entra.consented(customer, app)
    with pytest.raises(ValueError, match="no app registration"):
        entra.grant_consent(customer, "someone-else")
    everywhere = EntraControl(SandboxConfig(consent_extra_tenants=True), directory, SandboxClock())
    assert everywhere.consented(customer, app)


def test_environments_have_distinct_companies_and_their_own_registrations() -> None:
    """Each environment seeds its own company id and name; unregistering in one leaves the others."""
    control = BcControl(SandboxConfig(), SandboxClock(), ["t0", "t1"], ["app"])
    companies = {env.company_id for env in control.environments.values()}
    assert len(companies) == 3
    assert control.company_id == control.environment("t0", "production").company_id
    control.unregister_application("t0", "sandbox", "app")
    assert not control.is_registered(control.environment("t0", "sandbox"), "app")
    assert control.is_registered(control.environment("t1", "production"), "app")
    control.reset()
    assert control.is_registered(control.environment("t0", "sandbox"), "app")
    with pytest.raises(ValueError, match="no BC environment t1/sandbox"):
        control.environment("t1", "sandbox")


def test_cli_sets_customer_tenants_and_their_consent() -> None:
    """--extra-tenants N and --consent-extra-tenants map onto the config."""
    config = config_from(
        parse_args(["--write-env", "x.env", "--extra-tenants", "2", "--consent-extra-tenants"])
    )
    assert (config.extra_tenants, config.consent_extra_tenants) == (2, True)
    assert (SandboxConfig().extra_tenants, SandboxConfig().consent_extra_tenants) == (1, False)
