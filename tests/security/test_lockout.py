"""Lock-outs that throttle the attacker, not the victim (issue 15 item 9).

A running server on loopback; the attacker uses another loopback address (127.0.0.2,
127.0.0.3: Linux routes all of 127/8 to lo) than the legitimate peer (127.0.0.1). Every SIP
message, Annex J frame and digest answer is written by hand here (RFC 3261, RFC 2617 and
ECMA-323 Annex J / ECMA-354), not produced by the server's own codec.

Before the fix, wrong passwords naming an account from *any* address blocked that account
everywhere (10 REGISTERs for a phone, 10 logins for a CTI account), and failures from one
address blocked every phone behind it; 5 wrong web-client logins from anywhere blocked the
extension.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import re
import secrets
from dataclasses import dataclass

import httpx

from tests.e2e.conftest import csta_port, phone_ports
from tests.security.conftest import Harness
from uacsta.web.auth import Auth

WAIT = 5.0
ATTACKER = "127.0.0.2"
NAT = "127.0.0.3"
YEALINK_UA = "Yealink SIP-T46G 28.83.0.35"


# --------------------------------------------------------------------------- SIP by hand


def md5(text: str) -> str:
    return hashlib.md5(text.encode()).hexdigest()


def challenge_params(value: str) -> dict[str, str]:
    """The auth-params of one ``Digest`` challenge (quoted values unquoted; enough here)."""
    assert value.startswith("Digest "), value
    params: dict[str, str] = {}
    rest = value[len("Digest ") :]
    while rest:
        key, _, rest = rest.partition("=")
        rest = rest.lstrip()
        if rest.startswith('"'):
            val, _, rest = rest[1:].partition('"')
        else:
            val, _, rest = rest.partition(",")
            rest = "," + rest if rest else ""
        params[key.strip().lower()] = val
        rest = rest.lstrip().removeprefix(",").lstrip()
    return params


def md5_challenge(reply: SipReply) -> dict[str, str]:
    """The MD5 challenge among a 401's ``WWW-Authenticate`` headers."""
    for value in reply.all("WWW-Authenticate"):
        params = challenge_params(value)
        if params.get("algorithm", "MD5").upper() == "MD5":
            return params
    raise AssertionError(f"no MD5 challenge in {reply.all('WWW-Authenticate')}")


def authorization(
    ch: dict[str, str],
    *,
    method: str,
    uri: str,
    user: str,
    password: str,
    qop: bool = True,
    nc: int = 1,
) -> str:
    """An MD5 ``Authorization`` value (RFC 2617 §3.2.2; RFC 2069 form when ``qop`` is False)."""
    ha1 = md5(f"{user}:{ch['realm']}:{password}")
    ha2 = md5(f"{method}:{uri}")
    head = f'Digest username="{user}", realm="{ch["realm"]}", nonce="{ch["nonce"]}", uri="{uri}"'
    opaque = f', opaque="{ch["opaque"]}"' if "opaque" in ch else ""
    if not qop:
        response = md5(f"{ha1}:{ch['nonce']}:{ha2}")
        return f'{head}, response="{response}", algorithm=MD5{opaque}'
    cnonce, nc_text = "0a4f113b", f"{nc:08x}"
    response = md5(f"{ha1}:{ch['nonce']}:{nc_text}:{cnonce}:auth:{ha2}")
    return (
        f'{head}, response="{response}", algorithm=MD5, cnonce="{cnonce}", qop=auth, '
        f"nc={nc_text}{opaque}"
    )


@dataclass
class SipReply:
    status: int
    headers: list[tuple[str, str]]
    body: bytes

    def all(self, name: str) -> list[str]:
        return [v for k, v in self.headers if k.lower() == name.lower()]

    def get(self, name: str) -> str | None:
        values = self.all(name)
        return values[0] if values else None


def parse_reply(data: bytes) -> SipReply:
    head, _, body = data.partition(b"\r\n\r\n")
    lines = head.decode().split("\r\n")
    assert lines[0].startswith("SIP/2.0 "), lines[0]
    headers = []
    for line in lines[1:]:
        name, _, value = line.partition(":")
        headers.append((name.strip(), value.strip()))
    return SipReply(int(lines[0].split()[1]), headers, body)


