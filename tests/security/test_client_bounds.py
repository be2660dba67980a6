"""CSTA-over-TCP clients stay bounded and an odd frame never costs a client its session.

Attacks on a running server (issue 15 item 7, issue 14 item 7):

- a client that stops reading while its line produces events is dropped once its output
  queue passes ``clients.max_output_buffer``; the server's queue never grows past it;
- monitor number N+1 of one client is refused (``clients.max_monitors``);
- a frame whose invoke ID is not four digits but whose length is intact gets a CSTA error
  under the same four bytes, and the session with its monitors goes on;
- a request under invoke ID 9999 (ECMA-323 Annex J reserves it for events) gets a CSTA
  error, not the service.

The client side is a raw socket speaking Annex J by hand (frames, ECMA-354 and CSTA
documents written out here), so the server's own codec and framing are not the oracle.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import re
import socket
import struct
from pathlib import Path

from websockets.asyncio.client import connect

from tests.security.conftest import Harness, make_settings, wait_until
from uacsta.csta import messages as m
from uacsta.csta.types import ConnectionID
from uacsta.server import Server
from uacsta.web.auth import Auth

ED3 = "http://www.ecma-international.org/standards/ecma-323/csta/ed3"
ECMA354 = "http://www.ecma-international.org/standards/ecma-354/appl_session"
LINE = "sip:100@sim.invalid"

START_SESSION = (
    f'<?xml version="1.0" encoding="UTF-8"?>'
    f'<StartApplicationSession xmlns="{ECMA354}">'
    f"<applicationInfo><applicationID>attacker</applicationID>"
    f"<applicationSpecificInfo>"
    f'<ns1:SessionLoginInfo xmlns:ns1="http://www.avaya.com/csta">'
    f"<ns1:userName>crm</ns1:userName><ns1:password>crm-secret</ns1:password>"
    f"</ns1:SessionLoginInfo></applicationSpecificInfo></applicationInfo>"
    f"<requestedProtocolVersions><protocolVersion>{ED3}</protocolVersion>"
    f"</requestedProtocolVersions><requestedSessionDuration>180</requestedSessionDuration>"
    f"</StartApplicationSession>"
).encode()
STATUS = f'<RequestSystemStatus xmlns="{ED3}"/>'.encode()


def monitor_start(device: str) -> bytes:
    return (
        f'<MonitorStart xmlns="{ED3}"><monitorObject><deviceObject>{device}</deviceObject>'
        f"</monitorObject></MonitorStart>"
    ).encode()


def monitor_stop(xref: str) -> bytes:
    return (
        f'<MonitorStop xmlns="{ED3}"><monitorCrossRefID>{xref}</monitorCrossRefID></MonitorStop>'
    ).encode()


def frame(invoke: bytes, xml: bytes) -> bytes:
    """Annex J: 00 00, the whole frame's length (big-endian), 4 bytes of invoke ID, XML."""
    return b"\x00\x00" + struct.pack(">H", 8 + len(xml)) + invoke + xml


class RawClient:
    """Annex J by hand: frames in, (invoke bytes, XML) out."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader, self.writer = reader, writer

    @classmethod
    async def connect(cls, port: int, *, rcvbuf: int | None = None) -> RawClient:
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        if rcvbuf is not None:  # a small window: the server's kernel buffer fills early
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, rcvbuf)
        sock.setblocking(False)
        await asyncio.get_running_loop().sock_connect(sock, ("127.0.0.1", port))
        reader, writer = await asyncio.open_connection(sock=sock)
        return cls(reader, writer)

    def send(self, invoke: bytes, xml: bytes) -> None:
        self.writer.write(frame(invoke, xml))

    async def read(self, timeout: float = 5.0) -> tuple[bytes, str]:
        head = await asyncio.wait_for(self.reader.readexactly(4), timeout)
        assert head[:2] == b"\x00\x00", head
        length = struct.unpack(">H", head[2:])[0]
        rest = await asyncio.wait_for(self.reader.readexactly(length - 4), timeout)
        return rest[:4], rest[4:].decode()

    async def answer_to(self, invoke: bytes, timeout: float = 5.0) -> str:
        """The next frame under ``invoke`` (events in between are skipped)."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while True:
            got, xml = await self.read(max(0.01, deadline - loop.time()))
            if got == invoke and not _is_event(xml):
                return xml

    async def login(self) -> None:
        self.send(b"0001", START_SESSION)
        assert "StartApplicationSessionPosResponse" in await self.answer_to(b"0001")

    async def monitor(self, device: str, invoke: bytes = b"0002") -> str:
        self.send(invoke, monitor_start(device))
        answer = await self.answer_to(invoke)
        found = re.search(r"<monitorCrossRefID>([^<]+)</monitorCrossRefID>", answer)
        assert found, answer
        return found.group(1)

    async def close(self) -> None:
        self.writer.close()
        with contextlib.suppress(ConnectionError):
            await self.writer.wait_closed()


