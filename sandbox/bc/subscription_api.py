"""`api/v2.0/subscriptions` (and a custom API's `api/{publisher}/{group}/{version}/subscriptions`) of one
environment: list, get, create with the handshake, renew (PATCH) and delete.

Facts (Learn dev-itpro/api-reference/v2.0/dynamics-subscriptions and api/dynamics_subscriptions_{create,update,
delete,get}; reference bc-webhooks-connections-identities.md A1, A2, A5):
- POST `{notificationUrl, resource, clientState}` -> BC requests the notificationUrl with `validationToken` on the
  query string; the subscription exists only if the answer is 200 with the token as the body; 201 + the subscription.
  The method is not documented (a user report says POST: MicrosoftDocs/dynamics365smb-devitpro-pb#264), so the
  sandbox POSTs, with an empty body; the timeout is ApiSubscriptionNotificationUrlTimeout, 5 s.
- PATCH `subscriptions('{id}')` renews (3 more days) after the same handshake; If-Match required and a JSON body
  (devitpro-pb#2863); DELETE `subscriptions('{id}')` with If-Match, 204 (devitpro-pb#1926: quotes and If-Match).
- GET lists subscription objects with `@odata.etag`; 200 subscriptions per environment.
Error statuses and codes BC answers for a failed handshake, a full environment or a bad resource are not
documented: UNCONFIRMED, the sandbox answers 400 with the codes below, and the unquoted id 400 as a query syntax error.
"""

from __future__ import annotations

import json
import re
import uuid
from urllib.parse import urlencode

import httpx

from sandbox.bc.api import ApiRequest, ApiResponse
from sandbox.bc.environment import BcEnvironment
from sandbox.bc.errors import BcError, invalid_body, syntax_error
from sandbox.bc.schema import JsonValue
from sandbox.bc.subscriptions import Subscription, SubscriptionTable, parse_resource, subscribable
from sandbox.bc.webhooks import WebhookControl
from sandbox.clock import SandboxClock
from sandbox.config import SandboxConfig

_PATH = re.compile(r"^subscriptions(?:\((?P<key>[^)]*)\))?$")
_ETAG = re.compile(r'^(W/)?"[^"]*"$')
_INVALID_TOKEN = (
    "Could not validate the client concurrency token required by the service. "
    "Please provide a valid token in the client request."
)


def is_subscriptions_path(rest: str) -> bool:
    """Whether a path under the API root is the subscriptions entity set (or one subscription)."""
    return _PATH.match(rest.strip("/")) is not None


