"""uacsta.net over real loopback sockets: UDP, TCP, TLS, limits, closing."""

from __future__ import annotations

import asyncio
import stat
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from uacsta.net import (
    Flow,
    FlowClosed,
    NoListener,
    SipTransport,
    TransportLimits,
    client_context,
    ensure_self_signed_cert,
    error_response_bytes,
    parse_address,
    response_address,
    server_context,
    stamp_via,
)
from uacsta.sip.errors import MessageTooLarge, SipParseError
from uacsta.sip.helpers import build_response
from uacsta.sip.message import Message, Request, Response, parse_message

TIMEOUT = 5.0


def register(
    via_host: str = "10.0.0.1",
    via_port: int | None = 5062,
    *,
    rport: bool = True,
    transport: str = "UDP",
    branch: str = "z9hG4bK-1",
) -> Request:
    sent_by = via_host if via_port is None else f"{via_host}:{via_port}"
    via = f"SIP/2.0/{transport} {sent_by};branch={branch}" + (";rport" if rport else "")
    return Request(
        method="REGISTER",
        uri="sip:example.com",
        headers=(
            ("Via", via),
            ("From", "<sip:alice@example.com>;tag=a1"),
            ("To", "<sip:alice@example.com>"),
            ("Call-ID", "c1@x"),
            ("CSeq", "1 REGISTER"),
            ("Max-Forwards", "70"),
        ),
    )


class Collector:
    """Handler that queues (message, flow) and closed flows."""

    def __init__(self) -> None:
        self.messages: asyncio.Queue[tuple[Message, Flow]] = asyncio.Queue()
        self.closed: asyncio.Queue[Flow] = asyncio.Queue()

    def on_message(self, message: Message, flow: Flow) -> None:
        self.messages.put_nowait((message, flow))

    def on_closed(self, flow: Flow) -> None:
        self.closed.put_nowait(flow)

    async def next(self) -> tuple[Message, Flow]:
        return await asyncio.wait_for(self.messages.get(), TIMEOUT)

    async def next_closed(self) -> Flow:
        return await asyncio.wait_for(self.closed.get(), TIMEOUT)


def make(collector: Collector, **limits: float | int | None) -> SipTransport:
    return SipTransport(
        collector.on_message,
        on_closed=collector.on_closed,
        limits=TransportLimits(**limits),  # type: ignore[arg-type]
    )


@pytest.fixture
async def col() -> Collector:
    return Collector()


@pytest.fixture
async def sip(col: Collector) -> AsyncIterator[SipTransport]:
    t = make(col)
    try:
        yield t
    finally:
        await t.close()


class UdpPeer(asyncio.DatagramProtocol):
    def __init__(self) -> None:
        self.queue: asyncio.Queue[tuple[bytes, tuple[str, int]]] = asyncio.Queue()

    def datagram_received(self, data: bytes, addr: tuple[str | int, ...]) -> None:
        self.queue.put_nowait((data, (str(addr[0]), int(addr[1]))))

    async def recv(self) -> bytes:
        return (await asyncio.wait_for(self.queue.get(), TIMEOUT))[0]


@pytest.fixture
async def udp_peer() -> AsyncIterator[tuple[asyncio.DatagramTransport, UdpPeer]]:
    loop = asyncio.get_running_loop()
    transport, proto = await loop.create_datagram_endpoint(UdpPeer, local_addr=("127.0.0.1", 0))
    try:
        yield transport, proto
    finally:
        transport.close()
        await asyncio.sleep(0)  # let connection_lost run so the socket is closed


async def read_message(reader: asyncio.StreamReader) -> Message:
    head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), TIMEOUT)
    return parse_message(head, datagram=False)  # our tests' messages carry no body


async def expect_eof(reader: asyncio.StreamReader) -> None:
    data = await asyncio.wait_for(reader.read(), TIMEOUT)
    assert data == b""


# --- addresses ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("udp:127.0.0.1:5060", ("udp", "127.0.0.1", 5060)),
        ("TCP:0.0.0.0:0", ("tcp", "0.0.0.0", 0)),
        ("tls:[::1]:5061", ("tls", "::1", 5061)),
        ("tls:example.com", ("tls", "example.com", 5061)),
        ("udp:[::1]", ("udp", "::1", 5060)),
    ],
)
def test_parse_address(text: str, expected: tuple[str, str, int]) -> None:
    assert parse_address(text) == expected


