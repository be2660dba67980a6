"""Issue 15 item 2: request bodies are bounded per route and never read before a login.

Each test sends a request to the running server over a raw socket and keeps pushing its
body until the server stops it, counting what it managed to send: a server that reads a
body it will refuse lets the whole body through.
"""

from __future__ import annotations

import asyncio
from pathlib import Path

import httpx

from tests.security.conftest import Harness
from uacsta.server import Server
from uacsta.web.auth import Auth

BIG = 128 * 1024 * 1024
#: Far less than BIG, more than the kernel's socket buffers on loopback can absorb.
UNREAD = 16 * 1024 * 1024


def _rss() -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) * 1024
    raise AssertionError("no VmRSS")


async def _push(port: int, head: bytes, total: int, *, chunked: bool = False) -> tuple[int, bytes]:
    """Send ``head``, then body bytes until ``total``, the server's answer or its close;
    returns (body bytes sent, what the server answered)."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    loop = asyncio.get_running_loop()

    async def answer() -> bytes:
        data = bytearray()
        try:
            while chunk := await reader.read(65536):
                data += chunk
        except ConnectionError:
            pass
        return bytes(data)

    answered = loop.create_task(answer())
    block = b"x" * 65536
    frame = b"%x\r\n%s\r\n" % (len(block), block) if chunked else block
    sent = 0
    writer.write(head)
    deadline = loop.time() + 30.0
    try:
        while sent < total and not answered.done() and loop.time() < deadline:
            writer.write(frame)
            await asyncio.wait_for(writer.drain(), 3.0)  # a server not reading stops us here
            sent += len(block)
    except (ConnectionError, TimeoutError):
        pass
    try:
        response = await asyncio.wait_for(answered, 10.0)
    finally:
        writer.close()
    return sent, response


def _status(response: bytes) -> int:
    assert response.startswith(b"HTTP/1.1 "), response[:200]
    return int(response[9:12])


def _head(method: str, path: str, *extra: str, length: int | None = None) -> bytes:
    lines = [f"{method} {path} HTTP/1.1", "Host: 127.0.0.1", *extra]
    lines.append(
        f"Content-Length: {length}" if length is not None else "Transfer-Encoding: chunked"
    )
    return ("\r\n".join(lines) + "\r\n\r\n").encode()


async def _token(server: Server) -> str:
    assert server.store is not None
    _, token = await asyncio.to_thread(Auth(server.store).create_token, "body-test")
    return token


async def test_unauthenticated_128mb_put_is_answered_401_unread(harness: Harness) -> None:
    server = await harness.start_server()
    assert server.http_port is not None
    before = _rss()
    head = _head("PUT", "/api/v1/devices/200/dnd", "Content-Type: application/json", length=BIG)
    sent, response = await _push(server.http_port, head, BIG)
    # 413 from the declared length (over every route's limit), before any login check.
    assert _status(response) in (401, 413)
    assert b"connection: close" in response.lower()
    assert sent < UNREAD, f"the server took {sent} bytes of an unauthenticated body"
    assert _rss() - before < 64 * 1024 * 1024
    # Both at once, as in the report: still refused unread.
    results = await asyncio.gather(*(_push(server.http_port, head, BIG) for _ in range(2)))
    assert all(_status(r) in (401, 413) and s < UNREAD for s, r in results)
    async with httpx.AsyncClient(timeout=5.0) as web:
        assert (await web.get(f"http://127.0.0.1:{server.http_port}/healthz")).status_code == 200


async def test_unauthenticated_chunked_body_is_answered_unread(harness: Harness) -> None:
    server = await harness.start_server()
    assert server.http_port is not None
    head = _head("POST", "/api/v1/devices/200/calls", "Content-Type: application/json")
    sent, response = await _push(server.http_port, head, BIG, chunked=True)
    assert _status(response) == 401
    assert sent < UNREAD
    # The admin pages answer a stranger's form with the way to the login page, unread.
    head = _head("POST", "/admin/settings", "Content-Type: application/x-www-form-urlencoded")
    sent, response = await _push(server.http_port, head, BIG, chunked=True)
    assert _status(response) == 303 and b"location: /admin/login" in response.lower()
    assert sent < UNREAD


async def test_oversized_body_gets_413_from_content_length(harness: Harness) -> None:
    server = await harness.start_server()
    assert server.http_port is not None
    token = await _token(server)
    head = _head(
        "PUT",
        "/api/v1/devices/200/dnd",
        f"Authorization: Bearer {token}",
        "Content-Type: application/json",
        length=BIG,
    )
    sent, response = await _push(server.http_port, head, BIG)
    assert _status(response) == 413
    assert sent < UNREAD
    # A stranger's login form is small too.
    head = _head(
        "POST", "/admin/login", "Content-Type: application/x-www-form-urlencoded", length=BIG
    )
    sent, response = await _push(server.http_port, head, BIG)
    assert _status(response) == 413 and sent < UNREAD


async def test_chunked_body_over_the_route_limit_is_cut_off(harness: Harness) -> None:
    server = await harness.start_server()
    assert server.http_port is not None
    token = await _token(server)
    head = _head(
        "PUT",
        "/api/v1/devices/200/dnd",
        f"Authorization: Bearer {token}",
        "Content-Type: application/json",
    )
    sent, response = await _push(server.http_port, head, BIG, chunked=True)
    assert _status(response) == 413
    assert sent < UNREAD


async def test_big_legal_first_read_is_not_refused_431(harness: Harness, tmp_path: Path) -> None:
    server = await harness.start_server()
    assert server.http_port is not None
    token = await _token(server)
    form = b"csrf=x&" + b"a" * (100 * 1024)  # under the admin forms' 1 MiB, over 80 KB
    head = _head(
        "POST",
        "/admin/settings",
        f"Authorization: Bearer {token}",
        "Content-Type: application/x-www-form-urlencoded",
        length=len(form),
    )
    reader, writer = await asyncio.open_connection("127.0.0.1", server.http_port)
    writer.write(head + form)  # one write: head and body arrive in one read
    await writer.drain()
    response = await asyncio.wait_for(reader.read(65536), 10.0)
    writer.close()
    # Not 431 (the head is small) nor 413 (under the route's limit): the admin page
    # itself answers (an API token is not an admin session: to the login page).
    assert _status(response) == 303, response[:300]