def register(
    *,
    mac: str,
    local: tuple[str, int],
    server: tuple[str, int],
    call_id: str,
    cseq: int,
    transport: str = "UDP",
    contact: str | None = None,
    auth: str | None = None,
    expires: int = 300,
    uri: str | None = None,
) -> bytes:
    host, port = server
    lines = [
        f"REGISTER {uri or f'sip:{host}:{port}'} SIP/2.0",
        f"Via: SIP/2.0/{transport} {local[0]}:{local[1]}"
        f";branch=z9hG4bK{secrets.token_hex(8)};rport",
        "Max-Forwards: 70",
        f"From: <sip:{mac}@{host}>;tag={secrets.token_hex(4)}",
        f"To: <sip:{mac}@{host}>",
        f"Call-ID: {call_id}",
        f"CSeq: {cseq} REGISTER",
        f"Contact: {contact or f'<sip:{mac}@{local[0]}:{local[1]}>'}",
        f"Expires: {expires}",
        f"User-Agent: {YEALINK_UA}",
        *([f"Authorization: {auth}"] if auth else []),
        "Content-Length: 0",
    ]
    return ("\r\n".join(lines) + "\r\n\r\n").encode()


class _Datagrams(asyncio.DatagramProtocol):
    def __init__(self) -> None:
        self.queue: asyncio.Queue[bytes] = asyncio.Queue()

    def datagram_received(self, data: bytes, addr: tuple[str | bytes, int]) -> None:
        self.queue.put_nowait(data)


class SipUdp:
    """One UDP socket on a chosen loopback address that speaks SIP written by hand."""

    def __init__(self, transport: asyncio.DatagramTransport, proto: _Datagrams) -> None:
        self.transport, self.proto = transport, proto
        self.local: tuple[str, int] = transport.get_extra_info("sockname")[:2]

    @classmethod
    async def open(cls, host: str, server_port: int) -> SipUdp:
        loop = asyncio.get_running_loop()
        transport, proto = await loop.create_datagram_endpoint(
            _Datagrams, local_addr=(host, 0), remote_addr=("127.0.0.1", server_port)
        )
        return cls(transport, proto)

    def send(self, data: bytes) -> None:
        self.transport.sendto(data)

    async def reply(self, call_id: str | None = None) -> SipReply:
        """The next final response (to ``call_id`` when given); requests are skipped."""
        async with asyncio.timeout(WAIT):
            while True:
                data = await self.proto.queue.get()
                if not data.startswith(b"SIP/2.0 "):
                    continue
                reply = parse_reply(data)
                if reply.status < 200 or (call_id and reply.get("Call-ID") != call_id):
                    continue
                return reply

    async def ask(self, data: bytes, call_id: str) -> SipReply:
        self.send(data)
        return await self.reply(call_id)

    def close(self) -> None:
        self.transport.close()


async def register_with_password(
    sip: SipUdp, server: tuple[str, int], mac: str, password: str, *, qop: bool = True
) -> tuple[SipReply, bytes]:
    """REGISTER → 401 → REGISTER with credentials; the final reply and the second request."""
    call_id = secrets.token_hex(8)
    first = await sip.ask(
        register(mac=mac, local=sip.local, server=server, call_id=call_id, cseq=1), call_id
    )
    assert first.status == 401, first
    uri = f"sip:{server[0]}:{server[1]}"
    auth = authorization(
        md5_challenge(first), method="REGISTER", uri=uri, user=mac, password=password, qop=qop
    )
    second = register(mac=mac, local=sip.local, server=server, call_id=call_id, cseq=2, auth=auth)
    return await sip.ask(second, call_id), second


async def wrong_registers(sip: SipUdp, server: tuple[str, int], macs: list[str]) -> list[int]:
    """One challenge, then a wrong password for each MAC in turn (nc counting up)."""
    call_id = secrets.token_hex(8)
    first = await sip.ask(
        register(mac=macs[0], local=sip.local, server=server, call_id=call_id, cseq=1), call_id
    )
    ch = md5_challenge(first)
    uri = f"sip:{server[0]}:{server[1]}"
    statuses = []
    for i, mac in enumerate(macs):
        auth = authorization(ch, method="REGISTER", uri=uri, user=mac, password="guess", nc=i + 1)
        cid = secrets.token_hex(8)
        reply = await sip.ask(
            register(mac=mac, local=sip.local, server=server, call_id=cid, cseq=1, auth=auth), cid
        )
        statuses.append(reply.status)
    return statuses


# --------------------------------------------------------------------------- phones