@pytest.mark.parametrize(
    "text",
    [
        "sctp:1.2.3.4:5060",
        "127.0.0.1:5060",
        "udp::5060",
        "udp:::1:5060",
        "udp:h:99999",
        "udp:[::1",
        "udp:[::1]x",
        "udp:h:x",
    ],
)
def test_parse_address_rejects(text: str) -> None:
    with pytest.raises(ValueError):
        parse_address(text)


# --- pure helpers ------------------------------------------------------------------------


def test_stamp_via_rport_adds_received_and_port() -> None:
    req = stamp_via(register("10.0.0.1", 5062), "192.0.2.7", 40000)
    via = req.top_via
    assert via.received == "192.0.2.7"
    assert via.rport == 40000
    assert via.branch == "z9hG4bK-1"


def test_stamp_via_without_rport_only_when_host_differs() -> None:
    same = register("192.0.2.7", rport=False)
    assert stamp_via(same, "192.0.2.7", 1234) is same
    other = stamp_via(register("phone.example", rport=False), "192.0.2.7", 1234)
    assert other.top_via.received == "192.0.2.7"
    assert other.top_via.rport is None


def test_stamp_via_touches_only_the_top_via() -> None:
    req = register().with_header("Via", "SIP/2.0/UDP proxy:5060;branch=z9hG4bK-2;rport")
    stamped = stamp_via(req, "192.0.2.7", 1)
    assert stamped.via[1].received is None
    assert stamped.header_values("Via")[1] == req.header_values("Via")[1]


def test_response_address_rules() -> None:
    resp = build_response(stamp_via(register("10.0.0.1", 5062), "192.0.2.7", 40000), 200)
    assert response_address(resp, "udp") == ("192.0.2.7", 40000)
    plain = build_response(register("10.0.0.1", None, rport=False), 200)
    assert response_address(plain, "udp") == ("10.0.0.1", 5060)
    assert response_address(plain, "tls") == ("10.0.0.1", 5061)


def test_error_response_bytes_copies_matching_headers() -> None:
    raw = (
        b"OPTIONS sip:x SIP/2.0\r\nv: SIP/2.0/UDP h:1;branch=z9hG4bK-9\r\nf: <sip:a@b>;tag=1\r\n"
        b"t: <sip:x@y>\r\ni: abc\r\nCSeq: one OPTIONS\r\n\r\n"
    )
    with pytest.raises(SipParseError) as info:
        parse_message(raw)
    out = error_response_bytes(raw, info.value)
    assert out is not None
    resp = out.split(b"\r\n")
    assert resp[0] == b"SIP/2.0 400 Bad Request"
    assert b"Via: SIP/2.0/UDP h:1;branch=z9hG4bK-9" in resp
    assert b"CSeq: one OPTIONS" in resp
    assert error_response_bytes(raw, MessageTooLarge("x"))[:24] == b"SIP/2.0 513 Message Too "  # type: ignore[index]


@pytest.mark.parametrize(
    "raw",
    [
        b"\xff\xfe garbage",
        b"hello world\r\n\r\n",
        b"ACK sip:x SIP/2.0\r\nVia: SIP/2.0/UDP h;branch=z9hG4bK1\r\nFrom: a\r\nTo: b\r\n"
        b"Call-ID: c\r\nCSeq: x\r\n\r\n",
        b"SIP/2.0 200 OK\r\nVia: x\r\n\r\n",
        b"OPTIONS sip:x SIP/2.0\r\nFrom: <sip:a@b>\r\n\r\n",
        b"OPTIONS sip:x SIP/2.0\r\nVia: bogus\r\nFrom: a\r\nTo: b\r\nCall-ID: c\r\n"
        b"CSeq: 1 X\r\n\r\n",
    ],
)
def test_error_response_bytes_drops_what_cannot_be_answered(raw: bytes) -> None:
    assert error_response_bytes(raw, SipParseError("bad")) is None


# --- UDP -----------------------------------------------------------------------------------


async def test_udp_request_response_with_rport(
    sip: SipTransport, col: Collector, udp_peer: tuple[asyncio.DatagramTransport, UdpPeer]
) -> None:
    listener = await sip.listen("udp:127.0.0.1:0")
    assert listener.port > 0
    assert listener.address == f"udp:127.0.0.1:{listener.port}"
    peer_transport, peer = udp_peer
    peer_port = peer_transport.get_extra_info("sockname")[1]
    peer_transport.sendto(register("10.9.9.9", 5999).to_bytes(), listener.local)
    msg, flow = await col.next()
    assert isinstance(msg, Request)
    assert flow == Flow("udp", listener.local, ("127.0.0.1", peer_port))
    assert not flow.is_stream and flow.via_transport == "UDP"
    assert msg.top_via.received == "127.0.0.1"
    assert msg.top_via.rport == peer_port
    # The response goes to received:rport, not to the (unreachable) sent-by 10.9.9.9:5999.
    sip.send(build_response(msg, 200), flow)
    resp = parse_message(await peer.recv())
    assert isinstance(resp, Response) and resp.status_code == 200


