"""The TR/87 client gateway with sipp as an independent CTI client (the SIP UAC), over TCP.

INVITE → 401 → INVITE with digest → 200 (RequestSystemStatusResponse) → ACK, INFO MonitorStart
→ 200 (MonitorStartResponse), the BackInService INFO from uacsta → 200, INFO MakeCall → 200
(MakeCallResponse), BYE → 200; against ``tr87_client.xml``. The phone behind the hub is a
scripted channel; end-to-end runs with simulated phones live in e2e/.
"""

from __future__ import annotations

import asyncio

import pytest

from tests.gateways.test_tr87 import LINE, MAC, ScriptedPhone
from tests.integration.conftest import SippRunner
from uacsta.accounts import ClientAccounts
from uacsta.config import ClientAccount
from uacsta.csta import messages as m
from uacsta.gateways.tr87 import Tr87Gateway
from uacsta.hub import SwitchHub
from uacsta.sip.digest import Algorithm


@pytest.mark.sipp
async def test_sipp_tr87_client_session(run_sipp: SippRunner) -> None:
    hub = SwitchHub()
    phone = ScriptedPhone()
    hub.phone_ready(MAC, phone, [LINE])
    accounts = ClientAccounts([ClientAccount(name="crm", password="s3cret")])
    # sipp 3.6 answers MD5 challenges only.
    gw = Tr87Gateway(hub, accounts, digest_algorithms=(Algorithm.MD5,))
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
