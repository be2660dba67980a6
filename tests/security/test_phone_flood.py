"""Issue 15 item 8: one phone flooding SIP messages cannot stall the server.

Each phone flow (a TCP/TLS connection, a UDP source) has a token bucket: over it the server
stops reading the connection for a moment (TCP back-pressure: nothing lost, the phone is
slowed down) or drops the datagrams (UDP). The tests flood a running server and count the
answers: a server without the limit answers the whole flood at once.
"""

from __future__ import annotations

import asyncio
import re
import socket

import httpx

from tests.e2e.conftest import phone_ports
from tests.security.conftest import Harness, wait_until

RATE = 100.0
BURST = 20
FLOOD = 300


def _options(i: int, transport: str, port: int) -> bytes:
    return (
        f"OPTIONS sip:uacsta@127.0.0.1 SIP/2.0\r\n"
        f"Via: SIP/2.0/{transport} 127.0.0.1:{port};branch=z9hG4bK-flood-{i};rport\r\n"
        f"Max-Forwards: 70\r\n"
        f"From: <sip:flood@127.0.0.1>;tag=f{i}\r\n"
        f"To: <sip:uacsta@127.0.0.1>\r\n"
        f"Call-ID: flood-{i}@127.0.0.1\r\n"
        f"CSeq: 1 OPTIONS\r\n"
        f"Content-Length: 0\r\n\r\n"
    ).encode()


def _most_allowed(seconds: float) -> int:
    """Messages one flow may get answered in ``seconds``: the burst, the rate, some slack."""
    return int(BURST + RATE * seconds * 1.25) + 10


async def test_tcp_phone_flood_is_slowed_down_not_dropped(harness: Harness) -> None:
    server = await harness.start_server(max_messages_per_second=RATE, message_burst=BURST)
    assert server.phones is not None and server.http_port is not None
    port = phone_ports(server)["tcp"]
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    local_port = writer.get_extra_info("sockname")[1]
    answers = 0

    async def count() -> None:
        nonlocal answers
        buffer = b""
        while chunk := await reader.read(65536):
            buffer += chunk
            answers += buffer.count(b"SIP/2.0 ")
            buffer = buffer[buffer.rfind(b"SIP/2.0 ") + 1 :] if b"SIP/2.0 " in buffer else buffer

    counter = asyncio.get_running_loop().create_task(count())
    writer.write(b"".join(_options(i, "TCP", local_port) for i in range(FLOOD)))
    await writer.drain()
    start = asyncio.get_running_loop().time()
    # Another client is served while the phone floods.
    async with httpx.AsyncClient(timeout=5.0) as web:
        assert (await web.get(f"http://127.0.0.1:{server.http_port}/healthz")).status_code == 200
    await asyncio.sleep(max(0.0, 1.0 - (asyncio.get_running_loop().time() - start)))
    elapsed = asyncio.get_running_loop().time() - start
    assert 0 < answers <= _most_allowed(elapsed), (answers, elapsed)
    assert server.phones.ua.transport.flood_pauses >= 1
    async with httpx.AsyncClient(timeout=5.0) as web:
        metrics = (await web.get(f"http://127.0.0.1:{server.http_port}/metrics")).text
    paused = re.search(r'^uacsta_sip_flood_total\{action="paused"\} (\S+)$', metrics, re.M)
    assert paused is not None and float(paused.group(1)) >= 1
    # Back-pressure, not loss: every request is answered in the end.
    await wait_until(lambda: answers >= FLOOD, 15.0, "every flooded request answered")
    counter.cancel()
    writer.close()


async def test_udp_phone_flood_is_dropped_over_the_rate(harness: Harness) -> None:
    server = await harness.start_server(max_messages_per_second=RATE, message_burst=BURST)
    assert server.phones is not None
    port = phone_ports(server)["udp"]
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.bind(("127.0.0.1", 0))
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4 * 1024 * 1024)
    sock.setblocking(False)
    local_port = sock.getsockname()[1]
    loop = asyncio.get_running_loop()
    start = loop.time()
    for i in range(FLOOD):
        sock.sendto(_options(i, "UDP", local_port), ("127.0.0.1", port))
    answers = 0
    while loop.time() - start < 1.0:
        try:
            while sock.recv(65536):
                answers += 1
        except BlockingIOError:
            await asyncio.sleep(0.02)
    elapsed = loop.time() - start
    sock.close()
    assert 0 < answers <= _most_allowed(elapsed), (answers, elapsed)
    assert server.phones.ua.transport.flood_dropped >= FLOOD - _most_allowed(elapsed)


async def test_an_edge_proxy_is_not_rate_limited_as_one_phone(harness: Harness) -> None:
    """Behind an edge (phones.trusted_proxies) one flow carries every phone's messages."""
    server = await harness.start_server(
        max_messages_per_second=RATE, message_burst=BURST, trusted_proxies=["127.0.0.1"]
    )
    assert server.phones is not None
    port = phone_ports(server)["udp"]
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.bind(("127.0.0.1", 0))
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4 * 1024 * 1024)
    sock.setblocking(False)
    local_port = sock.getsockname()[1]
    loop = asyncio.get_running_loop()
    start = loop.time()
    for i in range(FLOOD):
        sock.sendto(_options(i, "UDP", local_port), ("127.0.0.1", port))
    answers = 0
    while loop.time() - start < 1.0 and answers < FLOOD:
        try:
            while sock.recv(65536):
                answers += 1
        except BlockingIOError:
            await asyncio.sleep(0.02)
    elapsed = loop.time() - start
    sock.close()
    assert answers > _most_allowed(elapsed), (answers, elapsed)
    assert server.phones.ua.transport.flood_dropped == 0
