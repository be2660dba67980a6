"""Attacks on the web logins, sessions and API tokens of a running server (issue 15 items 10, 12).

Every test talks real HTTP to the harness's server on loopback: concurrent wrong logins must not
all reach the password hash, a rotating ``X-Forwarded-For`` must not make a new source out of
one client, the admin login must not confirm a web-client user's password, a session cookie must
die with its logout and with a password change, and API tokens keep to their scopes and expiry.
"""

from __future__ import annotations

import asyncio
import re
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest

from tests.security.conftest import Harness, make_settings
from uacsta.server import Server
from uacsta.web import auth as web_auth
from uacsta.web.auth import Auth

ADMIN_PASSWORD = "admin-secret-pw"
USER_PASSWORD = "user-secret-pw"
#: Wrong logins of one source for one account before it is refused (http.max_login_failures).
LIMIT = 5


async def start(harness: Harness, **http: Any) -> Server:
    settings = make_settings(harness.tmp_path / "data")
    for key, value in http.items():
        setattr(settings.http, key, value)
    harness.server = Server(settings)
    await harness.server.start()
    assert harness.server.store is not None
    auth = Auth(harness.server.store)
    auth.set_password("admin", ADMIN_PASSWORD, role="admin")
    auth.set_password("100", USER_PASSWORD, role="user", extension="100")
    return harness.server


def client(server: Server) -> httpx.AsyncClient:
    return httpx.AsyncClient(base_url=f"http://127.0.0.1:{server.http_port}", timeout=30)


async def csrf(http: httpx.AsyncClient, page: str) -> str:
    r = await http.get(page)
    assert r.status_code == 200, r.text
    match = re.search(r'name="csrf" value="([^"]+)"', r.text)
    assert match, r.text
    return match.group(1)


async def admin_login(
    http: httpx.AsyncClient,
    password: str,
    *,
    name: str = "admin",
    token: str | None = None,
    headers: dict[str, str] | None = None,
) -> httpx.Response:
    token = token or await csrf(http, "/admin/login")
    return await http.post(
        "/admin/login",
        data={"csrf": token, "name": name, "password": password, "next": "/admin/"},
        headers=headers or {},
    )


async def client_login(
    http: httpx.AsyncClient, password: str, *, token: str | None = None
) -> httpx.Response:
    token = token or await csrf(http, "/client/login")
    return await http.post(
        "/client/login", data={"csrf": token, "extension": "100", "password": password}
    )


