"""End to end: three ``uacsta serve`` nodes (one shared PostgreSQL store, NATS) behind the real
Kamailio edge, simulated phones registering through the edge only. The node owning the most
phones is killed with SIGKILL: every phone is owned and linked again by a survivor, through
the edge (the phone's dialog route set holds the edge), within the lease and keep-alive bound;
a client on another node sees its monitor go OutOfService then BackInService; and no phone
has two owners at any sampled moment."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path

import pytest

from tests.cluster.conftest import NodeProcess, Nodes
from tests.cluster.test_routing import events_until, monitor
from tests.e2e.conftest import PASSWORD, wait_until
from tests.engines.kamailio import KamailioEdge, kamailio_edge
from uacsta.clients.cstatcp import CstaTcpClient
from uacsta.csta import messages as m
from uacsta.simulator.agent import PhoneAgent
from uacsta.simulator.runtime import Simulation

pytestmark = [pytest.mark.cluster, pytest.mark.kamailio]

LEASE = 3.0
KEEPALIVE = 2  # phones.keepalive_interval (whole seconds)
PHONES = 24
EDGE_HOST = "127.0.0.1"
NODE_HOSTS = {"n1": "127.0.1.1", "n2": "127.0.1.2", "n3": "127.0.1.3"}
#: From the kill to every phone linked by a survivor: the dead node's lease lapses (LEASE),
#: a survivor's next look at the nodes (its tick, at most 1 s), its keep-alive round, and the
#: links' set-up through the edge on a loaded 2-core machine (slack).
RELINK_BOUND = LEASE + 1.0 + KEEPALIVE + 6.0


def linked_through_edge(agent: PhoneAgent, node: NodeProcess, edge: KamailioEdge) -> bool:
    """The phone's CSTA dialog is with ``node`` and its route set goes through the edge."""
    usage = agent.usage
    if usage is None:
        return False
    return f"{node.host}:{node.phone_port}" in usage.dialog.remote_target and any(
        f"{edge.host}:{edge.port}" in r for r in usage.dialog.route_set
    )


@pytest.fixture
async def procs(
    tmp_path: Path, nodes: Nodes, postgres_db: str
) -> AsyncIterator[dict[str, NodeProcess]]:
    made = {
        node_id: NodeProcess(
            tmp_path,
            nodes,
            node_id,
            lease=LEASE,
            host=host,
            trusted_proxies=[EDGE_HOST],
            store_url=postgres_db,
            keepalive_interval=KEEPALIVE,
        )
        for node_id, host in NODE_HOSTS.items()
    }
    try:
        yield made
    finally:
        for proc in made.values():
            await proc.stop()


