"""Listener settings changed at runtime: the listeners move, open sessions stay."""

from __future__ import annotations

import asyncio
import socket

import httpx

from tests.e2e.conftest import Harness, csta_port, wait_until
from uacsta.csta import messages as m


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


async def test_client_and_web_listeners_move_and_sessions_survive(harness: Harness) -> None:
    server = await harness.start_server()
    client = await harness.csta_client()
    old_port = csta_port(server)
    new_csta, new_sip, new_http = free_port(), free_port(), free_port()
    restarted = await server.ops.update_settings(
        {
            "clients": {
                "csta_listen": [f"tcp:127.0.0.1:{new_csta}"],
                "sip_listen": [f"tcp:127.0.0.1:{new_sip}"],
            },
            "http": {"listen": f"tcp:127.0.0.1:{new_http}"},
        }
    )
    assert restarted == [
        "CSTA client listeners",
        "uaCSTA/SIP client listeners",
        "web listener (in a moment)",
    ]
    # The session opened before the change keeps working.
    assert isinstance(await client.request(m.RequestSystemStatus()), m.RequestSystemStatusResponse)
    assert csta_port(server) == new_csta
    second = await harness.csta_client()
    assert isinstance(await second.request(m.RequestSystemStatus()), m.RequestSystemStatusResponse)
    try:
        await asyncio.open_connection("127.0.0.1", old_port)
    except OSError:
        pass
    else:
        raise AssertionError("the old CSTA listener still accepts")
    assert server.tr87 is not None
    assert [lst.port for lst in server.tr87.ua.transport.listeners] == [new_sip]
    await wait_until(lambda: server.http_port == new_http, what="web listener moved")
    async with httpx.AsyncClient() as http:
        for _ in range(50):
            try:
                health = await http.get(f"http://127.0.0.1:{new_http}/healthz")
                break
            except httpx.ConnectError:
                await asyncio.sleep(0.05)
        assert health.status_code == 200 and health.json()["status"] == "ok"
        metrics = await http.get(f"http://127.0.0.1:{new_http}/metrics")
        assert metrics.status_code == 200
        assert "uacsta_clients 2.0" in metrics.text
        assert 'uacsta_phones{state="ready"}' in metrics.text
