"""Cluster fixtures: in-process uacsta nodes on one real nats-server (tests/engines/nats.py),
simulated phones registering with the node of the test's choice, CSTA clients on any node."""

from __future__ import annotations

import itertools
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from tests.e2e.conftest import PASSWORD, csta_port, make_settings, phone_ports
from tests.engines.nats import nats_url  # noqa: F401  (the session's nats-server)
from uacsta.clients.cstatcp import CstaTcpClient
from uacsta.server import Server
from uacsta.simulator.runtime import Simulation

_clusters = itertools.count(1)


class Nodes:
    """Several uacsta nodes of one cluster (a fresh cluster name per test: the buckets of
    other tests on the same nats-server do not mix in)."""

    def __init__(self, tmp_path: Path, url: str) -> None:
        self.tmp_path = tmp_path
        self.url = url
        self.name = f"t{next(_clusters)}_{tmp_path.name[-12:].replace('-', '_')}"
        self.servers: dict[str, Server] = {}
        self.sims: list[Simulation] = []
        self.clients: list[CstaTcpClient] = []

    async def start(self, node: str, *, lease: float = 3.0, **phones: Any) -> Server:
        settings = make_settings(self.tmp_path / node, **phones)
        settings.cluster.nats_url = self.url
        settings.cluster.node_id = node
        settings.cluster.name = self.name
        settings.cluster.lease_seconds = lease
        server = Server(settings)
        await server.start()
        self.servers[node] = server
        return server

    async def stop(self, node: str) -> None:
        server = self.servers.pop(node, None)
        if server is not None:
            await server.stop()

    def simulation(self, **kwargs: Any) -> Simulation:
        kwargs.setdefault("password", PASSWORD)
        kwargs.setdefault("min_se", 1)
        first = next(iter(self.servers.values()))
        sim = Simulation("127.0.0.1", phone_ports(first), **kwargs)
        self.sims.append(sim)
        return sim

    def register_with(self, sim: Simulation, node: str) -> None:
        """The next phones ``sim`` adds register with ``node``."""
        sim.ports = phone_ports(self.servers[node])

    async def client(self, node: str) -> CstaTcpClient:
        client = CstaTcpClient()
        self.clients.append(client)
        await client.connect("127.0.0.1", csta_port(self.servers[node]))
        await client.login("crm", "crm-secret")
        return client


@pytest.fixture
async def nodes(tmp_path: Path, nats_url: str) -> AsyncIterator[Nodes]:  # noqa: F811
    made = Nodes(tmp_path, nats_url)
    yield made
    for client in made.clients:
        await client.close()
    for sim in made.sims:
        await sim.close()
    for node in list(made.servers):
        await made.stop(node)
