"""Key Vault secrets REST endpoints (api-version 7.x shape) behind the 401 bearer challenge.

Challenge protocol as azure-keyvault-secrets implements it (github.com/Azure/azure-sdk-for-python,
sdk/keyvault/azure-keyvault-secrets/azure/keyvault/secrets/_shared/challenge_auth_policy.py): the SDK sends
its first request without a token, reads `WWW-Authenticate: Bearer authorization="{authority}/{tenant}",
resource="https://vault.azure.net"`, gets a token for `{resource}/.default` and resends. Values are limited to
25 KB (learn.microsoft.com/azure/key-vault/secrets/about-secrets).
"""

from __future__ import annotations

import json
import re
from collections.abc import Awaitable, Callable
from typing import Any

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from sandbox.config import VAULT_RESOURCE, SandboxConfig
from sandbox.errors import TokenRejectedError
from sandbox.tokens import TokenAuthority
from sandbox.vault.control import SecretVersion, StoredSecret, VaultControl

_NAME = re.compile(r"^[0-9a-zA-Z-]{1,127}$")
Handler = Callable[[Request], Awaitable[Response]]


def _error(status: int, code: str, message: str, headers: dict[str, str] | None = None) -> JSONResponse:
    return JSONResponse({"error": {"code": code, "message": message}}, status_code=status, headers=headers)


