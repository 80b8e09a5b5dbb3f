"""One BC environment: its own data (store), its own per-identity limits and its own registered applications.

BC's limits are per identity and enforced per environment, not per tenant or company (reference
bc-webhooks-connections-identities.md, section (b) "Throttle scope"; github.com/MicrosoftDocs/
dynamics365smb-devitpro-pb/issues/2592), so each environment has its own Limiter. An app calls an environment only
when it has a Microsoft Entra Application card there (learn.microsoft.com/dynamics365/business-central/dev-itpro/
administration/automation-apis-using-s2s-authentication), hence the per-environment set of registered client ids.
"""

from __future__ import annotations

import random
from collections import Counter
from dataclasses import dataclass
from typing import TYPE_CHECKING

from sandbox.bc.api import BcApi
from sandbox.bc.documents import Documents, seed_documents
from sandbox.bc.examples import seed_examples
from sandbox.bc.limits import Limiter
from sandbox.bc.schema import JsonValue
from sandbox.bc.store import BcStore, seed_store
from sandbox.bc.subscriptions import SubscriptionTable
from sandbox.clock import SandboxClock
from sandbox.config import BcEnvironmentConfig, SandboxConfig

if TYPE_CHECKING:
    from sandbox.bc.webhooks import WebhookControl


@dataclass(frozen=True, slots=True)
class EnvironmentInfo:
    """What BC's environments endpoint says about an environment, plus its seeded company."""

    tenant_id: str
    name: str
    type: str
    company_id: str
    company_name: str


class BcEnvironment:
    """An environment's store, API, limiter, registered applications and request counters.

    The caller (BcControl) holds the lock that guards all of them.
    """

    def __init__(
        self,
        config: SandboxConfig,
        clock: SandboxClock,
        tenant_id: str,
        spec: BcEnvironmentConfig,
        primary: bool,
        webhooks: WebhookControl | None = None,
    ) -> None:
        self._config = config
        self.tenant_id = tenant_id
        self.name = spec.name
        self.type = spec.type
        self.company_name = spec.company_name
        self.primary = primary
        self.store = BcStore(clock)
        self.documents = Documents(self.store)
        self.api = BcApi(config, self.store, self.documents)
        self.limiter = Limiter(clock)
        self.company_id = ""
        self.registered: set[str] = set()
        self.requests: Counter[tuple[str, int]] = Counter()
        self.reseed()
        # Webhook subscriptions are per environment (reference A1); every later change to the data is told to them.
        self.subscriptions = SubscriptionTable(tenant_id, self.name)
        if webhooks is not None:
            control, table = webhooks, webhooks.table_for(tenant_id, self.name)
            self.subscriptions = table
            self.store.listener = lambda company, set_name, row, change: control.record(
                table, company, set_name, row, change
            )

    def _rng(self) -> random.Random:
        # The primary environment draws exactly as the single environment always did (same seed, same ids); the
        # others get their own stream, so their ids differ from it and from each other.
        if self.primary:
            return random.Random(self._config.seed + 1)
        return random.Random(f"{self._config.seed}/{self.tenant_id}/{self.name}")

    def reseed(self) -> None:
        """Put the environment's company back as seeded (the example records included)."""
        rng = self._rng()
        self.company_id = seed_store(self.store, self._config, rng, self.company_name)
        company = self.store.companies[self.company_id]
        seed_documents(self.store, self.documents, company, self._config, rng)
        seed_examples(self.store, self.documents, company)

    @property
    def info(self) -> EnvironmentInfo:
        """Tenant, name, type and company."""
        return EnvironmentInfo(self.tenant_id, self.name, self.type, self.company_id, self.company_name)

    def records(self, set_name: str) -> list[dict[str, JsonValue]]:
        """Copies of the company's rows of an entity set."""
        company = self.store.company(self.company_id)
        if company is None:
            return []
        return [dict(row.data) for row in self.store.table(company, set_name).values()]
