"""Faults end to end: phones and clients that fail in every way we know of.

Each phone fault must reach the clients monitoring the phone's lines as OutOfService, then
BackInService once the phone is back, with the phone's monitor restored (a new MonitorStart in
the phone); each client fault must release the client's monitors (MonitorStop in the phone when
it was the last one) while the other clients keep working. After every fault, once things
settle, the server holds exactly what the surviving phones and clients need: no transaction,
dialog, usage, link, client monitor, pending switch request or hub task is left behind.

The server's SIP timers are shortened (T1 = 50 ms, so 64*T1 = 3.2 s) so that unreliable-transport
transactions drain, and a set-up INVITE a silent phone never answered times out, within the test.
"""

from __future__ import annotations

import asyncio
import socket
import struct

import pytest

from tests.e2e.conftest import PASSWORD, Harness, phone_ports, wait_until
from tests.gateways.test_tr87 import Tr87Client
from uacsta.clients.cstatcp import CstaTcpClient
from uacsta.csta import messages as m
from uacsta.phones.link import LinkState
from uacsta.server import Server
from uacsta.simulator.agent import PhoneAgent
from uacsta.sip.registrar import RegistrarPolicy
from uacsta.sip.transaction import TimerSettings
from uacsta.switch.function import SWITCH
from uacsta.switch.monitors import PointState

FAST_SIP_TIMERS = TimerSettings(t1=0.05, t2=0.4, t4=0.5, timer_d=1.0)
A, B = "sip:100@sim.invalid", "sip:200@sim.invalid"


async def start(harness: Harness, *, journal: bool = True, **phones: object) -> Server:
    server = await harness.start_server(journal=journal, **phones)
    assert server.phones is not None
    server.phones.ua.layer.timers = FAST_SIP_TIMERS
    return server


def census(server: Server) -> dict[str, int]:
    """What the server holds, as counts (the leak check compares it to what it should hold)."""
    assert server.phones is not None and server.cstatcp is not None
    ua, sf, links = server.phones.ua, server.hub.switch, server.phones.links
    points = sf.monitors.points.values()
    return {
        "sip transactions": len(ua.layer),
        "sip waiters": len(ua._waiters),
        "sip dialogs": len(ua.dialogs),
        "dialog usages": len(ua.usages),
        "links": len(links),
        "ready links": sum(link.state is LinkState.READY for link in links.values()),
        "relink timers": len(server.phones._relink),
        "client monitors": len(sf.monitors.client_monitors) - sf.monitors.count_of(SWITCH),
        "monitor points": len(points),
        "active monitor points": sum(p.state is PointState.ACTIVE for p in points),
        "pending switch requests": sf.pending_count,
        "switch clients": len(sf.clients),
        "csta clients": len(server.cstatcp.clients),
        "tr87 sessions": len(server.tr87.sessions),
    }


async def settled(
    server: Server,
    *,
    phones: int,
    monitors: int,
    points: int,
    clients: int,
    tr87: int = 0,
    transactions: bool = True,
    timeout: float = 8.0,
) -> None:
    """Wait (bounded) until the server holds exactly what ``phones`` ready phones and the
    surviving clients need (``transactions=False``: phones are registering right now)."""
    expected = {
        "sip transactions": 0,
        "sip waiters": 0,
        "sip dialogs": phones,
        "dialog usages": phones,
        "links": phones,
        "ready links": phones,
        "relink timers": 0,
        "client monitors": monitors,
        "monitor points": points,
        "active monitor points": points,
        "pending switch requests": 0,
        "switch clients": clients + tr87,
        "csta clients": clients,
        "tr87 sessions": tr87,
    }
    if not transactions:
        del expected["sip transactions"]

    def held() -> dict[str, int]:
        now = census(server)
        return {k: now[k] for k in expected}

    try:
        await wait_until(lambda: held() == expected, timeout, "the server to settle")
    except AssertionError:
        now = held()
        left = {k: (now[k], v) for k, v in expected.items() if now[k] != v}
        layer = server.phones.ua.layer  # type: ignore[union-attr]
        print(
            "DEBUG",
            [
                (k, type(t).__name__, getattr(t, "state", None))
                for k, t in layer._transactions.items()
            ],
            asyncio.get_running_loop().time(),
        )
        raise AssertionError(f"not settled after {timeout}s (held, expected): {left}") from None


