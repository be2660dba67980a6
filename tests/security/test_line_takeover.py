"""A phone with valid credentials cannot take over another phone's line (issue 15 item 4).

The thief is a second simulated phone (its own simulated PBX, the shared phone password)
that reports the victim's line ``sip:100@sim.invalid`` as its own. The line must stay with
the ready owner: MakeCall reaches the owner, the thief's forged events reach no client, the
conflict is visible; only the owner losing its link, or an operator, moves the line.
"""

from __future__ import annotations

import asyncio
import json
from base64 import b64encode

import httpx
import itsdangerous

from tests.security.conftest import Harness, wait_until
from uacsta.clients.cstatcp import CstaTcpClient
from uacsta.csta import codec
from uacsta.csta import messages as m
from uacsta.csta.types import ConnectionID, DeviceIdentifier
from uacsta.server import Server
from uacsta.simulator.agent import CSTA_TYPE, PhoneAgent
from uacsta.web.auth import Auth

CSRF = "line-takeover-csrf"

LINE = "sip:100@sim.invalid"


async def _forge(thief: PhoneAgent, xref: str) -> None:
    """An event on the thief's CSTA dialog; returns once the server answered the INFO."""
    event = m.DeliveredEvent(
        monitor_cross_ref_id=xref,
        connection=ConnectionID(call_id="666", device_id=LINE),
        alerting_device=DeviceIdentifier(LINE),
        calling_device=DeviceIdentifier("sip:forged@evil.invalid"),
    )
    assert thief.usage is not None
    body = codec.encode(event, codec.Edition.ED3)
    await thief.ua.request("INFO", thief.usage, body=body, content_type=CSTA_TYPE)


async def _events(client: CstaTcpClient, until: type, timeout: float = 5.0) -> list[m.CstaEvent]:
    got: list[m.CstaEvent] = []
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while not any(isinstance(e, until) for e in got):
        message = await client.event(max(0.01, deadline - loop.time()))
        if isinstance(message, m.CstaEvent):
            got.append(message)
    return got


async def test_a_second_phone_reporting_a_ready_phones_line_does_not_take_it(
    harness: Harness,
) -> None:
    server = await harness.start_server()
    sim = harness.simulation()
    owner = sim.add_phone("snom", ["100"], transport="tcp")
    sim.add_phone("snom", ["200"], transport="tcp")
    await sim.start()
    for agent in sim.agents.values():
        await harness.wait_state(agent.mac, "ready")

    thieves = harness.simulation()
    thief = thieves.add_phone("snom", ["100"], transport="tcp", mac="0004130000FF")
    await thieves.start()
    await harness.wait_state(thief.mac, "ready")

    # The line stays with its owner, and the conflict is on record.
    switch = server.hub.switch
    assert switch.devices.resolve("100").phone == owner.mac  # type: ignore[union-attr]
    conflicts = switch.devices.conflicts()
    assert [(c.claimant, c.owner, c.device_id) for c in conflicts] == [(thief.mac, owner.mac, LINE)]

    client = await harness.csta_client()
    started = await client.request(m.MonitorStart(monitor_object="100"))
    assert isinstance(started, m.MonitorStartResponse)
    await client.wait_for(m.BackInServiceEvent)
    assert owner.received["MonitorStart"] == 1 and thief.received["MonitorStart"] == 0

    # The thief forges events under every monitor cross-ref it could know or guess.
    guesses = {p.phone_cross_ref_id for p in switch.monitors.points.values()}
    guesses |= set(thief.phone.monitors) | {"0", "1"}
    for xref in sorted(x for x in guesses if x):
        await _forge(thief, xref)

    # MakeCall goes to the owner; what the client sees next are the owner's events only.
    made = await client.request(m.MakeCall(calling_device="100", called_directory_number="200"))
    assert isinstance(made, m.MakeCallResponse)
    assert owner.received["MakeCall"] == 1 and thief.received["MakeCall"] == 0
    events = await _events(client, m.DeliveredEvent)
    forged = [
        e
        for e in events
        if isinstance(e, m.DeliveredEvent)
        and e.calling_device is not None
        and "forged" in (e.calling_device.value or "")
    ]
    assert forged == []
    assert all(
        getattr(e, "connection", None) is None
        or e.connection.call_id == made.calling_device.call_id  # type: ignore[union-attr]
        for e in events
    )


