"""BC read over its API with the sandbox's app registration (client credentials): an independent look at what the
product wrote, not through the product; the demo's checks and the benchmarks' seeded ids use it."""

from __future__ import annotations

import json
import ssl
import time
from dataclasses import dataclass
from typing import Any

import httpx

from localworld.errors import WorldError

BC_SCOPE = "https://api.businesscentral.dynamics.com/.default"


@dataclass(frozen=True, slots=True)
class BcPlace:
    """One company of one BC environment of one tenant."""

    tenant: str
    environment: str
    company_id: str
    company_name: str = ""


def sandbox_places(env: dict[str, str]) -> list[BcPlace]:
    """The sandbox's BC environments (its env file's SANDBOX_BC_ENVIRONMENTS), the primary one first."""
    listed = json.loads(env.get("SANDBOX_BC_ENVIRONMENTS", "[]"))
    return [BcPlace(e["tenant"], e["environment"], e["companyId"], e["companyName"]) for e in listed]


class BcReader:
    """Reads whole entity sets of one company over BC's API (client credentials, with retries): the sandbox's
    primary company (the env file's BC_* keys) unless `place` names another tenant's environment and company."""

    def __init__(self, env: dict[str, str], place: BcPlace | None = None) -> None:
        self._env = env
        self._place = place or BcPlace(env["BC_TENANT_ID"], env["BC_ENVIRONMENT"], env["BC_COMPANY_ID"])
        self._http = httpx.Client(
            verify=ssl.create_default_context(cafile=env["LOCAL_CA_BUNDLE"]), timeout=30
        )
        self._token = ""

    def __enter__(self) -> BcReader:
        return self

    def __exit__(self, *exc: object) -> None:
        self._http.close()

    def _bearer(self) -> str:
        if not self._token:
            env = self._env
            url = f"{env['BC_AUTHORITY_HOST'].rstrip('/')}/{self._place.tenant}/oauth2/v2.0/token"
            form = {"grant_type": "client_credentials", "client_id": env["BC_CLIENT_ID"], "scope": BC_SCOPE}
            answer = self._request("POST", url, data={**form, **self._credential()})
            self._token = str(answer["access_token"])
        return self._token

    def _credential(self) -> dict[str, str]:
        """The app's secret; a secretless (federated) app's: the managed identity's exchange token as the client
        assertion, from the sandbox's managed-identity endpoint (learn.microsoft.com/entra/identity-platform/
        v2-oauth2-client-creds-grant-flow, "third case"; sandbox/README.md, federated credentials)."""
        env = self._env
        if env.get("BC_CLIENT_SECRET"):
            return {"client_secret": env["BC_CLIENT_SECRET"]}
        query = {
            "resource": "api://AzureADTokenExchange",
            "api-version": "2019-08-01",
            "client_id": env["SANDBOX_MANAGED_IDENTITY_CLIENT_ID"],
        }
        answer = self._http.get(
            env["SANDBOX_IDENTITY_ENDPOINT"],
            params=query,
            headers={"X-IDENTITY-HEADER": env["SANDBOX_IDENTITY_HEADER"]},
        )
        if answer.status_code != 200:
            raise WorldError(f"the managed-identity endpoint answered {answer.status_code}")
        return {
            "client_assertion_type": "urn:ietf:params:oauth:client-assertion-type:jwt-bearer",
            "client_assertion": str(answer.json()["access_token"]),
        }

    def _set_url(self, entity_set: str) -> str:
        base, place = self._env["BC_API_BASE_URL"].rstrip("/"), self._place
        return f"{base}/v2.0/{place.tenant}/{place.environment}/api/v2.0/companies({place.company_id})/{entity_set}"

    def write(
        self, method: str, entity_set: str, body: dict[str, Any] | None = None, entity_id: str | None = None
    ) -> dict[str, Any]:
        """One write as another BC user would make it (POST a record; PATCH or DELETE one, If-Match *): the record
        BC answers with ({} for a DELETE)."""
        url = self._set_url(entity_set) + (f"({entity_id})" if entity_id else "")
        headers = {"Authorization": f"Bearer {self._bearer()}"} | ({"If-Match": "*"} if entity_id else {})
        return self._request(method, url, json=body, headers=headers, ok=(200, 201, 204))

    def records(self, entity_set: str) -> list[dict[str, Any]]:
        """Every record of the set (all pages)."""
        url: str | None = self._set_url(entity_set)
        found: list[dict[str, Any]] = []
        while url:
            page = self._request(
                "GET",
                url,
                headers={"Authorization": f"Bearer {self._bearer()}", "Prefer": "odata.maxpagesize=1000"},
            )
            found += page.get("value", [])
            url = page.get("@odata.nextLink")
        return found

    def _request(self, method: str, url: str, ok: tuple[int, ...] = (200,), **kwargs: Any) -> dict[str, Any]:
        for attempt in range(6):
            try:
                response = self._http.request(method, url, **kwargs)
            except httpx.TransportError:
                time.sleep(0.2 * (attempt + 1))
                continue
            if response.status_code in (429, 502, 503, 504):
                time.sleep(float(response.headers.get("Retry-After", 0.5 * (attempt + 1))))
                continue
            if response.status_code not in ok:
                raise WorldError(f"BC answered {response.status_code} to {method} {url.split('?')[0]}")
            answer: dict[str, Any] = response.json() if response.content else {}
            return answer
        raise WorldError(f"BC kept failing {method} {url.split('?')[0]}")
