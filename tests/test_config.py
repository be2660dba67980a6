"""Settings: defaults, TOML, environment, validation messages that name the key."""

from __future__ import annotations

from pathlib import Path

import pytest

from uacsta.config import ConfigError, apply_changes, load_settings


def test_defaults_are_the_documented_ones() -> None:
    s = load_settings(env={})
    assert s.phones.listen == ["udp:0.0.0.0:5060", "tcp:0.0.0.0:5060", "tls:0.0.0.0:5061"]
    assert s.clients.sip_listen == ["tcp:0.0.0.0:5062", "tls:0.0.0.0:5063"]
    assert s.clients.csta_listen == ["tcp:0.0.0.0:8882", "tls:0.0.0.0:8883"]
    assert (s.phones.auto_activate, s.phones.registration_expires) == (True, 300)
    assert (s.phones.keepalive_interval, s.phones.session_expires) == (60, 1800)
    assert s.http.listen == "tcp:0.0.0.0:8080"


def test_toml_then_environment_precedence(tmp_path: Path) -> None:
    cfg = tmp_path / "u.toml"
    cfg.write_text(
        '[phones]\npassword = "from-file"\nkeepalive_interval = 30\n'
        '[[clients.accounts]]\nname = "crm"\npassword = "x"\ndevices = ["100"]\n'
    )
    s = load_settings(
        cfg,
        env={
            "UACSTA_PHONES__PASSWORD": "from-env",
            "UACSTA_PHONES__LISTEN": "udp:127.0.0.1:5070,tcp:127.0.0.1:5070",
        },
    )
    assert s.phones.password == "from-env"
    assert s.phones.keepalive_interval == 30
    assert s.phones.listen == ["udp:127.0.0.1:5070", "tcp:127.0.0.1:5070"]
    assert s.clients.accounts[0].devices == ["100"]


@pytest.mark.parametrize(
    ("env", "message"),
    [
        ({"UACSTA_PHONES__PASWORD": "x"}, "unknown setting(s) phones.pasword"),
        ({"UACSTA_PHONES__AUTO_ACTIVATE": "maybe"}, "phones.auto_activate: expected true or false"),
        (
            {"UACSTA_PHONES__KEEPALIVE_INTERVAL": "soon"},
            "phones.keepalive_interval: expected a number",
        ),
        ({"UACSTA_PHONES__LISTEN": "sctp:0.0.0.0:5060"}, "phones.listen"),
        ({"UACSTA_PHONES__SESSION_EXPIRES": "30"}, "RFC 4028"),
        ({"UACSTA_HTTP__LISTEN": "tcp:0.0.0.0:http"}, "http.listen"),
        ({"UACSTA_CLIENTS__SESSION_DURATION": "-5"}, "clients.session_duration: must be positive"),
        (
            {"UACSTA_PHONES__TRUSTED_PROXIES": "192.0.2.10,10.0.0.1/8"},
            "phones.trusted_proxies: '10.0.0.1/8' is not an IP address or network",
        ),
    ],
)
def test_errors_name_the_key(env: dict[str, str], message: str) -> None:
    with pytest.raises(ConfigError) as info:
        load_settings(env=env)
    assert message in str(info.value)


def test_missing_or_broken_file(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="does not exist"):
        load_settings(tmp_path / "nope.toml", env={})
    bad = tmp_path / "bad.toml"
    bad.write_text("[phones\n")
    with pytest.raises(ConfigError, match="not valid TOML"):
        load_settings(bad, env={})


def test_apply_changes_validates() -> None:
    s = load_settings(env={})
    new = apply_changes(s, {"phones": {"password": "p2"}})
    assert new.phones.password == "p2" and s.phones.password == "change-me"
    with pytest.raises(ConfigError, match=r"phones\.registration_expires"):
        apply_changes(s, {"phones": {"registration_expires": 1}})


def test_a_none_change_removes_an_entry() -> None:
    s = apply_changes(load_settings(env={}), {"phones": {"passwords": {"001565AABBCC": "x"}}})
    assert s.phones.passwords == {"001565AABBCC": "x"}
    s = apply_changes(s, {"phones": {"passwords": {"001565AABBCC": None}}})
    assert s.phones.passwords == {}
