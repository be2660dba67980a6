"""The reference documents' client messages, as bytes on real sockets, through the real server.

Each test sends a fixture of ``tests/csta/fixtures/captures/`` (written from the references,
never by our encoder) over a hand-made Annex J frame or a hand-written SIP request, to the
server the ``harness`` fixture runs, with simulated phones behind it; it asserts the answer
and what the phone did. Neither uacsta's client library nor its SIP user agent writes a byte
the server reads here (our SIP parser only reads the server's answers).
"""

from __future__ import annotations

import asyncio
import hashlib
import re
import secrets
import struct
from pathlib import Path
from typing import TypeVar
from xml.sax.saxutils import escape

from tests.e2e.conftest import PASSWORD, Harness, csta_port, phone_ports, wait_until
from uacsta.csta import appsession as ecma354
from uacsta.csta import messages as m
from uacsta.csta.codec import decode, decode_with_edition
from uacsta.csta.types import DeviceIdentifier
from uacsta.sip.framing import StreamFramer
from uacsta.sip.message import Request, Response, parse_message

M = TypeVar("M", bound=m.CstaMessage)
CAPTURES = Path(__file__).parent.parent / "csta" / "fixtures" / "captures"
WAIT = 5.0
ED3 = b"http://www.ecma-international.org/standards/ecma-323/csta/ed3"
ED5 = "http://www.ecma-international.org/standards/ecma-323/csta/ed5"


def capture(name: str) -> bytes:
    return (CAPTURES / name).read_bytes()


# --- CSTA over TCP, framed by hand (ECMA-323 Annex J) ---------------------------------------


