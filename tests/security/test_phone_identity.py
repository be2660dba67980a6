"""A phone with valid credentials claiming another phone's identity (issue 15 item 14).

The inventory's identity of a phone (and its only line when it lists none) came from the To of
its REGISTER, which the phone writes itself: phone A, logging in with its own MAC and
password, could register the address of record of phone B (B's MAC or B's number) and be
shown, and bound, as B. RFC 3261 §10.3 step 6: the registrar checks that the authenticated
user may register that address of record, else 403. The REGISTERs here are built by hand and
the digest answered by hand (RFC 7616 §3.4.1) from an attacker's own UDP socket.
"""

from __future__ import annotations

import asyncio
import hashlib
import itertools
import re
import socket
from collections.abc import AsyncIterator

import pytest

from tests.e2e.conftest import PASSWORD, phone_ports
from tests.security.conftest import Harness
from uacsta.csta import messages as m

PHONE_A = "001565AA0A0A"  # the attacker's own phone (Yealink OUI), valid password
_CSEQ = itertools.count(1)  # one CSeq and branch per REGISTER (no retransmission matches)


def register(
    port: int, local_port: int, *, aor: str, cseq: int, authorization: str | None = None
) -> bytes:
    lines = [
        f"REGISTER sip:127.0.0.1:{port} SIP/2.0",
        f"Via: SIP/2.0/UDP 127.0.0.1:{local_port};branch=z9hG4bK-id-{cseq};rport",
        "Max-Forwards: 70",
        f"From: <{aor}>;tag=attacker-{cseq}",
        f"To: <{aor}>",
        "Call-ID: identity-attack@127.0.0.1",
        f"CSeq: {cseq} REGISTER",
        f"Contact: <sip:{PHONE_A}@127.0.0.1:{local_port}>",
        "User-Agent: Yealink SIP-T46G 28.81.0.15",
        "Expires: 300",
    ]
    if authorization is not None:
        lines.append(f"Authorization: {authorization}")
    lines.append("Content-Length: 0")
    return ("\r\n".join(lines) + "\r\n\r\n").encode()


def digest_answer(challenge: str, *, user: str, password: str, uri: str) -> str:
    """RFC 7616 §3.4.1 response with qop=auth, computed here, not by uacsta's digest code."""
    params = dict(re.findall(r'(\w+)="?([^",]*)"?', challenge.partition(" ")[2]))
    algorithm = params.get("algorithm", "MD5")
    h = {"MD5": hashlib.md5, "SHA-256": hashlib.sha256}[algorithm]

    def hex_of(text: str) -> str:
        return h(text.encode()).hexdigest()

    ha1 = hex_of(f"{user}:{params['realm']}:{password}")
    ha2 = hex_of(f"REGISTER:{uri}")
    nc, cnonce = "00000001", "0a4f113b"
    response = hex_of(f"{ha1}:{params['nonce']}:{nc}:{cnonce}:auth:{ha2}")
    fields = [
        f'username="{user}"',
        f'realm="{params["realm"]}"',
        f'nonce="{params["nonce"]}"',
        f'uri="{uri}"',
        f"algorithm={algorithm}",
        f'response="{response}"',
        "qop=auth",
        f"nc={nc}",
        f'cnonce="{cnonce}"',
    ]
    if "opaque" in params:
        fields.append(f'opaque="{params["opaque"]}"')
    return "Digest " + ", ".join(fields)


@pytest.fixture
async def attacker() -> AsyncIterator[socket.socket]:
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.setblocking(False)
    sock.bind(("127.0.0.1", 0))
    yield sock
    sock.close()


async def exchange(sock: socket.socket, port: int, data: bytes) -> bytes:
    loop = asyncio.get_running_loop()
    sock.sendto(data, ("127.0.0.1", port))
    while True:
        reply, _ = await asyncio.wait_for(loop.sock_recvfrom(sock, 65535), 5)
        if int(reply.split(None, 2)[1]) >= 200:
            return reply


async def register_as_a(sock: socket.socket, port: int, aor: str) -> int:
    """REGISTER ``aor`` with phone A's own, valid credentials; the final status."""
    local = sock.getsockname()[1]
    first = await exchange(sock, port, register(port, local, aor=aor, cseq=next(_CSEQ)))
    assert first.startswith(b"SIP/2.0 401"), first[:80]
    challenges = re.findall(rb"WWW-Authenticate: *([^\r\n]+)", first, re.IGNORECASE)
    md5 = [c.decode() for c in challenges if b"MD5" in c or b"algorithm" not in c]
    answer = digest_answer(md5[0], user=PHONE_A, password=PASSWORD, uri=f"sip:127.0.0.1:{port}")
    again = register(port, local, aor=aor, cseq=next(_CSEQ), authorization=answer)
    final = await exchange(sock, port, again)
    return int(final.split(None, 2)[1])


