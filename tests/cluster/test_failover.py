"""Failover on a real nats-server: the owner node killed with SIGKILL (a ``uacsta serve``
process), its phone taken over by the surviving node (in this process, to look inside),
re-linked from the registration the cluster kept, the client's monitor restored with
OutOfService then BackInService, and the request in flight at the dead owner answered with
an error, never sent to the phone again."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from tests.cluster.conftest import NodeProcess, Nodes
from tests.cluster.test_routing import events_until, monitor, ready_lines
from tests.e2e.conftest import PASSWORD, wait_until
from uacsta.csta import messages as m
from uacsta.simulator.runtime import Simulation

pytestmark = pytest.mark.cluster

LEASE = 3.0


@pytest.fixture
async def killable(tmp_path: Path, nodes: Nodes) -> AsyncIterator[NodeProcess]:
    process = NodeProcess(tmp_path, nodes, "b", lease=LEASE)
    try:
        yield process
    finally:
        if process.proc is not None and process.proc.returncode is None:
            process.proc.kill()
        if process.proc is not None:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(process.proc.wait(), 5)


async def test_sigkill_of_the_owner_moves_its_phone_without_replaying_a_request(
    nodes: Nodes, killable: NodeProcess
) -> None:
    a = await nodes.start("a", lease=LEASE)
    await killable.start()
    sim = Simulation("127.0.0.1", {"udp": killable.phone_port}, password=PASSWORD, min_se=1)
    nodes.sims.append(sim)
    phone = sim.add_phone("snom", ["100"], transport="udp")
    await sim.start()
    line = "sip:100@sim.invalid"
    await wait_until(lambda: ready_lines(a) == {line}, 15, "a mirrors 100 (linked at b)")
    assert a.cluster is not None
    revision, entry = a.cluster.entries[phone.mac]
    assert entry.owner == "b" and entry.ready
    status_b = await killable.status()
    assert status_b is not None and status_b["cluster"]["owned"] == [phone.mac]
    assert a.cluster.held == set()  # one owner

    client = await nodes.client("a")
    xref = await monitor(client, "100")

    # A MakeCall reaches the phone through b; the phone does not answer it (yet).
    phone.stop_answering()
    make = asyncio.ensure_future(
        client.request(m.MakeCall(calling_device="100", called_directory_number="200"))
    )
    await wait_until(lambda: phone.received["MakeCall"] == 1, 5, "the MakeCall at the phone")
    killable.kill()
    loop = asyncio.get_running_loop()
    killed_at = loop.time()
    phone.stop_answering(False)

    # The request in flight at the dead owner: an error, at once when b's lease lapses.
    answer = await asyncio.wait_for(make, LEASE + 5)
    assert isinstance(answer, m.CSTAErrorCode), answer
    events = await events_until(
        client,
        lambda ev: any(
            isinstance(e, m.BackInServiceEvent) and e.monitor_cross_ref_id == xref for e in ev
        ),
        timeout=LEASE + 10,
    )
    back_at = loop.time()
    names = [type(e).__name__ for e in events if getattr(e, "monitor_cross_ref_id", None) == xref]
    assert "OutOfServiceEvent" in names
    assert names.index("OutOfServiceEvent") < names.index("BackInServiceEvent")
    # Within the lease plus the survivor's look at the nodes and the link's set-up.
    assert back_at - killed_at < LEASE + 4, back_at - killed_at

    # a owns and linked it, from the binding kept in the cluster (the phone never
    # registered with a), and the store says so with a newer revision.
    assert a.cluster.held == {phone.mac}
    assert a.phones is not None and phone.mac in a.phones.links
    new_revision, entry = a.cluster.entries[phone.mac]
    assert entry.owner == "a" and new_revision > revision
    assert phone.usage is not None  # its CSTA dialog is with a now
    assert phone.usage.flow.remote[1] == a.phones.ua.transport.listener("udp").port
    # Never replayed: the phone got the MakeCall once, from b.
    assert phone.received["MakeCall"] == 1

    # The restored monitor works: a new MakeCall goes out from a, and its events arrive.
    made = await client.request(m.MakeCall(calling_device="100", called_directory_number="200"))
    assert isinstance(made, m.MakeCallResponse), made
    assert made.calling_device is not None
    assert made.calling_device.call_id.startswith(phone.mac.lower() + ".")
    await events_until(
        client,
        lambda ev: any(
            isinstance(e, m.OriginatedEvent | m.DeliveredEvent) and e.monitor_cross_ref_id == xref
            for e in ev
        ),
    )
    assert phone.received["MakeCall"] == 2


async def test_three_nodes_the_dead_owners_phones_spread_over_the_survivors(
    nodes: Nodes, killable: NodeProcess
) -> None:
    a = await nodes.start("a", lease=LEASE)
    c = await nodes.start("c", lease=LEASE)
    await killable.start()
    sim = Simulation("127.0.0.1", {"udp": killable.phone_port}, password=PASSWORD, min_se=1)
    nodes.sims.append(sim)
    numbers = [str(100 + i) for i in range(8)]
    phones = [sim.add_phone("snom", [n], transport="udp") for n in numbers]
    await sim.start()
    lines = {f"sip:{n}@sim.invalid" for n in numbers}
    await wait_until(lambda: ready_lines(a) == ready_lines(c) == lines, 15, "every line mirrored")
    assert a.cluster is not None and c.cluster is not None
    on_a, on_c = await nodes.client("a"), await nodes.client("c")
    xrefs = {"a": [await monitor(on_a, n) for n in numbers]}
    xrefs["c"] = [await monitor(on_c, n) for n in numbers]

    overlaps: list[set[str]] = []

    async def sample() -> None:
        while True:
            both = a.cluster.held & c.cluster.held
            if both:
                overlaps.append(both)
            await asyncio.sleep(0.005)

    sampler = asyncio.ensure_future(sample())
    killable.kill()
    macs = {p.mac for p in phones}
    try:
        await wait_until(lambda: a.cluster.held | c.cluster.held == macs, LEASE + 6, "taken over")
        for client, node in ((on_a, "a"), (on_c, "c")):
            wanted = set(xrefs[node])
            await events_until(
                client,
                lambda ev, wanted=wanted: (
                    wanted
                    <= {e.monitor_cross_ref_id for e in ev if isinstance(e, m.BackInServiceEvent)}
                ),
                timeout=LEASE + 8,
            )
    finally:
        sampler.cancel()
    assert overlaps == []
    assert a.cluster.held and c.cluster.held  # spread by rendezvous hashing, not one node
    for node, server in (("a", a), ("c", c)):
        assert server.cluster is not None and server.phones is not None
        for mac in server.cluster.held:
            assert server.cluster.entries[mac][1].owner == node
            assert mac in server.phones.links
    for phone in phones:  # each phone's dialog is with its new owner only
        owner = a if phone.mac in a.cluster.held else c
        assert owner.phones is not None and phone.usage is not None
        assert phone.usage.flow.remote[1] == owner.phones.ua.transport.listener("udp").port
    # Every line is ready on both survivors again (owned or mirrored).
    await wait_until(lambda: ready_lines(a) == ready_lines(c) == lines, 5, "mirrors again")
