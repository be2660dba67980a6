"""Two nodes on a real nats-server act as one switching function: every line on every node,
requests routed to the phone's owner, the owner's events on every node, the same call IDs
whichever node a client is on; a phone registering with another node moves there."""

from __future__ import annotations

import asyncio
from collections.abc import Callable

import httpx
import pytest

from tests.cluster.conftest import Nodes
from tests.e2e.conftest import wait_until
from tests.gateways.test_tr87 import Tr87Client
from uacsta.clients.cstatcp import CstaTcpClient
from uacsta.csta import messages as m
from uacsta.server import Server
from uacsta.switch.callrecord import CallNotice, CallRecord
from uacsta.web.auth import Auth

pytestmark = pytest.mark.cluster


def ready_lines(server: Server) -> set[str]:
    return {d.device_id for d in server.hub.switch.ready_devices()}


async def events_until(
    client: CstaTcpClient, done: Callable[[list[m.CstaMessage]], bool], timeout: float = 8.0
) -> list[m.CstaMessage]:
    got: list[m.CstaMessage] = []
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while not done(got):
        left = deadline - loop.time()
        if left <= 0:
            raise AssertionError(f"timed out; events so far: {[type(e).__name__ for e in got]}")
        got.append(await client.event(left))
    return got


async def monitor(client: CstaTcpClient, line: str) -> str:
    started = await client.request(m.MonitorStart(monitor_object=line))
    assert isinstance(started, m.MonitorStartResponse), started
    xref = started.monitor_cross_ref_id
    await events_until(
        client,
        lambda ev: any(
            isinstance(e, m.BackInServiceEvent) and e.monitor_cross_ref_id == xref for e in ev
        ),
    )
    return xref


async def journal(server: Server, line: str) -> list[CallRecord]:
    assert server.journal is not None
    await server.journal.flush()
    records, _next = await server.journal.query(line=line, limit=50)
    return list(records)


def call_ids(events: list[m.CstaMessage], xref: str) -> dict[str, set[str]]:
    """Per event name, the call IDs of the events on monitor ``xref``."""
    seen: dict[str, set[str]] = {}
    for event in events:
        if not isinstance(event, m.CstaEvent) or event.monitor_cross_ref_id != xref:
            continue
        for name in ("connection", "originated_connection", "established_connection",
                     "dropped_connection", "queued_connection"):  # fmt: skip
            conn = getattr(event, name, None)
            if conn is not None and getattr(conn, "call_id", None):
                seen.setdefault(type(event).__name__, set()).add(conn.call_id)
    return seen


