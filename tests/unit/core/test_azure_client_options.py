"""The azure.* clients' environment options: no per-request proxy/netrc lookups unless a proxy is configured."""

from __future__ import annotations

import importlib.util
import ssl
import sys

import pytest
from httpcore._synchronization import current_async_library

from shared.azure_clients import env_options, httpx_verify, remember_missing, sdk_options
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


def test_an_absent_optional_module_is_remembered_as_missing() -> None:
    """A module that is not installed is marked missing, so a later import fails without searching sys.path."""
    modules: dict[str, object] = {}
    remember_missing(("bcjobs_no_such_module",), modules)
    assert modules == {"bcjobs_no_such_module": None}


def test_an_installed_or_imported_module_is_left_alone() -> None:
    """An installed module stays importable; one already imported keeps its entry."""
    modules: dict[str, object] = {"ssl": ssl}
    remember_missing(("json", "ssl"), modules)
    assert modules == {"ssl": ssl}


def test_httpx_clients_find_the_async_library_without_a_failed_import_each_time() -> None:
    """After the BC client's verify= is built, httpcore's per-lock check answers from the module cache."""
    httpx_verify(LocalSettings())
    if importlib.util.find_spec("sniffio") is None:
        assert sys.modules["sniffio"] is None
    assert current_async_library() == "asyncio"