def _is_event(xml: str) -> bool:
    root = re.search(r"<(?:\w+:)?(\w+)", xml.split("?>", 1)[-1])
    return bool(root and root.group(1).endswith("Event"))


def _root(xml: str) -> str:
    found = re.search(r"<(?:\w+:)?(\w+)", xml.split("?>", 1)[-1])
    assert found, xml
    return found.group(1)


async def _server_with_phone(harness: Harness, tmp_path: Path, **clients: object) -> Server:
    settings = make_settings(tmp_path / "data")
    for key, value in clients.items():
        setattr(settings.clients, key, value)
    harness.server = Server(settings)
    await harness.server.start()
    sim = harness.simulation()
    phone = sim.add_phone("snom", ["100"], transport="tcp")
    await sim.start()
    await harness.wait_state(phone.mac, "ready")
    return harness.server


def _port(server: Server) -> int:
    assert server.cstatcp is not None
    return int(server.cstatcp.servers[0].sockets[0].getsockname()[1])


async def test_bad_invoke_ids_get_an_error_and_the_session_survives(
    harness: Harness, tmp_path: Path
) -> None:
    server = await _server_with_phone(harness, tmp_path)
    client = await RawClient.connect(_port(server))
    await client.login()
    xref = await client.monitor("100")
    for bad in (b"abcd", b"12  ", b"-001", b"1\x002\x00"):
        client.send(bad, STATUS)
        answer = await client.answer_to(bad)
        assert _root(answer) == "CSTAErrorCode", answer
    # "12" written as a two-character ID: the length is intact, the frame's ID field reads
    # "12<?" and what follows is no document. An error again, and the stream stays in step.
    client.writer.write(b"\x00\x00" + struct.pack(">H", 6 + len(STATUS)) + b"12" + STATUS)
    assert _root(await client.answer_to(b"12<R")) == "CSTAErrorCode"
    # The session and its monitor are still there.
    client.send(b"0003", STATUS)
    assert _root(await client.answer_to(b"0003")) == "RequestSystemStatusResponse"
    client.send(b"0004", monitor_stop(xref))
    assert _root(await client.answer_to(b"0004")) == "MonitorStopResponse"
    assert len(server.cstatcp.clients) == 1  # type: ignore[union-attr]
    await client.close()


async def test_a_request_under_the_event_invoke_id_is_refused(
    harness: Harness, tmp_path: Path
) -> None:
    server = await _server_with_phone(harness, tmp_path)
    client = await RawClient.connect(_port(server))
    await client.login()
    client.send(b"9999", STATUS)
    got, xml = await client.read()
    assert got == b"9999" and _root(xml) == "CSTAErrorCode", xml
    # Nothing else was sent for it, and the session still serves.
    client.send(b"0005", STATUS)
    got, xml = await client.read()
    assert (got, _root(xml)) == (b"0005", "RequestSystemStatusResponse")
    await client.close()


async def test_a_session_start_under_the_event_invoke_id_is_refused(
    harness: Harness, tmp_path: Path
) -> None:
    server = await _server_with_phone(harness, tmp_path)
    client = await RawClient.connect(_port(server))
    client.send(b"9999", START_SESSION)
    got, xml = await client.read()
    assert got == b"9999" and _root(xml) == "CSTAErrorCode", xml
    await client.login()  # under a proper invoke ID it works
    await client.close()


async def test_monitor_number_n_plus_one_is_refused(harness: Harness, tmp_path: Path) -> None:
    server = await _server_with_phone(harness, tmp_path, max_monitors=5)
    client = await RawClient.connect(_port(server))
    await client.login()
    for n in range(5):
        await client.monitor(LINE, f"{10 + n:04d}".encode())
    client.send(b"0020", monitor_start(LINE))
    refused = await client.answer_to(b"0020")
    assert _root(refused) == "CSTAErrorCode"
    assert "overallMonitorLimitExceeded" in refused
    assert len(server.hub.switch.monitors.monitors_of(_only_client(server))) == 5
    await client.close()