@pytest.fixture
def hash_runs(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """Every password check that reached argon2 (the expensive part an attacker wants)."""
    runs: list[str] = []
    original: Callable[[str, str], bool] = web_auth.verify_password

    def counted(password_hash: str, password: str) -> bool:
        runs.append("verify")
        return original(password_hash, password)

    monkeypatch.setattr(web_auth, "verify_password", counted)
    # The same-cost hash for unknown accounts (absent before the login limits were fixed).
    monkeypatch.setattr(
        web_auth, "_dummy_hash", lambda password: runs.append("dummy"), raising=False
    )
    return runs


# ------------------------------------------------------------------ item 10: login limits


async def test_concurrent_wrong_admin_logins_run_at_most_the_limit(
    harness: Harness, hash_runs: list[str]
) -> None:
    server = await start(harness)
    async with client(server) as http:
        token = await csrf(http, "/admin/login")
        answers = await asyncio.gather(
            *(admin_login(http, f"wrong-{i}", token=token) for i in range(40))
        )
        statuses = [r.status_code for r in answers]
        assert set(statuses) <= {401, 429}, statuses
        assert statuses.count(401) <= LIMIT, statuses
        assert statuses.count(429) >= 40 - LIMIT, statuses
        assert len(hash_runs) <= LIMIT, hash_runs
        # The block holds for the right password too (the guesser learns nothing).
        r = await admin_login(http, ADMIN_PASSWORD, token=token)
        assert r.status_code == 429
        assert "Too many failed logins" in r.text


async def test_concurrent_wrong_client_logins_run_at_most_the_limit(
    harness: Harness, hash_runs: list[str]
) -> None:
    server = await start(harness)
    async with client(server) as http:
        token = await csrf(http, "/client/login")
        answers = await asyncio.gather(
            *(client_login(http, f"wrong-{i}", token=token) for i in range(40))
        )
        statuses = [r.status_code for r in answers]
        assert set(statuses) <= {401, 429}, statuses
        assert statuses.count(401) <= LIMIT, statuses
        assert len(hash_runs) <= LIMIT, hash_runs


async def test_rotating_x_forwarded_for_does_not_bypass_the_limit(harness: Harness) -> None:
    server = await start(harness)
    async with client(server) as http:
        token = await csrf(http, "/admin/login")
        statuses = []
        for i in range(3 * LIMIT):
            r = await admin_login(
                http, "wrong", token=token, headers={"X-Forwarded-For": f"198.51.100.{i + 1}"}
            )
            statuses.append(r.status_code)
        assert statuses[:LIMIT] == [401] * LIMIT, statuses
        assert statuses[LIMIT:] == [429] * (2 * LIMIT), statuses


async def test_forwarded_for_is_honoured_from_a_configured_proxy(harness: Harness) -> None:
    server = await start(harness, trusted_proxies=["127.0.0.1"])
    async with client(server) as http:
        token = await csrf(http, "/admin/login")
        behind = {"X-Forwarded-For": "198.51.100.7"}
        for _ in range(LIMIT):
            assert (
                await admin_login(http, "wrong", token=token, headers=behind)
            ).status_code == 401
        r = await admin_login(http, "wrong", token=token, headers=behind)
        assert r.status_code == 429
        # Another client behind the same proxy is its own source.
        r = await admin_login(
            http, ADMIN_PASSWORD, token=token, headers={"X-Forwarded-For": "198.51.100.8"}
        )
        assert r.status_code == 303, r.text


def _error_of(page: str) -> str:
    match = re.search(r'id="login-error"[^>]*>(.*?)<', page, re.S)
    return match.group(1).strip() if match else ""


async def test_admin_login_does_not_confirm_a_web_client_password(harness: Harness) -> None:
    server = await start(harness)
    async with client(server) as http:
        token = await csrf(http, "/admin/login")
        wrong = await admin_login(http, "not-the-password", name="100", token=token)
        right = await admin_login(http, USER_PASSWORD, name="100", token=token)
        assert wrong.status_code == right.status_code == 401
        assert _error_of(wrong.text) == _error_of(right.text) == "Wrong user name or password."
        assert "web client" not in right.text
        assert "uacsta_session" not in right.headers.get("set-cookie", "")


# ------------------------------------------------------------------ item 12: sessions revoked


async def test_admin_session_is_dead_after_logout(harness: Harness) -> None:
    server = await start(harness)
    async with client(server) as http:
        assert (await admin_login(http, ADMIN_PASSWORD)).status_code == 303
        stolen = http.cookies["uacsta_session"]
        assert (await http.get("/api/v1/status")).status_code == 200
        token = await csrf(http, "/admin/users")
        r = await http.post("/admin/logout", data={"csrf": token})
        assert r.status_code == 303
    async with client(server) as replay:
        replay.cookies.set("uacsta_session", stolen)
        r = await replay.get("/api/v1/status")
        assert r.status_code == 401, r.text
        r = await replay.get("/admin/")
        assert r.status_code == 303 and r.headers["location"].startswith("/admin/login")


async def test_client_session_is_dead_after_logout(harness: Harness) -> None:
    server = await start(harness)
    async with client(server) as http:
        assert (await client_login(http, USER_PASSWORD)).status_code == 303
        stolen = http.cookies["uacsta_session"]
        assert (await http.get("/api/v1/devices")).status_code == 200
        token = await csrf(http, "/client/")
        assert (await http.post("/client/logout", data={"csrf": token})).status_code == 303
    async with client(server) as replay:
        replay.cookies.set("uacsta_session", stolen)
        assert (await replay.get("/api/v1/devices")).status_code == 401


async def test_password_change_revokes_every_session_of_the_user(harness: Harness) -> None:
    server = await start(harness)
    async with client(server) as first, client(server) as second, client(server) as user:
        assert (await admin_login(first, ADMIN_PASSWORD)).status_code == 303
        assert (await admin_login(second, ADMIN_PASSWORD)).status_code == 303
        assert (await client_login(user, USER_PASSWORD)).status_code == 303
        assert (await user.get("/api/v1/devices")).status_code == 200
        # The admin changes their own password in the first browser...
        token = await csrf(first, "/admin/users")
        r = await first.post(
            "/admin/password",
            data={
                "csrf": token,
                "current": ADMIN_PASSWORD,
                "new": "new-admin-pw",
                "confirm": "new-admin-pw",
            },
        )
        assert r.status_code == 303, r.text
        # ...the other browser's session is dead, the one that changed it carries on.
        assert (await second.get("/api/v1/status")).status_code == 401
        assert (await first.get("/api/v1/status")).status_code == 200
        # A reset of the web-client user's password ends the user's session.
        token = await csrf(first, "/admin/users")
        r = await first.post(
            "/admin/users", data={"csrf": token, "extension": "100", "password": "reset-pw-123"}
        )
        assert r.status_code == 303, r.text
        assert (await user.get("/api/v1/devices")).status_code == 401


# ------------------------------------------------------------------ API tokens


async def as_admin(http: httpx.AsyncClient) -> httpx.AsyncClient:
    """``http`` logged in to the admin, sending the session's CSRF token."""
    assert (await admin_login(http, ADMIN_PASSWORD)).status_code == 303
    http.headers["X-CSRF-Token"] = await csrf(http, "/admin/users")
    return http


async def test_a_read_token_cannot_control(harness: Harness) -> None:
    server = await start(harness)
    async with client(server) as admin:
        await as_admin(admin)
        r = await admin.post("/api/v1/tokens", json={"name": "wallboard", "scopes": ["read"]})
        assert r.status_code == 201, r.text
        assert r.json()["scopes"] == ["read"]
        read = r.json()["token"]
    async with client(server) as http:
        http.headers["Authorization"] = f"Bearer {read}"
        assert (await http.get("/api/v1/devices")).status_code == 200
        r = await http.post("/api/v1/devices/100/calls", json={"to": "200"})
        assert r.status_code == 403, r.text
        assert "control" in r.json()["error"]
        r = await http.put("/api/v1/devices/100/dnd", json={"on": True})
        assert r.status_code == 403
        r = await http.post("/api/v1/tokens", json={"name": "escalate"})
        assert r.status_code == 403
        assert "admin" in r.json()["error"]
        r = await http.get("/api/v1/phones")
        assert r.status_code == 403


async def test_an_expired_token_is_refused(harness: Harness) -> None:
    server = await start(harness)
    expires = datetime.now(UTC) + timedelta(seconds=2)
    async with client(server) as admin:
        await as_admin(admin)
        r = await admin.post(
            "/api/v1/tokens",
            json={"name": "short", "expires": expires.isoformat(timespec="seconds")},
        )
        assert r.status_code == 201, r.text
        token = r.json()["token"]
        # An expiry in the past is refused at creation.
        past = (datetime.now(UTC) - timedelta(minutes=1)).isoformat()
        r = await admin.post("/api/v1/tokens", json={"name": "old", "expires": past})
        assert r.status_code == 422
    async with client(server) as http:
        http.headers["Authorization"] = f"Bearer {token}"
        assert (await http.get("/api/v1/status")).status_code == 200
        last: list[httpx.Response] = []

        async def probe() -> None:
            last.append(await http.get("/api/v1/status"))

        async def expired() -> bool:
            await probe()
            return last[-1].status_code != 200

        deadline = asyncio.get_running_loop().time() + 10
        while not await expired():
            assert asyncio.get_running_loop().time() < deadline, "token never expired"
            await asyncio.sleep(0.2)
        assert last[-1].status_code == 401
        assert "expired" in last[-1].json()["error"]


async def test_scoped_tokens_are_offered_on_the_admin_page(harness: Harness) -> None:
    server = await start(harness)
    async with client(server) as admin:
        await as_admin(admin)
        page = await admin.get("/admin/tokens")
        assert 'name="scopes"' in page.text and 'name="expires"' in page.text
        token = await csrf(admin, "/admin/tokens")
        r = await admin.post(
            "/admin/tokens",
            data={"csrf": token, "name": "crm", "scopes": ["read", "control"], "expires": ""},
        )
        assert r.status_code == 200, r.text
        created = re.search(r"(uac_[A-Za-z0-9_-]{20,})", r.text)
        assert created, r.text
    assert server.store is not None
    rows = server.store.list_tokens()
    assert [sorted(t["scopes"]) for t in rows if t["name"] == "crm"] == [["control", "read"]]
    async with client(server) as http:
        http.headers["Authorization"] = f"Bearer {created.group(1)}"
        assert (await http.get("/api/v1/tokens")).status_code == 403
