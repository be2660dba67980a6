"""Cluster fixtures: in-process uacsta nodes on one real nats-server (tests/engines/nats.py),
simulated phones registering with the node of the test's choice, CSTA clients on any node."""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import signal
import sys
from collections.abc import AsyncIterator, Sequence
from pathlib import Path
from typing import Any

import pytest

from tests.e2e.conftest import PASSWORD, csta_port, make_settings, phone_ports
from tests.engines.nats import nats_url  # noqa: F401  (the session's nats-server)
from uacsta.clients.cstatcp import CstaTcpClient
from uacsta.control import call
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


class NodeProcess:
    """``uacsta serve`` as one node of the cluster, killable.

    ``host``: the address its phone listener binds (a node behind an edge binds its own, not
    0.0.0.0); ``trusted_proxies``: ``phones.trusted_proxies`` (the edge's address);
    ``store_url``: ``store.url`` (a shared PostgreSQL store), else SQLite in its directory.
    """

    def __init__(
        self,
        tmp_path: Path,
        nodes: Nodes,
        node_id: str,
        *,
        lease: float = 3.0,
        host: str = "127.0.0.1",
        trusted_proxies: Sequence[str] = (),
        store_url: str = "",
        keepalive_interval: int = 30,
    ) -> None:
        self.node_id = node_id
        self.data = tmp_path / f"proc-{node_id}"
        self.data.mkdir(parents=True)
        self.sock = self.data / "uacsta.sock"
        self.log = tmp_path / f"{node_id}.log"
        self.host = host
        #: Learnt from its status once started (ports 0: no race with other tests for them).
        self.phone_port = 0
        self.csta_port = 0
        self.config = tmp_path / f"{node_id}.toml"
        proxies = ", ".join(f'"{p}"' for p in trusted_proxies)
        store_line = f'url = "{store_url}"' if store_url else ""
        self.config.write_text(
            f"""
[phones]
listen = ["udp:{host}:0"]
password = "{PASSWORD}"
relink_backoff = 0.2
csta_timeout = 2.0
keepalive_interval = {keepalive_interval}
trusted_proxies = [{proxies}]

[clients]
sip_listen = ["tcp:127.0.0.1:0"]
csta_listen = ["tcp:127.0.0.1:0"]
[[clients.accounts]]
name = "crm"
password = "crm-secret"

[store]
path = "{self.data}"
{store_line}

[http]
listen = "tcp:127.0.0.1:0"

[log]
level = "DEBUG"

[cluster]
nats_url = "{nodes.url}"
node_id = "{node_id}"
name = "{nodes.name}"
lease_seconds = {lease}
"""
        )
        self.proc: asyncio.subprocess.Process | None = None

    async def start(self) -> None:
        with self.log.open("ab") as log:
            self.proc = await asyncio.create_subprocess_exec(
                sys.executable, "-m", "uacsta.cli", "serve", "--config", str(self.config),
                stdout=log, stderr=log,
            )  # fmt: skip
        loop = asyncio.get_running_loop()
        deadline = loop.time() + 30
        while (status := await self.status()) is None:
            if self.proc.returncode is not None or loop.time() > deadline:
                raise AssertionError(f"the node did not start:\n{self.tail()}")
            await asyncio.sleep(0.05)
        (phones,) = [a for a in status["listening"] if a.startswith("phones udp:")]
        self.phone_port = int(phones.rsplit(":", 1)[1])
        (csta,) = [a for a in status["listening"] if a.startswith("csta tcp:")]
        self.csta_port = int(csta.rsplit(":", 1)[1])

    async def status(self) -> dict[str, Any] | None:
        """Its status; None when it does not answer (not started, or being killed)."""
        try:
            answer = await call(self.sock, {"cmd": "status"}, timeout=2.0)
        except OSError:  # killed while answering
            return None
        return answer.get("status", answer) if answer is not None else None

    def kill(self) -> None:
        assert self.proc is not None
        self.proc.send_signal(signal.SIGKILL)

    async def stop(self) -> None:
        """Killed if still running (a test's clean-up)."""
        if self.proc is None:
            return
        if self.proc.returncode is None:
            self.proc.kill()
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self.proc.wait(), 5)

    def tail(self, lines: int = 40) -> str:
        if not self.log.exists():
            return ""
        return "\n".join(self.log.read_text(errors="replace").splitlines()[-lines:])


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