async def test_one_switching_function_over_two_nodes(nodes: Nodes) -> None:
    a = await nodes.start("a")
    b = await nodes.start("b")
    sim = nodes.simulation()
    nodes.register_with(sim, "b")
    p100 = sim.add_phone("snom", ["100"], transport="udp")
    nodes.register_with(sim, "a")
    p200 = sim.add_phone("snom", ["200"], transport="udp")
    notices: dict[str, list[CallNotice]] = {"a": [], "b": []}
    a.hub.notice_listeners.append(notices["a"].append)  # what each node publishes (webhooks)
    b.hub.notice_listeners.append(notices["b"].append)
    await sim.start()
    every = {"sip:100@sim.invalid", "sip:200@sim.invalid"}
    await wait_until(lambda: ready_lines(a) == every and ready_lines(b) == every, 10, "mirrors")
    # Exactly one owner each, the node the phone registered with; only it linked the phone.
    assert a.cluster.held == {p200.mac} and b.cluster.held == {p100.mac}
    assert set(a.cluster.mirrored) == {p100.mac} and set(b.cluster.mirrored) == {p200.mac}
    assert a.phones is not None and b.phones is not None
    assert set(a.phones.links) == {p200.mac} and set(b.phones.links) == {p100.mac}
    assert p100.sip_received["INVITE"] == 0 or p100.linked.is_set()

    on_a = await nodes.client("a")
    on_b = await nodes.client("b")
    # Switch-level requests answered with every node's lines.
    answer = await on_a.request(m.GetSwitchingFunctionDevices())
    assert isinstance(answer, m.GetSwitchingFunctionDevicesResponse)
    listed = await on_a.wait_for(m.SwitchingFunctionDevices)
    assert isinstance(listed, m.SwitchingFunctionDevices)
    assert {d.device_id for d in listed.device_list} == every

    # A client on a monitors and drives 100, whose phone is linked at b.
    xa = await monitor(on_a, "100")
    xb = await monitor(on_b, "100")
    x200 = await monitor(on_b, "200")  # linked at a, watched from b
    made = await on_a.request(m.MakeCall(calling_device="100", called_directory_number="200"))
    assert isinstance(made, m.MakeCallResponse), made
    assert made.calling_device is not None and made.calling_device.call_id
    call_id = made.calling_device.call_id
    assert call_id.startswith(p100.mac.lower() + ".")  # the prefix every node gives 100's calls
    assert p100.received["MakeCall"] == 1

    def delivered(xref: str) -> Callable[[list[m.CstaMessage]], bool]:
        return lambda ev: "DeliveredEvent" in call_ids(ev, xref)

    seen_a = call_ids(await events_until(on_a, delivered(xa)), xa)
    got_b = await events_until(on_b, lambda ev: delivered(xb)(ev) and delivered(x200)(ev))
    seen_b = call_ids(got_b, xb)
    assert seen_a["DeliveredEvent"] == seen_b["DeliveredEvent"] == {call_id}
    assert a.status()["cluster"]["owned"] == [p200.mac]

    # The client on b answers at 200 (linked at a) with the call ID it was given.
    at_200 = call_ids(got_b, x200)["DeliveredEvent"]
    assert len(at_200) == 1 and next(iter(at_200)).startswith(p200.mac.lower() + ".")
    connection = next(
        e.connection
        for e in got_b
        if isinstance(e, m.DeliveredEvent) and e.monitor_cross_ref_id == x200
    )
    answered = await on_b.request(m.AnswerCall(call_to_be_answered=connection))
    assert isinstance(answered, m.AnswerCallResponse), answered
    assert p200.received["AnswerCall"] == 1
    await events_until(
        on_a,
        lambda ev: any(
            isinstance(e, m.EstablishedEvent) and e.monitor_cross_ref_id == xa for e in ev
        ),
    )
    # The client on a hangs up 200 (linked at a) by the connection b's client was given.
    cleared = await on_a.request(m.ClearConnection(connection_to_be_cleared=connection))
    assert isinstance(cleared, m.ClearConnectionResponse), cleared
    await events_until(
        on_b,
        lambda ev: any(
            isinstance(e, m.ConnectionClearedEvent) and e.monitor_cross_ref_id == xb for e in ev
        ),
    )

    # Only the owner journals a phone's calls and publishes its notices: one row per line,
    # on the node that linked the phone, whichever node's clients watched it.
    line100, line200 = "sip:100@sim.invalid", "sip:200@sim.invalid"
    rows: dict[str, list[CallRecord]] = {}

    async def journaled() -> bool:
        rows["b100"] = await journal(b, line100)
        rows["a200"] = await journal(a, line200)
        return bool(rows["b100"] and rows["a200"])

    loop = asyncio.get_running_loop()
    deadline = loop.time() + 10
    while not await journaled():
        assert loop.time() < deadline, "the owners did not journal the call"
        await asyncio.sleep(0.05)
    assert len(rows["b100"]) == len(rows["a200"]) == 1
    assert await journal(a, line100) == [] and await journal(b, line200) == []
    about = {
        node: {(n.type.value, n.phone) for n in found if n.phone} for node, found in notices.items()
    }
    assert ("call.ended", p100.mac) in about["b"] and ("call.ended", p200.mac) in about["a"]
    assert all(phone == p200.mac for _type, phone in about["a"])
    assert all(phone == p100.mac for _type, phone in about["b"])


