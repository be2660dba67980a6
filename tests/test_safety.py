"""Default credentials on listeners other machines reach (uacsta.safety, issue 19): found,
named with how to change them, and shown by /healthz and every admin page (to admins)."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import httpx
import pytest

from uacsta.config import Settings, load_settings
from uacsta.safety import (
    DefaultCredentialsError,
    default_credentials,
    is_loopback_host,
    refusal,
)
from uacsta.server import Server
from uacsta.store.db import Store
from uacsta.web.app import create_app


def settings(**overrides: Any) -> Settings:
    return load_settings(env={}, overrides=overrides)


def loopback() -> dict[str, Any]:
    return {
        "phones": {"listen": ["udp:127.0.0.1:5060", "tcp:[::1]:5060", "tls:localhost:5061"]},
        "clients": {"sip_listen": ["tcp:127.0.0.1:5062"], "csta_listen": ["tcp:127.0.0.2:8882"]},
    }


@pytest.mark.parametrize(
    ("host", "expected"),
    [
        ("127.0.0.1", True),
        ("127.1.2.3", True),
        ("::1", True),
        ("[::1]", True),
        ("localhost", True),
        ("0.0.0.0", False),
        ("::", False),
        ("192.0.2.1", False),
        ("pbx.example.org", False),
    ],
)
def test_loopback_hosts(host: str, expected: bool) -> None:
    assert is_loopback_host(host) is expected


def test_the_defaults_expose_both_default_passwords() -> None:
    found = default_credentials(Settings())
    assert [c.setting for c in found] == [
        "phones.password",
        "clients.accounts[0].password (account 'cti')",
    ]
    assert "phones.listen udp:0.0.0.0:5060" in found[0].listeners
    assert "clients.csta_listen tcp:0.0.0.0:8882" in found[1].listeners


def test_loopback_listeners_or_own_passwords_are_silent() -> None:
    assert default_credentials(settings(**loopback())) == []
    own = settings(
        phones={"password": "a-secret"}, clients={"accounts": [{"name": "cti", "password": "x"}]}
    )
    assert default_credentials(own) == []


def test_each_exposed_default_is_found_apart() -> None:
    # Phones on the network with their own password, clients on loopback: nothing.
    only_phones = settings(
        phones={"password": "a-secret", "passwords": {"001565AABBCC": "change-me"}},
        clients=loopback()["clients"],
    )
    assert [c.setting for c in default_credentials(only_phones)] == [
        "phones.passwords.001565AABBCC"
    ]
    # One listener on an interface's address is enough.
    mixed = loopback()
    mixed["clients"]["csta_listen"].append("tls:192.0.2.7:8883")
    found = default_credentials(settings(**mixed))
    assert [c.listeners for c in found] == [("clients.csta_listen tls:192.0.2.7:8883",)]


def test_the_refusal_names_each_setting_and_how_to_set_it() -> None:
    text = refusal(default_credentials(Settings()))
    assert text.startswith("refusing to start")
    assert "phones.password" in text and "UACSTA_PHONES__PASSWORD=" in text
    assert "[phones]" in text and 'password = "<a secret>"' in text
    assert "clients.accounts[0].password" in text and "[[clients.accounts]]" in text
    assert "--allow-default-credentials" in text and "UACSTA_ALLOW_DEFAULT_CREDENTIALS=1" in text
    assert str(DefaultCredentialsError(default_credentials(Settings()))) == text


# --- what the web shows: /healthz and the admin pages -------------------------------------------


def web_server(tmp_path: Path, **overrides: Any) -> Server:
    s = load_settings(env={}, overrides={"store": {"path": str(tmp_path / "data")}, **overrides})
    server = Server(s)
    server.store = Store(s.store.database_url)
    return server


async def admin_page(server: Server, path: str) -> str:
    app = create_app(server)
    app.state.auth.set_password("admin", "admin-pw", role="admin")
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=app), base_url="http://uacsta.test"
    ) as client:
        login = await client.get("/admin/login")
        assert "Security:" not in login.text  # strangers are not told
        csrf = re.search(r'name="csrf" value="([^"]+)"', login.text)
        assert csrf is not None
        r = await client.post(
            "/admin/login",
            data={"name": "admin", "password": "admin-pw", "next": "/admin/", "csrf": csrf[1]},
            follow_redirects=False,
        )
        assert r.status_code == 303, r.text
        return (await client.get(path)).text


async def healthz(server: Server) -> dict[str, Any]:
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=create_app(server)), base_url="http://uacsta.test"
    ) as client:
        r = await client.get("/healthz")
    assert r.status_code == 200
    answer: dict[str, Any] = r.json()
    return answer


async def test_healthz_and_admin_warn_of_exposed_defaults(tmp_path: Path) -> None:
    server = web_server(tmp_path)
    try:
        health = await healthz(server)
        assert health["status"] == "ok"
        assert [w.split(" is ")[0] for w in health["warnings"]] == [
            "phones.password",
            "clients.accounts[0].password (account 'cti')",
        ]
        for path in ("/admin/", "/admin/settings", "/admin/status"):
            text = await admin_page(server, path)
            assert text.count("security-warning") == 2, path
            assert "phones.password is the well-known default" in text
    finally:
        assert server.store is not None
        server.store.close()


async def test_healthz_and_admin_silent_on_loopback(tmp_path: Path) -> None:
    server = web_server(tmp_path, **loopback())
    try:
        assert (await healthz(server))["warnings"] == []
        assert "security-warning" not in await admin_page(server, "/admin/")
    finally:
        assert server.store is not None
        server.store.close()
