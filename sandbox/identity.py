"""App Service's managed-identity endpoint (IDENTITY_ENDPOINT + IDENTITY_HEADER), as Azure Functions serves it.

Protocol (learn.microsoft.com/azure/app-service/overview-managed-identity, "REST endpoint reference"): GET
`{IDENTITY_ENDPOINT}?resource=R&api-version=2019-08-01[&client_id=C | &principal_id=P | &object_id=P |
&mi_res_id=ID]` with the header `X-IDENTITY-HEADER: {IDENTITY_HEADER}`; 200 answers `access_token`, `expires_on`
(epoch seconds, as a string), `resource`, `token_type` and `client_id`. Without an id parameter the system-assigned
identity is meant. azure-identity reaches it unchanged from those two environment variables
(azure/identity/_credentials/app_service.py, and msal/managed_identity.py `_obtain_token_on_app_service` for the
sync credential). An identity the site does not have is refused with 400 "Unable to load the proper Managed
Identity." (the service's own body, quoted in github.com/Azure/azure-sdk-for-net/issues/43691). The endpoint is
plain HTTP on the loopback interface, as App Service's local token service is.

For `api://AzureADTokenExchange` the token is the v2.0 one a federated identity credential trusts (iss
https://login.microsoftonline.com/{tenant}/v2.0, sub = oid = the principal id; sandbox/entra/federation.py). Other
tokens are the sandbox's v1 access tokens (iss https://sts.windows.net/{tenant}/, aud = the resource, appid =
the identity's client id, oid = its principal id), so Key Vault and BC validate them as they validate Entra's, and
Azurite's `--oauth basic` (issuer prefix, audience, nbf/exp; no signature check) accepts the storage ones.
"""

from __future__ import annotations

import hmac
import threading
import uuid
from collections import Counter

from starlette.applications import Starlette
from starlette.datastructures import QueryParams
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from sandbox.clock import SandboxClock
from sandbox.config import BC_RESOURCE, STORAGE_RESOURCE, VAULT_RESOURCE, SandboxConfig
from sandbox.entra.directory import Directory, ManagedIdentity
from sandbox.entra.federation import TOKEN_EXCHANGE_AUDIENCE
from sandbox.tokens import AccessTokenRequest, TokenAuthority

PATH = "/msi/token"
API_VERSION = "2019-08-01"
_ID_PARAMETERS = ("client_id", "principal_id", "object_id", "mi_res_id")
# Resources Entra knows in this sandbox (a managed identity can ask for any registered resource's token).
KNOWN_RESOURCES = frozenset(
    {
        VAULT_RESOURCE,
        STORAGE_RESOURCE,
        BC_RESOURCE,
        "https://management.azure.com",
        "https://monitor.azure.com",
        # The token a user-assigned identity presents as a federated credential (reference section (d)). Asked as
        # `resource`, without "/.default" (azure-identity and MSAL strip it from a scope); UNCONFIRMED: whether the
        # real endpoint also accepts "api://AzureADTokenExchange/.default" as a resource (here: AADSTS500011).
        TOKEN_EXCHANGE_AUDIENCE,
    }
)


def _failure(status: int, message: str) -> JSONResponse:
    # The service's error body: {"statusCode": 400, "message": "...", "correlationId": "..."} (issue above).
    body = {"statusCode": status, "message": message, "correlationId": str(uuid.uuid4())}
    return JSONResponse(body, status_code=status)


class IdentityControl:
    """The endpoint's secret header and counters; reachable as `sandbox.identity`."""

    def __init__(self, header: str) -> None:
        self.header = header
        self._lock = threading.Lock()
        self.token_calls: Counter[str] = Counter()  # by resource, successful answers only
        self.refusals = 0

    def count(self, resource: str | None) -> None:
        """Count an answer: a token for `resource`, or a refusal (None)."""
        with self._lock:
            if resource is None:
                self.refusals += 1
            else:
                self.token_calls[resource] += 1

    def reset(self) -> None:
        """Counters back to zero."""
        with self._lock:
            self.token_calls.clear()
            self.refusals = 0

    def snapshot(self) -> dict[str, object]:
        """Counters as JSON for the admin endpoint."""
        with self._lock:
            return {"token_calls": dict(self.token_calls), "refusals": self.refusals}