async def test_a_phone_cannot_register_another_phones_identity(
    harness: Harness, attacker: socket.socket
) -> None:
    server = await harness.start_server()
    sim = harness.simulation()
    victim = sim.add_phone("snom", ["200"], transport="tcp")
    await sim.start()
    await harness.wait_state(victim.mac, "ready")
    assert server.inventory is not None
    before = server.inventory.get(victim.mac)
    assert before is not None
    victim_identity, victim_ip, victim_port = before.identity, before.ip, before.port
    port = phone_ports(server)["udp"]

    # B's MAC and B's number as A's address of record: refused, nothing shown as B.
    for aor in (f"sip:{victim.mac}@127.0.0.1", "sip:200@sim.invalid", "sip:200@127.0.0.1"):
        assert await register_as_a(attacker, port, aor) == 403, aor
        record = server.inventory.get(PHONE_A)
        assert record is None or record.identity is None or PHONE_A in record.identity
        assert victim.mac not in (record.identity or "") if record else True
    after = server.inventory.get(victim.mac)
    assert after is not None
    assert (after.identity, after.ip, after.port) == (victim_identity, victim_ip, victim_port)
    assert harness.state(victim.mac) == "ready"
    shown = [r for r in server.inventory.all() if r.mac != victim.mac]
    assert all("200" not in (r.identity or "") for r in shown)

    # Its own identity (the MAC as user name, estos §3.2): accepted and shown as A.
    assert await register_as_a(attacker, port, f"sip:{PHONE_A.lower()}@127.0.0.1") == 200
    record = server.inventory.get(PHONE_A)
    assert record is not None and record.identity == f"sip:{PHONE_A.lower()}@127.0.0.1"


GARBAGE = {
    "SIP 500": (500, b""),
    "garbage body": (200, b"<<<MonitorStartResponse not XML"),
}


@pytest.mark.parametrize("answer", list(GARBAGE), ids=list(GARBAGE))
async def test_phone_answering_monitor_start_with_garbage_is_reported(
    harness: Harness, answer: str
) -> None:
    """Item 15: the phone answers MonitorStart with SIP 500 or an unreadable body. Before, it
    stayed "ready" and the client's monitor silently never started (no BackInService, no
    error); now the phone is shown failed with the reason and the client hears
    OutOfService."""
    status, body = GARBAGE[answer]
    # Without the server's own monitor, whose MonitorStart at link time would fail the phone
    # before any client asks (the same rule, earlier).
    server = await harness.start_server(journal=False, relink_backoff=60.0)
    sim = harness.simulation()
    agent = sim.add_phone("yealink", ["100"], transport="udp")
    proper = agent._in_dialog

    def faulty(sr) -> None:  # type: ignore[no-untyped-def]
        if sr.request.method == "INFO" and b"<MonitorStart" in sr.request.body:
            sr.reply(status, body=body, content_type="application/csta+xml" if body else None)
            return
        proper(sr)

    agent._in_dialog = faulty  # type: ignore[method-assign]
    await sim.start()
    await harness.wait_state(agent.mac, "ready")
    client = await harness.csta_client()
    start = await client.request(m.MonitorStart(monitor_object="100"))
    assert isinstance(start, m.MonitorStartResponse)
    seen: list[m.CstaMessage] = []
    while not any(isinstance(e, m.OutOfServiceEvent) for e in seen):
        seen.append(await client.event(5))
    assert not any(isinstance(e, m.BackInServiceEvent) for e in seen)
    out = next(e for e in seen if isinstance(e, m.OutOfServiceEvent))
    assert out.monitor_cross_ref_id == start.monitor_cross_ref_id
    await harness.wait_state(agent.mac, "failed")
    assert server.inventory is not None
    record = server.inventory.get(agent.mac)
    assert record is not None and "MonitorStart" in (record.state_reason or "")
    # Other clients are told at once too, not left waiting.
    other = await harness.csta_client()
    again = await other.request(m.MonitorStart(monitor_object="100"))
    assert isinstance(again, m.MonitorStartResponse)
    assert isinstance(await other.event(5), m.OutOfServiceEvent)