def _only_client(server: Server) -> object:
    assert server.cstatcp is not None
    (client,) = server.cstatcp.clients
    return client


async def test_a_client_that_never_reads_is_dropped_with_a_bounded_queue(
    harness: Harness, tmp_path: Path
) -> None:
    limit = 256 * 1024
    server = await _server_with_phone(harness, tmp_path, max_output_buffer=limit)
    mac = next(iter(harness.sims[0].agents))
    client = await RawClient.connect(_port(server), rcvbuf=4096)
    await client.login()
    await client.monitor("100")
    await wait_until(
        lambda: any(p.phone_cross_ref_id for p in server.hub.switch.monitors.points.values()),
        what="the phone's monitor",
    )
    point = next(iter(server.hub.switch.monitors.points.values()))
    victim = _only_client(server)
    transport = victim.writer.transport  # type: ignore[attr-defined]
    # The client reads nothing more. Its line produces events (the phone link's entry point,
    # as fast as a busy line can): the server must drop the client, not buffer without end.
    event = m.DeliveredEvent(
        monitor_cross_ref_id=point.phone_cross_ref_id,
        connection=ConnectionID(call_id="7", device_id=LINE),
    )
    largest = 0
    for _ in range(200_000):
        server.hub.phone_event(mac, event)
        if transport.is_closing():
            break
        largest = max(largest, transport.get_write_buffer_size())
        await asyncio.sleep(0)
    await wait_until(lambda: victim not in server.cstatcp.clients, what="the client dropped")  # type: ignore[union-attr]
    assert largest <= limit
    # Its monitor went with it; everyone else is still served.
    assert not server.hub.switch.monitors.monitors_of(victim)
    other = await RawClient.connect(_port(server))
    await other.login()
    other.send(b"0009", STATUS)
    assert _root(await other.answer_to(b"0009")) == "RequestSystemStatusResponse"
    await other.close()
    await client.close()


async def test_websocket_clients_share_the_monitor_limit(harness: Harness, tmp_path: Path) -> None:
    """One limit for every gateway: a WebSocket's third monitor is refused at max_monitors=2."""
    server = await _server_with_phone(harness, tmp_path, max_monitors=2)
    assert server.store is not None
    _id, token = Auth(server.store).create_token("bounds")
    url = f"ws://127.0.0.1:{server.http_port}/api/v1/events?token={token}"
    async with connect(url, open_timeout=5) as ws:
        await ws.send(json.dumps({"subscribe": ["100", "tel:100", LINE]}))
        answers: dict[str, dict[str, object]] = {}
        while len(answers) < 3:
            message = json.loads(await asyncio.wait_for(ws.recv(), 5))
            if message["type"] == "subscribed":
                answers[message["device"]] = message
        assert [answers[d]["ok"] for d in ("100", "tel:100")] == [True, True]
        assert answers[LINE]["ok"] is False
        assert answers[LINE]["csta_error"] == {
            "category": "systemResourceAvailability",
            "value": "overallMonitorLimitExceeded",
        }


async def test_the_server_stops_although_a_client_does_not_read(
    harness: Harness, tmp_path: Path
) -> None:
    """A queue below the limit at shutdown: the stop does not wait for the client to read."""
    server = await _server_with_phone(harness, tmp_path)
    mac = next(iter(harness.sims[0].agents))
    client = await RawClient.connect(_port(server), rcvbuf=4096)
    await client.login()
    await client.monitor("100")
    await wait_until(
        lambda: any(p.phone_cross_ref_id for p in server.hub.switch.monitors.points.values()),
        what="the phone's monitor",
    )
    point = next(iter(server.hub.switch.monitors.points.values()))
    transport = _only_client(server).writer.transport  # type: ignore[attr-defined]
    event = m.DeliveredEvent(
        monitor_cross_ref_id=point.phone_cross_ref_id,
        connection=ConnectionID(call_id="7", device_id=LINE),
    )
    while transport.get_write_buffer_size() < 512 * 1024:  # well below the 4 MiB default
        server.hub.phone_event(mac, event)
        await asyncio.sleep(0)
    # Bounded only to turn a hang into a failure; the stop itself takes about CLOSE_TIMEOUT.
    await asyncio.wait_for(harness.stop_server(), 30)
    assert transport.is_closing()
    await client.close()