async def test_udp_malformed_input_answered_or_dropped_and_keeps_running(
    sip: SipTransport, col: Collector, udp_peer: tuple[asyncio.DatagramTransport, UdpPeer]
) -> None:
    listener = await sip.listen("udp:127.0.0.1:0")
    peer_transport, peer = udp_peer
    bad = register().to_bytes().replace(b"CSeq: 1 REGISTER", b"CSeq: x REGISTER")
    peer_transport.sendto(bad, listener.local)
    raw = await peer.recv()
    assert raw.startswith(b"SIP/2.0 400 Bad Request\r\n")
    assert b"\r\nCSeq: x REGISTER\r\n" in raw
    assert b'\r\nWarning: 399 uacsta "bad CSeq' in raw
    bad_line = register().to_bytes().replace(b"Max-Forwards: 70", b"Max-Forwards 70")
    peer_transport.sendto(bad_line, listener.local)
    answer = parse_message(await peer.recv())
    assert isinstance(answer, Response) and answer.status_code == 400
    assert answer.call_id == "c1@x"
    peer_transport.sendto(b"\x00\x01garbage", listener.local)  # dropped
    peer_transport.sendto(b"\r\n\r\n", listener.local)  # keep-alive: ignored
    peer_transport.sendto(register().to_bytes(), listener.local)
    msg, _ = await col.next()
    assert isinstance(msg, Request) and msg.method == "REGISTER"
    assert peer.queue.empty()


async def test_udp_send_to_uses_the_listener_socket(
    sip: SipTransport, udp_peer: tuple[asyncio.DatagramTransport, UdpPeer]
) -> None:
    with pytest.raises(NoListener):
        await sip.send_to(register(), "udp", "127.0.0.1", 9)
    listener = await sip.listen("udp:127.0.0.1:0")
    peer_transport, peer = udp_peer
    port = peer_transport.get_extra_info("sockname")[1]
    flow = await sip.send_to(register(), "udp", "127.0.0.1", port)
    assert flow.local == listener.local
    assert (await peer.recv()).startswith(b"REGISTER ")


async def test_handler_exception_does_not_stop_the_transport(
    udp_peer: tuple[asyncio.DatagramTransport, UdpPeer],
) -> None:
    seen: asyncio.Queue[Message] = asyncio.Queue()

    def handler(message: Message, flow: Flow) -> None:
        seen.put_nowait(message)
        raise RuntimeError("bug in a handler")

    sip = SipTransport(handler)
    try:
        listener = await sip.listen("udp:127.0.0.1:0")
        peer_transport, _ = udp_peer
        for _ in range(2):
            peer_transport.sendto(register().to_bytes(), listener.local)
            await asyncio.wait_for(seen.get(), TIMEOUT)
    finally:
        await sip.close()


# --- TCP -----------------------------------------------------------------------------------


async def test_tcp_framing_ping_pong_and_response_on_same_connection(
    sip: SipTransport, col: Collector
) -> None:
    listener = await sip.listen("tcp:127.0.0.1:0")
    reader, writer = await asyncio.open_connection(*listener.local)
    try:
        writer.write(b"\r\n\r\n")
        assert await asyncio.wait_for(reader.readexactly(2), TIMEOUT) == b"\r\n"
        data = register(transport="TCP").with_body(b"hello", "text/plain").to_bytes()
        for i in range(0, len(data), 7):  # byte-dribbled across many segments
            writer.write(data[i : i + 7])
            await writer.drain()
        msg, flow = await col.next()
        assert isinstance(msg, Request) and msg.body == b"hello"
        assert flow.is_stream and flow.transport == "tcp"
        assert flow.remote == writer.get_extra_info("sockname")[:2]
        assert sip.connections == [flow]
        sip.send(build_response(msg, 200), flow)
        resp = await read_message(reader)
        assert isinstance(resp, Response) and resp.status_code == 200
    finally:
        writer.close()
        await writer.wait_closed()
    assert await col.next_closed() == flow
    assert sip.connections == []
    with pytest.raises(FlowClosed):
        sip.send(build_response(msg, 200), flow)


