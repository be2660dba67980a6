"""The TR/87 client gateway with sipp as an independent CTI client (the SIP UAC), over TCP.

INVITE → 401 → INVITE with digest → 200 (RequestSystemStatusResponse) → ACK, INFO MonitorStart
→ 200 (MonitorStartResponse), the BackInService INFO from uacsta → 200, INFO MakeCall → 200
(MakeCallResponse), BYE → 200; against ``tr87_client.xml``. Once against the gateway alone
(the phone behind the hub a scripted channel), once against the whole server with its
**default** settings and a simulated phone (``tr87_client_monitor.xml``: MonitorStart,
BackInService, MonitorStop), and once making a call (``tr87_client_makecall.xml``: the
outside party never answers, so its events are a fixed set, and MakeCallResponse must come
before them, as the phone sent them): sipp
3.6/3.7 answers only the first WWW-Authenticate and only MD5, as many CTI clients do, so the
defaults must let it in.
"""

from __future__ import annotations

import asyncio

import pytest

from tests.e2e.conftest import Harness
from tests.gateways.test_tr87 import LINE, MAC, ScriptedPhone
from tests.integration.conftest import SippRunner
from uacsta.accounts import ClientAccounts
from uacsta.config import ClientAccount, ClientSettings
from uacsta.csta import messages as m
from uacsta.gateways.tr87 import Tr87Gateway
from uacsta.hub import SwitchHub


@pytest.mark.sipp
async def test_sipp_tr87_client_session(run_sipp: SippRunner) -> None:
    hub = SwitchHub()
    phone = ScriptedPhone()
    hub.phone_ready(MAC, phone, [LINE])
    accounts = ClientAccounts([ClientAccount(name="crm", password="s3cret")])
    gw = Tr87Gateway(hub, accounts)  # the default challenge order
    try:
        flow = await gw.listen("tcp:127.0.0.1:0")
        result = await run_sipp(
            "tr87_client.xml",
            "-s",
            "100",
            "-au",
            "crm",
            "-ap",
            "s3cret",
            remote=f"127.0.0.1:{flow.local[1]}",
            transport="t1",
            timeout=15,
        )
        assert result.returncode == 0, result.explain()
        # BYE released the client's monitor in the phone.
        await asyncio.wait_for(phone.monitor_stopped.wait(), 5)
        assert [type(r) for r in phone.requests] == [m.MonitorStart, m.MakeCall, m.MonitorStop]
        assert phone.requests[1] == m.MakeCall(calling_device=LINE, called_directory_number="200")
        assert gw.sessions == {}
    finally:
        await gw.close()
        await hub.close()


@pytest.mark.sipp
async def test_sipp_tr87_client_against_the_server_with_default_settings(
    harness: Harness, run_sipp: SippRunner
) -> None:
    server = await harness.start_server()
    assert server.settings.clients.digest_algorithms == ClientSettings().digest_algorithms
    sim = harness.simulation()
    phone = sim.add_phone("yealink", ["100"], transport="udp")
    await sim.start()
    await harness.wait_state(phone.mac, "ready")
    assert server.tr87 is not None
    port = server.tr87.ua.transport.listeners[0].port
    result = await run_sipp(
        "tr87_client_monitor.xml",
        "-s",
        "100",
        "-au",
        "crm",
        "-ap",
        "crm-secret",
        remote=f"127.0.0.1:{port}",
        transport="t1",
        timeout=15,
    )
    assert result.returncode == 0, result.explain()
    # The client's session ended with its BYE; the phone stays linked.
    assert server.tr87.sessions == {}
    assert harness.state(phone.mac) == "ready"


@pytest.mark.sipp
async def test_sipp_tr87_client_gets_make_call_response_before_its_events(
    harness: Harness, run_sipp: SippRunner
) -> None:
    """Issue 14: a Yealink answers MakeCall before it acts; sipp, reading strictly in order,
    fails on an event INFO that overtakes the 200 carrying MakeCallResponse."""
    server = await harness.start_server()
    sim = harness.simulation(external_answer_delay=None)  # the outside party keeps ringing
    phone = sim.add_phone("yealink", ["100"], transport="tcp")
    await sim.start()
    await harness.wait_state(phone.mac, "ready")
    assert server.tr87 is not None
    port = server.tr87.ua.transport.listeners[0].port
    result = await run_sipp(
        "tr87_client_makecall.xml",
        "-s",
        "100",
        "-au",
        "crm",
        "-ap",
        "crm-secret",
        remote=f"127.0.0.1:{port}",
        transport="t1",
        timeout=15,
    )
    assert result.returncode == 0, result.explain()
    assert server.tr87.sessions == {}
