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
from uacsta.net import server_context
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
    assert binding.flow is not None
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
        assert binding.flow is not None and binding.flow.transport == "tls"
    finally:
        writer.close()
        await writer.wait_closed()
    await server.wait_for(lambda: len(server.closed_flows) == 1)