async def test_tcp_framing_error_closes_only_that_connection(
    sip: SipTransport, col: Collector
) -> None:
    listener = await sip.listen("tcp:127.0.0.1:0")
    r1, w1 = await asyncio.open_connection(*listener.local)
    _r2, w2 = await asyncio.open_connection(*listener.local)
    try:
        w1.write(b"REGISTER sip:x SIP/2.0\r\nContent-Length: abc\r\n\r\n")
        await expect_eof(r1)
        closed = await col.next_closed()
        assert closed.remote == w1.get_extra_info("sockname")[:2]
        w2.write(register(transport="TCP").to_bytes())
        _msg, flow = await col.next()
        assert flow.remote == w2.get_extra_info("sockname")[:2]
    finally:
        for w in (w1, w2):
            w.close()
            await w.wait_closed()


async def test_tcp_unparseable_but_framed_message_gets_400_and_connection_stays(
    sip: SipTransport, col: Collector
) -> None:
    listener = await sip.listen("tcp:127.0.0.1:0")
    reader, writer = await asyncio.open_connection(*listener.local)
    try:
        bad = register(transport="TCP").to_bytes().replace(b"Max-Forwards:", b"Max-Forwards")
        writer.write(bad)
        resp = await read_message(reader)
        assert isinstance(resp, Response) and resp.status_code == 400
        writer.write(register(transport="TCP").to_bytes())
        msg, _ = await col.next()
        assert isinstance(msg, Request)
    finally:
        writer.close()
        await writer.wait_closed()


async def test_tcp_message_over_size_limit_closes_connection(col: Collector) -> None:
    sip = make(col, max_body_bytes=100)
    try:
        listener = await sip.listen("tcp:127.0.0.1:0")
        reader, writer = await asyncio.open_connection(*listener.local)
        writer.write(register(transport="TCP").with_body(b"x" * 101).to_bytes())
        await expect_eof(reader)
        writer.close()
        await writer.wait_closed()
        await col.next_closed()
        assert col.messages.empty()
    finally:
        await sip.close()


async def test_tcp_connection_limits(col: Collector) -> None:
    sip = make(col, max_connections_per_address=1, max_connections=2)
    try:
        listener = await sip.listen("tcp:127.0.0.1:0")
        r1, w1 = await asyncio.open_connection(*listener.local)
        w1.write(b"\r\n\r\n")
        assert await asyncio.wait_for(r1.readexactly(2), TIMEOUT) == b"\r\n"
        r2, w2 = await asyncio.open_connection(*listener.local)
        await expect_eof(r2)  # second connection from 127.0.0.1 refused
        assert len(sip.connections) == 1
        assert col.closed.empty()  # a refused connection was never a flow
        for w in (w1, w2):
            w.close()
            await w.wait_closed()
        await col.next_closed()
    finally:
        await sip.close()


async def test_tcp_idle_timeout_closes_quiet_connections(col: Collector) -> None:
    sip = make(col, idle_timeout=0.2)
    try:
        listener = await sip.listen("tcp:127.0.0.1:0")
        reader, writer = await asyncio.open_connection(*listener.local)
        writer.write(b"\r\n\r\n")  # traffic re-arms the timer
        assert await asyncio.wait_for(reader.readexactly(2), TIMEOUT) == b"\r\n"
        await expect_eof(reader)
        flow = await col.next_closed()
        assert flow.remote == writer.get_extra_info("sockname")[:2]
        writer.close()
        await writer.wait_closed()
    finally:
        await sip.close()


async def test_close_closes_every_connection(col: Collector) -> None:
    sip = make(col)
    listener = await sip.listen("tcp:127.0.0.1:0")
    await sip.listen("udp:127.0.0.1:0")
    reader, writer = await asyncio.open_connection(*listener.local)
    writer.write(b"\r\n\r\n")
    await asyncio.wait_for(reader.readexactly(2), TIMEOUT)
    await sip.close()
    assert sip.connections == [] and sip.listeners == []
    await col.next_closed()
    await expect_eof(reader)
    writer.close()
    await writer.wait_closed()
    with pytest.raises(ConnectionRefusedError):
        await asyncio.open_connection(*listener.local)
    with pytest.raises(RuntimeError):
        await sip.listen("udp:127.0.0.1:0")


# --- client connections: send_to, reuse, §18.2.2 fallback, TLS ------------------------------


@pytest.fixture
async def pair() -> AsyncIterator[tuple[SipTransport, Collector, SipTransport, Collector]]:
    ca, cb = Collector(), Collector()
    a, b = make(ca), make(cb)
    try:
        yield a, ca, b, cb
    finally:
        await a.close()
        await b.close()


