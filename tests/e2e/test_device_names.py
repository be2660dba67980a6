"""Lines named as CTI clients name them, against the real server (CSTA over TCP, JSON API).

A simulated Yealink lists its second account as ``sip:101@sim.invalid:5060;tel=+4930101``
(``yealink-uacsta-behaviour.md`` "Line list"); a snom on another PBX domain has extension
``101`` too. Clients name lines by full URI (with port, parameters, other case), by tel URI,
by extension; an extension two phones have is refused as ambiguous, never given to one.
"""

from __future__ import annotations

from urllib.parse import quote

import httpx

from tests.e2e.conftest import Harness, wait_until
from uacsta.csta import messages as m
from uacsta.csta.types import DeviceIdentifier
from uacsta.simulator.agent import PhoneAgent
from uacsta.web.auth import Auth

L101 = "sip:101@sim.invalid"
OTHER_101 = "sip:101@branch.invalid"


async def _phones(harness: Harness) -> tuple[PhoneAgent, PhoneAgent]:
    await harness.start_server(journal=False)  # the tests count the phones' MonitorStarts
    sim = harness.simulation()
    yealink = sim.add_phone("yealink", ["100", "101"], transport="tcp")
    assert yealink.firmware is not None
    yealink.firmware.accounts[1].tel = "+4930101"  # account.2.csta_number
    branch = harness.simulation(domain="branch.invalid")
    snom = branch.add_phone("snom", ["101"], transport="tcp")
    await sim.start()
    await branch.start()
    for agent in (yealink, snom):
        await harness.wait_state(agent.mac, "ready")
    return yealink, snom


async def test_csta_client_names_lines_by_uri_tel_and_extension(harness: Harness) -> None:
    yealink, _snom = await _phones(harness)
    fw = yealink.firmware
    assert fw is not None
    client = await harness.csta_client()

    # The Yealink line by its tel URI: monitored, and its events carry the line's device ID.
    started = await client.request(m.MonitorStart(monitor_object="tel:+4930101"))
    assert isinstance(started, m.MonitorStartResponse), started
    back = await client.wait_for(m.BackInServiceEvent)
    assert isinstance(back, m.BackInServiceEvent)
    assert back.device == DeviceIdentifier(L101)
    await wait_until(lambda: len(yealink.phone.monitors) == 1, what="monitor in the phone")

    # The full URI with a port, parameters and another case for the host: the same line.
    again = await client.request(
        m.MonitorStart(monitor_object="sip:101@SIM.invalid:5060;user=phone")
    )
    assert isinstance(again, m.MonitorStartResponse), again
    assert again.monitor_cross_ref_id != started.monitor_cross_ref_id
    await client.wait_for(m.BackInServiceEvent)
    assert len(yealink.phone.monitors) == 1  # one monitor point in the phone

    # The bare extension two phones have: refused as ambiguous, nothing sent to a phone.
    refused = await client.request(m.MonitorStart(monitor_object="101"))
    assert refused == m.CSTAErrorCode.operation("invalidDeviceID")
    # An extension only one phone has resolves.
    only = await client.request(m.MonitorStart(monitor_object="100"))
    assert isinstance(only, m.MonitorStartResponse), only
    switch = harness.server.hub.switch  # type: ignore[union-attr]
    assert sorted(d.device_id for d in switch.devices.resolve_all("101")) == [
        OTHER_101,
        L101,
    ]


async def test_json_api_names_lines_by_tel_uri_and_refuses_an_ambiguous_extension(
    harness: Harness,
) -> None:
    await _phones(harness)
    server = harness.server
    assert server is not None and server.store is not None
    _id, token = Auth(server.store).create_token("tests")
    async with httpx.AsyncClient(
        base_url=f"http://127.0.0.1:{server.http_port}",
        headers={"Authorization": f"Bearer {token}"},
        timeout=15.0,
    ) as http:
        r = await http.get(f"/api/v1/devices/{quote('tel:+4930101', safe='')}/features")
        assert r.status_code == 200, r.text
        assert r.json()["device"] == L101
        r = await http.get(f"/api/v1/devices/{quote(OTHER_101, safe='')}/features")
        assert r.status_code == 200, r.text
        assert r.json()["device"] == OTHER_101
        r = await http.get("/api/v1/devices/101/features")
        assert r.status_code == 404, r.text
        assert r.json()["error"] == (
            f"'101' is ambiguous: it names {OTHER_101}, {L101}; use the full sip: URI"
        )
        r = await http.get("/api/v1/devices/999/features")
        assert r.status_code == 404, r.text
        assert "ambiguous" not in r.json()["error"]
