"""TLS on every listener type: phones (SIP), CTI clients (CSTA-TCP, TR/87) and the web."""

from __future__ import annotations

import asyncio
import ssl
import warnings

import httpx

from tests.e2e.conftest import PASSWORD, Harness, make_settings
from uacsta.clients.cstatcp import CstaTcpClient
from uacsta.csta import messages as m
from uacsta.server import Server


def insecure() -> ssl.SSLContext:
    ctx = ssl.create_default_context()
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    return ctx


async def test_every_listener_speaks_tls_1_2_or_newer(harness: Harness, tmp_path) -> None:
    settings = make_settings(tmp_path / "data")
    settings.phones.listen = ["tls:127.0.0.1:0"]
    settings.clients.csta_listen = ["tls:127.0.0.1:0"]
    settings.clients.sip_listen = ["tls:127.0.0.1:0"]
    settings.http.listen = "tls:127.0.0.1:0"
    server = Server(settings)
    harness.server = server
    await server.start()
    assert all(entry.split()[1].startswith(("tls:", "https:")) for entry in server.listening)

    sim = harness.simulation(password=PASSWORD)
    phone = sim.add_phone("snom", ["200"], transport="tls")
    await sim.start()
    await harness.wait_state(phone.mac, "ready")

    assert server.cstatcp is not None
    port = server.cstatcp.servers[0].sockets[0].getsockname()[1]
    client = CstaTcpClient()
    harness.clients.append(client)
    await client.connect("127.0.0.1", port, ssl_context=insecure())
    await client.login("crm", "crm-secret")
    answer = await client.request(m.MonitorStart(monitor_object="200"))
    assert isinstance(answer, m.MonitorStartResponse)

    # The servers' contexts refuse anything below TLS 1.2 (RFC 8996).
    assert server.tls_context is not None
    assert server.tls_context.minimum_version == ssl.TLSVersion.TLSv1_2
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        old = insecure()
        old.set_ciphers("DEFAULT:@SECLEVEL=0")
        old.minimum_version = ssl.TLSVersion.TLSv1
        old.maximum_version = ssl.TLSVersion.TLSv1_1
    for target in (port, server.http_port):
        try:
            _r, w = await asyncio.open_connection("127.0.0.1", target, ssl=old)
        except (ssl.SSLError, ConnectionError, OSError):
            pass  # refused: TLS 1.1 is below the minimum
        else:
            w.close()
            raise AssertionError(f"TLS 1.1 accepted on port {target}")

    assert server.tr87 is not None
    tr87 = server.tr87.ua.transport.listener("tls").port
    _r, w = await asyncio.open_connection("127.0.0.1", tr87, ssl=insecure())
    assert w.get_extra_info("ssl_object").version() in ("TLSv1.2", "TLSv1.3")
    w.close()
    await w.wait_closed()

    async with httpx.AsyncClient(verify=False) as http:
        health = await http.get(f"https://127.0.0.1:{server.http_port}/healthz")
        assert health.status_code == 200
        login = await http.get(f"https://127.0.0.1:{server.http_port}/admin/login")
        assert login.status_code == 200
        cookie = login.headers.get("set-cookie", "")
        assert "secure" in cookie.lower() and "httponly" in cookie.lower()
