"""Black box: the README's defaults as an integrator copies them, against ``uacsta serve``.

The README's configuration block is what a new user copies into ``uacsta.toml``. It must be
a valid configuration, state the defaults the server really has (it once showed SHA-256
first, the order that locks MD5-only phones out), and a server started from it must answer
as the block says: the first digest challenge MD5, the listed CTI account able to log in.
The peers here are hand-written bytes on real sockets (RFC 3261 REGISTER, ECMA-323 Annex J
frames with an ECMA-354 StartApplicationSession), not uacsta's own clients.
"""

from __future__ import annotations

import asyncio
import dataclasses
import re
import socket
import struct
import sys
import tomllib
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from tests.e2e.conftest import wait_until
from uacsta.config import Settings, load_settings, settings_to_dict

README = Path(__file__).resolve().parents[2] / "README.md"


def readme_defaults() -> str:
    text = README.read_text(encoding="utf-8")
    match = re.search(r"Defaults:\n\n```toml\n(.*?)```", text, re.S)
    assert match, "README.md has no 'Defaults:' TOML block"
    return match.group(1)


def _keys(table: dict[str, Any], prefix: str = "") -> set[str]:
    out: set[str] = set()
    for key, value in table.items():
        name = f"{prefix}{key}"
        if isinstance(value, dict) and key != "passwords":
            out |= _keys(value, f"{name}.")
        else:
            out.add(name)
    return out


def test_readme_defaults_are_the_servers_defaults(tmp_path: Path) -> None:
    path = tmp_path / "uacsta.toml"
    path.write_text(readme_defaults(), encoding="utf-8")
    from_readme = load_settings(path, env={})
    assert settings_to_dict(from_readme) == settings_to_dict(Settings())


def test_readme_defaults_name_every_setting() -> None:
    """A setting missing from the block is one an integrator never hears of."""
    block = tomllib.loads(readme_defaults())
    expected = _keys(settings_to_dict(Settings())) - {"clients.accounts"}
    missing = expected - (_keys(block) - {"clients.accounts"})
    assert not missing, f"settings missing from README.md's defaults: {sorted(missing)}"
    account = {f.name for f in dataclasses.fields(Settings().clients.accounts[0])}
    assert set(block["clients"]["accounts"][0]) == account


# --- a `uacsta serve` subprocess started from the README's block --------------------------


def _free_port(kind: int) -> int:
    with socket.socket(socket.AF_INET, kind) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _free_udp_and_tcp_port() -> int:
    """A port free for UDP and TCP (the phone listeners share it, as 5060 does)."""
    for _ in range(50):
        port = _free_port(socket.SOCK_DGRAM)
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as tcp:
            try:
                tcp.bind(("127.0.0.1", port))
            except OSError:
                continue
        return port
    raise RuntimeError("no port free for UDP and TCP")


@dataclasses.dataclass
class Served:
    proc: asyncio.subprocess.Process
    log: Path
    sip_udp: int
    csta_tcp: int
    web: int