class SubscriptionApi:
    """Executes subscription requests; the handshake is awaited without holding any lock."""

    def __init__(self, config: SandboxConfig, control: WebhookControl, clock: SandboxClock) -> None:
        self._config = config
        self._control = control
        self._clock = clock

    async def execute(
        self, request: ApiRequest, env: BcEnvironment, api_route: str, user_id: str
    ) -> ApiResponse:
        """One request to `subscriptions` or `subscriptions('id')` of the environment."""
        match = _PATH.match(request.path.strip("/"))
        if match is None:
            raise syntax_error(f"The segment '{request.path}' is not valid.")
        table = env.subscriptions
        self._control.sweep_expired()
        key = match.group("key")
        if key is None:
            if request.method == "GET":
                return self._list(request, table)
            if request.method == "POST":
                return await self._create(request, env, api_route, user_id)
            raise _method_not_allowed(request.method)
        if not (len(key) >= 2 and key[0] == key[-1] == "'"):
            raise syntax_error(
                f"The key '{key}' is not valid: a subscription id is a string in single quotes."
            )
        subscription_id = key[1:-1]
        if request.method == "GET":
            return self._single(request, self._find(table, subscription_id), 200)
        if request.method == "PATCH":
            return await self._renew(request, table, subscription_id)
        if request.method == "DELETE":
            return self._delete(request, table, subscription_id)
        raise _method_not_allowed(request.method)

    # --- reads ---------------------------------------------------------------------------------------------
    def _list(self, request: ApiRequest, table: SubscriptionTable) -> ApiResponse:
        with self._control.lock:
            values = [s.to_json() for s in table.subscriptions.values()]
        return ApiResponse(
            200, {"@odata.context": f"{request.root_url}/$metadata#subscriptions", "value": values}
        )

    def _single(self, request: ApiRequest, subscription: Subscription, status: int) -> ApiResponse:
        body = {
            "@odata.context": f"{request.root_url}/$metadata#subscriptions/$entity",
            **subscription.to_json(),
        }
        return ApiResponse(status, body, {"ETag": subscription.etag}, wrote=status != 200)

    def _find(self, table: SubscriptionTable, subscription_id: str) -> Subscription:
        with self._control.lock:
            found = table.subscriptions.get(subscription_id)
        if found is None:
            raise BcError(
                self._config.bc_not_found_status,
                self._config.bc_not_found_code,
                f"The API Webhook Subscription does not exist. Identification fields and values: "
                f"Subscription Id='{subscription_id}'",
            )
        return found

    # --- create -----------------------------------------------------------------------------------------------
    async def _create(
        self, request: ApiRequest, env: BcEnvironment, api_route: str, user_id: str
    ) -> ApiResponse:
        body = _json_object(request)
        url, resource, state = (
            _field(body, "notificationUrl"),
            _field(body, "resource"),
            body.get("clientState"),
        )
        state = "" if state is None else str(state)
        self._check_url(url)
        target = parse_resource(resource)
        if target is None or target.api != api_route or not subscribable(target.set_name, api_route):
            raise BcError(
                400, "BadRequest_ResourceNotFound", f"The resource '{resource}' does not support webhooks."
            )
        with self._control.lock:
            if env.store.company(target.company_id) is None:
                raise BcError(
                    404, "Internal_CompanyNotFound", f"The company '{target.company_id}' does not exist."
                )
        if len(state) > self._config.bc_webhook_max_client_state:
            raise invalid_body(
                f"clientState is longer than {self._config.bc_webhook_max_client_state} characters."
            )
        self._check_room(env.subscriptions)
        await self._handshake(url)
        now = self._clock.now()
        expiration = now + self._control.current_settings().expiration_seconds
        subscription = Subscription(
            uuid.uuid4().hex,
            url,
            resource,
            state,
            target,
            user_id,
            now,
            now,
            expiration,
            self._control.next_stamp(),
        )
        with self._control.lock:
            self._check_room(env.subscriptions)
            env.subscriptions.subscriptions[subscription.subscription_id] = subscription
        response = self._single(request, subscription, 201)
        response.headers["Location"] = f"{request.root_url}/subscriptions('{subscription.subscription_id}')"
        return response

    def _check_url(self, url: str) -> None:
        if not url.lower().startswith(("http://", "https://")):
            raise invalid_body(f"The notificationUrl '{url}' is not an absolute http or https URL.")

    def _check_room(self, table: SubscriptionTable) -> None:
        limit = self._control.current_settings().max_subscriptions
        with self._control.lock:
            full = len(table.subscriptions) >= limit
        if full:
            raise BcError(
                400,
                "BadRequest_SubscriptionLimitReached",
                f"The maximum number of subscriptions ({limit}) for this environment has been reached.",
            )

    async def _handshake(self, url: str) -> None:
        """BC's validation request; BcError unless the answer is 200 with exactly the token."""
        token = str(uuid.uuid4())
        target = f"{url}{'&' if '?' in url else '?'}{urlencode({'validationToken': token})}"
        timeout = self._control.current_settings().handshake_timeout_seconds
        ok = False
        try:
            async with httpx.AsyncClient(verify=self._control.tls_context, trust_env=False) as client:
                answer = await client.post(target, timeout=timeout)
            ok = answer.status_code == 200 and answer.text == token
        except httpx.HTTPError:
            ok = False
        self._control.count_handshake(ok)
        if not ok:
            raise BcError(
                400,
                "BadRequest_SubscriptionValidationFailed",
                f"The subscription was not created: the notification URL '{url}' did not answer the validation "
                "request with 200 and the validationToken as its body within "
                f"{timeout:g} seconds.",
            )

    # --- renew and delete ---------------------------------------------------------------------------------------
    async def _renew(
        self, request: ApiRequest, table: SubscriptionTable, subscription_id: str
    ) -> ApiResponse:
        subscription = self._find(table, subscription_id)
        _check_if_match(request, subscription)
        body = _json_object(request)
        url = str(body.get("notificationUrl") or subscription.notification_url)
        self._check_url(url)
        if "resource" in body and body["resource"] != subscription.resource:
            raise invalid_body("The resource of a subscription cannot be changed; create a new subscription.")
        await self._handshake(url)
        with self._control.lock:
            subscription = self._find(table, subscription_id)
            now = self._clock.now()
            subscription.notification_url = url
            if "clientState" in body:
                subscription.client_state = "" if body["clientState"] is None else str(body["clientState"])
            subscription.modified = now
            subscription.expiration = now + self._control.current_settings().expiration_seconds
            subscription.stamp = self._control.next_stamp()
        return self._single(request, subscription, 200)

    def _delete(self, request: ApiRequest, table: SubscriptionTable, subscription_id: str) -> ApiResponse:
        with self._control.lock:
            subscription = self._find(table, subscription_id)
            _check_if_match(request, subscription)
            del table.subscriptions[subscription_id]
        self._control.count_deleted("api")
        return ApiResponse(204, None, {}, wrote=True)


def _json_object(request: ApiRequest) -> dict[str, JsonValue]:
    if not request.body.strip():
        raise invalid_body("The request body is empty; send the subscription as a JSON object.")
    try:
        body = json.loads(request.body)
    except ValueError as exc:
        raise invalid_body(f"The JSON could not be read: {exc}.") from None
    if not isinstance(body, dict):
        raise invalid_body("A JSON object was expected.")
    return body


def _field(body: dict[str, JsonValue], name: str) -> str:
    value = body.get(name)
    if not isinstance(value, str) or not value:
        raise invalid_body(f"The property '{name}' is required.")
    return value


def _check_if_match(request: ApiRequest, subscription: Subscription) -> None:
    """If-Match is required on PATCH and DELETE (Learn, dynamics_subscriptions_update/delete)."""
    supplied = request.headers.get("if-match")
    candidates = [c.strip() for c in (supplied or "").split(",") if c.strip()]
    if not candidates or any(c != "*" and not _ETAG.match(c) for c in candidates):
        raise BcError(400, "BadRequest_InvalidToken", _INVALID_TOKEN)
    if "*" not in candidates and subscription.etag.removeprefix("W/") not in {
        c.removeprefix("W/") for c in candidates
    }:
        raise BcError(409, "Request_EntityChanged", "Another user has already changed the record.")


def _method_not_allowed(method: str) -> BcError:
    return BcError(
        405,
        "BadRequest_MethodNotAllowed",
        f"'{method}' requests for 'subscriptions' of EdmType 'Entity' are not allowed within Microsoft Dynamics "
        "365 Business Central OData web services.",
    )
