"""A simulated Yealink built to the firmware document, against the real server.

The simulated phone is the firmware's CSTA processor (:mod:`uacsta.simulator.yealink`): it reads
requests and writes its documents itself, never with the project's codec, so what passes here
passes against the firmware's wire form (``yealink-uacsta-behaviour.md``): the line list as
``deviceList/device/deviceID`` in the misspelled namespace, ``TransferedEvent``, silence instead
of errors, ``newDestination/device``, ``charactersToSend``.
"""

from __future__ import annotations

import asyncio
from typing import Any

import httpx

from tests.e2e.conftest import Harness, wait_until
from uacsta.clients.cstatcp import CstaTcpClient
from uacsta.csta import messages as m
from uacsta.csta.types import ConnectionID
from uacsta.simulator.agent import PhoneAgent
from uacsta.simulator.runtime import Simulation
from uacsta.web.auth import Auth

L100, L101, L200 = "sip:100@sim.invalid", "sip:101@sim.invalid", "sip:200@sim.invalid"


async def _yealink(harness: Harness, **server: Any) -> tuple[Simulation, PhoneAgent, PhoneAgent]:
    await harness.start_server(**server)
    sim = harness.simulation(external_answer_delay=0.05)
    yealink = sim.add_phone("yealink", ["100", "101"], transport="tcp")
    assert yealink.firmware is not None
    yealink.firmware.accounts[1].tel = "+4930101"  # account.2.csta_number
    other = sim.add_phone("snom", ["200"], transport="tcp")
    await sim.start()
    for agent in (yealink, other):
        await harness.wait_state(agent.mac, "ready")
    return sim, yealink, other


async def _monitor(client: CstaTcpClient, device: str) -> str:
    started = await client.request(m.MonitorStart(monitor_object=device))
    assert isinstance(started, m.MonitorStartResponse), started
    await client.wait_for(m.BackInServiceEvent)
    return str(started.monitor_cross_ref_id)


async def _event(client: CstaTcpClient, kind: type[m.CstaEvent], xref: str) -> Any:
    """The next ``kind`` event on monitor ``xref`` (others skipped)."""
    while True:
        event = await client.event(5.0)
        if isinstance(event, kind) and event.monitor_cross_ref_id == xref:
            return event


async def test_yealink_links_with_its_real_lines(harness: Harness) -> None:
    _sim, yealink, _other = await _yealink(harness)
    fw = yealink.firmware
    assert fw is not None
    # What the phone listed, as the firmware writes it (tel account first, the account that
    # registers to uacsta itself last) ...
    assert fw.device_list()[:2] == [
        "sip:101@sim.invalid:5060;tel=+4930101",
        "sip:100@sim.invalid:5060",
    ]
    # ... and what uacsta learned: the lines as clients name them, not the registration AOR.
    record = harness.server.inventory.get(yealink.mac)  # type: ignore[union-attr]
    assert record is not None and record.lines == [L101, L100]

    client = await harness.csta_client()
    assert isinstance(await client.request(m.GetSwitchingFunctionDevices()), m.GetSwitchingFunctionDevicesResponse)
    listing = await client.wait_for(m.SwitchingFunctionDevices)
    assert {e.device_id for e in listing.device_list} == {L100, L101, L200}

    # The phone is asked in its own terms: the account string it listed.
    xref = await _monitor(client, "101")
    assert fw.accounts[1].monitored_as == "sip:101@sim.invalid:5060"
    assert fw.received.count("MonitorStart") == 1
    # Its events name the line as the client does.
    _sim.incoming_call("101", "0301234567")
    delivered = await _event(client, m.DeliveredEvent, xref)
    assert delivered.connection.device_id == L101
    assert delivered.alerting_device.value == L101
