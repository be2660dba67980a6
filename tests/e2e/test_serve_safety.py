"""``uacsta serve`` and the well-known default passwords (issue 19), as a subprocess.

With the default passwords on listeners bound to every interface it refuses to start and says
which setting to change and how; with ``--allow-default-credentials`` it starts and warns in
its log, its banner, /healthz and the admin; on loopback it says nothing. The banner lists
what the server really listens on.
"""

from __future__ import annotations

import asyncio
import os
import re
import signal
import sys
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

from tests.e2e.conftest import wait_until

#: This checkout's uacsta (not whatever the environment's ``uacsta`` script imports).
UACSTA = (sys.executable, "-m", "uacsta.cli")


def env_for(tmp_path: Path, host: str) -> dict[str, str]:
    """Default passwords; every listener on ``host`` at an ephemeral port."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("UACSTA_")}
    env.update(
        {
            "UACSTA_PHONES__LISTEN": f"udp:{host}:0,tcp:{host}:0",
            "UACSTA_CLIENTS__SIP_LISTEN": f"tcp:{host}:0",
            "UACSTA_CLIENTS__CSTA_LISTEN": f"tcp:{host}:0",
            "UACSTA_HTTP__LISTEN": f"tcp:{host}:0",
            "UACSTA_STORE__PATH": str(tmp_path / "data"),
            "PYTHONPATH": os.pathsep.join(sys.path),
        }
    )
    return env


async def test_serve_refuses_default_passwords_on_every_interface(tmp_path: Path) -> None:
    proc = await asyncio.create_subprocess_exec(
        *UACSTA,
        "serve",
        env=env_for(tmp_path, "0.0.0.0"),
        stdin=asyncio.subprocess.DEVNULL,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
        cwd=tmp_path,
    )
    out, err = await asyncio.wait_for(proc.communicate(), 60)
    text = err.decode()
    assert proc.returncode == 2, text
    assert "refusing to start" in text
    # Which setting, and how: the environment variable and the TOML key.
    assert "phones.password" in text and "UACSTA_PHONES__PASSWORD=" in text
    assert "[phones]" in text and 'password = "<a secret>"' in text
    assert "clients.accounts[0].password (account 'cti')" in text
    assert "[[clients.accounts]]" in text
    assert "--allow-default-credentials" in text
    assert "uacsta is running" not in out.decode()
    assert not (tmp_path / "data" / "uacsta.sock").exists()


@dataclass
class Running:
    proc: asyncio.subprocess.Process
    banner: str
    log: Path
    data: Path

    @property
    def web_port(self) -> int:
        match = re.search(r"web http:[^ ]+:(\d+)", self.banner)
        assert match, self.banner
        return int(match[1])


async def start_serve(tmp_path: Path, host: str, *args: str) -> Running:
    log = tmp_path / "serve.log"
    with log.open("wb") as err:
        proc = await asyncio.create_subprocess_exec(
            *UACSTA,
            "serve",
            *args,
            env=env_for(tmp_path, host),
            stdin=asyncio.subprocess.DEVNULL,
            stdout=asyncio.subprocess.PIPE,
            stderr=err,
            cwd=tmp_path,
        )
    assert proc.stdout is not None
    lines: list[str] = []
    try:
        async with asyncio.timeout(60):
            while "API docs" not in "".join(lines) or lines[-1].strip():
                line = (await proc.stdout.readline()).decode()
                assert line, f"serve ended: {log.read_text(errors='replace')}"
                lines.append(line)
    except BaseException:
        proc.kill()
        await proc.wait()
        raise
    return Running(proc, "".join(lines), log, tmp_path / "data")


async def stop(running: Running) -> None:
    running.proc.send_signal(signal.SIGTERM)
    await asyncio.wait_for(running.proc.wait(), 30)
    assert running.proc.returncode == 0


@pytest.fixture
async def exposed(tmp_path: Path) -> AsyncIterator[Running]:
    running = await start_serve(tmp_path, "0.0.0.0", "--allow-default-credentials")
    try:
        yield running
    finally:
        await stop(running)


async def admin_page(port: int, data: Path, path: str) -> str:
    password = (data / "initial-admin-password").read_text().strip()
    async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}") as client:
        login = await client.get("/admin/login")
        csrf = re.search(r'name="csrf" value="([^"]+)"', login.text)
        assert csrf is not None
        r = await client.post(
            "/admin/login",
            data={"name": "admin", "password": password, "next": "/admin/", "csrf": csrf[1]},
            follow_redirects=False,
        )
        assert r.status_code == 303, r.text
        return (await client.get(path)).text


async def test_serve_with_the_flag_starts_and_warns_everywhere(exposed: Running) -> None:
    # The banner: the real listeners (every interface), then the warnings.
    banner = exposed.banner
    for kind in ("phones udp:0.0.0.0:", "phones tcp:0.0.0.0:", "csta tcp:0.0.0.0:"):
        assert f"listening        : {kind}" in banner, banner
    assert "tr87 tcp:0.0.0.0:" in banner and "web http:0.0.0.0:" in banner
    assert "127.0.0.1" not in banner.split("web admin")[0]  # no loopback claimed
    assert f"web admin        : http://127.0.0.1:{exposed.web_port}/admin/" in banner
    warnings = [line for line in banner.splitlines() if "WARNING (security)" in line]
    assert len(warnings) == 2 and "phones.password" in warnings[0], banner
    # The log.
    await wait_until(lambda: "uacsta started" in exposed.log.read_text(), 10, "start logged")
    log = exposed.log.read_text()
    assert re.search(r"WARNING .*SECURITY: phones\.password is the well-known default", log)
    assert "SECURITY: clients.accounts[0].password" in log
    # /healthz.
    async with httpx.AsyncClient() as client:
        health = (await client.get(f"http://127.0.0.1:{exposed.web_port}/healthz")).json()
    assert health["status"] == "ok" and len(health["warnings"]) == 2
    assert health["warnings"][0].startswith("phones.password is the well-known default")
    # The admin.
    page = await admin_page(exposed.web_port, exposed.data, "/admin/status")
    assert page.count("security-warning") == 2


async def test_serve_on_loopback_with_default_passwords_is_silent(tmp_path: Path) -> None:
    running = await start_serve(tmp_path, "127.0.0.1")
    try:
        assert "WARNING (security)" not in running.banner
        assert "listening        : phones udp:127.0.0.1:" in running.banner
        assert "web http:127.0.0.1:" in running.banner
        async with httpx.AsyncClient() as client:
            health = (await client.get(f"http://127.0.0.1:{running.web_port}/healthz")).json()
        assert health["warnings"] == []
        page = await admin_page(running.web_port, running.data, "/admin/")
        assert "security-warning" not in page
    finally:
        await stop(running)
    assert "SECURITY" not in running.log.read_text()