async def test_wrong_registers_from_elsewhere_do_not_lock_out_the_phone(harness: Harness) -> None:
    server = await harness.start_server()
    sim = harness.simulation()
    victim = sim.add_phone("yealink", ["100"], transport="udp")
    await sim.start()
    await harness.wait_state(victim.mac, "ready")

    registrar = ("127.0.0.1", phone_ports(server)["udp"])
    attacker = await SipUdp.open(ATTACKER, registrar[1])
    try:
        statuses = await wrong_registers(attacker, registrar, [victim.mac] * 40)
    finally:
        attacker.close()
    assert set(statuses) <= {401, 403}
    assert 403 in statuses  # the guesses were refused, and then the attacker was blocked

    # The real phone, on its own address, still registers and keeps its link.
    assert await victim.register() == 200
    assert harness.state(victim.mac) == "ready"


async def test_failures_behind_one_address_do_not_lock_out_the_other_phones(
    harness: Harness,
) -> None:
    server = await harness.start_server()
    registrar = ("127.0.0.1", phone_ports(server)["udp"])
    good_mac = "001565A0B0C1"
    phone = await SipUdp.open(NAT, registrar[1])  # a phone behind a NAT
    neighbour = await SipUdp.open(NAT, registrar[1])  # a broken or hostile one, same address
    try:
        reply, _ = await register_with_password(phone, registrar, good_mac, "phone-secret")
        assert reply.status == 200, reply
        # Wrong passwords for many phones from the shared address, far beyond any limit.
        macs = [f"001565F0{i:04X}" for i in range(60)]
        statuses = await wrong_registers(neighbour, registrar, macs)
        assert 403 in statuses
        # The phone that registered from that address before still registers.
        reply, _ = await register_with_password(phone, registrar, good_mac, "phone-secret")
        assert reply.status == 200, reply
    finally:
        phone.close()
        neighbour.close()


# --------------------------------------------------------------------------- CTI clients

APPL_SESSION = "http://www.ecma-international.org/standards/ecma-354/appl_session"
CSTA_ED3 = "http://www.ecma-international.org/standards/ecma-323/csta/ed3"


def start_application_session(user: str, password: str) -> bytes:
    """ECMA-354 StartApplicationSession with Avaya-style SessionLoginInfo credentials."""
    return (
        '<?xml version="1.0" encoding="UTF-8"?>'
        f'<StartApplicationSession xmlns="{APPL_SESSION}">'
        "<applicationInfo><applicationID>attack</applicationID><applicationSpecificInfo>"
        '<ns1:SessionLoginInfo xmlns:ns1="http://www.avaya.com/csta">'
        f"<ns1:userName>{user}</ns1:userName><ns1:password>{password}</ns1:password>"
        "</ns1:SessionLoginInfo></applicationSpecificInfo></applicationInfo>"
        f"<requestedProtocolVersions><protocolVersion>{CSTA_ED3}</protocolVersion>"
        "</requestedProtocolVersions><requestedSessionDuration>60</requestedSessionDuration>"
        "</StartApplicationSession>"
    ).encode()


def annex_j(invoke: int, xml: bytes) -> bytes:
    """ECMA-323 Annex J: 0x0000, a 2-byte length of the whole frame, 4 digits, the XML."""
    return b"\x00\x00" + (8 + len(xml)).to_bytes(2, "big") + f"{invoke:04d}".encode() + xml