@pytest.fixture
async def served(tmp_path: Path) -> AsyncIterator[Served]:
    block = readme_defaults()
    sip_udp, csta_tcp = _free_udp_and_tcp_port(), _free_port(socket.SOCK_STREAM)
    web = _free_port(socket.SOCK_STREAM)
    # Only what the operator guide says to set: listen addresses (loopback), the data path.
    block = block.replace(
        'listen = ["udp:0.0.0.0:5060", "tcp:0.0.0.0:5060", "tls:0.0.0.0:5061"]',
        f'listen = ["udp:127.0.0.1:{sip_udp}", "tcp:127.0.0.1:{sip_udp}"]',
    )
    block = block.replace(
        'csta_listen = ["tcp:0.0.0.0:8882", "tls:0.0.0.0:8883"]',
        f'csta_listen = ["tcp:127.0.0.1:{csta_tcp}"]',
    )
    block = block.replace(
        'sip_listen = ["tcp:0.0.0.0:5062", "tls:0.0.0.0:5063"]', "sip_listen = []"
    )
    block = block.replace('listen = "tcp:0.0.0.0:8080"', f'listen = "tcp:127.0.0.1:{web}"')
    block = block.replace('path = "./data"', f'path = "{tmp_path / "data"}"')
    assert block.count("127.0.0.1") == 4, "README's listen defaults changed: adapt this test"
    config = tmp_path / "uacsta.toml"
    config.write_text(block, encoding="utf-8")
    log = tmp_path / "serve.log"
    with log.open("wb") as out:
        proc = await asyncio.create_subprocess_exec(
            str(Path(sys.executable).parent / "uacsta"),
            "serve",
            "-c",
            str(config),
            stdin=asyncio.subprocess.DEVNULL,
            stdout=out,
            stderr=out,
            cwd=tmp_path,
        )
    try:
        await wait_until(
            lambda: (
                proc.returncode is not None or "uacsta started" in log.read_text(errors="replace")
            ),
            60,
            "uacsta serve started",
        )
        assert proc.returncode is None, log.read_text(errors="replace")
        yield Served(proc, log, sip_udp, csta_tcp, web)
    finally:
        if proc.returncode is None:
            proc.terminate()
            try:
                await asyncio.wait_for(proc.wait(), 20)
            except TimeoutError:
                proc.kill()
                await proc.wait()


def _register(port: int, mac: str) -> bytes:
    return (
        f"REGISTER sip:127.0.0.1:{port} SIP/2.0\r\n"
        f"Via: SIP/2.0/UDP 127.0.0.1:5999;branch=z9hG4bK-bb-1;rport\r\n"
        f"From: <sip:{mac}@127.0.0.1>;tag=bb1\r\n"
        f"To: <sip:{mac}@127.0.0.1>\r\n"
        "Call-ID: bb-register-1@127.0.0.1\r\n"
        "CSeq: 1 REGISTER\r\n"
        f"Contact: <sip:{mac}@127.0.0.1:5999>\r\n"
        "Max-Forwards: 70\r\nExpires: 300\r\nUser-Agent: Yealink SIP-T46G 28.83.0.35\r\n"
        "Content-Length: 0\r\n\r\n"
    ).encode()


def _annex_j(invoke: bytes, xml: str) -> bytes:
    body = invoke + xml.encode()
    return b"\x00\x00" + struct.pack(">H", len(body) + 4) + body


LOGIN = (
    '<?xml version="1.0" encoding="UTF-8"?>'
    '<StartApplicationSession xmlns="http://www.ecma-international.org/standards/ecma-354/appl_session">'
    "<applicationInfo><applicationID>blackbox</applicationID><applicationSpecificInfo>"
    '<ns1:SessionLoginInfo xmlns:ns1="http://www.avaya.com/csta">'
    "<ns1:userName>{user}</ns1:userName><ns1:password>{password}</ns1:password>"
    "</ns1:SessionLoginInfo></applicationSpecificInfo></applicationInfo>"
    "<requestedProtocolVersions><protocolVersion>"
    "http://www.ecma-international.org/standards/ecma-323/csta/ed3"
    "</protocolVersion></requestedProtocolVersions>"
    "<requestedSessionDuration>180</requestedSessionDuration></StartApplicationSession>"
)


async def _read_frame(reader: asyncio.StreamReader) -> tuple[bytes, str]:
    head = await asyncio.wait_for(reader.readexactly(4), 10)
    assert head[:2] == b"\x00\x00"
    body = await asyncio.wait_for(reader.readexactly(struct.unpack(">H", head[2:])[0] - 4), 10)
    return body[:4], body[4:].decode()


