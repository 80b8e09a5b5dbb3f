"""SandboxConfig: every setting of the local world, with defaults taken from the reference facts.

Settings whose real-world value is unconfirmed (no Microsoft document states them) are marked UNCONFIRMED here
so a test or a benchmark can flip them; their defaults are the stricter or the most commonly observed
behaviour.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

BC_RESOURCE = "https://api.businesscentral.dynamics.com"
VAULT_RESOURCE = "https://vault.azure.net"
STORAGE_RESOURCE = "https://storage.azure.com"
# publisher/group/version of a custom API page: OData identifiers, then v<major>.<minor> or beta.
_CUSTOM_API = re.compile(r"[A-Za-z_][A-Za-z0-9_]*/[A-Za-z_][A-Za-z0-9_]*/(v\d+\.\d+|beta)")


@dataclass(frozen=True, slots=True)
class BcEnvironmentConfig:
    """One BC environment: which tenant owns it (0 = the primary tenant, n = extra tenant n), its name, its type
    ("Production" or "Sandbox", as BC's environments endpoint spells them) and the name of its seeded company."""

    tenant: int
    name: str
    company_name: str
    type: str = "Production"


@dataclass(frozen=True, slots=True)
class FederatedCredentialConfig:
    """ "App registration `app` trusts managed identity `identity`": a federated identity credential created at start
    (issuer https://login.microsoftonline.com/{primary tenant}/v2.0, subject = the identity's principal id, audience
    api://AzureADTokenExchange), as learn.microsoft.com/entra/workload-id/workload-identity-federation-config-app-
    trust-managed-identity configures it. `app`: 0 = the primary app, n = extra client n; `identity`: 0 = the
    user-assigned identity, 1 = the system-assigned one (configurable, refused at the token exchange as Entra does).
    """

    app: int = 0
    identity: int = 0
    name: str = "sandbox-managed-identity"


@dataclass(frozen=True, slots=True)
class SandboxConfig:
    """How the sandbox behaves; `Sandbox(config)` turns it into running services."""

    seed: int = 1
    host: str = "127.0.0.1"
    # 0 = a free port chosen at start.
    entra_port: int = 0
    vault_port: int = 0
    bc_port: int = 0
    admin_port: int = 0
    identity_port: int = 0  # the managed-identity endpoint (plain HTTP, as App Service's local token service)
    # None = a temporary folder removed on stop; it holds the CA, the server certificate and the client certificate.
    work_dir: Path | None = None

    # --- Entra ID -------------------------------------------------------------------------------------
    # None = random 60-90 min per token, as Entra does by default
    # (learn.microsoft.com/entra/identity-platform/access-tokens, "Token lifetime").
    token_lifetime_seconds: float | None = None
    # "About 10 minutes" (learn.microsoft.com/entra/identity-platform/v2-oauth2-auth-code-flow).
    auth_code_lifetime_seconds: float = 600.0
    # Refresh tokens: 90 days max inactive time, sliding (learn.microsoft.com/entra/identity-platform/refresh-tokens).
    refresh_token_max_inactive_seconds: float = 90 * 24 * 3600.0
    # Empty = any loopback redirect URI (http://127.0.0.1:<any>/... or http://localhost:<any>/...), like Entra's
    # port-agnostic localhost rule; otherwise only these exact URIs.
    redirect_uris: tuple[str, ...] = ()
    user_principal_name: str = "admin@sandbox.onmicrosoft.com"
    user_display_name: str = "Sandbox Admin"
    # UNCONFIRMED: HTTP status of invalid_client (Entra is widely seen answering 401).
    invalid_client_status: int = 401
    # App roles granted to the app on the BC API (client credentials tokens carry them in `roles`).
    bc_app_roles: tuple[str, ...] = ("API.ReadWrite.All",)
    bc_delegated_scopes: tuple[str, ...] = ("Financials.ReadWrite.All", "user_impersonation")
    # Entra answers a `.default` request with the granted scopes (resource/Financials.ReadWrite.All ...), so MSAL's
    # cache does not match a later silent `.default` lookup and refreshes instead. True echoes the requested scopes.
    echo_requested_scopes: bool = False

    # --- Managed identity (App Service's local token service, sandbox/identity.py) ---------------------
    # Managed-identity tokens live for hours: App Service's token service caches one per resource "for around 8
    # hours" (learn.microsoft.com/azure/app-service/overview-managed-identity, "Obtain tokens for Azure resources").
    # A short lifetime would make azure-core fetch a new token on every request once inside its 5-minute margin.
    managed_identity_token_lifetime_seconds: float = 8 * 3600.0
    # The site in infra/app/function.bicep has only a user-assigned identity, so no system-assigned one here.
    system_assigned_identity: bool = False

    # --- Key Vault ------------------------------------------------------------------------------------
    # 25 KB (learn.microsoft.com/azure/key-vault/secrets/about-secrets).
    vault_max_value_bytes: int = 25 * 1024
    # UNCONFIRMED: whether Key Vault sends Retry-After on 429.
    vault_retry_after_on_429: bool = True
    vault_retry_after_seconds: int = 1

    # --- Business Central -----------------------------------------------------------------------------
    bc_environment: str = "production"
    bc_company_name: str = "CRONUS USA, Inc."
    # Custom APIs ("publisher/group/version") served next to api/v2.0, each with the standard entity sets; like BC,
    # any other route under api/ (api/v1.0 included) is 404 "No HTTP resource was found ..." (sandbox/bc/errors.py).
    bc_custom_apis: tuple[str, ...] = ("contoso/app/v1.0",)
    # BC's limits, from learn.microsoft.com/dynamics365/business-central/dev-itpro/administration/operational-limits-online.
    bc_rate_limit: int = 6000  # requests per sliding window per identity
    bc_window_seconds: float = 300.0
    # Divides every BC time constant (window, queue timeout) so a test can compress BC's 5-minute window.
    bc_time_scale: float = 1.0
    bc_max_in_flight: int = 5
    bc_max_queue: int = 95
    bc_queue_timeout_seconds: float = 480.0  # 8 min in the queue -> 503 (limits, above)
    # UNCONFIRMED: Retry-After on 429 (observed in clients, not documented).
    bc_retry_after_on_429: bool = True
    bc_retry_after_seconds_503: int = 5
    bc_latency_ms: float = 0.0
    bc_latency_jitter_ms: float = 0.0
    # learn.microsoft.com/dynamics365/business-central/dev-itpro/webservices/server-driven-paging-in-odata-web-services
    bc_max_page_size: int = 20000
    bc_max_batch_operations: int = 100  # limits, above
    # UNCONFIRMED (no Microsoft doc shows it): what a failed `Isolation: snapshot` $batch answers for the operations
    # after the failing one (they are not run). None = no response for them: OData stops a batch at the first error
    # unless the client prefers odata.continue-on-error (OData 4.0 part 1 §8.2.8.3, http://docs.oasis-open.org/odata/
    # odata/v4.0/errata02/os/complete/part1-protocol/odata-v4.0-errata02-os-part1-protocol-complete.html#_Toc406398236).
    # 424 = a Failed Dependency response each. Operations run before the failure keep their own 2xx either way.
    bc_snapshot_batch_skipped_status: int | None = None
    # UNCONFIRMED: whether every $batch operation counts against the rate window (False = 1 per batch).
    bc_batch_counts_operations: bool = False
    # UNCONFIRMED: DELETE without If-Match; the docs say Required, so be strict.
    bc_delete_requires_if_match: bool = True
    # UNCONFIRMED: status and code of GET/PATCH/DELETE on a missing id.
    bc_not_found_status: int = 404
    bc_not_found_code: str = "Internal_RecordNotFound"
    # UNCONFIRMED: BC's SQL collation compares text case-insensitively in filters and ordering.
    bc_case_insensitive_text: bool = True
    # Tolerance on token `exp` (0 = reject the instant it expires; .NET validators default to 300 s).
    bc_token_clock_skew_seconds: float = 0.0
    bc_seed_customers: int = 60
    bc_seed_vendors: int = 20
    bc_seed_items: int = 40
    bc_seed_sales_orders: int = 10
    bc_seed_sales_invoices: int = 10

    # --- BC webhooks (sandbox/bc/subscriptions.py, sandbox/bc/webhooks.py) ---------------------------------------
    # Learn, "Working with webhooks" (dev-itpro/api-reference/v2.0/dynamics-subscriptions) and BC's sender, codeunit
    # 6154 "API Webhook Notification Send" (reference bc-webhooks-connections-identities.md, A3/A4).
    # "the system waits 30 seconds after the first change to an entity before it sends the notification"
    # (ApiSubscriptionDelayTime); divided by bc_time_scale.
    bc_webhook_delay_seconds: float = 30.0
    # "if more than a 1,000 records are changed, a single `collection` notification is sent"
    # (ApiSubscriptionMaxNumberOfNotifications; codeunit 6154 GenerateSingleAggregateNotification).
    bc_webhook_max_notifications: int = 1000
    # Codeunit 6154 GetMaxNumberOfAttempts = 5: a subscription whose notifications' attempt number exceeds it is
    # deleted, i.e. after the 6th failed POST (the first one and 5 retries).
    bc_webhook_max_attempts: int = 5
    # Codeunit 6154 GetDelayTimeForAttempt, in minutes, by attempt number 0, 1, 2, 3, 4, >=5; the number is raised
    # before the delay is chosen, so the retries come +1, +1, +10, +100, +1,000 minutes after each failure.
    # Divided by bc_time_scale.
    bc_webhook_retry_minutes: tuple[float, ...] = (1.0, 1.0, 1.0, 10.0, 100.0, 1000.0)
    # ApiSubscriptionSendingNotificationTimeout, default 30,000 ms (server-instance-settings); real seconds.
    bc_webhook_send_timeout_seconds: float = 30.0
    # ApiSubscriptionNotificationUrlTimeout, default 5,000 ms: the handshake's timeout; real seconds.
    bc_webhook_handshake_timeout_seconds: float = 5.0
    # Learn: subscriptions expire after three days unless renewed (ApiSubscriptionExpiration); sandbox seconds
    # (advance the clock to age them).
    bc_webhook_expiration_seconds: float = 3 * 24 * 3600.0
    # 200 webhook subscriptions per environment (administration/operational-limits-online).
    bc_webhook_max_subscriptions: int = 200
    # UNCONFIRMED: clientState's length limit ($metadata of 2018 says 250, the docs' example 2048).
    bc_webhook_max_client_state: int = 250

    # Extra app registrations (beyond the primary one) to spread BC load over identities, as OL suggests.
    extra_clients: int = 0
    # App registrations (0 = primary, n = extra client n) that hold no client secret at all: they authenticate only
    # with a client assertion (a federated credential, section (d) of the reference). A secret presented for one is
    # AADSTS7000215, as for a wrong secret.
    secretless_apps: tuple[int, ...] = ()
    # Federated identity credentials created at start; more through sandbox.entra.add_federated_credential or
    # POST /_sandbox/entra/federated-credentials (sandbox/entra/federation.py).
    federated_credentials: tuple[FederatedCredentialConfig, ...] = ()

    # --- Several tenants and environments (reference bc-webhooks-connections-identities.md, section (b)) --------
    # Customer tenants beside the primary one, each with its own admin user (admin@customer<n>.onmicrosoft.com).
    # Every app registration is multi-tenant with the primary tenant as home; its consent in a customer tenant is
    # what makes a service principal exist there (learn.microsoft.com/entra/identity-platform/v2-admin-consent).
    extra_tenants: int = 1
    # False: the apps are not consented in the customer tenants until an admin consents (adminconsent endpoint or
    # sandbox.entra.grant_consent), so their token requests there fail with AADSTS700016.
    consent_extra_tenants: bool = False
    # None = the primary tenant's `bc_environment` (the seeded company above) and `sandbox`, and one `production`
    # environment per customer tenant; each environment has its own data, limits and registered applications.
    bc_environments: tuple[BcEnvironmentConfig, ...] | None = None

    def __post_init__(self) -> None:
        for api in self.bc_custom_apis:
            if not _CUSTOM_API.fullmatch(api):
                raise ValueError(
                    f"a custom API is 'publisher/group/version' (e.g. contoso/app/v1.0), not {api!r}"
                )
        for env in self.environments:
            if not 0 <= env.tenant <= self.extra_tenants:
                raise ValueError(f"environment {env.name!r}: tenant {env.tenant} is not 0..extra_tenants")
        self._check_federation()
        if (0, self.bc_environment) not in {(env.tenant, env.name) for env in self.environments}:
            raise ValueError(f"bc_environments must include the primary tenant's {self.bc_environment!r}")

    def _check_federation(self) -> None:
        apps = range(self.extra_clients + 1)
        identities = range(2 if self.system_assigned_identity else 1)
        for index in self.secretless_apps:
            if index not in apps:
                raise ValueError(f"secretless_apps: app {index} is not 0..extra_clients")
        for fic in self.federated_credentials:
            if fic.app not in apps:
                raise ValueError(f"federated credential {fic.name!r}: app {fic.app} is not 0..extra_clients")
            if fic.identity not in identities:
                raise ValueError(
                    f"federated credential {fic.name!r}: identity {fic.identity} does not exist "
                    "(1 needs system_assigned_identity=True)"
                )

    @property
    def environments(self) -> tuple[BcEnvironmentConfig, ...]:
        """The BC environments: `bc_environments`, or the default layout (the primary environment first)."""
        if self.bc_environments is not None:
            return self.bc_environments
        primary = (
            BcEnvironmentConfig(0, self.bc_environment, self.bc_company_name),
            BcEnvironmentConfig(0, "sandbox", "CRONUS Sandbox", "Sandbox"),
        )
        customers = tuple(
            BcEnvironmentConfig(n, "production", f"Customer {n} Ltd")
            for n in range(1, self.extra_tenants + 1)
        )
        return primary + customers

    @property
    def bc_effective_window_seconds(self) -> float:
        """The sliding window after time compression."""
        return self.bc_window_seconds / self.bc_time_scale

    @property
    def bc_effective_queue_timeout_seconds(self) -> float:
        """The queue timeout after time compression."""
        return self.bc_queue_timeout_seconds / self.bc_time_scale
