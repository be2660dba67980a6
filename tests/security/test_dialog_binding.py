"""In-dialog requests from someone other than the dialog's peer (issue 15 item 6).

Whoever learns a dialog's identifiers (Call-ID and both tags travel in clear over UDP/TCP) used
to be able to inject CSTA events into a phone's link, push its CSeq so the real phone's next
events got 500, end the link with BYE, or, on TR/87, run requests in a client's session from a
second, unauthenticated connection. Each test builds the attacker's SIP by hand and sends it
from its own socket to the running server.
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
from collections.abc import AsyncIterator

import pytest

from tests.e2e.conftest import phone_ports
from tests.e2e.test_csta_clients import events_until
from tests.e2e.test_tr87_clients import tr87_port
from tests.gateways.test_tr87 import Tr87Client
from tests.security.conftest import Harness
from uacsta.csta import messages as m
from uacsta.phones.link import PhoneLink
from uacsta.sip.dialog import Dialog

ED3 = "http://www.ecma-international.org/standards/ecma-323/csta/ed3"
ED5 = "http://www.ecma-international.org/standards/ecma-323/csta/ed5"


def delivered_event(xref: str) -> bytes:
    """A forged DeliveredEvent (ECMA-323 ed3 §12.2.5), a call from 666 ringing line 100."""
    return (
        '<?xml version="1.0" encoding="UTF-8"?>'
        f'<DeliveredEvent xmlns="{ED3}">'
        f"<monitorCrossRefID>{xref}</monitorCrossRefID>"
        "<connection><callID>666</callID><deviceID>sip:100@sim.invalid</deviceID></connection>"
        "<alertingDevice><deviceIdentifier>sip:100@sim.invalid</deviceIdentifier></alertingDevice>"
        "<callingDevice><deviceIdentifier>sip:666@evil.invalid</deviceIdentifier></callingDevice>"
        "<calledDevice><deviceIdentifier>sip:100@sim.invalid</deviceIdentifier></calledDevice>"
        "<lastRedirectionDevice><notKnown/></lastRedirectionDevice>"
        "<localConnectionInfo>alerting</localConnectionInfo>"
        "<cause>normal</cause>"
        "</DeliveredEvent>"
    ).encode()


def in_dialog_request(
    method: str,
    *,
    uri: str,
    via: str,
    from_: str,
    to: str,
    call_id: str,
    cseq: int,
    body: bytes = b"",
) -> bytes:
    """An in-dialog request as the peer would send it (RFC 3261 §12.2.1.1), by hand."""
    lines = [
        f"{method} {uri} SIP/2.0",
        f"Via: SIP/2.0/{via};branch=z9hG4bK-attack-{method.lower()}-{cseq}",
        "Max-Forwards: 70",
        f"From: {from_}",
        f"To: {to}",
        f"Call-ID: {call_id}",
        f"CSeq: {cseq} {method}",
    ]
    if body:
        lines.append("Content-Type: application/csta+xml")
    lines.append(f"Content-Length: {len(body)}")
    return ("\r\n".join(lines) + "\r\n\r\n").encode() + body


def status_of(data: bytes) -> int:
    first = data.split(b"\r\n", 1)[0].split()
    assert first[0] == b"SIP/2.0", data[:200]
    return int(first[1])


@pytest.fixture
async def udp_attacker() -> AsyncIterator[socket.socket]:
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.setblocking(False)
    sock.bind(("127.0.0.1", 0))
    yield sock
    sock.close()


async def udp_exchange(sock: socket.socket, port: int, data: bytes) -> int:
    loop = asyncio.get_running_loop()
    sock.sendto(data, ("127.0.0.1", port))
    while True:
        reply, _ = await asyncio.wait_for(loop.sock_recvfrom(sock, 65535), 5)
        status = status_of(reply)
        if status >= 200:
            return status


async def tcp_exchange(port: int, data: bytes) -> int:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    try:
        writer.write(data)
        await writer.drain()
        while True:
            head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 5)
            length = 0
            for line in head.split(b"\r\n"):
                name, _, value = line.partition(b":")
                if name.strip().lower() in (b"content-length", b"l"):
                    length = int(value)
            if length:
                await reader.readexactly(length)
            status = status_of(head)
            if status >= 200:
                return status
    finally:
        writer.close()
        with contextlib.suppress(ConnectionError):
            await writer.wait_closed()


def phone_dialog(harness: Harness, mac: str) -> Dialog:
    assert harness.server is not None and harness.server.phones is not None
    link: PhoneLink = harness.server.phones.links[mac]
    assert link.usage is not None
    return link.usage.dialog


def as_phone(dialog: Dialog, method: str, via: str, cseq: int, body: bytes = b"") -> bytes:
    """A request the phone would send in its link: From = the phone (remote), To = us."""
    assert dialog.local_contact is not None
    uri = dialog.local_contact.strip("<>")
    return in_dialog_request(
        method,
        uri=uri,
        via=via,
        from_=str(dialog.remote_uri),
        to=str(dialog.local_uri),
        call_id=dialog.call_id,
        cseq=cseq,
        body=body,
    )


async def test_udp_injection_from_another_address_is_refused(
    harness: Harness, udp_attacker: socket.socket
) -> None:
    server = await harness.start_server()
    sim = harness.simulation()
    agent = sim.add_phone("yealink", ["100"], transport="udp")
    await sim.start()
    await harness.wait_state(agent.mac, "ready")
    client = await harness.csta_client()
    start = await client.request(m.MonitorStart(monitor_object="100"))
    assert isinstance(start, m.MonitorStartResponse)
    await client.wait_for(m.BackInServiceEvent)
    (phone_xref,) = agent.phone.monitors
    dialog = phone_dialog(harness, agent.mac)
    cseq_before = dialog.remote_cseq
    port = phone_ports(server)["udp"]
    via = f"UDP 127.0.0.1:{udp_attacker.getsockname()[1]}"

    # A forged event with a CSeq far ahead of the phone's: refused, the dialog untouched.
    forged = as_phone(dialog, "INFO", via, 1_000_000, delivered_event(phone_xref))
    assert await udp_exchange(udp_attacker, port, forged) == 481
    assert dialog.remote_cseq == cseq_before
    # A forged BYE: refused, the link stays.
    bye = as_phone(dialog, "BYE", via, 1_000_001)
    assert await udp_exchange(udp_attacker, port, bye) == 481
    assert harness.state(agent.mac) == "ready"

    # The real phone's next events still arrive (its CSeq was not overtaken), and the forged
    # one never reached the client: events of one phone reach the client in order.
    sim.dial("100", "555")
    events = await events_until(
        client, lambda ev: any(isinstance(e, m.OriginatedEvent) for e in ev)
    )
    assert not any(
        isinstance(e, m.DeliveredEvent) and "666" in str(e.calling_device) for e in events
    )
    assert harness.state(agent.mac) == "ready"


async def test_tcp_injection_over_another_connection_is_refused(harness: Harness) -> None:
    server = await harness.start_server()
    sim = harness.simulation()
    agent = sim.add_phone("snom", ["200"], transport="tcp")
    await sim.start()
    await harness.wait_state(agent.mac, "ready")
    dialog = phone_dialog(harness, agent.mac)
    cseq_before = dialog.remote_cseq
    port = phone_ports(server)["tcp"]
    # Same address (127.0.0.1), another connection: not the phone's flow.
    forged = as_phone(dialog, "INFO", "TCP 127.0.0.1:9", 1_000_000, delivered_event("1"))
    assert await tcp_exchange(port, forged) == 481
    assert dialog.remote_cseq == cseq_before
    bye = as_phone(dialog, "BYE", "TCP 127.0.0.1:9", 1_000_001)
    assert await tcp_exchange(port, bye) == 481
    assert harness.state(agent.mac) == "ready"


def monitor_start(device: str) -> bytes:
    """MonitorStart (ECMA-323 ed5 §8.3.1) as a CTI client writes it."""
    return (
        '<?xml version="1.0" encoding="UTF-8"?>'
        f'<MonitorStart xmlns="{ED5}">'
        f"<monitorObject><deviceObject>{device}</deviceObject></monitorObject>"
        "</MonitorStart>"
    ).encode()


async def test_tr87_second_connection_cannot_act_in_a_session(harness: Harness) -> None:
    await harness.start_server(journal=False)  # counts the phone's MonitorStarts
    sim = harness.simulation()
    agent = sim.add_phone("snom", ["200"], transport="tcp")
    await sim.start()
    await harness.wait_state(agent.mac, "ready")
    client = Tr87Client(tr87_port(harness))
    await client.start()
    try:
        _, second = await client.invite(user="crm", password="crm-secret")
        assert second is not None and second.status_code == 200
        assert client.usage is not None
        dialog = client.usage.dialog  # the client's side: From = client, To = uacsta
        monitors_before = agent.received["MonitorStart"]
        forged = in_dialog_request(
            "INFO",
            uri=dialog.remote_target,
            via="TCP 127.0.0.1:9",
            from_=str(dialog.local_uri),
            to=str(dialog.remote_uri),
            call_id=dialog.call_id,
            cseq=1_000_000,
            body=monitor_start("200"),
        )
        assert await tcp_exchange(tr87_port(harness), forged) == 481
        bye = in_dialog_request(
            "BYE",
            uri=dialog.remote_target,
            via="TCP 127.0.0.1:9",
            from_=str(dialog.local_uri),
            to=str(dialog.remote_uri),
            call_id=dialog.call_id,
            cseq=1_000_001,
        )
        assert await tcp_exchange(tr87_port(harness), bye) == 481
        # The session goes on for its owner, its CSeq not overtaken, and no monitor was
        # started by the forged request (the phone saw only the owner's MonitorStart).
        answer = await client.csta(m.MonitorStart(monitor_object="200"))
        assert isinstance(answer, m.MonitorStartResponse)
        assert isinstance(await client.next_info(), m.BackInServiceEvent)
        assert agent.received["MonitorStart"] == monitors_before + 1
    finally:
        await client.close()