async def monitor(client: CstaTcpClient, device: str) -> str:
    response = await client.request(m.MonitorStart(monitor_object=device))
    assert isinstance(response, m.MonitorStartResponse), response
    back = await client.wait_for(m.BackInServiceEvent)
    assert back.monitor_cross_ref_id == response.monitor_cross_ref_id
    return response.monitor_cross_ref_id


async def expect(client: CstaTcpClient, kind: type[m.CstaEvent], xref: str) -> m.CstaMessage:
    event = await client.wait_for(kind, timeout=15)
    assert event.monitor_cross_ref_id == xref, (event, xref)
    return event


async def still_served(client: CstaTcpClient, xref: str, device: str) -> None:
    """A request on a healthy line is answered and its event reaches the client."""
    for on in (True, False):
        answer = await client.request(m.SetDoNotDisturb(device=device, do_not_disturb_on=on))
        assert isinstance(answer, m.SetDoNotDisturbResponse), answer
        await expect(client, m.DoNotDisturbEvent, xref)


# ------------------------------------------------------------------------------ phone faults
PHONE_FAULTS = ["tcp-reset", "silence", "registration-expiry", "bye-from-phone"]


@pytest.mark.parametrize("fault", PHONE_FAULTS)
async def test_phone_fault_is_reported_restored_and_leaves_nothing(
    harness: Harness, fault: str
) -> None:
    silence = fault == "silence"
    server = await start(
        harness,
        keepalive_interval=0.5 if silence else 30,
        csta_timeout=0.5 if silence else 1.0,
    )
    assert server.phones is not None
    expiry = fault == "registration-expiry"
    if expiry:
        # registration_expires is clamped to its 30 s minimum by the phone service: shorten
        # the registrar's policy itself, and let the phone refresh every second.
        server.phones.registrar.policy = RegistrarPolicy(
            default_expires=2, min_expires=1, max_expires=2
        )
    sim = harness.simulation(expires=2 if expiry else 300)
    faulty = sim.add_phone("snom", ["100"], transport="udp" if expiry else "tcp")
    other = sim.add_phone("yealink", ["200"], transport="tcp")
    await sim.start()
    await harness.wait_state(faulty.mac, "ready")
    await harness.wait_state(other.mac, "ready")
    c1, c2 = await harness.csta_client(), await harness.csta_client()
    x1, x2, xb = await monitor(c1, "100"), await monitor(c2, "100"), await monitor(c1, "200")
    assert faulty.received["MonitorStart"] == 1  # one monitor in the phone for both clients
    await settled(server, phones=2, monitors=3, points=2, clients=2, transactions=not expiry)

    loop = asyncio.get_running_loop()
    started = loop.time()
    match fault:
        case "tcp-reset":
            faulty.drop_connection()
        case "silence":
            faulty.stop_answering()
        case "registration-expiry":
            await faulty.go_offline()
        case "bye-from-phone":
            assert faulty.usage is not None
            assert (await faulty.ua.request("BYE", faulty.usage)).status_code == 200
    await expect(c1, m.OutOfServiceEvent, x1)
    await expect(c2, m.OutOfServiceEvent, x2)
    detected = loop.time() - started
    if silence:
        assert detected < 0.5 + 0.5 + 0.5  # one keep-alive interval plus the CSTA timeout
    if expiry:
        assert 1.0 < detected < 2 + 1 + 1.5  # binding expiry (2 s) + 1 s grace
    if fault in ("tcp-reset", "registration-expiry"):
        assert harness.state(faulty.mac) == "offline"  # until it registers again
    elif silence:  # still registered: re-link attempts every relink_backoff
        assert harness.state(faulty.mac) in ("failed", "linking")
    await still_served(c1, xb, B)  # the other phone is not affected

    match fault:
        case "tcp-reset":
            assert await faulty.register() == 200  # the phone re-registers on a new connection
        case "silence":
            faulty.stop_answering(False)
        case "registration-expiry":
            faulty.come_back()  # registers again within a second
        case "bye-from-phone":
            pass  # re-linked after relink_backoff while it stays registered
    back1 = await expect(c1, m.BackInServiceEvent, x1)
    assert back1.device.value == A
    await expect(c2, m.BackInServiceEvent, x2)
    assert faulty.received["MonitorStart"] == 2  # the shared monitor restored, once
    assert harness.state(faulty.mac) == "ready"
    await still_served(c2, x2, A)
    if expiry:  # back to normal refreshes so the UDP REGISTER transactions drain
        server.phones.registrar.policy = RegistrarPolicy(
            default_expires=300, min_expires=1, max_expires=300
        )
        faulty.expires = 300
        registered = faulty.registrations
        await wait_until(lambda: faulty.registrations > registered, what="last short refresh")
    await settled(server, phones=2, monitors=3, points=2, clients=2)
    # The phone holds the restored monitor. It may still hold the one of the dead dialog too
    # (the simulator, like phones that do not scope monitors to the CSTA dialog, keeps it):
    # its events carry an unknown monitorCrossRefID and the switching function drops them.
    sf = server.hub.switch
    device = sf.devices.resolve(A)
    assert device is not None
    assert sf.monitors.points[device].phone_cross_ref_id in faulty.phone.monitors
    assert len(other.phone.monitors) == 1


