"""The provisioning endpoint for phones and the admin download, over HTTP."""

from __future__ import annotations

import base64
import hashlib
import hmac
import re
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import httpx
import pytest
from fastapi import FastAPI
from lxml import etree

from uacsta.config import load_settings
from uacsta.phones.inventory import Inventory
from uacsta.server import Server
from uacsta.store.db import Store
from uacsta.web.app import create_app

YEALINK = "001565AABBCC"
SNOM = "000413000001"
FANVIL = "0C383E000002"
MITEL = "00085D000003"
UNKNOWN = "AABBCC000004"


def basic(user: str = "provision", password: str = "prov-pw") -> dict[str, str]:
    token = base64.b64encode(f"{user}:{password}".encode()).decode()
    return {"Authorization": f"Basic {token}"}


def login(mac: str) -> dict[str, str]:
    """Phone ``mac``'s own login: its MAC and HMAC-SHA256("prov-pw", context + MAC) in base32."""
    digest = hmac.new(
        b"prov-pw", b"uacsta provisioning login\x00" + mac.encode(), hashlib.sha256
    ).digest()
    return basic(mac, base64.b32encode(digest).decode()[:20].lower())


def make_server(tmp_path: Path, **provisioning: str) -> Server:
    settings = load_settings(
        env={},
        overrides={
            "phones": {
                "listen": ["udp:127.0.0.1:5060", "tcp:127.0.0.1:5070", "tls:127.0.0.1:5061"],
                "password": "common-pw",
                "passwords": {"00:15:65:aa:bb:cc": "yealink-own"},
            },
            "store": {"path": str(tmp_path / "data")},
            "provisioning": {
                "password": "prov-pw",
                "approved_macs": [FANVIL, MITEL, "000952000009"],
                **provisioning,
            },
        },
    )
    server = Server(settings)
    server.store = Store(settings.store.database_url)
    server.inventory = Inventory(server.store)
    for mac, vendor, lines in (
        (YEALINK, "yealink", ["sip:100@pbx.example"]),
        (SNOM, "snom", ["sip:200@pbx.example"]),
        ("AABBCC000005", "fanvil", []),  # OUI unknown, vendor from the inventory
    ):
        record, _ = server.inventory.upsert(mac)
        record.vendor = vendor
        record.lines = lines
        record.model = "D785" if vendor == "snom" else None
    return server


@pytest.fixture
def server(tmp_path: Path) -> Iterator[Server]:
    server = make_server(tmp_path)
    yield server
    assert server.store is not None
    server.store.close()


def http(app: FastAPI) -> httpx.AsyncClient:
    return httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://uacsta.test")


@pytest.fixture
async def client(server: Server) -> AsyncIterator[httpx.AsyncClient]:
    app = create_app(server)
    async with http(app) as c:
        c.app = app  # type: ignore[attr-defined]
        yield c


async def admin_login(client: httpx.AsyncClient, server: Server) -> None:
    client.app.state.auth.set_password("admin", "admin-pw", role="admin")  # type: ignore[attr-defined]
    page = await client.get("/admin/login")
    csrf = re.search(r'name="csrf" value="([^"]+)"', page.text)
    assert csrf is not None, page.text
    r = await client.post(
        "/admin/login",
        data={"name": "admin", "password": "admin-pw", "next": "/admin/", "csrf": csrf[1]},
        follow_redirects=False,
    )
    assert r.status_code == 303, r.text


def kv(text: str) -> dict[str, str]:
    return {
        k.strip(): v.strip()
        for k, sep, v in (line.partition("=") for line in text.splitlines())
        if sep and not k.startswith("#")
    }


async def test_basic_auth_is_required(client: httpx.AsyncClient) -> None:
    r = await client.get(f"/provisioning/{YEALINK.lower()}.cfg")
    assert r.status_code == 401
    assert r.headers["www-authenticate"].startswith("Basic realm=")
    assert (
        await client.get(f"/provisioning/{YEALINK}.cfg", headers=basic("provision", "x"))
    ).status_code == 401
    assert (
        await client.get(f"/provisioning/{YEALINK}.cfg", headers=basic("other", "prov-pw"))
    ).status_code == 401
    r = await client.get(f"/provisioning/{YEALINK}.cfg", headers={"Authorization": "Basic !!!"})
    assert r.status_code == 401
    # The shared login is off by default; a phone's login with another MAC's password fails.
    assert (await client.get(f"/provisioning/{YEALINK}.cfg", headers=basic())).status_code == 401
    wrong = login(SNOM)["Authorization"]
    password = base64.b64decode(wrong.split()[1]).decode().split(":", 1)[1]
    assert (
        await client.get(f"/provisioning/{YEALINK}.cfg", headers=basic(YEALINK, password))
    ).status_code == 401


