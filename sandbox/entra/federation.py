"""Federated identity credentials (FIC) on app registrations, and the check of a federated client assertion.

Sources (reference bc-webhooks-connections-identities.md, section (d)):
- learn.microsoft.com/entra/workload-id/workload-identity-federation-config-app-trust-managed-identity: a
  user-assigned managed identity as the FIC of an app: issuer `https://login.microsoftonline.com/{tenant}/v2.0`,
  subject = the identity's object (principal) id, case-sensitive, audience `api://AzureADTokenExchange`; "system-
  assigned identities aren't supported"; the app registration must be in the identity's tenant; wildcards aren't
  supported; a misconfigured record is accepted when created and fails only at the token exchange.
- learn.microsoft.com/entra/workload-id/workload-identity-federation-considerations: at most 20 FICs per app; the
  issuer + subject combination is unique on an app; `name` 3-120 characters, immutable.
- learn.microsoft.com/graph/api/resources/federatedidentitycredential and application-post-federatedidentitycredentials
  (the record's fields, "Maximum of 20 objects can be added to an application").
- The errors: AADSTS70021 "No matching federated identity record found for presented assertion. Assertion Issuer:
  .. Subject: .. Audience: .." (invalid_request, 400; github.com/Azure/azure-workload-identity docs/book/src/
  troubleshooting.md); AADSTS700211 / 700213 / 700212, the same for the assertion's issuer / subject / audience
  (invalid_client; quoted in github.com/Azure/azure-workload-identity/issues/1613 for 700211); AADSTS700024
  "Client assertion is not within its valid time range"; AADSTS700027 a signature that does not validate
  (learn.microsoft.com/azure/developer/java/sdk/troubleshooting-authentication-service-principal).
"""

from __future__ import annotations

from collections.abc import Collection, Mapping
from dataclasses import dataclass

from sandbox.entra.errors import EntraProtocolError
from sandbox.errors import SandboxError

TOKEN_EXCHANGE_AUDIENCE = "api://AzureADTokenExchange"
# The application id of Microsoft's "AAD Token Exchange Endpoint": a v2.0 token for api://AzureADTokenExchange carries
# it as `aud`, and Entra maps it to the URI a FIC names. [Community: decoded managed-identity tokens in the field; no
# Learn page shows a decoded one.]
TOKEN_EXCHANGE_APP_ID = "fb60f99c-7a34-4190-8149-302f77469936"
MAX_PER_APP = 20


def entra_issuer(tenant_id: str) -> str:
    """The issuer of a tenant's v2.0 tokens, which a FIC trusting that tenant's managed identity names."""
    return f"https://login.microsoftonline.com/{tenant_id}/v2.0"


@dataclass(frozen=True, slots=True)
class FederatedCredential:
    """One federatedIdentityCredential of an app registration (Microsoft Graph's fields)."""

    name: str
    issuer: str
    subject: str
    audiences: tuple[str, ...] = (TOKEN_EXCHANGE_AUDIENCE,)
    description: str = ""

    def accepts_audience(self, aud: str) -> bool:
        """Whether the assertion's `aud` is this record's audience (the token exchange's URI or its app id)."""
        names = set(self.audiences)
        if TOKEN_EXCHANGE_AUDIENCE in names:
            names.add(TOKEN_EXCHANGE_APP_ID)
        return aud in names


class GraphRequestError(SandboxError, ValueError):
    """Microsoft Graph refused to create the record: 400 Request_BadRequest with the reason."""

    code = "Request_BadRequest"


def check_new(existing: Collection[FederatedCredential], record: FederatedCredential) -> None:
    """Refuse a record as Graph does when creating it; raise GraphRequestError naming what to change."""
    if len(existing) >= MAX_PER_APP:
        raise GraphRequestError(
            f"the application already has {MAX_PER_APP} federated identity credentials, the maximum: delete one first"
        )
    if not 3 <= len(record.name) <= 120:
        raise GraphRequestError("name must be 3 to 120 characters")
    if not record.issuer or not record.subject:
        raise GraphRequestError("issuer and subject are required")
    # [Community] one audience per record; Graph's page calls the field mandatory (600 characters at most).
    if len(record.audiences) != 1 or not 0 < len(record.audiences[0]) <= 600:
        raise GraphRequestError("audiences must hold exactly one value (api://AzureADTokenExchange)")
    if any(other.name == record.name for other in existing):
        raise GraphRequestError(f"a federated identity credential named {record.name!r} already exists")
    if any((other.issuer, other.subject) == (record.issuer, record.subject) for other in existing):
        raise GraphRequestError("the combination of issuer and subject must be unique on the application")


@dataclass(frozen=True, slots=True)
class Trust:
    """What the exchange checks beyond the records: the app's home tenant, the system-assigned principals, the
    status of invalid_client answers."""

    home_tenant_id: str
    system_assigned: frozenset[str]
    invalid_client_status: int


def match(records: Collection[FederatedCredential], claims: Mapping[str, object], trust: Trust) -> None:
    """Accept a validly signed, unexpired assertion only when one record matches (issuer, subject, audience)."""
    iss, sub, aud = (str(claims.get(name, "")) for name in ("iss", "sub", "aud"))
    status = trust.invalid_client_status
    if not records:
        raise EntraProtocolError(
            70021,
            detail=f"Assertion Issuer: '{iss}'. Assertion Subject: '{sub}'. Assertion Audience: '{aud}'.",
        )
    same_issuer = [r for r in records if r.issuer == iss]
    if not same_issuer:
        raise EntraProtocolError(700211, status=status, message=_no_match("issuer", iss))
    same_subject = [r for r in same_issuer if r.subject == sub]  # case-sensitive (doc above)
    if not same_subject:
        raise EntraProtocolError(700213, status=status, message=_no_match("subject", sub))
    if not any(r.accepts_audience(aud) for r in same_subject):
        raise EntraProtocolError(700212, status=status, message=_no_match("audience", aud))
    _check_identity(iss, sub, trust)


def _check_identity(iss: str, sub: str, trust: Trust) -> None:
    # UNCONFIRMED (the docs say "not supported", not which code answers): a record that names a system-assigned
    # identity, or an identity of another tenant than the app's, matches no usable record: AADSTS70021.
    if sub in trust.system_assigned:
        raise EntraProtocolError(
            70021,
            detail="System-assigned managed identities can't be federated credentials: use a user-assigned one.",
        )
    if iss.lower() != entra_issuer(trust.home_tenant_id).lower():
        raise EntraProtocolError(
            70021,
            detail="The managed identity is in another tenant than the app registration: federate an identity of "
            "the app's home tenant (other tenants through the multi-tenant app consented there).",
        )


def _no_match(part: str, value: str) -> str:
    return (
        f"No matching federated identity record found for presented assertion {part} '{value}'. Please check your "
        "federated identity credential Subject, Audience and Issuer against the presented assertion. "
        "https://learn.microsoft.com/entra/workload-id/workload-identity-federation"
    )