async def test_phone_restarted_mid_call_is_relinked_and_the_call_cleared(
    harness: Harness,
) -> None:
    """A phone reboots during a call: its agent dies and a new one with the same MAC registers
    from a new port. The server re-links it (the registration moved) and restores its monitor.

    What the clients see: OutOfService/BackInService on the rebooted phone's line, and no
    ConnectionCleared for it (uacsta relays events, it keeps no call state; the phone forgot the
    call and a SnapshotDevice shows none). The far end's ConnectionCleared comes from its own
    phone once the PBX drops the call, which the simulated PBX does when the phone goes.
    """
    server = await start(harness)
    sim = harness.simulation()
    rebooting = sim.add_phone("snom", ["100"], transport="udp")
    far = sim.add_phone("yealink", ["200"], transport="tcp")
    await sim.start()
    await harness.wait_state(rebooting.mac, "ready")
    await harness.wait_state(far.mac, "ready")
    client = await harness.csta_client()
    xa, xb = await monitor(client, "100"), await monitor(client, "200")
    sim.dial("200", "100")
    await expect(client, m.DeliveredEvent, xa)
    assert sim.answer("100")
    established = set()
    while established != {xa, xb}:
        event = await client.wait_for(m.EstablishedEvent)
        established.add(event.monitor_cross_ref_id)

    # Reboot: the old agent vanishes; the PBX drops its call; a fresh agent starts.
    await rebooting.close()
    phone = rebooting.phone
    now = sim.now()
    phone.monitors.clear()
    phone.system_registrations.clear()
    for leg in phone.legs():
        sim.pbx.release(leg, now)
    sim.flush()
    cleared = await expect(client, m.ConnectionClearedEvent, xb)
    # The far end is a Yealink: its firmware always names itself as the releasing device.
    assert cleared.releasing_device.value == B
    assert not rebooting.phone.legs() and not far.phone.legs()

    reborn = PhoneAgent(
        sim,
        phone,
        server=("udp", "127.0.0.1", phone_ports(server)["udp"]),
        password=PASSWORD,
        min_se=1,
    )
    sim.agents[phone.mac] = reborn
    await reborn.start()
    await expect(client, m.OutOfServiceEvent, xa)  # the old link ends when the phone moved
    await expect(client, m.BackInServiceEvent, xa)
    assert reborn.received["MonitorStart"] == 1
    assert harness.state(phone.mac) == "ready"
    for device in ("100", "200"):
        snap = await client.request(m.SnapshotDevice(snapshot_object=device))
        assert isinstance(snap, m.SnapshotDeviceResponse) and not snap.snapshot_data
    # A new call between them works.
    sim.dial("100", "200")
    await expect(client, m.DeliveredEvent, xb)
    assert sim.hangup("100")
    await expect(client, m.ConnectionClearedEvent, xa)
    await settled(server, phones=2, monitors=2, points=2, clients=1)