class IdentityEndpoint:
    """The Starlette app of the managed-identity endpoint."""

    def __init__(
        self,
        config: SandboxConfig,
        control: IdentityControl,
        authority: TokenAuthority,
        directory: Directory,
        clock: SandboxClock,
    ) -> None:
        self._config = config
        self._control = control
        self._authority = authority
        self._directory = directory
        self._clock = clock

    def app(self) -> Starlette:
        """One route: the token request."""
        return Starlette(routes=[Route(PATH, self.token, methods=["GET"])])

    async def token(self, request: Request) -> Response:
        """Answer a token request, or refuse it as App Service does."""
        refusal = self._refusal(request)
        if isinstance(refusal, Response):
            self._control.count(None)
            return refusal
        identity, resource = refusal
        token, expires_on = self._issue(identity, resource)
        self._control.count(resource)
        return JSONResponse(
            {
                "access_token": token,
                "expires_on": str(int(expires_on)),
                "resource": request.query_params["resource"],
                "token_type": "Bearer",
                "client_id": identity.client_id,
            }
        )

    def _issue(self, identity: ManagedIdentity, resource: str) -> tuple[str, float]:
        """The token and its expiry: for api://AzureADTokenExchange the v2.0 token a federated credential trusts
        (sandbox/entra/federation.py), else a v1 access token for the resource. A system-assigned identity gets
        its exchange token too, as the real endpoint issues it: Entra refuses it at the token exchange ("system-
        assigned identities aren't supported", workload-identity-federation-config-app-trust-managed-identity)."""
        tenant, lifetime = self._directory.tenant_id, self._config.managed_identity_token_lifetime_seconds
        if resource == TOKEN_EXCHANGE_AUDIENCE:
            return self._authority.exchange_token(tenant, identity.client_id, identity.principal_id, lifetime)
        return self._authority.access_token(
            AccessTokenRequest(
                audience=resource,
                tenant_id=tenant,
                client_id=identity.client_id,
                oid=identity.principal_id,
                lifetime_seconds=lifetime,
            )
        )

    def _refusal(self, request: Request) -> Response | tuple[ManagedIdentity, str]:
        """The identity and resource asked for, or the error response."""
        given = request.headers.get("x-identity-header", "")
        # UNCONFIRMED: the status App Service gives a missing or wrong header (no Microsoft page states it).
        if not hmac.compare_digest(given.encode(), self._control.header.encode()):
            return _failure(400, "The X-IDENTITY-HEADER header is missing or invalid.")
        query = request.query_params
        if query.get("api-version") != API_VERSION:
            return _failure(400, f"api-version must be {API_VERSION}.")
        resource = query.get("resource", "").rstrip("/")
        if not resource:
            return _failure(400, "The resource parameter is required.")
        identity = self._identity(query)
        if identity is None:
            return _failure(400, "Unable to load the proper Managed Identity.")
        if resource not in KNOWN_RESOURCES:
            return _failure(
                400, f"AADSTS500011: The resource principal named {resource} was not found in the tenant."
            )
        return identity, resource

    def _identity(self, query: QueryParams) -> ManagedIdentity | None:
        """The identity the id parameters name (at most one of them); None when the site has no such identity."""
        params = {name: query.get(name) for name in _ID_PARAMETERS if query.get(name)}
        identities = self._directory.identities
        if len(params) > 1:
            return None
        if not params:  # the system-assigned identity, the second one when the site has it
            return identities[1] if self._config.system_assigned_identity else None
        name, value = next((n, str(v)) for n, v in params.items())
        if name == "client_id":
            return next((i for i in identities if i.client_id.lower() == value.lower()), None)
        if name in ("principal_id", "object_id"):
            return next((i for i in identities if i.principal_id.lower() == value.lower()), None)
        return None  # mi_res_id: no ARM resource ids in the sandbox