async def test_sigkill_of_a_node_behind_the_edge_moves_its_phones_to_the_survivors(
    tmp_path: Path, nodes: Nodes, procs: dict[str, NodeProcess]
) -> None:
    for proc in procs.values():  # one by one: the first migrates the shared store
        await proc.start()
    uris = [f"sip:{p.host}:{p.phone_port}" for p in procs.values()]
    with kamailio_edge(uris, tmp_path / "kamailio") as edge:
        await wait_until(
            lambda: set(edge.states().values()) == {"AP"} and len(edge.states()) == 3,
            20,
            "every node probed up by the edge",
        )
        sim = Simulation(edge.host, {"udp": edge.port}, password=PASSWORD, min_se=1)
        nodes.sims.append(sim)
        agents: list[PhoneAgent] = []
        for i in range(PHONES):
            agent = sim.add_phone("snom", [str(100 + i)], transport="udp")
            agent.local_host = f"127.0.0.{2 + i}"  # each phone its own address
            agents.append(agent)
        await sim.start()
        macs = {a.mac for a in agents}

        owned: dict[str, set[str]] = {}

        async def read_owned(among: dict[str, NodeProcess] = procs) -> dict[str, set[str]]:
            got: dict[str, set[str]] = {}
            for node_id, proc in among.items():
                if proc.proc is not None and proc.proc.returncode is None:
                    status = await proc.status()
                    if status is not None:
                        got[node_id] = set(status["cluster"]["owned"])
            return got

        async def all_linked(alive: dict[str, NodeProcess]) -> bool:
            nonlocal owned
            owned = await read_owned(alive)
            if set().union(*owned.values()) != macs or set(owned) != set(alive):
                return False
            return all(
                any(a.mac in owned[n] and linked_through_edge(a, alive[n], edge) for n in alive)
                for a in agents
            )

        async def poll(check: Callable[[], Awaitable[bool]], timeout: float, what: str) -> None:
            loop = asyncio.get_running_loop()
            deadline = loop.time() + timeout
            while not await check():
                if loop.time() > deadline:
                    tails = "\n".join(f"--- {n}\n{p.tail(15)}" for n, p in procs.items())
                    raise AssertionError(f"timed out: {what}; owned {owned}\n{tails}")
                await asyncio.sleep(0.1)

        await poll(lambda: all_linked(procs), 40, "every phone linked through the edge")
        # Every phone has one owner, and it is the node the edge sent its REGISTER to.
        assert sum(len(s) for s in owned.values()) == PHONES
        before = {n: len(s) for n, s in owned.items()}
        victim_id = max(owned, key=lambda n: len(owned[n]))
        victim = procs[victim_id]
        survivors = {n: p for n, p in procs.items() if n != victim_id}
        watched = next(a for a in agents if a.mac in owned[victim_id])
        line = str(100 + agents.index(watched))
        client_id = next(iter(survivors))
        client = CstaTcpClient()
        nodes.clients.append(client)
        await client.connect("127.0.0.1", survivors[client_id].csta_port)
        await client.login("crm", "crm-secret")
        xref = await monitor(client, line)

        # Sample every node's owned phones while the victim dies and the survivors take over.
        overlaps: list[dict[str, set[str]]] = []
        samples = 0

        async def sample() -> None:
            nonlocal samples
            while True:
                seen = await read_owned()
                samples += 1
                ids = sorted(seen)
                for i, x in enumerate(ids):
                    for y in ids[i + 1 :]:
                        if seen[x] & seen[y]:
                            overlaps.append(seen)
                await asyncio.sleep(0.02)

        sampler = asyncio.ensure_future(sample())
        loop = asyncio.get_running_loop()
        try:
            await asyncio.sleep(0.1)  # a sample with the victim alive
            victim.kill()
            killed_at = loop.time()
            await poll(lambda: all_linked(survivors), RELINK_BOUND + 5, "taken over")
            relinked_after = loop.time() - killed_at
            events = await events_until(
                client,
                lambda ev: any(
                    isinstance(e, m.BackInServiceEvent) and e.monitor_cross_ref_id == xref
                    for e in ev
                ),
                timeout=RELINK_BOUND,
            )
        finally:
            sampler.cancel()
        after = {n: len(s) for n, s in owned.items()}
        print(f"owned {before} then {after}; relinked in {relinked_after:.2f}s; {samples} samples")
        assert relinked_after < RELINK_BOUND, relinked_after
        names = [
            type(e).__name__ for e in events if getattr(e, "monitor_cross_ref_id", None) == xref
        ]
        assert "OutOfServiceEvent" in names, names
        assert names.index("OutOfServiceEvent") < names.index("BackInServiceEvent")
        assert samples > 5 and overlaps == [], overlaps
        # Each phone owned by exactly one survivor (not necessarily spread over both: a phone's
        # REGISTER that the edge re-dispatches to a survivor moves it there).
        assert sum(len(s) for s in owned.values()) == PHONES
        # The edge saw the dead node go down.
        dead_uri = f"sip:{victim.host}:{victim.phone_port}"
        await wait_until(lambda: edge.states()[dead_uri].startswith("I"), 10, "edge: node down")
        for client_ in nodes.clients:
            await client_.close()
        nodes.clients.clear()
        for proc in procs.values():
            await proc.stop()
        for sim_ in nodes.sims:
            await sim_.close()
        nodes.sims.clear()
