"""uacsta nodes behind the real Kamailio edge (deploy/kamailio/kamailio.cfg, docs/edge.md).

Simulated phones register to Kamailio, which dispatches to in-process uacsta servers on real
loopback sockets. Phones bind 127.0.0.2 and up, Kamailio and the nodes 127.0.0.1 (the node's
``phones.trusted_proxies``), so the tests see whose address a request carries.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from tests.e2e.conftest import PASSWORD, Harness, phone_ports, wait_until
from tests.engines.kamailio import KamailioEdge, kamailio_edge
from uacsta.csta import messages as m
from uacsta.server import Server
from uacsta.simulator.agent import PhoneAgent
from uacsta.simulator.runtime import Simulation

pytestmark = pytest.mark.kamailio

WAIT = 10.0


def node_uri(server: Server, transport: str = "udp") -> str:
    param = "" if transport == "udp" else f";transport={transport}"
    return f"sip:127.0.0.1:{phone_ports(server)[transport]}{param}"


class Edge:
    """Nodes (harnesses), the edge in front of them, phones registering to the edge."""

    def __init__(self, tmp_path: Path) -> None:
        self.tmp_path = tmp_path
        self.nodes: list[Harness] = []
        self.sims: list[Simulation] = []

    async def node(self, **phones: Any) -> Server:
        harness = Harness(self.tmp_path / f"node{len(self.nodes)}")
        self.nodes.append(harness)
        phones.setdefault("trusted_proxies", ["127.0.0.1"])
        return await harness.start_server(journal=False, **phones)

    def phone(
        self,
        edge: KamailioEdge,
        lines: list[str],
        *,
        transport: str = "udp",
        host: str = "127.0.0.2",
        password: str = PASSWORD,
    ) -> PhoneAgent:
        sim = Simulation(
            edge.host,
            {"udp": edge.port, "tcp": edge.port},
            password=password,
            min_se=1,
        )
        self.sims.append(sim)
        agent = sim.add_phone("snom", lines, transport=transport)
        agent.local_host = host
        return agent

    async def close(self) -> None:
        for sim in self.sims:
            await sim.close()
        for harness in self.nodes:
            await harness.stop_server()


@pytest.fixture
async def edge_setup(tmp_path: Path) -> AsyncIterator[Edge]:
    setup = Edge(tmp_path)
    try:
        yield setup
    finally:
        await setup.close()


def state(server: Server, mac: str) -> str | None:
    assert server.inventory is not None
    record = server.inventory.get(mac)
    return record.state if record is not None else None


async def wait_ready(server: Server, agent: PhoneAgent, edge: KamailioEdge) -> None:
    try:
        await wait_until(lambda: state(server, agent.mac) == "ready", WAIT, f"{agent.mac} ready")
    except AssertionError:
        raise AssertionError(f"{agent.mac}: {state(server, agent.mac)}\n{edge.log()}") from None


@pytest.mark.parametrize("transport", ["udp", "tcp"])
async def test_phone_links_through_the_edge_and_csta_crosses_it(
    edge_setup: Edge, tmp_path: Path, transport: str
) -> None:
    server = await edge_setup.node()
    with kamailio_edge([node_uri(server)], tmp_path / "kamailio") as edge:
        agent = edge_setup.phone(edge, ["200"], transport=transport)
        await agent.start()
        await wait_ready(server, agent, edge)

        assert server.inventory is not None
        record = server.inventory.get(agent.mac)
        assert record is not None and record.lines == ["sip:200@sim.invalid"]
        # The binding's Path is the edge's, with the phone's address as the edge saw it.
        assert len(record.path) == 1 and f"127.0.0.1:{edge.port}" in record.path[0]
        assert "received=" in record.path[0]
        assert record.contact is not None and record.contact.startswith(f"sip:{agent.mac}@")
        if transport == "udp":
            # The phone's own address, from its Via below the edge's (trusted proxy).
            assert (record.ip, record.port) == ("127.0.0.2", agent.local_port)

        # The CSTA INVITE came through the edge and the edge stays in the dialog.
        usage = agent.usage
        assert usage is not None
        assert usage.flow.remote == (edge.host, edge.port) or usage.flow == agent._flow
        assert any(f"127.0.0.1:{edge.port}" in r for r in usage.dialog.route_set)
        if transport == "tcp":
            assert usage.flow == agent._flow  # over the connection the phone registered on

        # A client's request reaches the phone; its answer and its event come back.
        client = await edge_setup.nodes[0].csta_client()
        started = await client.request(m.MonitorStart(monitor_object="200"))
        assert isinstance(started, m.MonitorStartResponse)
        done = await client.request(m.SetDoNotDisturb(device="200", do_not_disturb_on=True))
        assert isinstance(done, m.SetDoNotDisturbResponse)
        event = await client.wait_for(m.DoNotDisturbEvent, WAIT)
        assert event.monitor_cross_ref_id == started.monitor_cross_ref_id
        assert agent.received["SetDoNotDisturb"] == 1
        await client.close()
        edge_setup.nodes[0].clients.remove(client)
        await asyncio.sleep(0)
