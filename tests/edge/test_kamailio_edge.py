"""uacsta nodes behind the real Kamailio edge (deploy/kamailio/kamailio.cfg, docs/edge.md).

Simulated phones register to Kamailio, which dispatches to in-process uacsta servers on real
loopback sockets. Phones bind 127.0.0.2 and up, Kamailio and the nodes 127.0.0.1 (the node's
``phones.trusted_proxies``), so the tests see whose address a request carries.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from tests.e2e.conftest import PASSWORD, Harness, phone_ports, wait_until
from tests.engines.kamailio import KamailioEdge, free_port, kamailio_edge
from uacsta.csta import messages as m
from uacsta.server import Server
from uacsta.simulator.agent import PhoneAgent
from uacsta.simulator.runtime import Simulation
from uacsta.sip.registrar import route_to

pytestmark = pytest.mark.kamailio

WAIT = 10.0


def node_uri(server: Server, transport: str = "udp") -> str:
    param = "" if transport == "udp" else f";transport={transport}"
    return f"sip:127.0.0.1:{phone_ports(server)[transport]}{param}"


class Edge:
    """Nodes (harnesses), the edge in front of them, phones registering to the edge.

    Closed in the order of a real shutdown: the nodes first (their BYEs cross the edge and
    the phones answer), then the phones, then the edge.
    """

    def __init__(self, tmp_path: Path) -> None:
        self.tmp_path = tmp_path
        self.nodes: list[Harness] = []
        self.sims: list[Simulation] = []
        self._edges = contextlib.ExitStack()

    def kamailio(self, nodes: list[str]) -> KamailioEdge:
        return self._edges.enter_context(kamailio_edge(nodes, self.tmp_path / "kamailio"))

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
        for harness in self.nodes:
            for client in harness.clients:
                await client.close()
            harness.clients.clear()
            await harness.stop_server()
        for sim in self.sims:
            await sim.close()
        self._edges.close()


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


@pytest.mark.parametrize(
    ("transport", "node_transport"), [("udp", "udp"), ("tcp", "udp"), ("udp", "tcp")]
)
async def test_phone_links_through_the_edge_and_csta_crosses_it(
    edge_setup: Edge, transport: str, node_transport: str
) -> None:
    """Phone to edge and edge to node, each over UDP or TCP."""
    server = await edge_setup.node()
    edge = edge_setup.kamailio([node_uri(server, node_transport)])
    agent = edge_setup.phone(edge, ["200"], transport=transport)
    await agent.start()
    await wait_ready(server, agent, edge)

    assert server.inventory is not None
    record = server.inventory.get(agent.mac)
    assert record is not None and record.lines == ["sip:200@sim.invalid"]
    # The binding's Path is the edge's, with the phone's address as the edge saw it.
    assert len(record.path) == 1 and f"127.0.0.1:{edge.port}" in record.path[0]
    assert "received=" in record.path[0]
    # Requests to the phone go to the edge over the transport it used towards this node.
    assert route_to(record.contact or "", record.path).transport == node_transport
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


async def test_one_phone_guessing_passwords_does_not_block_the_edge(edge_setup: Edge) -> None:
    # Low limits: three wrong REGISTERs from one address block it for every phone.
    server = await edge_setup.node(max_auth_failures=2, max_source_failures=3)
    edge = edge_setup.kamailio([node_uri(server)])
    guesser = edge_setup.phone(edge, ["300"], host="127.0.0.3", password="guess")
    await guesser.start(register=False)
    statuses = [await guesser.register() for _ in range(5)]
    assert statuses[:2] == [403, 403]
    assert statuses[-1] == 403
    assert server.phones is not None
    # Blocked: the guessing phone's address, never the edge's.
    assert server.phones.throttle.blocked_for("127.0.0.3", guesser.mac, _now()) > 0
    assert server.phones.throttle.blocked_for("127.0.0.1", None, _now()) == 0

    phone = edge_setup.phone(edge, ["200"])
    await phone.start()
    await wait_ready(server, phone, edge)
    assert phone.last_register_status == 200


def _now() -> float:
    return asyncio.get_running_loop().time()


async def test_probing_marks_a_node_up_and_the_phone_links_once_it_is(edge_setup: Edge) -> None:
    port = free_port()
    uri = f"sip:127.0.0.1:{port}"
    edge = edge_setup.kamailio([uri])
    # Nothing listens yet: the OPTIONS probe finds the node down, REGISTERs get 503.
    await wait_until(lambda: edge.states().get(uri, "").startswith("I"), WAIT, "node down")
    agent = edge_setup.phone(edge, ["200"])
    await agent.start(register=False)
    assert await agent.register() == 503

    server = await edge_setup.node(listen=[f"udp:127.0.0.1:{port}"])
    await wait_until(lambda: edge.states().get(uri) == "AP", WAIT, "node probed up")
    assert await agent.register() == 200
    await wait_ready(server, agent, edge)


async def test_registrations_stick_to_one_node_and_move_when_it_stops(edge_setup: Edge) -> None:
    servers = [await edge_setup.node(), await edge_setup.node()]
    uris = [node_uri(s) for s in servers]
    edge = edge_setup.kamailio(uris)
    await wait_until(lambda: set(edge.states().values()) == {"AP"}, WAIT, "nodes probed up")
    agent = edge_setup.phone(edge, ["200"])
    await agent.start(register=False)
    for _ in range(3):
        assert await agent.register() == 200
    bound = [s for s in servers if _bound(s, agent)]
    assert len(bound) == 1, "re-REGISTERs of one phone went to different nodes"
    first = bound[0]
    await wait_ready(first, agent, edge)

    # The phone's node stops: its next REGISTER lands on the other, which links it.
    index = servers.index(first)
    other = servers[1 - index]
    await edge_setup.nodes[index].stop_server()
    assert await agent.register() == 200
    assert _bound(other, agent)
    await wait_ready(other, agent, edge)
    assert edge.states()[uris[index]].startswith("I")


def _bound(server: Server, agent: PhoneAgent) -> bool:
    assert server.phones is not None
    return any(
        b.aor.startswith(f"sip:{agent.mac}@") for b in server.phones.registrar.all_bindings()
    )


async def test_another_node_links_the_phone_from_its_stored_binding(edge_setup: Edge) -> None:
    """A node that takes a phone over (its node stopped) links it from the contact and Path
    in the inventory, before the phone's next REGISTER: the INVITE goes to the edge."""
    servers = [await edge_setup.node(), await edge_setup.node()]
    edge = edge_setup.kamailio([node_uri(s) for s in servers])
    agent = edge_setup.phone(edge, ["200"])
    await agent.start(register=False)
    assert await agent.register() == 200
    (first,) = [s for s in servers if _bound(s, agent)]
    await wait_ready(first, agent, edge)
    assert first.inventory is not None
    stored = first.inventory.get(agent.mac)
    assert stored is not None and stored.contact and stored.path
    index = servers.index(first)
    await edge_setup.nodes[index].stop_server()

    other = servers[1 - index]
    assert other.inventory is not None and other.phones is not None
    record, _ = other.inventory.upsert(agent.mac)  # what a shared inventory would hold
    for name in ("contact", "path", "identity", "user_agent"):
        setattr(record, name, getattr(stored, name))
    registrations = agent.registrations
    assert await other.phones.link_stored(agent.mac)
    await wait_ready(other, agent, edge)
    assert agent.registrations == registrations  # no new REGISTER was needed
    assert agent.usage is not None
    assert any(f"127.0.0.1:{edge.port}" in r for r in agent.usage.dialog.route_set)
    assert str(phone_ports(other)["udp"]) in agent.usage.dialog.remote_target


async def test_a_lost_connection_to_the_edge_is_not_the_phones(edge_setup: Edge) -> None:
    """The node's TCP connection to the edge closes: the phone is still registered, and its
    link is set up again over a new connection to the first Path hop, no REGISTER needed."""
    server = await edge_setup.node(keepalive_interval=0.3)
    edge = edge_setup.kamailio([node_uri(server, "tcp")])
    agent = edge_setup.phone(edge, ["200"])
    await agent.start(register=False)
    assert await agent.register() == 200
    await wait_ready(server, agent, edge)
    assert server.phones is not None
    link = server.phones.links[agent.mac]
    old = link.target.flow
    server.phones.ua.transport.close_flow(old)

    def relinked() -> bool:
        assert server.phones is not None
        now = server.phones.links.get(agent.mac)
        return now is not None and now is not link and state(server, agent.mac) == "ready"

    await wait_until(relinked, WAIT, "link set up again")
    assert agent.registrations == 1
    assert server.phones.links[agent.mac].target.flow != old
    assert server.phones.registrar.bound(f"sip:{agent.mac}@127.0.0.1")
