"""Attacks on the phone provisioning endpoint of a running server (issue 15 item 3).

A provisioning file holds the phone's SIP password. The shared login of old handed any phone's
file (per-phone password included) to whoever knew it; these tests fetch over real HTTP on
loopback and check that one phone's credentials open only that phone's file, that unknown MACs
get nothing unless approved, that guessing is throttled per source, and that the Host header
never reaches a file.
"""

from __future__ import annotations

import base64

import httpx

from tests.security.conftest import Harness

SECRET = "prov-secret-0123"
PHONE_A = "001565AA0001"  # Yealink OUI
PHONE_B = "001565BB0002"
UNKNOWN = "001565CC0003"
B_OWN = "b-own-sip-password"


def basic(user: str, password: str) -> dict[str, str]:
    token = base64.b64encode(f"{user}:{password}".encode()).decode()
    return {"Authorization": f"Basic {token}"}


async def start(harness: Harness, **provisioning: object) -> httpx.AsyncClient:
    server = await harness.start_server()
    server.settings.provisioning.password = SECRET
    for key, value in provisioning.items():
        setattr(server.settings.provisioning, key, value)
    server.settings.phones.passwords = {PHONE_B: B_OWN}
    assert server.inventory is not None
    for mac in (PHONE_A, PHONE_B):
        record, _ = server.inventory.upsert(mac)
        record.vendor = "yealink"
    return httpx.AsyncClient(base_url=f"http://127.0.0.1:{server.http_port}", timeout=10)


def credentials_of(mac: str) -> dict[str, str]:
    """Phone ``mac``'s own provisioning login as the admin page hands it out."""
    from uacsta.provisioning.credentials import provisioning_password

    return basic(mac, provisioning_password(SECRET, mac))


async def test_one_phone_credentials_do_not_open_another_phone_file(harness: Harness) -> None:
    async with await start(harness) as http:
        # The old shared login (provisioning.user / .password) no longer opens any file.
        r = await http.get(
            f"/provisioning/{PHONE_B.lower()}.cfg", headers=basic("provision", SECRET)
        )
        assert r.status_code in (401, 403), r.text
        assert B_OWN not in r.text and "phone-secret" not in r.text
        # Phone A's own login opens A's file and nothing else.
        r = await http.get(f"/provisioning/{PHONE_A.lower()}.cfg", headers=credentials_of(PHONE_A))
        assert r.status_code == 200, r.text
        assert "account.16.password = phone-secret" in r.text
        for name in (f"{PHONE_B.lower()}.cfg", f"{PHONE_B}-dotted.cfg", f"{PHONE_B}.xml"):
            r = await http.get(f"/provisioning/{name}", headers=credentials_of(PHONE_A))
            assert r.status_code == 403, (name, r.status_code, r.text)
            assert B_OWN not in r.text and "phone-secret" not in r.text
        # The common file holds the common password: only for a phone that registers with it.
        r = await http.get("/provisioning/startup.cfg", headers=credentials_of(PHONE_B))
        assert r.status_code == 403
        assert "phone-secret" not in r.text
        r = await http.get("/provisioning/startup.cfg", headers=credentials_of(PHONE_A))
        assert r.status_code == 200
        assert "csta password: phone-secret" in r.text
        # B's login is B's; A's password with B's name is wrong.
        password_a = credentials_of(PHONE_A)["Authorization"]
        user_b_pw_a = base64.b64decode(password_a.split()[1]).decode().split(":", 1)[1]
        r = await http.get(
            f"/provisioning/{PHONE_B.lower()}.cfg", headers=basic(PHONE_B, user_b_pw_a)
        )
        assert r.status_code == 401
        r = await http.get(f"/provisioning/{PHONE_B.lower()}.cfg", headers=credentials_of(PHONE_B))
        assert r.status_code == 200
        assert f"account.16.password = {B_OWN}" in r.text


async def test_unknown_mac_gets_nothing_unless_approved(harness: Harness) -> None:
    async with await start(harness) as http:
        for headers in (basic("provision", SECRET), credentials_of(UNKNOWN)):
            r = await http.get(f"/provisioning/{UNKNOWN.lower()}.cfg", headers=headers)
            assert r.status_code in (401, 403, 404), r.text
            assert "phone-secret" not in r.text
        assert harness.server is not None
        harness.server.settings.provisioning.approved_macs = ["00:15:65:cc:00:03"]
        r = await http.get(f"/provisioning/{UNKNOWN.lower()}.cfg", headers=credentials_of(UNKNOWN))
        assert r.status_code == 200, r.text
        assert "account.16.password = phone-secret" in r.text


async def test_wrong_passwords_are_throttled_per_source(harness: Harness) -> None:
    async with await start(harness, max_auth_failures=5, block_time=30.0) as http:
        statuses = []
        for attempt in range(8):
            r = await http.get(
                f"/provisioning/{PHONE_A.lower()}.cfg", headers=basic(PHONE_A, f"guess-{attempt}")
            )
            statuses.append(r.status_code)
            assert "phone-secret" not in r.text
        assert statuses[:4] == [401] * 4, statuses
        assert statuses[-1] == 429, statuses
        assert int(r.headers["retry-after"]) > 0
        # The blocked source gets nothing, not even with the right password.
        r = await http.get(f"/provisioning/{PHONE_A.lower()}.cfg", headers=credentials_of(PHONE_A))
        assert r.status_code == 429
        assert "phone-secret" not in r.text


async def test_host_header_never_reaches_a_file(harness: Harness) -> None:
    async with await start(harness) as http:
        evil = {"Host": "evil.example", **credentials_of(PHONE_A)}
        r = await http.get(f"/provisioning/{PHONE_A.lower()}.cfg", headers=evil)
        assert r.status_code == 200, r.text
        assert "evil.example" not in r.text
        # No server_host setting: the address the phone reached us on, not its Host header.
        assert "account.16.sip_server.1.address = 127.0.0.1" in r.text
        assert harness.server is not None
        harness.server.settings.provisioning.server_host = "uacsta.corp.example"
        r = await http.get(f"/provisioning/{PHONE_A.lower()}.cfg", headers=evil)
        assert "account.16.sip_server.1.address = uacsta.corp.example" in r.text
        assert "evil.example" not in r.text
