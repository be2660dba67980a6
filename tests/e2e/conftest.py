"""End-to-end fixtures: the real server on loopback with simulated phones on real sockets."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import pytest

from uacsta.clients.cstatcp import CstaTcpClient
from uacsta.config import Settings, load_settings
from uacsta.server import Server
from uacsta.simulator.runtime import Simulation

PASSWORD = "phone-secret"


def make_settings(data: Path, *, journal: bool = True, **phones: Any) -> Settings:
    """Test settings; ``journal=False`` leaves out the server's own monitor on every line
    (for tests that count the monitors in the phones, which the journal's would change)."""
    settings = load_settings(
        env={},
        overrides={
            "phones": {
                "listen": ["udp:127.0.0.1:0", "tcp:127.0.0.1:0", "tls:127.0.0.1:0"],
                "password": PASSWORD,
                "keepalive_interval": 30,
                "csta_timeout": 1.0,
                "relink_backoff": 0.2,
            },
            "clients": {
                "sip_listen": ["tcp:127.0.0.1:0"],
                "csta_listen": ["tcp:127.0.0.1:0"],
                "accounts": [{"name": "crm", "password": "crm-secret"}],
            },
            "store": {"path": str(data)},
            "http": {"listen": "tcp:127.0.0.1:0"},
            "log": {"level": "DEBUG"},
        },
    )
    for key, value in phones.items():  # test timers below the production minimums
        setattr(settings.phones, key, value)
    settings.journal.enabled = journal
    return settings


async def wait_until(predicate: Callable[[], bool], timeout: float = 10.0, what: str = "") -> None:
    """Poll a condition of the running system until it holds (bounded)."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while not predicate():
        if loop.time() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {what or predicate}")
        await asyncio.sleep(0.02)


def phone_ports(server: Server) -> dict[str, int]:
    assert server.phones is not None
    return {lst.transport: lst.port for lst in server.phones.ua.transport.listeners}


def csta_port(server: Server) -> int:
    assert server.cstatcp is not None
    return int(server.cstatcp.servers[0].sockets[0].getsockname()[1])


class Harness:
    def __init__(self, tmp_path: Path) -> None:
        self.tmp_path = tmp_path
        self.server: Server | None = None
        self.sims: list[Simulation] = []
        self.clients: list[CstaTcpClient] = []

    async def start_server(self, *, journal: bool = True, **phones: Any) -> Server:
        self.server = Server(make_settings(self.tmp_path / "data", journal=journal, **phones))
        await self.server.start()
        return self.server

    async def stop_server(self) -> None:
        if self.server is not None:
            await self.server.stop()
            self.server = None

    def simulation(self, **kwargs: Any) -> Simulation:
        assert self.server is not None
        kwargs.setdefault("password", PASSWORD)
        kwargs.setdefault("min_se", 1)
        sim = Simulation("127.0.0.1", phone_ports(self.server), **kwargs)
        self.sims.append(sim)
        return sim

    async def csta_client(
        self, user: str = "crm", password: str = "crm-secret", **kwargs: Any
    ) -> CstaTcpClient:
        assert self.server is not None
        client = CstaTcpClient(**kwargs)
        self.clients.append(client)
        await client.connect("127.0.0.1", csta_port(self.server))
        await client.login(user, password)
        return client

    def state(self, mac: str) -> str | None:
        assert self.server is not None and self.server.inventory is not None
        record = self.server.inventory.get(mac)
        return record.state if record else None

    async def wait_state(self, mac: str, state: str, timeout: float = 10.0) -> None:
        await wait_until(lambda: self.state(mac) == state, timeout, f"{mac} {state}")


@pytest.fixture
async def harness(tmp_path: Path) -> AsyncIterator[Harness]:
    h = Harness(tmp_path)
    yield h
    for client in h.clients:
        await client.close()
    for sim in h.sims:
        await sim.close()
    await h.stop_server()
