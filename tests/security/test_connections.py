"""Issue 15 item 1: every TCP/TLS listener is bounded before authentication.

Idle connections, connections without a ClientHello and slow requests must not hold the
server's file descriptors: they are counted per address and in total at accept (before
TLS), closed after the handshake timeout, and one flooded listener leaves descriptors for
the others. The descriptor test runs ``uacsta serve`` in a subprocess with a small
``RLIMIT_NOFILE`` so the exhaustion is small and fast.
"""

from __future__ import annotations

import asyncio
import re
import socket
import ssl
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.security.conftest import Harness, make_settings, wait_until
from uacsta.clients.cstatcp import CstaTcpClient
from uacsta.server import Server
from uacsta.simulator.runtime import Simulation

ATTACKER = "127.0.0.2"  # loopback: all of 127/8 reaches the server; legit clients use .1
OPEN_FILES = 200


def _open_idle(port: int, count: int) -> list[socket.socket]:
    """``count`` TCP connections from ATTACKER that never send anything."""
    out = []
    for _ in range(count):
        s = socket.socket()
        s.bind((ATTACKER, 0))
        s.setblocking(False)
        s.connect_ex(("127.0.0.1", port))
        out.append(s)
    return out


def _closed_by_peer(s: socket.socket) -> bool:
    try:
        return s.recv(1) == b""
    except BlockingIOError:
        return False
    except OSError:  # reset, or the connect itself was refused
        return True


@pytest.fixture
def limited_server(tmp_path: Path) -> Iterator[tuple[dict[str, int], Path]]:
    """``uacsta serve`` with 200 open files at most; yields its ports and its log file."""
    config = tmp_path / "uacsta.toml"
    config.write_text(
        f"""
[phones]
listen = ["udp:127.0.0.1:0", "tcp:127.0.0.1:0"]
password = "phone-secret"
max_connections = 40
max_connections_per_address = 8
[clients]
sip_listen = ["tcp:127.0.0.1:0"]
csta_listen = ["tcp:127.0.0.1:0"]
max_connections = 20
max_connections_per_address = 8
[[clients.accounts]]
name = "crm"
password = "crm-secret"
[http]
listen = "tcp:127.0.0.1:0"
max_connections = 40
max_connections_per_address = 8
[connections]
handshake_timeout = 2.0
reserve_files = 64
[store]
path = "{tmp_path / "data"}"
[log]
level = "INFO"
"""
    )
    log_path = tmp_path / "server.log"
    uacsta = str(Path(sys.executable).parent / "uacsta")
    with log_path.open("wb") as log_file:
        proc = subprocess.Popen(
            # util-linux prlimit: soft and hard open-files limit of the server only.
            ["prlimit", f"--nofile={OPEN_FILES}", uacsta, "serve", "--config", str(config)],
            stdout=log_file,
            stderr=subprocess.STDOUT,
        )
    try:
        ports: dict[str, int] = {}
        for _ in range(300):  # bounded wait for the start-up line
            started = re.search(r"uacsta started: (.*)", log_path.read_text())
            if started:
                for kind, transport, port in re.findall(
                    r"(phones|csta|tr87) (udp|tcp|tls):127\.0\.0\.1:(\d+)", started.group(1)
                ):
                    ports[f"{kind}-{transport}"] = int(port)
                ports["web"] = int(re.findall(r"web http:127\.0\.0\.1:(\d+)", started.group(1))[0])
                break
            if proc.poll() is not None:
                break
            subprocess.run(["sleep", "0.1"], check=True)
        assert ports, log_path.read_text()[-3000:]
        yield ports, log_path
    finally:
        proc.terminate()
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:  # pragma: no cover - stuck server
            proc.kill()
            proc.wait()


