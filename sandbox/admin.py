"""JSON control endpoints under SANDBOX_ADMIN_URL, for out-of-process users (benchmarks, the demo).

GET  /_sandbox/stats                        counters of all services
GET  /_sandbox/config                       knobs in force
POST /_sandbox/reset                        Sandbox.reset()
POST /_sandbox/clock/advance                {"seconds": S}
POST /_sandbox/entra/token-lifetime         {"seconds": S | null}
POST /_sandbox/entra/revoke-refresh-tokens  {"user_oid": optional}
POST /_sandbox/entra/fail-next-token-calls  {"count": N, "status": 503, "retry_after": 0}
POST /_sandbox/entra/deny-next-authorize    {"count": 1, "error": "access_denied"}
POST /_sandbox/entra/grant-consent          {"tenant_id": T, "client_id": C}
POST /_sandbox/entra/revoke-consent         {"tenant_id": T, "client_id": C}
POST /_sandbox/entra/consented              {"tenant_id": T, "client_id": C}  -> {"consented": bool}
POST /_sandbox/entra/deny-next-admin-consent {"count": 1, "error": "access_denied"}
POST /_sandbox/entra/federated-credentials  {"client_id": C, "name": N, "subject": S, "issuer": I?, "audiences": [A]?,
                                             "description": D?}  -> the record (issuer: the primary tenant's
                                             https://login.microsoftonline.com/{tid}/v2.0; audiences:
                                             ["api://AzureADTokenExchange"]); 400 as Graph refuses (21st, ...)
POST /_sandbox/entra/federated-credentials/list   {"client_id": C}  -> {"value": [records]}
POST /_sandbox/entra/federated-credentials/delete {"client_id": C, "name": N}
POST /_sandbox/vault                        {"outage": bool, "throttle_rate": r, "throttle_next": N}
POST /_sandbox/bc/faults                    {"rate_429": r, "rate_408": r, "rate_502": r, "rate_503": r, "rate_504": r,
                                             "rate_drop": r, "rate_spike": r, "rate_ambiguous_write": r,
                                             "spike_ms": ms, "retry_after_seconds": s | null (null: 429 without it)}
POST /_sandbox/bc/fail-next                 {"count": N, "kind": "429|408|502|503|504|drop|spike|ambiguous_write"}
POST /_sandbox/bc/limits                    {"rate_limit": N, "window_seconds": S, "max_in_flight": N, ...}
POST /_sandbox/bc/latency                   {"base_ms": ms, "jitter_ms": ms}
POST /_sandbox/bc/register-application      {"tenant_id": T, "environment": E, "client_id": C}
POST /_sandbox/bc/unregister-application    {"tenant_id": T, "environment": E, "client_id": C}
POST /_sandbox/bc/environment               {"tenant_id": T, "environment": E}  -> company, stats, applications
POST /_sandbox/bc/webhooks/settings         {"delay_seconds": S, "max_notifications": N, "max_attempts": N,
                                             "retry_seconds": [S, ...], "send_timeout_seconds": S,
                                             "handshake_timeout_seconds": S, "expiration_seconds": S,
                                             "max_subscriptions": N}  -> the settings in force
POST /_sandbox/bc/webhooks/lose-next        {"count": N}
POST /_sandbox/bc/webhooks/copy-environment {"tenant_id": T, "environment": E}  -> {"removed": N}
POST /_sandbox/bc/webhooks/expire           {"subscription_id": S}
POST /_sandbox/bc/webhooks/subscriptions    {"tenant_id": T?, "environment": E?}  -> {"value": [...]}
GET  /_sandbox/bc/webhooks/stats            POSTs per notification URL, subscriptions per environment, ...
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from sandbox.entra.federation import TOKEN_EXCHANGE_AUDIENCE, FederatedCredential, entra_issuer

if TYPE_CHECKING:
    from sandbox.sandbox import Sandbox

Handler = Callable[[Request], Awaitable[Response]]


def admin_app(sandbox: Sandbox) -> Starlette:
    """The admin Starlette app bound to a running Sandbox."""

    def post(action: Callable[[dict[str, Any]], object]) -> Handler:
        async def endpoint(request: Request) -> Response:
            raw = await request.body()
            try:
                payload = json.loads(raw) if raw else {}
                result = action(payload)
            except (ValueError, TypeError, KeyError) as exc:
                return JSONResponse({"error": str(exc)}, status_code=400)
            if dataclasses.is_dataclass(result) and not isinstance(result, type):
                return JSONResponse(dataclasses.asdict(result))
            return JSONResponse(result if isinstance(result, dict) else {"ok": True})

        return endpoint

    async def stats(request: Request) -> Response:
        return JSONResponse(
            {
                "entra": sandbox.entra.snapshot(),
                "vault": sandbox.vault.snapshot(),
                "bc": sandbox.bc.stats().to_json(),
                "bc_webhooks": sandbox.bc.webhooks.stats(),
                "identity": sandbox.identity.snapshot(),
            }
        )

    async def config(request: Request) -> Response:
        return JSONResponse(
            {
                "bc": sandbox.bc.snapshot(),
                "env": {k: v for k, v in sandbox.env.items() if "SECRET" not in k and "HEADER" not in k},
            }
        )

    def vault(payload: dict[str, Any]) -> object:
        if "outage" in payload:
            sandbox.vault.outage = bool(payload["outage"])
        if "throttle_rate" in payload:
            sandbox.vault.throttle_rate = float(payload["throttle_rate"])
        if "throttle_next" in payload:
            sandbox.vault.throttle_next(int(payload["throttle_next"]), payload.get("retry_after_seconds"))
        return sandbox.vault.snapshot()

    def token_lifetime(payload: dict[str, Any]) -> object:
        seconds = payload.get("seconds")
        sandbox.entra.token_lifetime_seconds = None if seconds is None else float(seconds)
        return {"token_lifetime_seconds": sandbox.entra.token_lifetime_seconds}

    def consent(action: Callable[[str, str], object]) -> Callable[[dict[str, Any]], object]:
        return lambda p: action(str(p["tenant_id"]), str(p["client_id"]))

    def application(action: Callable[[str, str, str], object]) -> Callable[[dict[str, Any]], object]:
        return lambda p: action(str(p["tenant_id"]), str(p["environment"]), str(p["client_id"]))

    def environment(payload: dict[str, Any]) -> object:
        env = sandbox.bc.environment(str(payload["tenant_id"]), str(payload["environment"]))
        return {
            **dataclasses.asdict(env.info),
            "registered_applications": sorted(env.registered),
            "stats": sandbox.bc.environment_stats(env).to_json(),
        }

    def add_federated(payload: dict[str, Any]) -> object:
        record = FederatedCredential(
            name=str(payload["name"]),
            issuer=str(payload.get("issuer") or entra_issuer(sandbox.tenant_id)),
            subject=str(payload["subject"]),
            audiences=tuple(str(a) for a in payload.get("audiences", [TOKEN_EXCHANGE_AUDIENCE])),
            description=str(payload.get("description", "")),
        )
        return sandbox.entra.add_federated_credential(str(payload["client_id"]), record)

    def list_federated(payload: dict[str, Any]) -> object:
        records = sandbox.entra.federated_credentials(str(payload["client_id"]))
        return {"value": [dataclasses.asdict(record) for record in records]}

    federation_routes = [
        Route("/_sandbox/entra/federated-credentials", post(add_federated), methods=["POST"]),
        Route("/_sandbox/entra/federated-credentials/list", post(list_federated), methods=["POST"]),
        Route(
            "/_sandbox/entra/federated-credentials/delete",
            post(lambda p: sandbox.entra.remove_federated_credential(str(p["client_id"]), str(p["name"]))),
            methods=["POST"],
        ),
    ]
    entra_routes = [
        *federation_routes,
        Route("/_sandbox/entra/grant-consent", post(consent(sandbox.entra.grant_consent)), methods=["POST"]),
        Route(
            "/_sandbox/entra/revoke-consent", post(consent(sandbox.entra.revoke_consent)), methods=["POST"]
        ),
        Route(
            "/_sandbox/entra/consented",
            post(lambda p: {"consented": consent(sandbox.entra.consented)(p)}),
            methods=["POST"],
        ),
        Route(
            "/_sandbox/entra/deny-next-admin-consent",
            post(
                lambda p: sandbox.entra.deny_next_admin_consent(
                    str(p.get("error", "access_denied")), int(p.get("count", 1))
                )
            ),
            methods=["POST"],
        ),
    ]
    bc_routes = [
        Route(
            "/_sandbox/bc/register-application",
            post(application(sandbox.bc.register_application)),
            methods=["POST"],
        ),
        Route(
            "/_sandbox/bc/unregister-application",
            post(application(sandbox.bc.unregister_application)),
            methods=["POST"],
        ),
        Route("/_sandbox/bc/environment", post(environment), methods=["POST"]),
        *webhook_routes(sandbox, post),
    ]
    routes = [
        *entra_routes,
        *bc_routes,
        Route("/_sandbox/stats", stats),
        Route("/_sandbox/config", config),
        Route("/_sandbox/reset", post(lambda p: sandbox.reset()), methods=["POST"]),
        Route(
            "/_sandbox/clock/advance",
            post(lambda p: sandbox.clock.advance(float(p["seconds"]))),
            methods=["POST"],
        ),
        Route("/_sandbox/entra/token-lifetime", post(token_lifetime), methods=["POST"]),
        Route(
            "/_sandbox/entra/revoke-refresh-tokens",
            post(lambda p: sandbox.entra.revoke_refresh_tokens(p.get("user_oid"))),
            methods=["POST"],
        ),
        Route(
            "/_sandbox/entra/fail-next-token-calls",
            post(
                lambda p: sandbox.entra.fail_next_token_calls(
                    int(p.get("count", 1)), int(p.get("status", 503)), p.get("retry_after", 0)
                )
            ),
            methods=["POST"],
        ),
        Route(
            "/_sandbox/entra/deny-next-authorize",
            post(
                lambda p: sandbox.entra.deny_next_authorize(
                    str(p.get("error", "access_denied")), int(p.get("count", 1))
                )
            ),
            methods=["POST"],
        ),
        Route("/_sandbox/vault", post(vault), methods=["POST"]),
        Route("/_sandbox/bc/faults", post(lambda p: sandbox.bc.faults(**p)), methods=["POST"]),
        Route(
            "/_sandbox/bc/fail-next",
            post(lambda p: sandbox.bc.fail_next(int(p.get("count", 1)), str(p["kind"]))),
            methods=["POST"],
        ),
        Route("/_sandbox/bc/limits", post(lambda p: sandbox.bc.limits(**p)), methods=["POST"]),
        Route(
            "/_sandbox/bc/latency",
            post(lambda p: sandbox.bc.latency(float(p.get("base_ms", 0)), float(p.get("jitter_ms", 0)))),
            methods=["POST"],
        ),
    ]
    return Starlette(routes=routes)


def webhook_routes(
    sandbox: Sandbox, post: Callable[[Callable[[dict[str, Any]], object]], Handler]
) -> list[Route]:
    """The BC webhook knobs (sandbox/bc/webhooks.py)."""
    hooks = sandbox.bc.webhooks

    async def stats(request: Request) -> Response:
        return JSONResponse(hooks.stats())

    def listed(p: dict[str, Any]) -> object:
        return {"value": hooks.subscriptions(p.get("tenant_id"), p.get("environment"))}

    return [
        Route("/_sandbox/bc/webhooks/settings", post(lambda p: hooks.settings(**p)), methods=["POST"]),
        Route(
            "/_sandbox/bc/webhooks/lose-next",
            post(lambda p: hooks.lose_next(int(p.get("count", 1)))),
            methods=["POST"],
        ),
        Route(
            "/_sandbox/bc/webhooks/copy-environment",
            post(lambda p: {"removed": hooks.copy_environment(str(p["tenant_id"]), str(p["environment"]))}),
            methods=["POST"],
        ),
        Route(
            "/_sandbox/bc/webhooks/expire",
            post(lambda p: hooks.expire(str(p["subscription_id"]))),
            methods=["POST"],
        ),
        Route("/_sandbox/bc/webhooks/subscriptions", post(listed), methods=["POST"]),
        Route("/_sandbox/bc/webhooks/stats", stats),
    ]
