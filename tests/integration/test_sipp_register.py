"""REGISTER with digest against the core's registrar, sipp as the independent client.

Over UDP and TCP with sipp; over TLS with a Python ssl client and a self-signed
certificate (this sipp build has no TLS).
"""

from __future__ import annotations

import asyncio
import ssl
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from tests.integration.conftest import SippRunner
from tests.integration.registrar_server import RegistrarServer
from uacsta.net import Flow, server_context
from uacsta.sip.digest import answer_challenge
from uacsta.sip.framing import StreamFramer
from uacsta.sip.helpers import generate_branch, generate_call_id, generate_tag
from uacsta.sip.message import Request, Response, parse_message

USERS = {"alice": "s3cret", "0004f2a1b2c3": "mac-pass"}


@pytest.fixture
async def server() -> AsyncIterator[RegistrarServer]:
    srv = RegistrarServer(USERS)
    try:
        yield srv
    finally:
        await srv.close()


@pytest.mark.sipp
@pytest.mark.parametrize(("listen", "sipp_transport"), [("udp", "u1"), ("tcp", "t1")])
async def test_sipp_register_with_digest(
    server: RegistrarServer, run_sipp: SippRunner, listen: str, sipp_transport: str
) -> None:
    port = await server.listen(f"{listen}:127.0.0.1:0")
    result = await run_sipp(
        "register_auth.xml",
        "-s",
        "alice",
        "-au",
        "alice",
        "-ap",
        USERS["alice"],
        remote=f"127.0.0.1:{port}",
        transport=sipp_transport,
    )
    assert result.returncode == 0, result.explain()
    assert server.sent == [("REGISTER", 401), ("REGISTER", 200)]
    now = asyncio.get_running_loop().time()
    bindings = server.registrar.lookup("sip:alice@127.0.0.1", now)
    assert len(bindings) == 1
    binding = bindings[0]
    assert binding.user_agent == "sipp-register"
    assert isinstance(binding.flow, Flow)
    assert binding.flow.transport == listen
    assert 3590 < binding.expires_at - now <= 3600
    if listen == "tcp":
        # sipp closes its connection when done: the transport reports the flow closed.
        await server.wait_for(lambda: binding.flow in server.closed_flows)


@pytest.mark.sipp
@pytest.mark.parametrize(("listen", "sipp_transport"), [("udp", "u1"), ("tcp", "t1")])
async def test_sipp_register_wrong_password_gets_403(
    server: RegistrarServer, run_sipp: SippRunner, listen: str, sipp_transport: str
) -> None:
    port = await server.listen(f"{listen}:127.0.0.1:0")
    result = await run_sipp(
        "register_wrong_password.xml",
        "-s",
        "alice",
        "-au",
        "alice",
        "-ap",
        "not-the-password",
        remote=f"127.0.0.1:{port}",
        transport=sipp_transport,
    )
    assert result.returncode == 0, result.explain()
    assert server.sent == [("REGISTER", 401), ("REGISTER", 403)]
    assert len(server.registrar) == 0


# --- TLS with a Python client ----------------------------------------------------------


class _TlsClient:
    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader, self.writer = reader, writer
        self.framer = StreamFramer()

    async def request(self, request: Request) -> Response:
        self.writer.write(request.to_bytes())
        await self.writer.drain()
        while True:
            raw = self.framer.next_message()
            if raw is not None:
                msg = parse_message(raw, datagram=False)
                assert isinstance(msg, Response)
                return msg
            data = await asyncio.wait_for(self.reader.read(65536), 5)
            assert data, "server closed the connection"
            self.framer.receive_data(data)


def _register(local: tuple[str, int], cseq: int, call_id: str, auth: str | None) -> Request:
    headers = [
        ("Via", f"SIP/2.0/TLS {local[0]}:{local[1]};branch={generate_branch()};rport"),
        ("From", f"<sips:0004f2a1b2c3@uacsta.test>;tag={generate_tag()}"),
        ("To", "<sips:0004f2a1b2c3@uacsta.test>"),
        ("Call-ID", call_id),
        ("CSeq", f"{cseq} REGISTER"),
        ("Contact", f"<sips:0004f2a1b2c3@{local[0]}:{local[1]};transport=tls>"),
        ("Expires", "600"),
        ("Max-Forwards", "70"),
    ]
    if auth is not None:
        headers.append(("Authorization", auth))
    return Request(method="REGISTER", uri="sips:uacsta.test", headers=tuple(headers))


