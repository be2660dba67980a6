"""The web's security settings are checked at load: a typo never silently trusts a proxy."""

from __future__ import annotations

import pytest

from uacsta.config import ConfigError, load_settings


def test_trusted_proxies_take_addresses_and_networks() -> None:
    settings = load_settings(env={"UACSTA_HTTP__TRUSTED_PROXIES": "10.0.0.5, 192.168.0.0/16, ::1"})
    assert settings.http.trusted_proxies == ["10.0.0.5", "192.168.0.0/16", "::1"]
    assert load_settings(env={}).http.trusted_proxies == []  # default: no proxy is believed


@pytest.mark.parametrize("value", ["proxy.example", "10.0.0.1/8", "*"])
def test_a_trusted_proxy_that_uvicorn_would_ignore_is_refused(value: str) -> None:
    with pytest.raises(ConfigError, match=r"http\.trusted_proxies"):
        load_settings(env={}, overrides={"http": {"trusted_proxies": [value]}})


@pytest.mark.parametrize(("key", "value"), [("session_lifetime", 30), ("max_sessions_per_user", 0)])
def test_session_bounds_are_checked(key: str, value: int) -> None:
    with pytest.raises(ConfigError, match=rf"http\.{key}"):
        load_settings(env={}, overrides={"http": {key: value}})