async def test_idle_flood_leaves_web_clients_and_phones_served(
    limited_server: tuple[dict[str, int], Path],
) -> None:
    ports, log_path = limited_server
    # 1,500 idle connections from one address, far more than the 200 files the server has.
    attack = (
        _open_idle(ports["web"], 500)
        + _open_idle(ports["csta-tcp"], 500)
        + _open_idle(ports["phones-tcp"], 500)
    )
    try:
        async with httpx.AsyncClient(timeout=5.0) as web:
            r = await web.get(f"http://127.0.0.1:{ports['web']}/healthz")
        assert r.status_code == 200 and r.json()["status"] == "ok"

        client = CstaTcpClient()
        try:
            await asyncio.wait_for(client.connect("127.0.0.1", ports["csta-tcp"]), 5)
            await asyncio.wait_for(client.login("crm", "crm-secret"), 5)
        finally:
            await client.close()

        sim = Simulation(
            "127.0.0.1",
            {"tcp": ports["phones-tcp"], "udp": ports["phones-udp"]},
            password="phone-secret",
            min_se=90,
        )
        try:
            agent = sim.add_phone("snom", ["200"], transport="tcp")
            await sim.start()
            await asyncio.wait_for(agent.registered.wait(), 10)
        finally:
            await sim.close()

        # Every attacking connection is refused at accept or closed after the 2 s
        # handshake timeout: none is held.
        await wait_until(
            lambda: all(_closed_by_peer(s) for s in attack), 15, "attack connections closed"
        )
    finally:
        for s in attack:
            s.close()
    text = log_path.read_text()
    assert f"refusing a web connection from {ATTACKER}" in text
    assert f"refusing a csta connection from {ATTACKER}" in text
    assert "suppressed" in text  # the refusals' log lines are rate-limited
    assert "Too many open files" not in text


# --- in-process server: handshake timeouts and slow requests ---------------------------


async def _start(harness: Harness, tmp_path: Path, *, https: bool = False, **http: float) -> Server:
    settings = make_settings(tmp_path / "data")
    settings.clients.csta_listen.append("tls:127.0.0.1:0")
    if https:
        settings.http.listen = "tls:127.0.0.1:0"
    settings.connections.handshake_timeout = 0.5
    for key, value in http.items():
        setattr(settings.http, key, value)
    harness.server = Server(settings)
    await harness.server.start()
    return harness.server


async def _closed_within(reader: asyncio.StreamReader, seconds: float) -> bool:
    try:
        while await asyncio.wait_for(reader.read(65536), seconds):
            pass
    except TimeoutError:
        return False
    except ConnectionError:
        return True
    return True


async def test_tls_connection_without_client_hello_is_closed(
    harness: Harness, tmp_path: Path
) -> None:
    server = await _start(harness, tmp_path, https=True)
    assert server.cstatcp is not None and server.phones is not None
    csta_tls = server.cstatcp.servers[1].sockets[0].getsockname()[1]
    phones_tls = server.phones.ua.transport.listener("tls").port
    for port in (csta_tls, phones_tls, server.http_port):
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        # Handshake timeout 0.5 s; asyncio's own default would keep it for 60 s.
        assert await _closed_within(reader, 5.0), port
        writer.close()
    assert server.cstatcp.gate.timed_out >= 1 and server.web_gate.timed_out >= 1