async def test_tls_register_with_python_client(
    server: RegistrarServer, tls_cert: tuple[Path, Path]
) -> None:
    certfile, keyfile = tls_cert
    port = await server.listen("tls:127.0.0.1:0", ssl_context=server_context(certfile, keyfile))
    client_ctx = ssl.create_default_context(cafile=str(certfile))
    client_ctx.minimum_version = ssl.TLSVersion.TLSv1_2
    reader, writer = await asyncio.open_connection(
        "127.0.0.1", port, ssl=client_ctx, server_hostname="localhost"
    )
    try:
        assert writer.get_extra_info("ssl_object").version() in ("TLSv1.2", "TLSv1.3")
        local = writer.get_extra_info("sockname")[:2]
        client = _TlsClient(reader, writer)
        call_id = generate_call_id()
        first = await client.request(_register(local, 1, call_id, None))
        assert first.status_code == 401
        challenges = first.header_values("WWW-Authenticate")
        assert challenges
        auth = answer_challenge(
            challenges[0], "REGISTER", "sips:uacsta.test", "0004f2a1b2c3", USERS["0004f2a1b2c3"]
        )
        ok = await client.request(_register(local, 2, call_id, auth))
        assert ok.status_code == 200, ok
        assert ok.expires == 600
        (contact,) = ok.contact
        assert contact.expires == 600
        assert ok.top_via.received == "127.0.0.1"
        assert ok.top_via.rport == local[1]
        now = asyncio.get_running_loop().time()
        (binding,) = server.registrar.lookup("sips:0004f2a1b2c3@uacsta.test", now)
        assert isinstance(binding.flow, Flow) and binding.flow.transport == "tls"
    finally:
        writer.close()
        await writer.wait_closed()
    await server.wait_for(lambda: len(server.closed_flows) == 1)


# --- UDP with a Python client: retransmissions and other methods -----------------------


class _UdpClient(asyncio.DatagramProtocol):
    def __init__(self) -> None:
        self.queue: asyncio.Queue[Response] = asyncio.Queue()

    def datagram_received(self, data: bytes, addr: tuple[str | int, ...]) -> None:
        msg = parse_message(data)
        assert isinstance(msg, Response)
        self.queue.put_nowait(msg)

    async def recv(self) -> Response:
        return await asyncio.wait_for(self.queue.get(), 5)


def _udp_request(
    method: str, local: tuple[str, int], cseq: int, auth: str | None = None
) -> Request:
    headers = [
        ("Via", f"SIP/2.0/UDP {local[0]}:{local[1]};branch=z9hG4bK-{method}-{cseq};rport"),
        ("From", "<sip:alice@127.0.0.1>;tag=abc"),
        ("To", "<sip:alice@127.0.0.1>"),
        ("Call-ID", "udp-client@127.0.0.1"),
        ("CSeq", f"{cseq} {method}"),
        ("Contact", f"<sip:alice@{local[0]}:{local[1]}>"),
    ]
    if auth is not None:
        headers.append(("Authorization", auth))
    return Request(method=method, uri="sip:127.0.0.1", headers=tuple(headers))


async def test_udp_retransmission_and_other_methods(server: RegistrarServer) -> None:
    port = await server.listen("udp:127.0.0.1:0")
    loop = asyncio.get_running_loop()
    transport, client = await loop.create_datagram_endpoint(_UdpClient, local_addr=("127.0.0.1", 0))
    try:
        local = transport.get_extra_info("sockname")[:2]
        for method, status in (("OPTIONS", 405), ("FROB", 501)):
            transport.sendto(_udp_request(method, local, 1).to_bytes(), ("127.0.0.1", port))
            resp = await client.recv()
            assert resp.status_code == status
            assert resp.to.tag
        transport.sendto(_udp_request("BYE", local, 9).to_bytes(), ("127.0.0.1", port))
        bye = await client.recv()
        assert bye.status_code == 405 and bye.header("Allow") == "REGISTER"
        first = _udp_request("REGISTER", local, 2)
        transport.sendto(first.to_bytes(), ("127.0.0.1", port))
        challenge = (await client.recv()).header("WWW-Authenticate")
        assert challenge is not None and "MD5" in challenge
        auth = answer_challenge(challenge, "REGISTER", "sip:127.0.0.1", "alice", USERS["alice"])
        second = _udp_request("REGISTER", local, 3, auth).to_bytes()
        transport.sendto(second, ("127.0.0.1", port))
        transport.sendto(second, ("127.0.0.1", port))  # a retransmission: same nc
        one, two = await client.recv(), await client.recv()
        assert one.status_code == two.status_code == 200
        assert server.sent.count(("REGISTER", 200)) == 1  # answered by the transaction
    finally:
        transport.close()
        await asyncio.sleep(0)
