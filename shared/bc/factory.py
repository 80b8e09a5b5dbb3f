"""Wiring from the typed settings: endpoint, httpx client (TLS, timeouts), throttle and the BC client."""

from __future__ import annotations

import urllib.request
from datetime import timedelta
from uuid import UUID

import httpx

from shared.azure_clients import httpx_verify, names_proxy
from shared.bc.client import BusinessCentralClient
from shared.bc.models import BcEndpoint
from shared.bc.retry import DEFAULT_RETRY_POLICY, RetryPolicy
from shared.bc.sender import Recorder, RequestSender, Throttle, user_agent
from shared.bc.throttle import HEARTBEAT_SECONDS, CoordinationStore, SharedThrottle, ThrottleConfig
from shared.bc.throttle.table_store import partition_key_for
from shared.bc.transport import AiohttpTransport
from shared.clock import Clock
from shared.connections.connection import (
    PRIMARY_IDENTITY,
    Connection,
    Identity,
    connection_from_settings,
)
from shared.settings import Settings
from shared.tokens import DEFAULT_MIN_VALIDITY, TokenProvider

_CONNECT_TIMEOUT_SECONDS = 10.0


def endpoint_from_settings(settings: Settings) -> BcEndpoint:
    """The BC environment (and default company) the settings point at."""
    bc = settings.bc
    return BcEndpoint(
        base_url=bc.api_base_url,
        environment=bc.environment,
        tenant_id=settings.auth.tenant_id,
        company_id=UUID(bc.company_id) if bc.company_id else None,
        company_name=bc.company_name,
    )


def endpoint_for(connection: Connection, settings: Settings) -> BcEndpoint:
    """Where a connection's BC environment lives: the deployment's BC_API_BASE_URL, the connection's tenant,
    environment and default company (the direct-tenant URL form: reference (b), B1 "URL forms")."""
    return BcEndpoint(
        base_url=settings.bc.api_base_url,
        environment=connection.environment,
        tenant_id=connection.tenant_id,
        company_id=connection.company_id,
        company_name=connection.company_name,
    )


def agent_for(connection: Connection, identity: Identity | None = None) -> str:
    """The User-Agent of a connection's requests as one of its identities (the primary by default): BC's telemetry
    names the connection and identity of each request by it (shared/bc/sender.py, `user_agent`)."""
    return user_agent(connection.name, (identity or connection.primary).name)


def budget_key(settings: Settings) -> str:
    """The settings' connection's throttle key: (environment, identity), see Connection.budget_key."""
    return connection_from_settings(settings).budget_key


def throttle_config_from_settings(
    settings: Settings, *, heartbeat_seconds: float = HEARTBEAT_SECONDS
) -> ThrottleConfig:
    """The limits of the `bc` settings group."""
    bc = settings.bc
    return ThrottleConfig(
        requests=bc.rate_limit_requests,
        window_seconds=bc.rate_limit_window_seconds,
        safety_margin=bc.rate_safety_margin,
        max_in_flight=bc.max_in_flight,
        heartbeat_seconds=heartbeat_seconds,
    )


def build_throttle(
    settings: Settings,
    store: CoordinationStore,
    *,
    clock: Clock | None = None,
    heartbeat_seconds: float = HEARTBEAT_SECONDS,
) -> SharedThrottle:
    """One process's throttle for the configured identity (share it between all clients of the process)."""
    key = partition_key_for(budget_key(settings))
    config = throttle_config_from_settings(settings, heartbeat_seconds=heartbeat_seconds)
    return SharedThrottle(store, key, config, clock=clock)


def http_client_from_settings(
    settings: Settings, transport: httpx.AsyncBaseTransport | None = None
) -> httpx.AsyncClient:
    """An httpx client trusting LOCAL_CA_BUNDLE when set (local sandbox), the system store otherwise; on aiohttp
    (shared/bc/transport.py says why) unless given a transport or the environment names a proxy."""
    timeout = httpx.Timeout(
        settings.bc.request_timeout_seconds,
        connect=min(_CONNECT_TIMEOUT_SECONDS, settings.bc.request_timeout_seconds),
    )
    limits = httpx.Limits(
        max_connections=2 * settings.bc.max_in_flight, max_keepalive_connections=settings.bc.max_in_flight
    )
    verify = httpx_verify(settings.local)
    # httpx mounts the environment's proxies only on its own transport (AsyncClient: `allow_env_proxies = trust_env
    # and transport is None`), so a deployment behind a proxy keeps it.
    if transport is None and not names_proxy(urllib.request.getproxies()):
        transport = AiohttpTransport(verify, limits)
    return httpx.AsyncClient(verify=verify, timeout=timeout, limits=limits, transport=transport)


def build_client(
    settings: Settings,
    tokens: TokenProvider,
    throttle: Throttle,
    *,
    http: httpx.AsyncClient | None = None,
    recorder: Recorder | None = None,
    policy: RetryPolicy = DEFAULT_RETRY_POLICY,
    clock: Clock | None = None,
    endpoint: BcEndpoint | None = None,
    agent: str | None = None,
) -> BusinessCentralClient:
    """A BC client for `endpoint` (the settings' environment when None); the token must outlive a whole request
    (timeout + 1 min). `agent` (`agent_for`): the User-Agent naming the connection and identity; by default the
    settings' connection (BC_CONNECTION_NAME) as its primary identity."""
    min_validity = max(DEFAULT_MIN_VALIDITY, timedelta(seconds=settings.bc.request_timeout_seconds + 60))
    sender = RequestSender(
        http or http_client_from_settings(settings),
        tokens,
        throttle,
        min_validity=min_validity,
        policy=policy,
        recorder=recorder,
        clock=clock,
        agent=agent or user_agent(settings.auth.connection_name, PRIMARY_IDENTITY),
    )
    return BusinessCentralClient(sender, endpoint or endpoint_from_settings(settings))
