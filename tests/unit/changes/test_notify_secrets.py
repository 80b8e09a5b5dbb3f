"""A connection's notification key and clientState: random, kept together, never shown."""

from __future__ import annotations

from shared.changes.secrets import MemoryNotifySecrets, NotifySecret, notification_prefix, notification_url
from shared.settings import load_settings, notification_base, settings_problems


async def test_ensure_creates_once_and_get_returns_the_same_values() -> None:
    secrets = MemoryNotifySecrets()
    assert await secrets.get("contoso") is None

    first = await secrets.ensure("contoso")
    assert first == await secrets.ensure("contoso") == await secrets.get("contoso")
    assert len(first.key) == len(first.client_state) == 32
    assert first.key != first.client_state
    assert int(first.key, 16) >= 0


def test_values_never_appear_in_repr_and_survive_json() -> None:
    secret = NotifySecret.new()
    assert secret.key not in repr(secret)
    assert secret.client_state not in repr(secret)
    assert NotifySecret.from_json(secret.to_json()) == secret


def test_comparisons_accept_only_the_exact_values() -> None:
    secret = NotifySecret.new()
    assert secret.matches_key(secret.key)
    assert not secret.matches_key(secret.key[:-1])
    assert secret.matches_state(secret.client_state)
    assert not secret.matches_state("")


def test_the_notification_url_is_the_base_the_connection_and_the_key() -> None:
    secret = NotifySecret.new()
    url = notification_url("https://app.example.net/", "contoso", secret)
    assert url == f"https://app.example.net/api/notifications/contoso/{secret.key}"
    assert url.startswith(notification_prefix("https://app.example.net"))


def test_the_base_is_the_setting_else_the_platform_host_name() -> None:
    hosted = load_settings({"WEBSITE_HOSTNAME": "app.azurewebsites.net"})
    assert notification_base(hosted) == "https://app.azurewebsites.net"
    both = load_settings(
        {"WEBSITE_HOSTNAME": "app.azurewebsites.net", "BC_NOTIFICATION_BASE_URL": "https://feed.contoso.com/"}
    )
    assert notification_base(both) == "https://feed.contoso.com"
    assert notification_base(load_settings({})) is None


def test_a_base_that_is_not_https_is_named_with_its_fix() -> None:
    bad = settings_problems({"BC_NOTIFICATION_BASE_URL": "ftp://feed.contoso.com"})
    assert [p.setting for p in bad if p.setting == "BC_NOTIFICATION_BASE_URL"] == ["BC_NOTIFICATION_BASE_URL"]
    local = settings_problems({"BC_NOTIFICATION_BASE_URL": "http://127.0.0.1:7071"})
    assert all(p.setting != "BC_NOTIFICATION_BASE_URL" for p in local)