async def test_csta_tls_per_address_limit_applies_before_the_handshake(
    harness: Harness, tmp_path: Path
) -> None:
    settings = make_settings(tmp_path / "data")
    settings.clients.csta_listen = ["tls:127.0.0.1:0"]
    settings.clients.max_connections_per_address = 4
    settings.connections.handshake_timeout = 30.0
    harness.server = server = Server(settings)
    await server.start()
    assert server.cstatcp is not None
    port = server.cstatcp.servers[0].sockets[0].getsockname()[1]
    streams = [await asyncio.open_connection("127.0.0.1", port) for _ in range(10)]
    closed = [await _closed_within(reader, 1.0) for reader, _ in streams]
    # Four wait for their ClientHello; the other six were refused at accept.
    assert closed.count(True) == 6, closed
    assert server.cstatcp.gate.refused == 6
    # A real TLS client from the same address is still refused (the slots are full)...
    with pytest.raises((ConnectionError, ssl.SSLError, asyncio.IncompleteReadError)):
        ctx = ssl.create_default_context()
        ctx.check_hostname, ctx.verify_mode = False, ssl.CERT_NONE
        _, w = await asyncio.open_connection("127.0.0.1", port, ssl=ctx)
        w.close()
    for _, writer in streams:
        writer.close()
    # ...and served once they are gone.
    await wait_until(lambda: server.cstatcp is not None and server.cstatcp.gate.open == 0)
    client = CstaTcpClient()
    ctx = ssl.create_default_context()
    ctx.check_hostname, ctx.verify_mode = False, ssl.CERT_NONE
    try:
        await client.connect("127.0.0.1", port, ssl_context=ctx)
        await client.login("crm", "crm-secret")
    finally:
        await client.close()


async def test_http_connection_that_sends_nothing_is_closed(
    harness: Harness, tmp_path: Path
) -> None:
    server = await _start(harness, tmp_path)
    reader, writer = await asyncio.open_connection("127.0.0.1", server.http_port)
    assert await _closed_within(reader, 5.0)
    writer.close()


async def test_slow_http_head_is_closed(harness: Harness, tmp_path: Path) -> None:
    server = await _start(harness, tmp_path, head_timeout=1.0)
    reader, writer = await asyncio.open_connection("127.0.0.1", server.http_port)
    writer.write(b"GET /healthz HTTP/1.1\r\nHost: x\r\n")
    closed = False
    loop = asyncio.get_running_loop()
    deadline = loop.time() + 6.0
    while loop.time() < deadline:  # one header byte every 0.2 s: never a whole head
        writer.write(b"X")
        try:
            await writer.drain()
        except ConnectionError:
            closed = True
            break
        if reader.at_eof() or await _closed_within(reader, 0.2):
            closed = True
            break
    writer.close()
    assert closed


async def test_slow_http_body_is_closed(harness: Harness, tmp_path: Path) -> None:
    server = await _start(harness, tmp_path, body_timeout=1.0)
    reader, writer = await asyncio.open_connection("127.0.0.1", server.http_port)
    writer.write(
        b"POST /admin/login HTTP/1.1\r\nHost: x\r\n"
        b"Content-Type: application/x-www-form-urlencoded\r\nContent-Length: 1000\r\n\r\n"
    )
    closed = False
    loop = asyncio.get_running_loop()
    deadline = loop.time() + 6.0
    while loop.time() < deadline:  # ten bytes every 0.3 s: 30 s for the whole body
        writer.write(b"user=admin")
        try:
            await writer.drain()
        except ConnectionError:
            closed = True
            break
        if await _closed_within(reader, 0.3):
            closed = True
            break
    writer.close()
    assert closed


async def test_keep_alive_serves_requests_then_closes_when_idle(
    harness: Harness, tmp_path: Path
) -> None:
    server = await _start(harness, tmp_path, head_timeout=1.0)
    reader, writer = await asyncio.open_connection("127.0.0.1", server.http_port)
    request = b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n"
    for pause in (0.0, 0.5, 0.5):  # each pause below the head timeout: the connection stays
        await asyncio.sleep(pause)
        writer.write(request)
        head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 5.0)
        assert head.startswith(b"HTTP/1.1 200 ")
        length = int(re.search(rb"content-length: (\d+)", head.lower()).group(1))  # type: ignore[union-attr]
        await reader.readexactly(length)
    # Two requests in one write (pipelined): both answered.
    writer.write(request + request)
    for _ in range(2):
        head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 5.0)
        length = int(re.search(rb"content-length: (\d+)", head.lower()).group(1))  # type: ignore[union-attr]
        await reader.readexactly(length)
    assert await _closed_within(reader, 5.0)  # then idle: closed after the head timeout
    writer.close()
