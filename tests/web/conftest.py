"""API fixtures: the real server on loopback, simulated phones, and HTTP clients against it."""

from __future__ import annotations

import json
from base64 import b64encode
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import itsdangerous
import pytest

from tests.e2e.conftest import Harness
from uacsta.server import Server
from uacsta.simulator.agent import PhoneAgent
from uacsta.web.auth import Auth

A, B = "sip:100@sim.invalid", "sip:200@sim.invalid"
CSRF = "test-csrf-token"


@dataclass
class Api:
    """The running server, its phones, and an admin HTTP client (API token)."""

    harness: Harness
    server: Server
    phones: list[PhoneAgent]
    client: httpx.AsyncClient
    token: str
    extra: list[httpx.AsyncClient] = field(default_factory=list)

    @property
    def base(self) -> str:
        return f"http://127.0.0.1:{self.server.http_port}"

    @property
    def ws_base(self) -> str:
        return f"ws://127.0.0.1:{self.server.http_port}"

    @property
    def auth(self) -> Auth:
        assert self.server.store is not None
        return Auth(self.server.store)

    def session_cookie(self, user: str) -> str:
        """A signed session cookie as the login pages would set it (SessionMiddleware format),
        naming a server-side session opened for ``user``."""
        secret = (self.server.data_dir / "session.key").read_text().strip()
        session_id = self.auth.open_session(user)
        data = b64encode(json.dumps({"sid": session_id, "csrf": CSRF}).encode())
        return itsdangerous.TimestampSigner(secret).sign(data).decode()

    def http(self, *, token: str | None = None, user: str | None = None) -> httpx.AsyncClient:
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        if user:
            headers["X-CSRF-Token"] = CSRF
        cookies = {"uacsta_session": self.session_cookie(user)} if user else {}
        client = httpx.AsyncClient(
            base_url=self.base, headers=headers, cookies=cookies, timeout=15.0
        )
        self.extra.append(client)
        return client


async def start_api(harness: Harness, vendors: tuple[str, ...] = ("yealink", "snom")) -> Api:
    server = await harness.start_server()
    sim = harness.simulation()
    phones = [
        sim.add_phone(vendor, [str(100 * (i + 1))], transport="udp" if i % 2 == 0 else "tcp")
        for i, vendor in enumerate(vendors)
    ]
    await sim.start()
    for agent in phones:
        await harness.wait_state(agent.mac, "ready")
    assert server.store is not None
    _id, token = Auth(server.store).create_token("tests")
    client = httpx.AsyncClient(
        base_url=f"http://127.0.0.1:{server.http_port}",
        headers={"Authorization": f"Bearer {token}"},
        timeout=15.0,
    )
    return Api(harness, server, phones, client, token)


@pytest.fixture
async def api(tmp_path: Path) -> AsyncIterator[Api]:
    harness = Harness(tmp_path)
    try:
        running = await start_api(harness)
        try:
            yield running
        finally:
            for client in [running.client, *running.extra]:
                await client.aclose()
    finally:
        for sim in harness.sims:
            await sim.close()
        await harness.stop_server()
