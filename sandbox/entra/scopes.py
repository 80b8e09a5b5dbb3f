"""Splitting an OAuth scope string into Entra's reserved scopes and one resource's permissions."""

from __future__ import annotations

from dataclasses import dataclass

from sandbox.config import BC_RESOURCE, VAULT_RESOURCE
from sandbox.entra.errors import EntraProtocolError

RESERVED = frozenset({"openid", "profile", "offline_access", "email"})
KNOWN_RESOURCES = (BC_RESOURCE, VAULT_RESOURCE)


@dataclass(frozen=True, slots=True)
class ScopeRequest:
    """A parsed scope parameter: the reserved OIDC scopes and the permissions on at most one resource."""

    reserved: frozenset[str]
    resource: str | None
    permissions: tuple[str, ...]  # e.g. (".default",) or ("Financials.ReadWrite.All",)

    @property
    def is_default(self) -> bool:
        """The request asks for the app's static permissions (`/.default`)."""
        return self.permissions == (".default",)


def parse_scopes(raw: str) -> ScopeRequest:
    """Parse a space-separated scope string; more than one resource is AADSTS28000, an unknown one 500011."""
    reserved: set[str] = set()
    resource: str | None = None
    permissions: list[str] = []
    for scope in raw.split():
        if scope in RESERVED:
            reserved.add(scope)
            continue
        owner, _, permission = scope.rstrip("/").rpartition("/")
        if not owner or not permission:
            raise EntraProtocolError(70011, detail=f"The scope '{scope}' is not valid.")
        owner = owner.rstrip("/")
        if owner not in KNOWN_RESOURCES:
            raise EntraProtocolError(500011, detail=f"Resource: '{owner}'.")
        if resource is not None and owner != resource:
            raise EntraProtocolError(28000)
        resource = owner
        permissions.append(permission)
    return ScopeRequest(frozenset(reserved), resource, tuple(permissions))