async def test_server_from_readme_defaults_challenges_md5_first_and_logs_in_cti(
    served: Served,
) -> None:
    # A phone's first REGISTER: the first WWW-Authenticate offers MD5 (what the block says).
    loop = asyncio.get_running_loop()
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.setblocking(False)
    sock.bind(("127.0.0.1", 0))
    try:
        await loop.sock_sendto(
            sock, _register(served.sip_udp, "001565AABBCC"), ("127.0.0.1", served.sip_udp)
        )
        answer = (await asyncio.wait_for(loop.sock_recv(sock, 65535), 10)).decode()
    finally:
        sock.close()
    assert answer.startswith("SIP/2.0 401"), answer
    challenges = re.findall(r"^WWW-Authenticate:.*$", answer, re.M | re.I)
    algorithms = [re.search(r"algorithm=([\w-]+)", c, re.I).group(1) for c in challenges]  # type: ignore[union-attr]
    assert algorithms == tomllib.loads(readme_defaults())["phones"]["digest_algorithms"]
    assert algorithms[0] == "MD5"

    # The CTI account the block lists logs in over CSTA XML/TCP; a wrong password does not.
    reader, writer = await asyncio.open_connection("127.0.0.1", served.csta_tcp)
    try:
        writer.write(_annex_j(b"0001", LOGIN.format(user="cti", password="change-me")))
        invoke, xml = await _read_frame(reader)
        assert invoke == b"0001"
        assert "StartApplicationSessionPosResponse" in xml, xml
        assert "<actualSessionDuration>180</actualSessionDuration>" in xml
    finally:
        writer.close()
    reader, writer = await asyncio.open_connection("127.0.0.1", served.csta_tcp)
    try:
        writer.write(_annex_j(b"0001", LOGIN.format(user="cti", password="wrong")))
        invoke, xml = await _read_frame(reader)
        assert invoke == b"0001"
        assert "StartApplicationSessionNegResponse" in xml, xml
    finally:
        writer.close()


async def test_garbage_datagrams_from_many_ports_log_a_few_lines(served: Served) -> None:
    # Issue 15 item 11: each source port stays under its message rate, so nothing is dropped
    # before parsing; the log must still not grow by a line per datagram.
    loop = asyncio.get_running_loop()
    target = ("127.0.0.1", served.sip_udp)
    for port_index in range(100):
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sender:
            sender.bind(("127.0.0.1", 0))
            for n in range(10):
                sender.sendto(b"garbage %d-%d\r\n\r\n" % (port_index, n), target)
    # A REGISTER sent after them is answered once they are all read (one socket, in order).
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.setblocking(False)
    sock.bind(("127.0.0.1", 0))
    try:
        await loop.sock_sendto(sock, _register(served.sip_udp, "001565AABBCD"), target)
        answer = (await asyncio.wait_for(loop.sock_recv(sock, 65535), 10)).decode()
    finally:
        sock.close()
    assert answer.startswith("SIP/2.0 401"), answer
    log = served.log.read_text(errors="replace")
    bad = [line for line in log.splitlines() if "bad datagram from udp:" in line]
    rate_limit_lines = tomllib.loads(readme_defaults())["log"]["rate_limit_lines"]
    assert 1 <= len(bad) <= rate_limit_lines, bad[:20]
    assert "further lines like 'bad datagram from %s: %s' suppressed" in log


async def test_malformed_http_requests_log_a_few_lines(served: Served) -> None:
    # Issue 15 item 11 on the web listener: uvicorn's "Invalid HTTP request received." came
    # once per request (also for every body refused with 413), from anyone.
    for n in range(60):
        reader, writer = await asyncio.open_connection("127.0.0.1", served.web)
        if n % 2:
            writer.write(b"GARBAGE / HTTP/9\r\n\r\n")
        else:
            writer.write(b"PUT /api/v1/x HTTP/1.1\r\nHost: x\r\nContent-Length: 99999999\r\n\r\n")
        answer = await asyncio.wait_for(reader.read(200), 10)
        writer.close()
        if not n % 2:
            assert answer.startswith(b"HTTP/1.1 413"), answer
    reader, writer = await asyncio.open_connection("127.0.0.1", served.web)
    writer.write(b"GET /healthz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
    assert (await asyncio.wait_for(reader.read(200), 10)).startswith(b"HTTP/1.1 200")
    writer.close()
    log = served.log.read_text(errors="replace")
    invalid = [line for line in log.splitlines() if "Invalid HTTP request received." in line]
    rate_limit_lines = tomllib.loads(readme_defaults())["log"]["rate_limit_lines"]
    assert 1 <= len(invalid) <= rate_limit_lines + 1, invalid  # + the "suppressed" notice