class AnnexJ:
    """2 bytes 00 00, a 2-byte length of the whole frame, 4 ASCII invoke digits, the XML."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader, self.writer = reader, writer
        self.events: list[bytes] = []

    @classmethod
    async def open(cls, port: int) -> AnnexJ:
        return cls(*await asyncio.wait_for(asyncio.open_connection("127.0.0.1", port), WAIT))

    def send(self, invoke: bytes, xml: bytes) -> None:
        self.writer.write(b"\x00\x00" + struct.pack(">H", 8 + len(xml)) + invoke + xml)

    async def frame(self) -> tuple[bytes, bytes]:
        head = await asyncio.wait_for(self.reader.readexactly(8), WAIT)
        assert head[:2] == b"\x00\x00"
        (length,) = struct.unpack(">H", head[2:4])
        return head[4:8], await asyncio.wait_for(self.reader.readexactly(length - 8), WAIT)

    async def ask(self, invoke: bytes, xml: bytes) -> bytes:
        """Send a request; its answer (events arriving meanwhile are kept for ``event``)."""
        self.send(invoke, xml)
        while True:
            got, body = await self.frame()
            if got == b"9999":
                self.events.append(body)
                continue
            assert got == invoke
            return body

    async def event(self, kind: type[M]) -> M:
        """The next event of ``kind`` (others are skipped)."""
        async with asyncio.timeout(WAIT):
            while True:
                body = self.events.pop(0) if self.events else None
                if body is None:
                    invoke, body = await self.frame()
                    assert invoke == b"9999"
                message = decode(body)
                if isinstance(message, kind):
                    return message

    async def close(self) -> None:
        self.writer.close()
        await self.writer.wait_closed()


async def _phones(harness: Harness) -> None:
    """snom 455455 (the notes' examples) and 455360 (the number it calls); 181 (3CX capture)."""
    await harness.start_server()
    sim = harness.simulation()
    agents = [
        sim.add_phone("snom", ["455455"], transport="tcp"),
        sim.add_phone("yealink", ["455360"], transport="udp"),
        sim.add_phone("fanvil", ["181"], transport="tcp"),
    ]
    await sim.start()
    for agent in agents:
        await harness.wait_state(agent.mac, "ready")


async def test_avaya_login_then_snom_documents_over_csta_tcp(harness: Harness) -> None:
    """ECMA-354 login as Avaya AE Services clients send it; then the estos flow with the snom
    examples: MonitorStart → BackInService, MakeCall → the phone dials, events relayed."""
    await _phones(harness)
    assert harness.server is not None
    sim = harness.sims[0]
    raw = await AnnexJ.open(csta_port(harness.server))
    try:
        started = ecma354.decode_appsession(
            await raw.ask(b"0001", capture("avaya-StartApplicationSession.xml"))
        )
        assert isinstance(started, ecma354.StartApplicationSessionPosResponse)
        assert started.actual_protocol_version == ecma354.CSTA_ED3
        assert started.session_id

        answer, edition = decode_with_edition(
            await raw.ask(b"0002", capture("snom-MonitorStart.xml"))
        )
        assert isinstance(answer, m.MonitorStartResponse) and answer.monitor_cross_ref_id
        assert edition.name == "ED3"  # answered in the version the session agreed
        back = await raw.event(m.BackInServiceEvent)
        assert back.monitor_cross_ref_id == answer.monitor_cross_ref_id

        made = decode(await raw.ask(b"0003", capture("snom-MakeCall.xml")))
        assert isinstance(made, m.MakeCallResponse) and made.calling_device is not None
        await wait_until(lambda: bool(sim.phone("455455").legs()), WAIT, "the snom dials")
        await wait_until(lambda: bool(sim.phone("455360").legs()), WAIT, "455360 rings")
        delivered = await raw.event(m.DeliveredEvent)
        assert delivered.monitor_cross_ref_id == answer.monitor_cross_ref_id
        assert made.calling_device is not None  # the same call, at the alerting end
        assert delivered.connection is not None
        assert delivered.connection.call_id == made.calling_device.call_id
        assert delivered.alerting_device == DeviceIdentifier(value="sip:455360@sim.invalid")
    finally:
        await raw.close()


async def test_prefixed_unqualified_and_openscape_client_documents(harness: Harness) -> None:
    """Documents of CSTA-over-TCP clients that prefix every element, use no namespace, or
    name a device the OpenScape way (``N<number>;displayNumber=...;noa=nk``)."""
    await _phones(harness)
    assert harness.server is not None
    sim = harness.sims[0]
    raw = await AnnexJ.open(csta_port(harness.server))
    try:
        started = ecma354.decode_appsession(
            await raw.ask(b"0001", capture("avaya-StartApplicationSession.xml"))
        )
        assert isinstance(started, ecma354.StartApplicationSessionPosResponse)

        prefixed = decode(await raw.ask(b"0002", capture("client-MonitorStart-prefixed.xml")))
        assert isinstance(prefixed, m.MonitorStartResponse)
        await raw.event(m.BackInServiceEvent)

        openscape = decode(
            await raw.ask(b"0003", capture("client-MonitorStart-openscape-device.xml"))
        )
        assert isinstance(openscape, m.MonitorStartResponse), openscape
        # The same line: the server shares one phone monitor, the client gets a second ID.
        assert openscape.monitor_cross_ref_id != prefixed.monitor_cross_ref_id

        made = decode(await raw.ask(b"0004", capture("client-MakeCall-nonamespace.xml")))
        assert isinstance(made, m.MakeCallResponse), made
        await wait_until(lambda: bool(sim.phone("455360").legs()), WAIT, "455360 rings")
    finally:
        await raw.close()


# --- TR/87 (uaCSTA over SIP), SIP written by hand ------------------------------------------


def _digest(challenge: str, method: str, uri: str, user: str, password: str) -> str:
    """An RFC 2617 MD5 answer (qop=auth) to a ``WWW-Authenticate: Digest ...`` header."""
    params = dict(re.findall(r'(\w+)="?([^",]*)"?', challenge.removeprefix("Digest ")))
    assert params.get("algorithm", "MD5").upper() == "MD5", challenge
    realm, nonce = params["realm"], params["nonce"]

    def md5(text: str) -> str:
        return hashlib.md5(text.encode()).hexdigest()

    ha1, ha2 = md5(f"{user}:{realm}:{password}"), md5(f"{method}:{uri}")
    cnonce, nc = secrets.token_hex(8), "00000001"
    answer = f'Digest username="{user}", realm="{realm}", nonce="{nonce}", uri="{uri}"'
    if "auth" in params.get("qop", "").split(","):
        response = md5(f"{ha1}:{nonce}:{nc}:{cnonce}:auth:{ha2}")
        answer += f', qop=auth, nc={nc}, cnonce="{cnonce}"'
    else:
        response = md5(f"{ha1}:{nonce}:{ha2}")
    answer += f', response="{response}", algorithm=MD5'
    if "opaque" in params:
        answer += f', opaque="{params["opaque"]}"'
    return answer


class RawTr87:
    """A TR/87 client over TCP whose every request is a hand-written string."""

    def __init__(self, port: int, reader: asyncio.StreamReader, writer: asyncio.StreamWriter):
        self.port, self.reader, self.writer = port, reader, writer
        self.local = f"127.0.0.1:{writer.get_extra_info('sockname')[1]}"
        self.framer = StreamFramer()
        self.call_id = secrets.token_hex(8) + "@cti.example"
        self.tag = secrets.token_hex(4)
        self.remote_tag = ""
        self.cseq = 0
        self.infos: list[Request] = []

    @classmethod
    async def open(cls, port: int) -> RawTr87:
        reader, writer = await asyncio.wait_for(asyncio.open_connection("127.0.0.1", port), WAIT)
        return cls(port, reader, writer)

    @property
    def uri(self) -> str:
        return f"sip:455455@127.0.0.1:{self.port};transport=tcp"

    def _request(self, method: str, body: bytes, *extra: str, cseq: int | None = None) -> bytes:
        if cseq is None:
            self.cseq += 1
            cseq = self.cseq
        to_tag = f";tag={self.remote_tag}" if self.remote_tag else ""
        lines = [
            f"{method} {self.uri} SIP/2.0",
            f"Via: SIP/2.0/TCP {self.local};branch=z9hG4bK{secrets.token_hex(8)};rport",
            "Max-Forwards: 70",
            f'From: "CTI user" <sip:crm@cti.example>;tag={self.tag}',
            f"To: <sip:455455@127.0.0.1>{to_tag}",
            f"Call-ID: {self.call_id}",
            f"CSeq: {cseq} {method}",
            f"Contact: <sip:crm@{self.local};transport=tcp>",
            "User-Agent: hand-written RCC client",
            *extra,
        ]
        if body:
            lines += [
                "Content-Type: application/csta+xml",
                "Content-Disposition: signal;handling=required",
            ]
        lines.append(f"Content-Length: {len(body)}")
        return ("\r\n".join(lines) + "\r\n\r\n").encode() + body

    async def _response(self) -> Response:
        """The next final response; requests from the server are answered 200 and kept."""
        async with asyncio.timeout(WAIT):
            while True:
                raw = self.framer.next_message()
                if raw is None:
                    data = await self.reader.read(65536)
                    assert data, "connection closed"
                    self.framer.receive_data(data)
                    continue
                message = parse_message(raw)
                if isinstance(message, Request):
                    self._ok(message)
                    self.infos.append(message)
                elif message.status_code >= 200:
                    return message

    def _ok(self, request: Request) -> None:
        heads = [
            f"{k}: {v}" for k, v in request.headers if k in ("Via", "From", "To", "Call-ID", "CSeq")
        ]
        self.writer.write(
            ("SIP/2.0 200 OK\r\n" + "\r\n".join(heads) + "\r\nContent-Length: 0\r\n\r\n").encode()
        )

    async def invite(self, body: bytes) -> Response:
        """INVITE (answering the digest challenge), then ACK."""
        self.writer.write(self._request("INVITE", body, "Supported: timer"))
        first = await self._response()
        assert first.status_code == 401, first.start_line()
        self.writer.write(self._request("ACK", b"", cseq=self.cseq))
        challenge = first.header_values("WWW-Authenticate")[0]  # the first, as many clients do
        auth = _digest(challenge, "INVITE", self.uri, "crm", "crm-secret")
        self.writer.write(
            self._request("INVITE", body, "Supported: timer", f"Authorization: {auth}")
        )
        final = await self._response()
        assert final.status_code == 200, final.start_line()
        to = final.header("To") or ""
        self.remote_tag = re.search(r";\s*tag=([^;>\s]+)", to).group(1)  # type: ignore[union-attr]
        self.writer.write(self._request("ACK", b"", cseq=self.cseq))
        return final

    async def info(self, body: bytes) -> Response:
        self.writer.write(self._request("INFO", body))
        return await self._response()

    async def event(self, kind: type[M]) -> M:
        """The next event of ``kind`` the server sent in an INFO (others are skipped)."""
        async with asyncio.timeout(WAIT):
            while True:
                while (raw := self.framer.next_message()) is not None:
                    request = parse_message(raw)
                    assert isinstance(request, Request), request.start_line()
                    self._ok(request)
                    self.infos.append(request)
                while self.infos:
                    message = decode(self.infos.pop(0).body)
                    if isinstance(message, kind):
                        return message
                data = await self.reader.read(65536)
                assert data, "connection closed"
                self.framer.receive_data(data)

    async def bye(self) -> Response:
        self.writer.write(self._request("BYE", b""))
        return await self._response()

    async def close(self) -> None:
        self.writer.close()
        await self.writer.wait_closed()


def _tr87_port(harness: Harness) -> int:
    assert harness.server is not None and harness.server.tr87 is not None
    return int(harness.server.tr87.ua.transport.listener("tcp").port)


async def test_microsoft_rcc_client_names_its_line_in_the_invite(harness: Harness) -> None:
    """The line in ``lcs:line`` of the INVITE's RequestSystemStatus is the session's: a
    MonitorStart and a MakeCall without a device of their own address it."""
    await _phones(harness)
    sim = harness.sims[0]
    client = await RawTr87.open(_tr87_port(harness))
    try:
        ok = await client.invite(capture("lcs-RequestSystemStatus.xml"))
        assert ok.content_type == "application/csta+xml"
        answer, edition = decode_with_edition(ok.body)
        assert answer == m.RequestSystemStatusResponse(system_status="normal")
        assert edition.name == "ED3" and ED3 in ok.body

        # Hand-written: the documents an RCC client sends for "its" line, naming no device.
        monitor = await client.info(f'<MonitorStart xmlns="{ED3.decode()}"/>'.encode())
        started = decode(monitor.body)
        assert isinstance(started, m.MonitorStartResponse), started
        back = await client.event(m.BackInServiceEvent)
        assert back.monitor_cross_ref_id == started.monitor_cross_ref_id
        assert back.device == DeviceIdentifier(value="sip:455455@sim.invalid")

        made = await client.info(
            f'<MakeCall xmlns="{ED3.decode()}"><calledDirectoryNumber>455360'
            "</calledDirectoryNumber></MakeCall>".encode()
        )
        assert isinstance(decode(made.body), m.MakeCallResponse), made.body
        await wait_until(lambda: bool(sim.phone("455455").legs()), WAIT, "the line dials")
        await wait_until(lambda: bool(sim.phone("455360").legs()), WAIT, "455360 rings")
        assert (await client.bye()).status_code == 200
    finally:
        await client.close()


async def test_cisco_cme_session_flow_with_the_3cx_monitor_start(harness: Harness) -> None:
    """Cisco CME's CTI session: INVITE with RequestSystemStatus, GetCSTAFeatures, MonitorStart
    in INFO (the 3CX capture's body, for line 181), then events as INFO."""
    await _phones(harness)
    sim = harness.sims[0]
    client = await RawTr87.open(_tr87_port(harness))
    try:
        ok = await client.invite(
            f'<?xml version="1.0"?><RequestSystemStatus xmlns="{ED3.decode()}"/>'.encode()
        )
        assert decode(ok.body) == m.RequestSystemStatusResponse(system_status="normal")

        features = decode((await client.info(capture("cisco-GetCSTAFeatures.xml"))).body)
        assert isinstance(features, m.GetCSTAFeaturesResponse)
        assert {"makeCall", "answerCall", "monitorStart"} <= features.supported_services

        monitor = await client.info(capture("3cx-MonitorStart.xml"))
        started, edition = decode_with_edition(monitor.body)
        assert isinstance(started, m.MonitorStartResponse), started
        assert edition.name == "ED5"  # the client's edition since its last document
        await client.event(m.BackInServiceEvent)
        sim.incoming_call("181", "455455")
        delivered = await client.event(m.DeliveredEvent)
        assert delivered.monitor_cross_ref_id == started.monitor_cross_ref_id
        assert delivered.alerting_device == DeviceIdentifier(value="sip:181@sim.invalid")
        assert (await client.bye()).status_code == 200
    finally:
        await client.close()


async def test_cisco_cme_client_asks_features_in_the_invite(harness: Harness) -> None:
    """Cisco CME CTI clients have sent GetCSTAFeatures as the INVITE body: the 200 carries the
    answer, and the session goes on, about the line in the To header."""
    await _phones(harness)
    client = await RawTr87.open(_tr87_port(harness))
    try:
        ok = await client.invite(capture("cisco-GetCSTAFeatures.xml"))
        features = decode(ok.body)
        assert isinstance(features, m.GetCSTAFeaturesResponse), features
        assert {"makeCall", "monitorStart", "snapshotDevice"} <= features.supported_services
        status = await client.info(f'<RequestSystemStatus xmlns="{ED3.decode()}"/>'.encode())
        assert decode(status.body) == m.RequestSystemStatusResponse(system_status="normal")
        # "The PBX phone line is described in the SIP To header": a MonitorStart without a
        # device (hand-written) is about that line (To: sip:455455@127.0.0.1).
        monitor = await client.info(f'<MonitorStart xmlns="{ED3.decode()}"/>'.encode())
        assert isinstance(decode(monitor.body), m.MonitorStartResponse), monitor.body
        back = await client.event(m.BackInServiceEvent)
        assert back.device == DeviceIdentifier(value="sip:455455@sim.invalid")
        assert (await client.bye()).status_code == 200
    finally:
        await client.close()


# --- a phone written by hand: REGISTER, the CSTA dialog, its documents ------------------------


def _head(message: Request, *names: str) -> list[str]:
    return [f"{k}: {v}" for k, v in message.headers if k in names]


class RawPhone:
    """A phone over TCP speaking hand-written SIP: it registers as its MAC, answers the
    server's INVITE and INFOs with the documents ``answers`` gives per request root, lists
    ``lines`` in a SwitchingFunctionDevices, and sends the event documents a test hands it."""

    MAC = "02AB00C0FFEE"  # no vendor's OUI: an unrecognised phone
    USER_AGENT = "Acme DeskPhone 1.0"

    def __init__(
        self,
        reader: asyncio.StreamReader,
        writer: asyncio.StreamWriter,
        lines: list[str],
        monitors: dict[str, str],
    ) -> None:
        self.reader, self.writer = reader, writer
        self.local = f"127.0.0.1:{writer.get_extra_info('sockname')[1]}"
        self.framer = StreamFramer()
        self.lines, self.monitors = lines, monitors  # line -> monitorCrossRefID to answer
        self.tag = secrets.token_hex(4)
        self.cseq = 0
        self.dialog: Request | None = None  # the server's INVITE
        self.received: list[bytes] = []  # CSTA bodies the server sent
        self.requests: list[tuple[str, str]] = []  # ("INFO MonitorStart", content type)
        self.responses: asyncio.Queue[Response] = asyncio.Queue()
        self.task: asyncio.Task[None] | None = None

    @classmethod
    async def open(cls, port: int, lines: list[str], monitors: dict[str, str]) -> RawPhone:
        reader, writer = await asyncio.wait_for(asyncio.open_connection("127.0.0.1", port), WAIT)
        phone = cls(reader, writer, lines, monitors)
        phone.task = asyncio.get_running_loop().create_task(phone._read())
        return phone

    def _send(self, text: str, body: bytes = b"") -> None:
        self.writer.write(text.replace("\n", "\r\n").encode() + body)

    async def register(self, password: str) -> None:
        uri = f"sip:{self.local.split(':')[0]}"

        def register(cseq: int, auth: str = "") -> str:
            return (
                f"REGISTER {uri} SIP/2.0\n"
                f"Via: SIP/2.0/TCP {self.local};branch=z9hG4bK{secrets.token_hex(8)};rport\n"
                f"From: <sip:{self.MAC}@127.0.0.1>;tag={self.tag}\n"
                f"To: <sip:{self.MAC}@127.0.0.1>\n"
                f"Call-ID: reg-{self.tag}@phone\n"
                f"CSeq: {cseq} REGISTER\n"
                f"Contact: <sip:{self.MAC}@{self.local};transport=tcp>\n"
                f"{auth}Max-Forwards: 70\nExpires: 300\n"
                f"User-Agent: {self.USER_AGENT}\nContent-Length: 0\n\n"
            )

        self._send(register(1))
        challenge = await asyncio.wait_for(self.responses.get(), WAIT)
        assert challenge.status_code == 401, challenge.start_line()
        www = challenge.header_values("WWW-Authenticate")[0]
        self._send(
            register(2, f"Authorization: {_digest(www, 'REGISTER', uri, self.MAC, password)}\n")
        )
        ok = await asyncio.wait_for(self.responses.get(), WAIT)
        assert ok.status_code == 200, ok.start_line()

    async def _read(self) -> None:
        while True:
            data = await self.reader.read(65536)
            if not data:
                return
            self.framer.receive_data(data)
            while (raw := self.framer.next_message()) is not None:
                message = parse_message(raw)
                if isinstance(message, Response):
                    if message.status_code >= 200:
                        self.responses.put_nowait(message)
                elif message.method == "ACK":
                    continue
                else:
                    self._answer(message)

    def _answer(self, request: Request) -> None:
        body = b""
        if request.method == "INVITE" and self.dialog is None:
            self.dialog = request
        if request.body:
            self.received.append(request.body)
            asked = decode(request.body)
            self.requests.append(
                (f"{request.method} {type(asked).__name__}", request.content_type or "")
            )
            body = self.answer(asked)
        heads = _head(request, "Via", "From", "Call-ID", "CSeq")
        to = request.header("To") or ""
        if ";tag=" not in to:
            to += f";tag={self.tag}"
        extra = ""
        if body:
            extra = "Content-Type: application/csta+xml\n"
        self._send(
            "SIP/2.0 200 OK\n"
            + "\n".join(heads)
            + f"\nTo: {to}\nContact: <sip:{self.MAC}@{self.local};transport=tcp>\n"
            + f"{extra}Content-Length: {len(body)}\n\n",
            body,
        )
        if isinstance(
            decode(request.body) if request.body else None, m.GetSwitchingFunctionDevices
        ):
            self.send_info(self.line_list())

    def line_list(self) -> bytes:
        """The line list, snom style (uacsta-protocol-notes.md set-up order)."""
        entries = "".join(
            f"<deviceEntry><deviceID>{escape(line)}</deviceID></deviceEntry>" for line in self.lines
        )
        return (
            f'<SwitchingFunctionDevices xmlns="{ED5}"><serviceCrossRefID>1</serviceCrossRefID>'
            f"<lastSegment>true</lastSegment><deviceList>{entries}</deviceList>"
            "</SwitchingFunctionDevices>"
        ).encode()

    def answer(self, request: m.CstaMessage) -> bytes:
        """The phone's answers; the MonitorStartResponse is the snom dialect's (single quotes,
        ed5) with the crossRefID this phone uses for the line."""
        match request:
            case m.RequestSystemStatus():
                return capture("notes-RequestSystemStatusResponse.xml")
            case m.SystemRegister():
                return capture("snom-SystemRegisterResponse.xml")
            case m.GetSwitchingFunctionDevices():
                return f'<GetSwitchingFunctionDevicesResponse xmlns="{ED5}"/>'.encode()
            case m.MonitorStart() if request.monitor_object in self.monitors:
                xref = self.monitors[str(request.monitor_object)]
                return (
                    f"<?xml version='1.0' encoding='UTF-8'?><MonitorStartResponse xmlns='{ED5}'>"
                    f"<monitorCrossRefID>{xref}</monitorCrossRefID></MonitorStartResponse>"
                ).encode()
            case m.MonitorStop():
                return f'<MonitorStopResponse xmlns="{ED5}"/>'.encode()
            case m.SnapshotDevice():
                return capture("snom-SnapshotDeviceResponse.xml")
            case m.MakeCall():
                return capture("snom-MakeCallResponse.xml")
            case m.SetForwarding():
                return f"<SetForwardingResponse xmlns='{ED5}'/>".encode()
        return capture("notes-CSTAErrorCode-unspecified.xml")

    def send_info(self, body: bytes) -> None:
        """A request in the CSTA dialog (an event, the line list), as the phone is the UAS."""
        invite = self.dialog
        assert invite is not None
        self.cseq += 1
        contact = re.search(r"<([^>]+)>", invite.header("Contact") or "")
        assert contact is not None
        self._send(
            f"INFO {contact.group(1)} SIP/2.0\n"
            f"Via: SIP/2.0/TCP {self.local};branch=z9hG4bK{secrets.token_hex(8)};rport\n"
            f"From: {invite.header('To')};tag={self.tag}\n"
            f"To: {invite.header('From')}\n"
            f"Call-ID: {invite.call_id}\n"
            f"CSeq: {self.cseq} INFO\n"
            "Max-Forwards: 70\nContent-Type: application/csta+xml\n"
            f"Content-Length: {len(body)}\n\n",
            body,
        )

    async def close(self) -> None:
        if self.task is not None:
            self.task.cancel()
        self.writer.close()
        await self.writer.wait_closed()


def _monitor_start(device: str) -> bytes:
    """A plain ed3 MonitorStart as every CSTA client writes it (ECMA-323 element names)."""
    return (
        f'<MonitorStart xmlns="{ED3.decode()}"><monitorObject><deviceObject>{device}'
        "</deviceObject></monitorObject></MonitorStart>"
    ).encode()


OSV_LINE = "N<302118840101>;displayNumber=302118840101;noa=nk"


async def test_documents_a_phone_sends_reach_a_csta_client(harness: Harness) -> None:
    """An unrecognised phone that names its line the OpenScape way, prefixes every element,
    uses long hex call IDs and Siemens private data, or writes no namespace at all: a
    CSTA-over-TCP client gets its events with the values and the ``scx:`` data intact."""
    server = await harness.start_server()
    phone = await RawPhone.open(
        phone_ports(server)["tcp"], [OSV_LINE, "201"], {OSV_LINE: "1e07", "201": "77"}
    )
    try:
        await phone.register(PASSWORD)
        await harness.wait_state(RawPhone.MAC, "ready")
        assert harness.server is not None and harness.server.inventory is not None
        record = harness.server.inventory.get(RawPhone.MAC)
        assert record is not None and record.lines == [OSV_LINE, "201"]

        raw = await AnnexJ.open(csta_port(server))
        try:
            started = ecma354.decode_appsession(
                await raw.ask(b"0001", capture("avaya-StartApplicationSession.xml"))
            )
            assert isinstance(started, ecma354.StartApplicationSessionPosResponse)
            # The client names the lines as it likes: a bare number, the phone's own string.
            osv = decode(
                await raw.ask(
                    b"0002",
                    _monitor_start("302118840101"),
                )
            )
            assert isinstance(osv, m.MonitorStartResponse), osv
            zultys = decode(
                await raw.ask(
                    b"0003",
                    _monitor_start("201"),
                )
            )
            assert isinstance(zultys, m.MonitorStartResponse), zultys
            # The set-up as uacsta-protocol-notes.md describes it (and the 3CX capture shows):
            # INVITE with RequestSystemStatus, CSTA headers, session timer; INFO per request.
            invite = phone.dialog
            assert invite is not None and invite.content_type == "application/csta+xml"
            assert (invite.header("Content-Disposition") or "").startswith("signal")
            assert "handling=required" in (invite.header("Content-Disposition") or "")
            assert "timer" in (invite.header("Supported") or "")
            assert isinstance(decode(invite.body), m.RequestSystemStatus)
            assert [r for r, _ in phone.requests[:3]] == [
                "INVITE RequestSystemStatus",
                "INFO SystemRegister",
                "INFO GetSwitchingFunctionDevices",
            ], phone.requests
            assert ("INFO MonitorStart", "application/csta+xml") in phone.requests
            # The phone is asked in its own terms: the line string it listed.
            asked = [decode(body) for body in phone.received]
            assert m.MonitorStart(monitor_object=OSV_LINE) in asked, asked

            phone.send_info(capture("openscape-DeliveredEvent-prefixed.xml"))
            delivered = await raw.event(m.DeliveredEvent)
            assert delivered.monitor_cross_ref_id == osv.monitor_cross_ref_id
            assert delivered.connection is not None
            # One call-ID space for clients: the phone's hex call ID, mapped but recognisable.
            assert str(delivered.connection.call_id).endswith("FF000100000000005B0D6A5B1B250000")
            assert delivered.connection.device_id == OSV_LINE
            assert delivered.calling_device == DeviceIdentifier(
                value="N<302118840102>;displayNumber=302118840102;noa=nk"
            )
            assert delivered.cause == "newCall"
            assert delivered.extensions is not None
            assert b"<scx:callingPartyName>Alice</scx:callingPartyName>" in delivered.extensions
            assert b"http://www.siemens.com/schema/csta" in delivered.extensions

            phone.send_info(
                (
                    CAPTURES.parent / "realworld" / "zultys-DeliveredEvent-nonamespace.xml"
                ).read_bytes()
            )
            plain = await raw.event(m.DeliveredEvent)
            assert plain.monitor_cross_ref_id == zultys.monitor_cross_ref_id
            assert plain.connection is not None
            assert str(plain.connection.call_id).endswith("5501")
            assert plain.calling_device == DeviceIdentifier(value="+14155550100")
            assert plain.last_redirection_device == DeviceIdentifier(value="200")  # numberDialed
        finally:
            await raw.close()
    finally:
        await phone.close()


REALWORLD = CAPTURES.parent / "realworld"
HOSTED = "tel:+4930123456"


async def test_real_world_client_requests_and_phone_answers(harness: Harness) -> None:
    """Deployed clients' documents (hosted PBX ``SnapShotDevice``, BroadWorks SetForwarding
    with an empty ``ringCount``, a .NET MakeCall declaring utf-16 on UTF-8 bytes) reach the
    phone as standard requests; the phone's snom answers and a hosted PBX ``TransferedEvent``
    with ``privateData`` under the root reach the client."""
    server = await harness.start_server()
    lines = [HOSTED, "sip:2001@as.example.net", "sip:jürgen@pbx.example.com"]
    phone = await RawPhone.open(phone_ports(server)["tcp"], lines, {HOSTED: "9"})
    try:
        await phone.register(PASSWORD)
        await harness.wait_state(RawPhone.MAC, "ready")
        raw = await AnnexJ.open(csta_port(server))
        try:
            started = ecma354.decode_appsession(
                await raw.ask(b"0001", capture("avaya-StartApplicationSession.xml"))
            )
            assert isinstance(started, ecma354.StartApplicationSessionPosResponse)
            xref = decode(await raw.ask(b"0002", _monitor_start(HOSTED)))
            assert isinstance(xref, m.MonitorStartResponse), xref

            snapshot = decode(
                await raw.ask(b"0003", (REALWORLD / "hostedpbx-SnapShotDevice.xml").read_bytes())
            )
            assert isinstance(snapshot, m.SnapshotDeviceResponse), snapshot
            (info,) = snapshot.snapshot_data
            assert info.connection_identifier is not None
            assert str(info.connection_identifier.call_id).endswith("-12")
            assert info.local_connection_state == "alerting"
            assert m.SnapshotDevice(snapshot_object=HOSTED) in [decode(b) for b in phone.received]

            forwarding = decode(
                await raw.ask(b"0004", (REALWORLD / "broadworks-SetForwarding.xml").read_bytes())
            )
            assert isinstance(forwarding, m.SetForwardingResponse), forwarding
            sent = [decode(b) for b in phone.received if b"SetForwarding" in b]
            assert len(sent) == 1 and isinstance(sent[0], m.SetForwarding)
            assert sent[0].device == "sip:2001@as.example.net"
            assert sent[0].forward_dn == "2005" and sent[0].activate_forward is True
            assert sent[0].ring_count is None  # empty means absent, and is not written

            made = decode(
                await raw.ask(
                    b"0005", (REALWORLD / "dotnet-MakeCall-utf16-declaration.xml").read_bytes()
                )
            )
            assert isinstance(made, m.MakeCallResponse), made
            sent = [decode(b) for b in phone.received if b"<MakeCall" in b]
            assert len(sent) == 1 and isinstance(sent[0], m.MakeCall)
            assert sent[0].calling_device == "sip:jürgen@pbx.example.com"
            assert sent[0].called_directory_number == "+49891234"

            phone.send_info((REALWORLD / "hostedpbx-TransferedEvent-privateData.xml").read_bytes())
            transferred = await raw.event(m.TransferredEvent)
            assert transferred.monitor_cross_ref_id == xref.monitor_cross_ref_id
            assert transferred.transferred_to_device == DeviceIdentifier(value="tel:+4930654321")
            assert transferred.cause == "transfer"
            assert transferred.extensions is not None
            assert b"<hp:Tenant" in transferred.extensions and b">acme<" in transferred.extensions
        finally:
            await raw.close()
    finally:
        await phone.close()


class RawYealink(RawPhone):
    """A phone written to yealink-uacsta-behaviour.md: its line list
    (``deviceList/device``, ED5x), its answers and its events are the capture fixtures."""

    MAC = "805EC0ABCDEF"
    USER_AGENT = "Yealink SIP-T46G 28.83.0.35"

    def line_list(self) -> bytes:
        return (REALWORLD / "yealink-SwitchingFunctionDevices.xml").read_bytes()

    def answer(self, request: m.CstaMessage) -> bytes:
        match request:
            case m.RequestSystemStatus():
                return (
                    '<?xml version="1.0" encoding="utf-8"?>\n'
                    f'<RequestSystemStatusResponse xmlns="{ED5}">\n'
                    "\t<systemStatus>normal</systemStatus>\n</RequestSystemStatusResponse>\n"
                ).encode()  # hand-written from the document's requests table
            case m.SystemRegister():
                return capture("yealink-SystemRegisterResponse.xml")
            case m.GetSwitchingFunctionDevices():
                return capture("yealink-GetSwitchingFunctionDevicesResponse.xml")
            case m.MonitorStart() if (
                _yealink_account(request.monitor_object) == "2001@pbx.example.com"
            ):
                return capture("yealink-MonitorStartResponse.xml")
            case m.GetForwarding():
                return capture("yealink-GetForwardingResponse.xml")
            case m.GetDoNotDisturb():
                return capture("yealink-GetDoNotDisturbResponse.xml")
            case m.SnapshotDevice():
                return capture("yealink-SnapshotDeviceResponse.xml")
            case m.GetMessageWaitingIndicator():
                return capture("yealink-GetMessageWaitingIndicatorResponse.xml")
        return capture("yealink-CSTAErrorCode.xml")


Y2001 = "sip:2001@pbx.example.com"
Y2001_LISTED = "sip:2001@pbx.example.com:5060;tel=+4989123452001"


def _yealink_account(device: str | None) -> str | None:
    """The firmware's device lookup: strip ``sip:``, cut the host at ``:`` and ``;tel``."""
    text = (device or "").removeprefix("sips:").removeprefix("sip:")
    user, at, host = text.partition("@")
    if not at:
        return None
    return f"{user}@{host.split(';tel')[0].split(':')[0]}"


async def test_yealink_documents_through_the_server(harness: Harness) -> None:
    """Every Yealink document of the references, from a hand-written phone: the line list
    with ``device`` items, the ED5x/ED3 answers and the events reach a CSTA-over-TCP client
    with the line named as clients name it and the phone's call IDs mapped."""
    server = await harness.start_server()
    phone = await RawYealink.open(phone_ports(server)["tcp"], [], {})
    try:
        await phone.register(PASSWORD)
        await harness.wait_state(RawYealink.MAC, "ready")
        assert harness.server is not None and harness.server.inventory is not None
        record = harness.server.inventory.get(RawYealink.MAC)
        assert record is not None and Y2001 in record.lines
        raw = await AnnexJ.open(csta_port(server))
        try:
            started = ecma354.decode_appsession(
                await raw.ask(b"0001", capture("avaya-StartApplicationSession.xml"))
            )
            assert isinstance(started, ecma354.StartApplicationSessionPosResponse)
            monitor = decode(await raw.ask(b"0002", _monitor_start("2001")))
            assert isinstance(monitor, m.MonitorStartResponse), [decode(b) for b in phone.received]
            xref = monitor.monitor_cross_ref_id
            # Asked in the firmware's own terms: the account string it listed, port included.
            asked = [decode(body) for body in phone.received]
            assert m.MonitorStart(monitor_object=Y2001_LISTED) in asked

            def device_request(root: str) -> bytes:
                return f'<{root} xmlns="{ED3.decode()}"><device>2001</device></{root}>'.encode()

            forwarding = decode(await raw.ask(b"0003", device_request("GetForwarding")))
            assert isinstance(forwarding, m.GetForwardingResponse), forwarding
            assert [
                (f.forwarding_type, f.forward_status, f.forward_dn)
                for f in forwarding.forwarding_list
            ] == [
                ("forwardImmediate", True, "tel:300"),
                ("forwardBusy", False, "tel:"),
                ("forwardNoAns", False, "tel:"),
            ]
            dnd = decode(await raw.ask(b"0004", device_request("GetDoNotDisturb")))
            assert dnd == m.GetDoNotDisturbResponse(do_not_disturb_on=True)
            mwi = decode(await raw.ask(b"0005", device_request("GetMessageWaitingIndicator")))
            assert isinstance(mwi, m.GetMessageWaitingIndicatorResponse), mwi
            assert mwi.message_waiting_on is False
            snapshot = decode(
                await raw.ask(
                    b"0006",
                    f'<SnapshotDevice xmlns="{ED3.decode()}"><snapshotObject>2001'
                    "</snapshotObject></SnapshotDevice>".encode(),
                )
            )
            assert isinstance(snapshot, m.SnapshotDeviceResponse), snapshot
            (info,) = snapshot.snapshot_data
            assert info.connection_identifier is not None
            assert info.connection_identifier.device_id == Y2001
            assert str(info.connection_identifier.call_id).endswith("23")
            assert info.local_connection_state == "hold"

            events: dict[str, type[m.CstaEvent]] = {
                "yealink-ServiceInitiatedEvent.xml": m.ServiceInitiatedEvent,
                "yealink-OriginatedEvent.xml": m.OriginatedEvent,
                "yealink-EstablishedEvent.xml": m.EstablishedEvent,
                "yealink-HeldEvent.xml": m.HeldEvent,
                "yealink-RetrievedEvent.xml": m.RetrievedEvent,
                "yealink-DigitsGeneratedEvent.xml": m.DigitsGeneratedEvent,
                "yealink-DivertedEvent.xml": m.DivertedEvent,
                "yealink-FailedEvent.xml": m.FailedEvent,
                "yealink-ConferencedEvent.xml": m.ConferencedEvent,
                "yealink-ConnectionClearedEvent.xml": m.ConnectionClearedEvent,
                "yealink-DoNotDisturbEvent.xml": m.DoNotDisturbEvent,
                "yealink-ForwardingEvent.xml": m.ForwardingEvent,
            }
            got: dict[type[m.CstaEvent], m.CstaEvent] = {}
            for name, kind in events.items():
                phone.send_info(capture(name))
                event: m.CstaEvent = await raw.event(kind)
                assert event.monitor_cross_ref_id == xref, name
                got[kind] = event
            established = got[m.EstablishedEvent]
            assert isinstance(established, m.EstablishedEvent)
            assert established.established_connection is not None
            assert established.established_connection.device_id == Y2001
            assert established.calling_device == DeviceIdentifier(value="sip:2002@pbx.example.com")
            digits = got[m.DigitsGeneratedEvent]
            assert isinstance(digits, m.DigitsGeneratedEvent)
            assert digits.digit_generated_list == "5"
            diverted = got[m.DivertedEvent]
            assert isinstance(diverted, m.DivertedEvent)
            assert diverted.new_destination == DeviceIdentifier(value="300")
            failed = got[m.FailedEvent]
            assert isinstance(failed, m.FailedEvent) and failed.cause == "callCancelled"
            assert failed.calling_device == DeviceIdentifier(value="2002")
            conferenced = got[m.ConferencedEvent]
            assert isinstance(conferenced, m.ConferencedEvent)
            assert len(conferenced.conference_connections) == 3
            parts = [
                str(item.new_connection.call_id).split("|")
                for item in conferenced.conference_connections
                if item.new_connection is not None
            ]
            assert all(len(p) == 2 and p[0].endswith("23") and p[1].endswith("25") for p in parts)
            cleared = got[m.ConnectionClearedEvent]
            assert isinstance(cleared, m.ConnectionClearedEvent)
            assert cleared.releasing_device == DeviceIdentifier(value=Y2001)
            dnd_event = got[m.DoNotDisturbEvent]
            assert isinstance(dnd_event, m.DoNotDisturbEvent)
            assert dnd_event.device == DeviceIdentifier(value=Y2001)
            assert dnd_event.do_not_disturb_on is True
            # The firmware's misspelled root and its "delivered" form (realworld fixtures).
            phone.send_info((REALWORLD / "yealink-TransferedEvent.xml").read_bytes())
            transferred = await raw.event(m.TransferredEvent)
            assert transferred.monitor_cross_ref_id == xref
            assert transferred.transferred_to_device == DeviceIdentifier(
                value="sip:2003@pbx.example.com"
            )
            assert transferred.cause == "singleStepTransfer"
            phone.send_info((REALWORLD / "yealink-DeliveredEvent.xml").read_bytes())
            delivered = await raw.event(m.DeliveredEvent)
            assert delivered.alerting_device == DeviceIdentifier(value=Y2001)
            assert delivered.local_connection_info == "alerting"
            # An account change: the phone is asked for its lines again.
            before = sum(
                isinstance(decode(b), m.GetSwitchingFunctionDevices) for b in phone.received
            )
            phone.send_info(capture("yealink-SwFunctionDevicesChanged.xml"))
            await wait_until(
                lambda: (
                    sum(
                        isinstance(decode(b), m.GetSwitchingFunctionDevices) for b in phone.received
                    )
                    > before
                ),
                WAIT,
                "the line list asked again",
            )
            fwd = got[m.ForwardingEvent]
            assert isinstance(fwd, m.ForwardingEvent)
            assert (fwd.forwarding_type, fwd.forward_status, fwd.forward_to, fwd.ring_count) == (
                "forwardNoAns",
                True,
                "tel:300",
                4,
            )
        finally:
            await raw.close()
    finally:
        await phone.close()