async def test_the_line_moves_when_its_owner_is_gone(harness: Harness) -> None:
    """Equipment in the field: a line moved to a new desk phone works once the old is off."""
    server = await harness.start_server()
    sim = harness.simulation()
    old = sim.add_phone("snom", ["100"], transport="tcp")
    await sim.start()
    await harness.wait_state(old.mac, "ready")
    await old.go_offline()
    await wait_until(lambda: not server.hub.switch.phones[old.mac].ready, what="the old phone lost")

    desk = harness.simulation()
    new = desk.add_phone("snom", ["100"], transport="tcp", mac="0004130000FE")
    await desk.start()
    await harness.wait_state(new.mac, "ready")
    await wait_until(
        lambda: getattr(server.hub.switch.devices.resolve("100"), "phone", None) == new.mac,
        what="the line on the new phone",
    )
    assert server.hub.switch.devices.conflicts() == []


async def test_conflict_shown_and_an_operator_assigns_the_line(harness: Harness) -> None:
    server = await harness.start_server()
    sim = harness.simulation()
    owner = sim.add_phone("snom", ["100"], transport="tcp")
    await sim.start()
    await harness.wait_state(owner.mac, "ready")
    desks = harness.simulation()
    desk = desks.add_phone("snom", ["100"], transport="tcp", mac="0004130000FD")
    await desks.start()
    await harness.wait_state(desk.mac, "ready")

    assert server.store is not None
    _id, token = Auth(server.store).create_token("operator")
    async with httpx.AsyncClient(
        base_url=f"http://127.0.0.1:{server.http_port}",
        headers={"Authorization": f"Bearer {token}"},
        timeout=15.0,
    ) as http:
        view = (await http.get(f"/api/v1/phones/{desk.mac}")).json()
        assert view["line_conflicts"] == [
            {"device": LINE, "claimant": desk.mac, "owner": owner.mac}
        ]
        listed = {p["mac"]: p["line_conflicts"] for p in (await http.get("/api/v1/phones")).json()}
        assert listed[owner.mac] == view["line_conflicts"]
        r = await http.post(f"/api/v1/phones/{desk.mac}/lines/assign", json={"device": LINE})
        assert r.status_code == 200, r.text
        assert [d["device"] for d in r.json()] == [LINE]
        view = (await http.get(f"/api/v1/phones/{owner.mac}")).json()
        assert view["line_conflicts"] == [
            {"device": LINE, "claimant": owner.mac, "owner": desk.mac}
        ]

    client = await harness.csta_client()
    await client.request(m.MakeCall(calling_device="100", called_directory_number="200"))
    assert desk.received["MakeCall"] == 1 and owner.received["MakeCall"] == 0


def _admin_cookie(server: Server) -> str:
    """A signed admin session cookie, as the admin login would set it."""
    assert server.store is not None
    secret = (server.data_dir / "session.key").read_text().strip()
    session_id = Auth(server.store).open_session("admin")
    data = b64encode(json.dumps({"sid": session_id, "csrf": CSRF}).encode())
    return itsdangerous.TimestampSigner(secret).sign(data).decode()


async def test_the_admin_shows_the_conflict_and_assigns_the_line(harness: Harness) -> None:
    server = await harness.start_server()
    sim = harness.simulation()
    owner = sim.add_phone("snom", ["100"], transport="tcp")
    await sim.start()
    await harness.wait_state(owner.mac, "ready")
    desks = harness.simulation()
    desk = desks.add_phone("snom", ["100"], transport="tcp", mac="0004130000FC")
    await desks.start()
    await harness.wait_state(desk.mac, "ready")

    async with httpx.AsyncClient(
        base_url=f"http://127.0.0.1:{server.http_port}",
        cookies={"uacsta_session": _admin_cookie(server)},
        timeout=15.0,
    ) as admin:
        listing = await admin.get("/admin/")
        assert listing.status_code == 200 and "line conflict" in listing.text
        page = await admin.get(f"/admin/phones/{owner.mac}")
        assert page.status_code == 200 and "Line conflicts" in page.text
        assert f'action="/admin/phones/{desk.mac}/lines/assign"' in page.text
        # Without the page's CSRF token nothing moves.
        refused = await admin.post(f"/admin/phones/{desk.mac}/lines/assign", data={"device": LINE})
        assert refused.status_code == 403
        assert server.hub.switch.devices.resolve(LINE).phone == owner.mac  # type: ignore[union-attr]
        done = await admin.post(
            f"/admin/phones/{desk.mac}/lines/assign", data={"device": LINE, "csrf": CSRF}
        )
        assert done.status_code == 303
    assert server.hub.switch.devices.resolve(LINE).phone == desk.mac  # type: ignore[union-attr]