async def csta_login(
    port: int, user: str, password: str, *, local: str, tries: int = 1
) -> list[bool]:
    """Log in ``tries`` times on one connection; True for each positive response."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port, local_addr=(local, 0))
    results = []
    try:
        for i in range(tries):
            writer.write(annex_j(i + 1, start_application_session(user, password)))
            try:
                async with asyncio.timeout(WAIT):
                    header = await reader.readexactly(8)
                    xml = await reader.readexactly(int.from_bytes(header[2:4], "big") - 8)
            except asyncio.IncompleteReadError:
                break  # the server ends a connection after a few wrong logins
            results.append(b"StartApplicationSessionPosResponse" in xml)
    finally:
        writer.close()
        with contextlib.suppress(OSError):
            await writer.wait_closed()
    return results


async def tr87_invite(
    port: int, user: str, password: str, *, local: str, tries: int = 1
) -> list[int]:
    """TR/87 INVITEs over one TCP connection: a 401, then ``tries`` answers to its challenge.

    Returns the final status of each answered INVITE; a 200 is closed again by hanging up
    the connection (the server then ends the session)."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port, local_addr=(local, 0))
    lhost, lport = writer.get_extra_info("sockname")[:2]
    call_id = secrets.token_hex(8)
    body = f'<?xml version="1.0" encoding="UTF-8"?><RequestSystemStatus xmlns="{CSTA_ED3}"/>'

    def invite(cseq: int, auth: str | None) -> bytes:
        lines = [
            f"INVITE sip:cstaserver@127.0.0.1:{port} SIP/2.0",
            f"Via: SIP/2.0/TCP {lhost}:{lport};branch=z9hG4bK{secrets.token_hex(8)}",
            "Max-Forwards: 70",
            f"From: <sip:{user}@{lhost}>;tag=a{cseq}{secrets.token_hex(3)}",
            f"To: <sip:cstaserver@127.0.0.1:{port}>",
            f"Call-ID: {call_id}-{cseq}",
            f"CSeq: {cseq} INVITE",
            f"Contact: <sip:{user}@{lhost}:{lport};transport=tcp>",
            "Content-Type: application/csta+xml",
            "Content-Disposition: signal;handling=required",
            *([f"Authorization: {auth}"] if auth else []),
            f"Content-Length: {len(body)}",
        ]
        return ("\r\n".join(lines) + "\r\n\r\n" + body).encode()

    async def final() -> SipReply:
        async with asyncio.timeout(WAIT):
            while True:
                head = await reader.readuntil(b"\r\n\r\n")
                reply = parse_reply(head)
                length = int(reply.get("Content-Length") or 0)
                reply.body = await reader.readexactly(length)
                if reply.status >= 200:
                    return reply

    statuses = []
    try:
        writer.write(invite(1, None))
        challenge = await final()
        assert challenge.status == 401, challenge
        ch = md5_challenge(challenge)
        uri = f"sip:cstaserver@127.0.0.1:{port}"
        for i in range(tries):
            auth = authorization(
                ch, method="INVITE", uri=uri, user=user, password=password, nc=i + 1
            )
            writer.write(invite(i + 2, auth))
            reply = await final()
            statuses.append(reply.status)
            if reply.status == 200:
                break
    finally:
        writer.close()
        with contextlib.suppress(OSError):
            await writer.wait_closed()
    return statuses


async def test_bad_logins_from_one_source_do_not_lock_crm_out_on_csta_tcp_and_tr87(
    harness: Harness,
) -> None:
    server = await harness.start_server()
    port = csta_port(server)
    assert server.tr87 is not None
    sip_port = server.tr87.ua.transport.listeners[0].port

    # The CRM's own host logs in on both gateways.
    assert await csta_login(port, "crm", "crm-secret", local="127.0.0.1") == [True]
    assert await tr87_invite(sip_port, "crm", "crm-secret", local="127.0.0.1") == [200]

    # Someone else guesses crm's password on both, far beyond every limit.
    refused: list[bool] = []
    for _ in range(12):
        refused += await csta_login(port, "crm", "guess", local=ATTACKER, tries=3)
    assert refused and not any(refused)
    guesses: list[int] = []
    for _ in range(3):
        guesses += await tr87_invite(sip_port, "crm", "guess", local=ATTACKER, tries=12)
    assert guesses and set(guesses) == {403}
    # ... and with the right password from the attacker's address it is now blocked.
    assert await csta_login(port, "crm", "crm-secret", local=ATTACKER) == [False]

    # The CRM on its own address is not locked out on either gateway.
    assert await csta_login(port, "crm", "crm-secret", local="127.0.0.1") == [True]
    assert await tr87_invite(sip_port, "crm", "crm-secret", local="127.0.0.1") == [200]


# --------------------------------------------------------------------------- web client


async def web_client_login(port: int, extension: str, password: str, *, local: str) -> int:
    """One login on the web client's form (its CSRF token first) from ``local``."""
    transport = httpx.AsyncHTTPTransport(local_address=local)
    async with httpx.AsyncClient(
        base_url=f"http://127.0.0.1:{port}", transport=transport, timeout=30
    ) as http:
        page = await http.get("/client/login")
        match = re.search(r'name="csrf" value="([^"]+)"', page.text)
        assert match, page.text
        r = await http.post(
            "/client/login",
            data={"csrf": match.group(1), "extension": extension, "password": password},
        )
        return r.status_code


async def test_bad_web_client_logins_from_elsewhere_do_not_lock_out_the_extension(
    harness: Harness,
) -> None:
    server = await harness.start_server()
    assert server.store is not None and server.http_port is not None
    Auth(server.store).set_password("100", "user-secret-pw", role="user", extension="100")
    port = server.http_port

    assert await web_client_login(port, "100", "user-secret-pw", local="127.0.0.1") == 303
    statuses = [await web_client_login(port, "100", "guess", local=ATTACKER) for _ in range(15)]
    assert set(statuses) == {401, 429} and statuses[-1] == 429
    # The user's own address still logs in.
    assert await web_client_login(port, "100", "user-secret-pw", local="127.0.0.1") == 303