class VaultEndpoints:
    """The Starlette app for the sandbox vault."""

    def __init__(
        self,
        config: SandboxConfig,
        control: VaultControl,
        authority: TokenAuthority,
        tenant_id: str,
        authority_host: str,
    ) -> None:
        self._config = config
        self._control = control
        self._authority = authority
        self._tenant_id = tenant_id
        self._challenge = f'Bearer authorization="{authority_host}/{tenant_id}", resource="{VAULT_RESOURCE}"'

    def app(self) -> Starlette:
        """Secrets, versions and soft-delete routes."""
        g = self._guard
        return Starlette(
            routes=[
                Route("/secrets", g(self.list_secrets, write=False), methods=["GET"]),
                Route("/secrets/{name}", g(self.set_secret, write=True), methods=["PUT"]),
                Route("/secrets/{name}", g(self.delete_secret, write=True), methods=["DELETE"]),
                Route("/secrets/{name}/versions", g(self.list_versions, write=False), methods=["GET"]),
                Route("/secrets/{name}", g(self.get_secret, write=False), methods=["GET"]),
                Route("/secrets/{name}/{version}", g(self.get_secret, write=False), methods=["GET"]),
                Route("/secrets/{name}/{version}", g(self.update_secret, write=True), methods=["PATCH"]),
                Route("/deletedsecrets/{name}", g(self.get_deleted, write=False), methods=["GET"]),
                Route("/deletedsecrets/{name}", g(self.purge, write=True), methods=["DELETE"]),
                Route("/deletedsecrets/{name}/recover", g(self.recover, write=True), methods=["POST"]),
            ]
        )

    def _guard(self, handler: Handler, write: bool) -> Handler:
        async def guarded(request: Request) -> Response:
            response = await self._admit(request, write) or await handler(request)
            self._control.count_response(response.status_code)
            return response

        return guarded

    async def _admit(self, request: Request, write: bool) -> Response | None:
        if self._control.outage:
            return _error(503, "ServiceUnavailable", "The service is temporarily unavailable.")
        header = request.headers.get("authorization", "")
        if not header.lower().startswith("bearer "):
            return _error(
                401,
                "Unauthorized",
                "AKV10000: Request is missing a Bearer or PoP token.",
                {"WWW-Authenticate": self._challenge},
            )
        try:
            # Any identity of the tenant with a token for the vault passes (access policies/RBAC are not modelled):
            # an app registration's client-credentials token or a managed identity's (sandbox/identity.py).
            claims = self._authority.validate(header[7:].strip(), VAULT_RESOURCE, self._tenant_id)
        except TokenRejectedError as exc:
            return _error(
                401, "Unauthorized", f"AKV10022: Invalid token: {exc}.", {"WWW-Authenticate": self._challenge}
            )
        if "api-version" not in request.query_params:
            return _error(400, "BadParameter", "The request URI contains an invalid API version.")
        name = request.path_params.get("name")
        if name is not None and not _NAME.match(name):
            return _error(400, "BadParameter", "The request URI contains an invalid name: " + name)
        if self._control.should_throttle():
            headers = (
                {"Retry-After": str(self._control.retry_after_seconds)}
                if self._config.vault_retry_after_on_429
                else None
            )
            return _error(429, "Throttled", "Rate limit is exceeded. Try again later.", headers)
        self._control.count(write, claims.appid)
        return None

    # --- shapes ----------------------------------------------------------------------------------------------
    def _vault(self, request: Request) -> str:
        return f"https://{request.headers.get('host', request.url.netloc)}"

    def _attributes(self, version: SecretVersion) -> dict[str, Any]:
        return {
            "enabled": version.enabled,
            "created": version.created,
            "updated": version.updated,
            "recoveryLevel": "Recoverable+Purgeable",
            "recoverableDays": 90,
        }

    def _bundle(
        self, request: Request, name: str, version: SecretVersion, with_value: bool = True
    ) -> dict[str, Any]:
        body: dict[str, Any] = {
            "id": f"{self._vault(request)}/secrets/{name}/{version.version}",
            "attributes": self._attributes(version),
        }
        if with_value:
            body["value"] = version.value
        if version.content_type is not None:
            body["contentType"] = version.content_type
        if version.tags is not None:
            body["tags"] = version.tags
        return body

    def _deleted_bundle(self, request: Request, name: str, stored: StoredSecret) -> dict[str, Any]:
        body = self._bundle(request, name, stored.versions[-1], with_value=False)
        deleted = stored.deleted_at or 0
        body.update(
            {
                "recoveryId": f"{self._vault(request)}/deletedsecrets/{name}",
                "deletedDate": deleted,
                "scheduledPurgeDate": deleted + 90 * 86400,
            }
        )
        return body

    def _not_found(self, name: str) -> JSONResponse:
        return _error(
            404,
            "SecretNotFound",
            f"A secret with (name/id) {name} was not found in this key vault. If you recently deleted this secret you may be able to recover it using the correct recovery command. For help resolving this issue, please see https://go.microsoft.com/fwlink/?linkid=2125182",
        )

    # --- handlers -------------------------------------------------------------------------------------------
    async def set_secret(self, request: Request) -> Response:
        """PUT /secrets/{name}: a new version."""
        name = request.path_params["name"]
        try:
            payload = json.loads(await request.body())
        except ValueError:
            return _error(400, "BadParameter", "The request body is not valid JSON.")
        value = payload.get("value") if isinstance(payload, dict) else None
        if not isinstance(value, str):
            return _error(400, "BadParameter", "Property 'value' is required and must be a string.")
        if len(value.encode("utf-8")) > self._config.vault_max_value_bytes:
            return _error(
                400,
                "BadParameter",
                f"Secret value is too large: the maximum size is {self._config.vault_max_value_bytes} bytes.",
            )
        attributes = payload.get("attributes") or {}
        version = self._control.set_secret(
            name,
            value,
            payload.get("contentType"),
            payload.get("tags"),
            bool(attributes.get("enabled", True)),
        )
        if version is None:
            return JSONResponse(
                {
                    "error": {
                        "code": "Conflict",
                        "message": f"Secret {name} is currently in a deleted but recoverable state, and its name cannot be reused; in this state, the secret can only be recovered or purged.",
                        "innererror": {"code": "ObjectIsDeletedButRecoverable"},
                    }
                },
                status_code=409,
            )
        return JSONResponse(self._bundle(request, name, version))

    async def get_secret(self, request: Request) -> Response:
        """GET /secrets/{name}[/{version}]."""
        name = request.path_params["name"]
        version = self._control.get_version(name, request.path_params.get("version"))
        if version is None:
            return self._not_found(name)
        if not version.enabled:
            return _error(403, "Forbidden", "Operation get is not allowed on a disabled secret.")
        return JSONResponse(self._bundle(request, name, version))

    async def update_secret(self, request: Request) -> Response:
        """PATCH /secrets/{name}/{version}: content type, tags, enabled."""
        name = request.path_params["name"]
        version = self._control.get_version(name, request.path_params.get("version"))
        if version is None:
            return self._not_found(name)
        payload = json.loads(await request.body() or b"{}")
        if "contentType" in payload:
            version.content_type = payload["contentType"]
        if "tags" in payload:
            version.tags = payload["tags"]
        if "enabled" in (payload.get("attributes") or {}):
            version.enabled = bool(payload["attributes"]["enabled"])
        return JSONResponse(self._bundle(request, name, version, with_value=False))

    async def list_secrets(self, request: Request) -> Response:
        """GET /secrets: properties of every live secret (paged by maxresults)."""
        items = []
        for name in self._control.names():
            latest = self._control.get_version(name, None)
            if latest is not None:
                item = self._bundle(request, name, latest, with_value=False)
                item["id"] = f"{self._vault(request)}/secrets/{name}"
                items.append(item)
        return self._page(request, items, "/secrets")

    async def list_versions(self, request: Request) -> Response:
        """GET /secrets/{name}/versions."""
        name = request.path_params["name"]
        stored = self._control.live(name)
        if stored is None:
            return self._not_found(name)
        items = [self._bundle(request, name, version, with_value=False) for version in stored.versions]
        return self._page(request, items, f"/secrets/{name}/versions")

    def _page(self, request: Request, items: list[dict[str, Any]], path: str) -> Response:
        size = int(request.query_params.get("maxresults", "25"))
        start = int(request.query_params.get("$skiptoken", "0"))
        page = items[start : start + size]
        next_link = None
        if start + size < len(items):
            api = request.query_params["api-version"]
            next_link = (
                f"{self._vault(request)}{path}?api-version={api}&$skiptoken={start + size}&maxresults={size}"
            )
        return JSONResponse({"value": page, "nextLink": next_link})

    async def delete_secret(self, request: Request) -> Response:
        """DELETE /secrets/{name}: soft delete."""
        name = request.path_params["name"]
        stored = self._control.delete(name)
        if stored is None:
            return self._not_found(name)
        return JSONResponse(self._deleted_bundle(request, name, stored))

    async def get_deleted(self, request: Request) -> Response:
        """GET /deletedsecrets/{name}."""
        name = request.path_params["name"]
        stored = self._control.deleted(name)
        if stored is None:
            return _error(404, "SecretNotFound", f"Deleted Secret not found: {name}")
        return JSONResponse(self._deleted_bundle(request, name, stored))

    async def purge(self, request: Request) -> Response:
        """DELETE /deletedsecrets/{name}: purge."""
        name = request.path_params["name"]
        if not self._control.purge(name):
            return _error(404, "SecretNotFound", f"Deleted Secret not found: {name}")
        return Response(status_code=204)

    async def recover(self, request: Request) -> Response:
        """POST /deletedsecrets/{name}/recover."""
        name = request.path_params["name"]
        stored = self._control.recover(name)
        if stored is None:
            return _error(404, "SecretNotFound", f"Deleted Secret not found: {name}")
        return JSONResponse(self._bundle(request, name, stored.versions[-1], with_value=False))
