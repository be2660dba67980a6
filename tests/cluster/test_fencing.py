"""Fencing on a real nats-server: a node cut off from NATS gives its phones up (links ended
without a BYE, its clients told OutOfService) before the surviving node claims them, so a
phone never has two owners; the survivor links it and the phone's dialog is with it."""

from __future__ import annotations

import asyncio

import pytest

from tests.cluster.conftest import Nodes
from tests.cluster.proxy import PausableRelay
from tests.cluster.test_routing import events_until, monitor, ready_lines
from tests.e2e.conftest import wait_until
from uacsta.csta import messages as m

pytestmark = pytest.mark.cluster

LEASE = 2.0


async def test_a_node_cut_off_from_nats_gives_up_before_another_takes_over(nodes: Nodes) -> None:
    a = await nodes.start("a", lease=LEASE)
    b = await nodes.start("b", lease=LEASE)
    sim = nodes.simulation()
    nodes.register_with(sim, "a")
    phone = sim.add_phone("snom", ["100"], transport="udp")
    await sim.start()
    line = "sip:100@sim.invalid"
    await wait_until(lambda: ready_lines(a) == ready_lines(b) == {line}, 10, "100 everywhere")
    assert a.cluster is not None and b.cluster is not None
    assert a.cluster.held == {phone.mac} and b.cluster.held == set()
    client = await nodes.client("a")
    xref = await monitor(client, "100")
    byes = phone.sip_received["BYE"]

    # Sample both nodes' ownership every few milliseconds while a is cut off.
    overlaps: list[float] = []
    loop = asyncio.get_running_loop()

    async def sample() -> None:
        while True:
            if a.cluster.held & b.cluster.held:
                overlaps.append(loop.time())
            await asyncio.sleep(0.005)

    sampler = asyncio.ensure_future(sample())
    try:
        assert a.cluster.nc is not None
        cut_at = loop.time()
        await a.cluster.nc.close()
        await wait_until(lambda: a.cluster.held == set(), LEASE + 2, "a gives up")
        released_at = loop.time()
        await wait_until(lambda: b.cluster.held == {phone.mac}, LEASE + 4, "b takes over")
        taken_at = loop.time()
        assert b.phones is not None
        await wait_until(lambda: phone.mac in b.phones.links and line in ready_lines(b), 5)
    finally:
        sampler.cancel()
    assert overlaps == []
    # a stopped acting before its lease could lapse at the store; b waited for the lapse.
    assert released_at - cut_at < LEASE
    assert taken_at > released_at
    assert phone.sip_received["BYE"] == byes  # a let go without ending b's dialog
    assert phone.usage is not None
    assert phone.usage.flow.remote[1] == b.phones.ua.transport.listener("udp").port
    # a's client was told: the line is out of service there (a cannot reach the cluster).
    await events_until(
        client,
        lambda ev: any(
            isinstance(e, m.OutOfServiceEvent) and e.monitor_cross_ref_id == xref for e in ev
        ),
    )
    assert a.status()["cluster"]["holding"] is False


async def test_a_partitioned_node_gives_up_then_rejoins_as_a_mirror(nodes: Nodes) -> None:
    """The connection to NATS stays open but nothing gets through (a partition): the node
    fences itself in time; when the partition heals it serves the phone, now owned by the
    other node, to its clients again (BackInService), without taking it back."""
    host, port = nodes.url.removeprefix("nats://").rsplit(":", 1)
    relay = PausableRelay(host, int(port))
    relay_port = await relay.start()
    try:
        b = await nodes.start("b", lease=LEASE)
        nodes.url, url = f"nats://127.0.0.1:{relay_port}", nodes.url
        a = await nodes.start("a", lease=LEASE)
        nodes.url = url
        sim = nodes.simulation()
        nodes.register_with(sim, "a")
        phone = sim.add_phone("snom", ["100"], transport="udp")
        await sim.start()
        line = "sip:100@sim.invalid"
        await wait_until(lambda: ready_lines(a) == ready_lines(b) == {line}, 10, "100 on both")
        assert a.cluster is not None and b.cluster is not None
        assert a.cluster.held == {phone.mac}
        client = await nodes.client("a")
        xref = await monitor(client, "100")

        overlaps: list[float] = []
        loop = asyncio.get_running_loop()

        async def sample() -> None:
            while True:
                if a.cluster.held & b.cluster.held:
                    overlaps.append(loop.time())
                await asyncio.sleep(0.005)

        sampler = asyncio.ensure_future(sample())
        try:
            relay.pause()
            await wait_until(lambda: a.cluster.held == set(), LEASE + 2, "a gives up")
            await wait_until(lambda: b.cluster.held == {phone.mac}, LEASE + 4, "b takes over")
            await events_until(
                client,
                lambda ev: any(
                    isinstance(e, m.OutOfServiceEvent) and e.monitor_cross_ref_id == xref
                    for e in ev
                ),
            )
            relay.resume()
            # a is back: the phone stays with b, a mirrors it, a's client is served again.
            await events_until(
                client,
                lambda ev: any(
                    isinstance(e, m.BackInServiceEvent) and e.monitor_cross_ref_id == xref
                    for e in ev
                ),
                timeout=LEASE + 8,
            )
        finally:
            sampler.cancel()
        assert overlaps == []
        assert a.cluster.held == set() and b.cluster.held == {phone.mac}
        assert phone.mac in a.cluster.mirrored and a.status()["cluster"]["holding"] is True
        made = await client.request(m.MakeCall(calling_device="100", called_directory_number="200"))
        assert isinstance(made, m.MakeCallResponse), made
        assert phone.received["MakeCall"] == 1
    finally:
        for node in list(nodes.servers):
            await nodes.stop(node)
        await relay.close()