async def test_login_user_name_in_any_mac_notation(client: httpx.AsyncClient) -> None:
    password = base64.b64decode(login(YEALINK)["Authorization"].split()[1]).decode()
    password = password.split(":", 1)[1]
    r = await client.get(
        f"/provisioning/{YEALINK.lower()}.cfg",
        headers=basic("00-15-65-aa-bb-cc", password),  # no ":" in a Basic user
    )
    assert r.status_code == 200, r.text


async def test_shared_login_when_allowed_gets_common_password_files_only(tmp_path: Path) -> None:
    server = make_server(tmp_path, allow_shared_login="true")
    async with http(create_app(server)) as client:
        r = await client.get(f"/provisioning/{SNOM}.xml", headers=basic())
        assert r.status_code == 200
        assert "common-pw" in r.text
        assert (await client.get("/provisioning/startup.cfg", headers=basic())).status_code == 200
        r = await client.get(f"/provisioning/{YEALINK.lower()}.cfg", headers=basic())
        assert r.status_code == 403  # its own password: never to the shared login
        assert "yealink-own" not in r.text
    assert server.store is not None
    server.store.close()


async def test_yealink_file_by_name_with_own_password_and_local_address(
    client: httpx.AsyncClient,
) -> None:
    r = await client.get(
        f"/provisioning/{YEALINK.lower()}.cfg",
        headers={"Host": "attacker.example", **login(YEALINK)},
    )
    assert r.status_code == 200, r.text
    assert r.headers["content-type"].startswith("text/plain")
    assert r.headers["cache-control"] == "no-store"
    values = kv(r.text)
    assert values["account.16.user_name"] == YEALINK
    assert values["account.16.password"] == "yealink-own"  # per-phone override
    # The address the request reached (ASGI "server"), never the Host header.
    assert values["account.16.sip_server.1.address"] == "uacsta.test"
    assert "attacker.example" not in r.text
    assert values["account.16.sip_server.1.port"] == "5070"  # tcp (the default transport)
    assert values["account.16.csta_number"] == "100"  # from the phone's first line
    assert values["features.csta_control.enable"] == "1"


async def test_snom_files_by_both_names(client: httpx.AsyncClient) -> None:
    for name in (f"{SNOM}.xml", f"snomD785-{SNOM}.htm"):
        r = await client.get(f"/provisioning/{name}", headers=login(SNOM))
        assert r.status_code == 200, (name, r.text)
        root = etree.fromstring(r.content)
        settings = root.find("phone-settings")
        assert settings.find("user_name").text == SNOM
        assert settings.find("user_pass").text == "common-pw"
        assert settings.find("user_outbound").text == "uacsta.test:5070;transport=tcp"
        assert settings.find("csta_control").text == "on"


async def test_vendor_from_oui_when_not_in_inventory(client: httpx.AsyncClient) -> None:
    r = await client.get(f"/provisioning/{FANVIL.lower()}.cfg", headers=login(FANVIL))
    assert r.status_code == 200
    assert r.text.startswith("<<VOIP CONFIG FILE>>")
    assert "CSTA Enable" in r.text
    r = await client.get(f"/provisioning/{MITEL}.cfg", headers=login(MITEL))
    assert r.status_code == 200
    assert "csta: 1" in r.text and "csta port: 5070" in r.text


async def test_vendor_from_inventory_when_oui_unknown(client: httpx.AsyncClient) -> None:
    r = await client.get("/provisioning/aabbcc000005.cfg", headers=login("AABBCC000005"))
    assert r.status_code == 200
    assert "<SIP CONFIG MODULE>" in r.text


