"""Call IDs in one space, end to end (issue 14 item 6).

Four simulated phones on real sockets, each numbering its calls from 1 as phones do; 100
calls 200 and 300 calls 400, so two unrelated calls carry the same call ID on the phones.
A CSTA-over-TCP client must see them as two calls, act on each by the ID it was given, and
the JSON API must show the same IDs.
"""

from __future__ import annotations

import asyncio
from urllib.parse import quote

import httpx

from tests.e2e.conftest import Harness
from uacsta.clients.cstatcp import CstaTcpClient
from uacsta.csta import messages as m
from uacsta.web.auth import Auth

LINES = ("100", "200", "300", "400")


async def _events(client: CstaTcpClient, done, timeout: float = 5.0) -> list[m.CstaEvent]:
    got: list[m.CstaEvent] = []
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while not done(got):
        message = await client.event(max(0.01, deadline - loop.time()))
        if isinstance(message, m.CstaEvent):
            got.append(message)
    return got


def _on(events: list[m.CstaEvent], xref: str, kind: type) -> list[m.CstaEvent]:
    return [e for e in events if e.monitor_cross_ref_id == xref and isinstance(e, kind)]


async def test_two_phones_first_calls_are_two_calls_for_clients(harness: Harness) -> None:
    server = await harness.start_server()
    sim = harness.simulation()
    phones = [sim.add_phone("snom", [line], transport="tcp") for line in LINES]
    await sim.start()
    for agent in phones:
        await harness.wait_state(agent.mac, "ready")
    client = await harness.csta_client()
    xref = {}
    for line in LINES:
        started = await client.request(m.MonitorStart(monitor_object=line))
        assert isinstance(started, m.MonitorStartResponse)
        xref[line] = started.monitor_cross_ref_id
    await _events(
        client, lambda ev: len([e for e in ev if "BackInService" in type(e).__name__]) == 4
    )

    first = await client.request(m.MakeCall(calling_device="100", called_directory_number="200"))
    second = await client.request(m.MakeCall(calling_device="300", called_directory_number="400"))
    assert isinstance(first, m.MakeCallResponse) and isinstance(second, m.MakeCallResponse)
    assert first.calling_device is not None and second.calling_device is not None
    # On the phones both are call number one of their phone ...
    a_leg = phones[0].phone.legs()[0]
    c_leg = phones[2].phone.legs()[0]
    assert a_leg.call_id == c_leg.call_id
    # ... for the client they are two calls.
    assert first.calling_device.call_id != second.calling_device.call_id

    events = await _events(
        client,
        lambda ev: (
            _on(ev, xref["200"], m.DeliveredEvent) and _on(ev, xref["400"], m.DeliveredEvent)
        ),
    )
    at_b = _on(events, xref["200"], m.DeliveredEvent)[0]
    at_d = _on(events, xref["400"], m.DeliveredEvent)[0]
    assert at_b.connection is not None and at_d.connection is not None
    assert at_b.connection.call_id != at_d.connection.call_id
    # The events at the caller carry the ID its MakeCall answer gave.
    originated = [e for e in events if e.monitor_cross_ref_id == xref["100"]]
    assert originated
    for event in originated:
        connections = [
            v
            for v in vars_of(event)
            if getattr(v, "device_id", None) == phones[0].phone.lines[0].device_id
        ]
        assert all(c.call_id == first.calling_device.call_id for c in connections)

    # Answer at 400 with the ID the client got: only that call is answered.
    answered = await client.request(m.AnswerCall(call_to_be_answered=at_d.connection))
    assert isinstance(answered, m.AnswerCallResponse)
    await _events(client, lambda ev: _on(ev, xref["400"], m.EstablishedEvent))
    assert phones[1].received["AnswerCall"] == 0 and phones[3].received["AnswerCall"] == 1

    # The JSON API shows the same IDs as CSTA over TCP.
    assert server.store is not None
    _id, token = Auth(server.store).create_token("call-ids")
    async with httpx.AsyncClient(
        base_url=f"http://127.0.0.1:{server.http_port}",
        headers={"Authorization": f"Bearer {token}"},
        timeout=15.0,
    ) as http:
        snap = (await http.get("/api/v1/devices/100/snapshot")).json()
        assert [c["call_id"] for c in snap["calls"]] == [first.calling_device.call_id]
        snap = (await http.get("/api/v1/devices/300/snapshot")).json()
        assert [c["call_id"] for c in snap["calls"]] == [second.calling_device.call_id]
        # Clearing 300's call by its ID through the JSON API leaves 100's call alone.
        path = f"/api/v1/devices/300/calls/{quote(second.calling_device.call_id, safe='')}/clear"
        r = await http.post(path)
        assert r.status_code == 200, r.text
        # 100's call named at 300 is not 300's call: refused, nothing cleared.
        path = f"/api/v1/devices/300/calls/{quote(first.calling_device.call_id, safe='')}/clear"
        r = await http.post(path)
        assert r.status_code != 200
        assert r.json()["csta_error"] == {"category": "operation", "value": "invalidCallID"}
    await _events(client, lambda ev: _on(ev, xref["300"], m.ConnectionClearedEvent))
    snap_a = await client.request(m.SnapshotDevice(snapshot_object="100"))
    assert isinstance(snap_a, m.SnapshotDeviceResponse)
    assert [s.connection_identifier.call_id for s in snap_a.snapshot_data] == [  # type: ignore[union-attr]
        first.calling_device.call_id
    ]


def vars_of(event: m.CstaEvent) -> list[object]:
    return [getattr(event, name) for name in getattr(event, "__dataclass_fields__", {})]
