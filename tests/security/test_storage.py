"""Stored secrets of a running server (issue 15 item 13): files owner-only, no secret echoed.

The data directory holds the database (password hashes, API token hashes, web sessions, and
the settings changed in the admin, phone and client passwords among them), the session-cookie
key, the TLS private key and the first admin password. These tests start the real server and
look at the files it made, at an install of old whose database was world-readable, and at the
admin pages after a password was changed there.
"""

from __future__ import annotations

import hashlib
import re
import sqlite3
import stat
from pathlib import Path

import httpx

from tests.security.conftest import Harness, make_settings
from uacsta.server import Server
from uacsta.web.auth import Auth

ADMIN_PASSWORD = "admin-secret-pw"


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


async def test_database_keys_and_their_directories_are_owner_only(harness: Harness) -> None:
    server = await harness.start_server()
    assert server.store is not None
    Auth(server.store).set_password("100", "user-secret-pw", role="user", extension="100")
    data = server.data_dir
    db = data / "uacsta.db"
    assert db.exists()
    assert mode(data) == 0o700, oct(mode(data))
    assert mode(db) == 0o600, oct(mode(db))
    # WAL mode: the -wal and -shm files hold recent pages of the same data.
    for suffix in ("-wal", "-shm"):
        side = db.with_name(db.name + suffix)
        assert side.exists(), side
        assert mode(side) == 0o600, (side, oct(mode(side)))
    assert mode(data / "session.key") == 0o600
    assert mode(data / "initial-admin-password") == 0o600
    tls = data / "tls"  # the phones' TLS listener made a self-signed certificate here
    assert mode(tls) == 0o700, oct(mode(tls))
    assert mode(tls / "uacsta-key.pem") == 0o600
    # Nothing else in the data directory is readable by group or others (the certificate is
    # public: phones are given it).
    loose = [
        (str(p), oct(mode(p)))
        for p in data.rglob("*")
        if p.name != "uacsta-cert.pem" and not p.is_socket() and mode(p) & 0o077
    ]
    assert loose == []


def _old_install(data: Path, token: str) -> Path:
    """A database as version 1 of the schema left it, world-readable (written by hand)."""
    data.mkdir(mode=0o755)
    db = data / "uacsta.db"
    with sqlite3.connect(db) as conn:
        conn.executescript(
            """
            CREATE TABLE schema_version (version INTEGER PRIMARY KEY, applied VARCHAR(32) NOT NULL);
            INSERT INTO schema_version VALUES (1, '2026-01-01T00:00:00+00:00');
            CREATE TABLE users (
                name VARCHAR(64) PRIMARY KEY, password_hash VARCHAR(255) NOT NULL,
                role VARCHAR(16) NOT NULL, extension VARCHAR(64), created VARCHAR(32) NOT NULL);
            CREATE TABLE api_tokens (
                id VARCHAR(16) PRIMARY KEY, name VARCHAR(128) NOT NULL,
                token_hash VARCHAR(64) NOT NULL UNIQUE, created VARCHAR(32) NOT NULL,
                last_used VARCHAR(32));
            """
        )
        conn.execute(
            "INSERT INTO api_tokens (id, name, token_hash, created) VALUES (?, ?, ?, ?)",
            ("0ld70ken", "crm", hashlib.sha256(token.encode()).hexdigest(), "2026-01-01"),
        )
    db.chmod(0o644)
    return db


async def test_an_old_world_readable_database_is_tightened_and_its_tokens_keep_working(
    harness: Harness,
) -> None:
    token = "uac_" + "x" * 43
    data = harness.tmp_path / "data"
    db = _old_install(data, token)
    assert mode(db) == 0o644
    harness.server = Server(make_settings(data))
    server = harness.server
    await server.start()
    assert mode(db) == 0o600, oct(mode(db))
    async with httpx.AsyncClient(
        base_url=f"http://127.0.0.1:{server.http_port}",
        headers={"Authorization": f"Bearer {token}"},
        timeout=10,
    ) as http:
        # A token of old keeps the full rights it was issued with: admin, read, control.
        r = await http.get("/api/v1/tokens")
        assert r.status_code == 200, r.text
        assert r.json() == [
            {
                "id": "0ld70ken",
                "name": "crm",
                "created": "2026-01-01",
                "scopes": ["admin", "control", "read"],
                "expires": None,
            }
        ]
        assert (await http.get("/api/v1/devices")).status_code == 200
        r = await http.put("/api/v1/devices/100/dnd", json={"on": True})
        assert r.status_code == 404, r.text  # got past the scope check to the device lookup


async def test_passwords_changed_in_the_admin_are_not_shown_back(harness: Harness) -> None:
    server = await harness.start_server()
    assert server.store is not None
    Auth(server.store).set_password("admin", ADMIN_PASSWORD, role="admin")
    async with httpx.AsyncClient(
        base_url=f"http://127.0.0.1:{server.http_port}", timeout=10
    ) as http:
        page = (await http.get("/admin/login")).text
        csrf = re.search(r'name="csrf" value="([^"]+)"', page)
        assert csrf
        r = await http.post(
            "/admin/login",
            data={"csrf": csrf.group(1), "name": "admin", "password": ADMIN_PASSWORD},
        )
        assert r.status_code == 303
        page = (await http.get("/admin/settings")).text
        csrf = re.search(r'name="csrf" value="([^"]+)"', page)
        assert csrf
        r = await http.post(
            "/admin/settings",
            data={
                "csrf": csrf.group(1),
                "section": "clients",
                "sip_listen": "tcp:127.0.0.1:0",
                "csta_listen": "tcp:127.0.0.1:0",
                "require_authentication": "on",
                "session_duration": "180",
                "max_session_duration": "3600",
                "account_count": "0",
                "new_account_name": "erp",
                "new_account_password": "erp-Secret-4711",
                "new_account_devices": "",
            },
        )
        assert r.status_code == 303, r.text
        assert any(a.name == "erp" for a in server.settings.clients.accounts)
        for path in ("/admin/settings", "/admin/status", "/api/v1/status"):
            r = await http.get(path)
            assert r.status_code == 200, (path, r.status_code)
            assert "erp-Secret-4711" not in r.text, path