async def test_fanvil_dotted_auerswald_and_mitel_startup(client: httpx.AsyncClient) -> None:
    r = await client.get(f"/provisioning/{FANVIL.lower()}-dotted.cfg", headers=login(FANVIL))
    assert kv(r.text)["sip.CSTAEnabled"] == "1"
    r = await client.get("/provisioning/auerswald-000952000009.xml", headers=login("000952000009"))
    assert r.status_code == 200
    assert r.headers["content-type"].startswith("application/xml")
    r = await client.get("/provisioning/startup.cfg", headers=login(SNOM))
    assert r.status_code == 200
    assert "csta password: common-pw" in r.text


async def test_unknown_files_are_404_with_a_reason(client: httpx.AsyncClient) -> None:
    r = await client.get(f"/provisioning/{UNKNOWN}.cfg", headers=login(UNKNOWN))
    assert r.status_code == 404
    assert "not in the inventory or provisioning.approved_macs" in r.text
    r = await client.get(f"/provisioning/{SNOM}.cfg", headers=login(SNOM))
    assert r.status_code == 404
    assert f"snom phone, its file is {SNOM}.xml" in r.text
    r = await client.get("/provisioning/boot.ini", headers=login(SNOM))
    assert r.status_code == 404
    assert "not a provisioning file" in r.text


async def test_endpoint_off_without_password(tmp_path: Path) -> None:
    server = make_server(tmp_path, password="")
    async with http(create_app(server)) as client:
        r = await client.get(f"/provisioning/{YEALINK}.cfg", headers=basic())
    assert r.status_code == 404
    assert "provisioning is off" in r.text
    assert server.store is not None
    server.store.close()


async def test_configured_server_host_and_transport(tmp_path: Path) -> None:
    server = make_server(tmp_path, server_host="pbx.example.org", transport="tls")
    async with http(create_app(server)) as client:
        values = kv((await client.get(f"/provisioning/{YEALINK}.cfg", headers=login(YEALINK))).text)
    assert values["account.16.sip_server.1.address"] == "pbx.example.org"
    assert values["account.16.sip_server.1.port"] == "5061"
    assert values["account.16.sip_server.1.transport_type"] == "2"
    assert server.store is not None
    server.store.close()


async def test_admin_download_requires_admin(client: httpx.AsyncClient, server: Server) -> None:
    r = await client.get(f"/admin/provisioning/download/yealink/{YEALINK}", follow_redirects=False)
    assert r.status_code == 303
    assert r.headers["location"].startswith("/admin/login")
    r = await client.get("/admin/provisioning", follow_redirects=False)
    assert r.status_code == 303
    # A web-client user is not an admin.
    client.app.state.auth.set_password("100", "pw", role="user", extension="100")  # type: ignore[attr-defined]
    r = await client.post(
        "/admin/login", data={"name": "100", "password": "pw"}, follow_redirects=False
    )
    r = await client.get(f"/admin/provisioning/download/yealink/{YEALINK}", follow_redirects=False)
    assert r.status_code == 303


async def test_admin_download_with_content_disposition(
    client: httpx.AsyncClient, server: Server
) -> None:
    await admin_login(client, server)
    r = await client.get("/admin/provisioning/download/yealink/00-15-65-aa-bb-cc")
    assert r.status_code == 200
    assert r.headers["content-disposition"] == 'attachment; filename="001565aabbcc.cfg"'
    assert kv(r.text)["account.16.password"] == "yealink-own"
    # vendor key → its first format; query parameters for number and account
    r = await client.get(f"/admin/provisioning/download/fanvil/{FANVIL}?number=555&account=2")
    assert "SIP2 CSTA Number   :555" in r.text or "SIP2 CSTA Number    :555" in r.text
    r = await client.get(f"/admin/provisioning/download/fanvil-dotted/{FANVIL}?number=555")
    assert kv(r.text)["sip.line.1.CSTANumber"] == "555"
    r = await client.get(f"/admin/provisioning/download/snom/{SNOM}?view=1")
    assert "content-disposition" not in r.headers
    assert (await client.get(f"/admin/provisioning/download/polycom/{SNOM}")).status_code == 404
    assert (await client.get("/admin/provisioning/download/snom/1234")).status_code == 404
    assert (
        await client.get(f"/admin/provisioning/download/snom/{SNOM}?account=x")
    ).status_code == 400


