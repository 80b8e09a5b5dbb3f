"""The azure.* clients' environment options: no per-request proxy/netrc lookups unless a proxy is configured."""

from __future__ import annotations

import pytest

from shared.azure_clients import env_options, sdk_options
from shared.settings import LocalSettings


def test_clients_ignore_the_environment_when_no_proxy_is_set() -> None:
    """Without a proxy variable the SDK's aiohttp session does not trust the environment (no netrc/proxy reads)."""
    assert env_options({}) == {"use_env_settings": False}
    assert env_options({"no": "localhost"}) == {"use_env_settings": False}


@pytest.mark.parametrize("scheme", ["https", "http", "all"])
def test_clients_keep_the_sdk_default_when_a_proxy_is_set(scheme: str) -> None:
    """A proxied deployment keeps the SDK's own environment handling (proxies, NO_PROXY, netrc)."""
    assert env_options({scheme: "http://proxy.example:3128", "no": "localhost"}) == {}


def test_sdk_options_carry_the_environment_choice(monkeypatch: pytest.MonkeyPatch) -> None:
    """Every client built from sdk_options gets the same choice as the storage clients."""
    for name in ("HTTPS_PROXY", "https_proxy", "HTTP_PROXY", "http_proxy", "ALL_PROXY", "all_proxy"):
        monkeypatch.delenv(name, raising=False)
    assert sdk_options(LocalSettings())["use_env_settings"] is False
    monkeypatch.setenv("HTTPS_PROXY", "http://proxy.example:3128")
    assert "use_env_settings" not in sdk_options(LocalSettings())