# ------------------------------------------------------------------------------ client faults
async def two_phones(harness: Harness) -> tuple[Server, PhoneAgent, PhoneAgent]:
    # Without the server's own monitors: these tests watch the phones' monitors released.
    server = await start(harness, journal=False)
    sim = harness.simulation()
    shared = sim.add_phone("snom", ["100"], transport="tcp")
    alone = sim.add_phone("yealink", ["200"], transport="tcp")
    await sim.start()
    await harness.wait_state(shared.mac, "ready")
    await harness.wait_state(alone.mac, "ready")
    return server, shared, alone


def reset_on_close(client: CstaTcpClient) -> None:
    """Make the client's close() an abortive close (RST), like a crashed process."""
    assert client._writer is not None
    sock: socket.socket = client._writer.get_extra_info("socket")
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))


@pytest.mark.parametrize("how", ["fin", "rst"])
async def test_csta_client_gone_without_stop_session_releases_its_monitors(
    harness: Harness, how: str
) -> None:
    server, shared, alone = await two_phones(harness)
    survivor, leaver = await harness.csta_client(), await harness.csta_client()
    xs = await monitor(survivor, "100")
    await monitor(leaver, "100")
    await monitor(leaver, "200")
    await settled(server, phones=2, monitors=3, points=2, clients=2)
    if how == "rst":
        reset_on_close(leaver)
    await leaver.close()  # no StopApplicationSession, no MonitorStop
    await wait_until(lambda: alone.received["MonitorStop"] == 1, what="MonitorStop in 200")
    assert shared.received["MonitorStop"] == 0  # the survivor still monitors 100
    await settled(server, phones=2, monitors=1, points=1, clients=1)
    assert len(alone.phone.monitors) == 0 and len(shared.phone.monitors) == 1
    await still_served(survivor, xs, A)


async def test_csta_client_session_expiry_releases_its_monitors(harness: Harness) -> None:
    server, shared, alone = await two_phones(harness)
    survivor = await harness.csta_client()
    xs = await monitor(survivor, "100")
    assert server.cstatcp is not None
    server.cstatcp.session_duration = server.cstatcp.max_session_duration = 1
    sleeper = await harness.csta_client()  # asks for 180 s, gets 1 s; never resets the timer
    await monitor(sleeper, "100")
    await monitor(sleeper, "200")
    ended = await sleeper.event(timeout=5)
    while not isinstance(ended, m.UnknownMessage):
        ended = await sleeper.event(timeout=5)
    assert ended.name == "ApplicationSessionTerminated"
    assert b"sessionTimerExpired" in ended.xml
    await asyncio.wait_for(sleeper.closed.wait(), 5)
    await wait_until(lambda: alone.received["MonitorStop"] == 1, what="MonitorStop in 200")
    assert shared.received["MonitorStop"] == 0
    await settled(server, phones=2, monitors=1, points=1, clients=1)
    await still_served(survivor, xs, A)


async def test_tr87_client_connection_drop_releases_its_monitors(harness: Harness) -> None:
    server, shared, alone = await two_phones(harness)
    survivor = await harness.csta_client()
    xs = await monitor(survivor, "100")
    assert server.tr87 is not None
    tr87 = Tr87Client(server.tr87.ua.transport.listener("tcp").port)
    await tr87.start()
    try:
        _first, second = await tr87.invite(user="crm", password="crm-secret")
        assert second is not None and second.status_code == 200
        for line in ("100", "200"):
            assert isinstance(
                await tr87.csta(m.MonitorStart(monitor_object=line)), m.MonitorStartResponse
            )
            assert isinstance(await tr87.next_info(), m.BackInServiceEvent)
        await settled(server, phones=2, monitors=3, points=2, clients=1, tr87=1)
        assert tr87.flow is not None
        tr87.ua.transport.close_flow(tr87.flow)  # the TCP connection drops, no BYE
        await wait_until(lambda: alone.received["MonitorStop"] == 1, what="MonitorStop in 200")
        assert shared.received["MonitorStop"] == 0
        await settled(server, phones=2, monitors=1, points=1, clients=1, tr87=0)
        await still_served(survivor, xs, A)
    finally:
        await tr87.close()