async def test_tcp_send_to_opens_once_and_reuses(
    pair: tuple[SipTransport, Collector, SipTransport, Collector],
) -> None:
    a, ca, b, cb = pair
    la = await a.listen("tcp:127.0.0.1:0")
    flow1 = await b.send_to(register(transport="TCP", branch="z9hG4bK-a"), "tcp", *la.local)
    flow2 = await b.send_to(register(transport="TCP", branch="z9hG4bK-b"), "TCP", *la.local)
    assert flow1 == flow2 and flow1.is_stream
    req1, aflow = await ca.next()
    _req2, aflow2 = await ca.next()
    assert aflow == aflow2
    assert isinstance(req1, Request)
    a.send(build_response(req1, 200), aflow)  # back over the same connection
    resp, bflow = await cb.next()
    assert isinstance(resp, Response) and bflow == flow1
    assert len(b.connections) == 1 and len(a.connections) == 1
    # Concurrent first sends share one dial.
    flows = await asyncio.gather(
        *(b.send_to(register(transport="TCP"), "tcp", "localhost", la.port) for _ in range(3))
    )
    assert len(set(flows)) == 1
    b.close_flow(flow1)
    assert await cb.next_closed() == flow1
    assert await ca.next_closed() == aflow


async def test_send_to_unreachable_raises_flow_closed(sip: SipTransport) -> None:
    from tests.integration.conftest import free_port

    with pytest.raises(FlowClosed):
        await sip.send_to(register(), "tcp", "127.0.0.1", free_port())


async def test_send_response_reopens_a_connection_to_the_via_address(
    pair: tuple[SipTransport, Collector, SipTransport, Collector],
) -> None:
    a, ca, b, cb = pair
    la = await a.listen("tcp:127.0.0.1:0")
    lb = await b.listen("tcp:127.0.0.1:0")
    req = register("127.0.0.1", lb.port, rport=False, transport="TCP")
    bflow = await b.send_to(req, "tcp", *la.local)
    got, aflow = await ca.next()
    assert isinstance(got, Request)
    b.close_flow(bflow)
    await ca.next_closed()
    response = build_response(got, 200)
    with pytest.raises(FlowClosed):
        a.send(response, aflow)
    new_flow = await a.send_response(response, aflow)
    assert new_flow != aflow and new_flow.remote == lb.local
    resp, flow_at_b = await cb.next()
    assert isinstance(resp, Response) and resp.status_code == 200
    assert flow_at_b.local == lb.local


async def test_tls_send_to_with_self_signed_certificate(
    pair: tuple[SipTransport, Collector, SipTransport, Collector], tmp_path: Path
) -> None:
    a, ca, _, _ = pair
    cert, key = ensure_self_signed_cert(tmp_path)
    with pytest.raises(ValueError):
        await a.listen("tls:127.0.0.1:0")
    la = await a.listen("tls:127.0.0.1:0", ssl_context=server_context(cert, key))
    cb = Collector()
    b = SipTransport(cb.on_message, on_closed=cb.on_closed, tls_client_context=client_context(cert))
    try:
        flow = await b.send_to(
            register(transport="TLS"), "tls", "127.0.0.1", la.port, server_hostname="localhost"
        )
        req, aflow = await ca.next()
        assert aflow.transport == "tls" and flow.transport == "tls"
        assert isinstance(req, Request)
        a.send(build_response(req, 200), aflow)
        resp, _ = await cb.next()
        assert isinstance(resp, Response) and resp.status_code == 200
    finally:
        await b.close()


async def test_tls_client_rejects_an_untrusted_certificate(
    sip: SipTransport, tmp_path: Path
) -> None:
    cert, key = ensure_self_signed_cert(tmp_path / "server")
    other, _ = ensure_self_signed_cert(tmp_path / "other")
    listener = await sip.listen("tls:127.0.0.1:0", ssl_context=server_context(cert, key))
    client = SipTransport(lambda m, f: None, tls_client_context=client_context(other))
    try:
        with pytest.raises(FlowClosed):
            await client.send_to(register(), "tls", "127.0.0.1", listener.port)
    finally:
        await client.close()


def test_self_signed_cert_is_kept_and_key_is_private(tmp_path: Path) -> None:
    cert, key = ensure_self_signed_cert(tmp_path / "d")
    assert stat.S_IMODE(key.stat().st_mode) == 0o600
    before = cert.read_bytes()
    assert ensure_self_signed_cert(tmp_path / "d") == (cert, key)
    assert cert.read_bytes() == before
    ctx = server_context(cert, key)
    assert ctx.minimum_version.name == "TLSv1_2"
    assert client_context(verify=False).check_hostname is False