async def test_admin_page_lists_phones_and_form_redirects(
    client: httpx.AsyncClient, server: Server
) -> None:
    await admin_login(client, server)
    r = await client.get("/admin/provisioning")
    assert r.status_code == 200
    assert f"/admin/provisioning/download/yealink/{YEALINK}" in r.text
    assert f"/admin/provisioning/download/snom/{SNOM}" in r.text
    assert "/admin/provisioning/download/fanvil-dotted/AABBCC000005" in r.text
    r = await client.get(
        "/admin/provisioning/generate",
        params={"mac": "00:04:13:00:00:01", "format": "snom", "number": "200"},
        follow_redirects=False,
    )
    assert r.status_code == 303
    assert r.headers["location"] == f"/admin/provisioning/download/snom/{SNOM}?number=200"
    r = await client.get(
        "/admin/provisioning/generate",
        params={"mac": "nope", "format": "snom"},
        follow_redirects=False,
    )
    assert r.headers["location"] == "/admin/provisioning?error=mac"


async def test_admin_form_keeps_a_plus_in_the_number(
    client: httpx.AsyncClient, server: Server
) -> None:
    await admin_login(client, server)
    r = await client.get(
        "/admin/provisioning/generate",
        params={"mac": YEALINK, "format": "yealink", "number": "+4989100"},
        follow_redirects=True,
    )
    assert r.status_code == 200
    assert kv(r.text)["account.16.csta_number"] == "+4989100"


async def test_admin_page_hands_each_phone_its_own_login(
    client: httpx.AsyncClient, server: Server
) -> None:
    await admin_login(client, server)
    r = await client.get("/admin/provisioning")
    urls = re.findall(r'<code class="login-url">([^<]+)</code>', r.text)
    password = base64.b64decode(login(YEALINK)["Authorization"].split()[1]).decode()
    assert f"http://{password}@uacsta.test/provisioning/" in urls
    assert len(urls) == 3 and len(set(urls)) == 3  # one per phone, all different


# --- the address phones are told to register to (issue 19) -----------------------------------


def local(app: FastAPI, host: str) -> httpx.AsyncClient:
    """A client whose requests reach the server at ``host`` (the ASGI "server" address)."""
    return httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url=f"http://{host}")


async def test_admin_opened_from_localhost_warns_that_phones_would_get_loopback(
    server: Server, caplog: pytest.LogCaptureFixture
) -> None:
    from uacsta.web import provisioning

    provisioning._loopback_warned.clear()
    app = create_app(server)
    async with local(app, "127.0.0.1") as client:
        client.app = app  # type: ignore[attr-defined]
        await admin_login(client, server)
        page = await client.get("/admin/provisioning")
        values = kv((await client.get(f"/provisioning/{YEALINK}.cfg", headers=login(YEALINK))).text)
    assert page.status_code == 200
    assert 'id="prov-loopback"' in page.text
    assert (
        "provisioning.server_host" in page.text and "UACSTA_PROVISIONING__SERVER_HOST" in page.text
    )
    assert values["account.16.sip_server.1.address"] == "127.0.0.1"
    warned = [r for r in caplog.records if "loopback address" in r.getMessage()]
    assert len(warned) == 1 and "provisioning.server_host" in warned[0].getMessage()


async def test_server_host_setting_wins_over_the_local_address(tmp_path: Path) -> None:
    server = make_server(tmp_path, server_host="192.0.2.10")
    app = create_app(server)
    async with local(app, "127.0.0.1") as client:
        client.app = app  # type: ignore[attr-defined]
        await admin_login(client, server)
        page = await client.get("/admin/provisioning")
        values = kv((await client.get(f"/provisioning/{YEALINK}.cfg", headers=login(YEALINK))).text)
    assert values["account.16.sip_server.1.address"] == "192.0.2.10"
    assert "<b>192.0.2.10</b>" in page.text and 'id="prov-loopback"' not in page.text
    assert server.store is not None
    server.store.close()


async def test_configured_loopback_server_host_is_flagged(tmp_path: Path) -> None:
    server = make_server(tmp_path, server_host="::1")
    app = create_app(server)
    async with http(app) as client:
        client.app = app  # type: ignore[attr-defined]
        await admin_login(client, server)
        page = await client.get("/admin/provisioning")
    assert (
        'id="prov-loopback"' in page.text and "Change <code>provisioning.server_host" in page.text
    )
    assert server.store is not None
    server.store.close()
