"""Where the CLI's storage is, for its errors: the queue and table hosts and ports, never a key or a path.

A storage error from the SDK names neither (by design: a URL can carry a SAS); on a terminal the user needs to
know where the CLI tried, and whether it is the local world (`UseDevelopmentStorage=true` or Azurite's
well-known account) that is not running.
"""

from __future__ import annotations

from urllib.parse import urlsplit

DEVELOPMENT_ACCOUNT = "devstoreaccount1"
_DEVELOPMENT_ENDPOINTS = {
    "QueueEndpoint": "http://127.0.0.1:10001",
    "TableEndpoint": "http://127.0.0.1:10002",
}
LOCAL_WORLD_HINT = "is Azurite / `make dev` running?"


def connection_settings(conn_str: str) -> dict[str, str]:
    """The connection string's settings by name (`UseDevelopmentStorage=true` as Azurite's endpoints)."""
    settings = dict(part.split("=", 1) for part in conn_str.split(";") if "=" in part)
    if settings.get("UseDevelopmentStorage", "").lower() == "true":
        return {"AccountName": DEVELOPMENT_ACCOUNT, **_DEVELOPMENT_ENDPOINTS}
    return settings


def host_port(uri: str) -> str:
    """`host:port` of a service URI (the scheme's port when it names none); the URI's path and query dropped."""
    parts = urlsplit(uri if "//" in uri else f"https://{uri}")
    port = parts.port or (80 if parts.scheme == "http" else 443)
    return f"{parts.hostname}:{port}"


def _service_uri(settings: dict[str, str], service: str) -> str | None:
    explicit = settings.get(f"{service.capitalize()}Endpoint")
    if explicit:
        return explicit
    account, suffix = settings.get("AccountName"), settings.get("EndpointSuffix", "core.windows.net")
    return f"https://{account}.{service}.{suffix}" if account else None


def tried(conn_str: str | None, queue_uri: str | None, table_uri: str | None) -> str:
    """'queue at HOST:PORT, table at HOST:PORT' for the settings the CLI used ('' when it cannot tell)."""
    if conn_str:
        settings = connection_settings(conn_str)
        queue_uri, table_uri = _service_uri(settings, "queue"), _service_uri(settings, "table")
    found = [
        f"{name} at {host_port(uri)}" for name, uri in (("queue", queue_uri), ("table", table_uri)) if uri
    ]
    return ", ".join(found)


def is_development(conn_str: str | None) -> bool:
    """Whether the connection string is the local world's (`UseDevelopmentStorage=true`, Azurite's account)."""
    return bool(conn_str) and connection_settings(conn_str or "").get("AccountName") == DEVELOPMENT_ACCOUNT