async def test_a_phone_registering_with_a_second_node_stays_with_its_live_owner(
    nodes: Nodes,
) -> None:
    a = await nodes.start("a")
    b = await nodes.start("b")
    sim = nodes.simulation()
    nodes.register_with(sim, "b")
    phone = sim.add_phone("snom", ["100"], transport="udp")
    await sim.start()
    line = "sip:100@sim.invalid"
    await wait_until(lambda: ready_lines(a) == ready_lines(b) == {line}, 10, "100 everywhere")
    assert a.cluster is not None and b.cluster is not None
    revision = a.cluster.entries[phone.mac][0]
    assert phone.usage is not None
    dialog = phone.usage
    # The phone registers with a as well (a backup registrar): b keeps it, nobody re-links.
    phone.server_port = nodes.servers["a"].phones.ua.transport.listener("udp").port  # type: ignore[union-attr]
    assert await phone.register() == 200
    assert a.phones is not None
    await wait_until(lambda: phone.mac in a.phones.targets, 5, "a has its registration")
    ticks = a.cluster.ticks
    # Three of a's lease ticks (a look at the nodes, claims): no claim, no fight.
    await wait_until(lambda: a.cluster.ticks >= ticks + 3, 10, "a's lease ticks")
    assert b.cluster.held == {phone.mac} and a.cluster.held == set()
    assert a.cluster.entries[phone.mac][0] == revision  # the same binding: nothing written
    assert phone.mac not in a.phones.links
    assert phone.usage is dialog  # its CSTA dialog with b, never replaced
    assert ready_lines(a) == {line}


async def test_the_json_api_of_any_node_drives_a_phone_linked_at_another(nodes: Nodes) -> None:
    a = await nodes.start("a")
    b = await nodes.start("b")
    sim = nodes.simulation()
    nodes.register_with(sim, "b")
    phone = sim.add_phone("snom", ["100"], transport="udp")
    await sim.start()
    line = "sip:100@sim.invalid"
    await wait_until(lambda: ready_lines(a) == ready_lines(b) == {line}, 10, "100 on a")
    assert a.store is not None
    _id, token = Auth(a.store).create_token("cluster")
    async with httpx.AsyncClient(
        base_url=f"http://127.0.0.1:{a.http_port}",
        headers={"Authorization": f"Bearer {token}"},
        timeout=15.0,
    ) as http:
        listed = (await http.get("/api/v1/devices")).json()
        assert [(d["device"], d["phone"], d["ready"]) for d in listed] == [(line, phone.mac, True)]
        made = await http.post("/api/v1/devices/100/calls", json={"to": "200"})
        assert made.status_code == 201, made.text
        assert made.json()["call_id"].startswith(phone.mac.lower() + ".")
    assert phone.received["MakeCall"] == 1


async def test_a_tr87_client_on_one_node_drives_a_phone_linked_at_another(nodes: Nodes) -> None:
    a = await nodes.start("a")
    b = await nodes.start("b")
    sim = nodes.simulation()
    nodes.register_with(sim, "b")
    phone = sim.add_phone("snom", ["100"], transport="udp")
    await sim.start()
    await wait_until(lambda: ready_lines(a) == ready_lines(b) == {"sip:100@sim.invalid"}, 10)
    assert a.tr87 is not None
    client = Tr87Client(a.tr87.ua.transport.listener("tcp").port)
    await client.start()
    try:
        _challenge, accepted = await client.invite(user="crm", password="crm-secret")
        assert accepted is not None and accepted.status_code == 200
        started = await client.csta(m.MonitorStart(monitor_object="100"))
        assert isinstance(started, m.MonitorStartResponse), started
        assert isinstance(await client.next_info(), m.BackInServiceEvent)
        made = await client.csta(m.MakeCall(calling_device="100", called_directory_number="200"))
        assert isinstance(made, m.MakeCallResponse), made
        assert made.calling_device is not None
        call_id = made.calling_device.call_id
        seen: list[m.CstaMessage] = []
        while not any(isinstance(e, m.OriginatedEvent) for e in seen):
            seen.append(await client.next_info())
        originated = next(e for e in seen if isinstance(e, m.OriginatedEvent))
        assert originated.originated_connection is not None
        assert originated.originated_connection.call_id == call_id
        assert phone.received["MakeCall"] == 1
        await client.hangup()
    finally:
        await client.close()
