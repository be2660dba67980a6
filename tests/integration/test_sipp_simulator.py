"""The phone simulator against sipp as registrar and uaCSTA application (the independent peer).

sipp (UAS, ``sim_registrar_app.xml``) challenges the simulated Yealink's REGISTER (401, fixed
nonce), accepts the digest answer, then as the CSTA application opens the TR/87 dialog
(INVITE RequestSystemStatus), starts a monitor on the phone's line, asks it to MakeCall to an
outside number, checks the ServiceInitiated/Originated/Delivered event INFOs and ends with BYE.
"""

from __future__ import annotations

import asyncio
import socket
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from tests.e2e.conftest import wait_until
from tests.integration.conftest import SippRunner, free_port
from uacsta.simulator.agent import PhoneAgent
from uacsta.simulator.runtime import Simulation

PASSWORD = "sim-secret"
LINE = "100"
DEVICE = f"sip:{LINE}@sim.invalid"
DIALLED = "0301234567"


def _udp_port_taken(port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as probe:
        try:
            probe.bind(("127.0.0.1", port))
        except OSError:
            return True
    return False


@pytest.fixture
def sipp_port() -> int:
    return free_port()


@pytest.fixture
async def simulation(sipp_port: int) -> AsyncIterator[Simulation]:
    # No automatic answer by the outside party: exactly the three set-up events follow MakeCall.
    sim = Simulation("127.0.0.1", {"udp": sipp_port}, password=PASSWORD, external_answer_delay=None)
    try:
        yield sim
    finally:
        await sim.close()


@pytest.mark.sipp
async def test_simulated_phone_against_sipp_registrar_and_csta_application(
    simulation: Simulation, run_sipp: SippRunner, sipp_port: int, tmp_path: Path
) -> None:
    agent: PhoneAgent = simulation.add_phone("yealink", [LINE], transport="udp")
    assert agent.phone.lines[0].device_id == DEVICE
    # The phone's listener first (sipp answers it at the REGISTER's source), and its event
    # sender; no registration loop: the test REGISTERs once sipp listens.
    await agent.start(register=False)

    sipp = asyncio.create_task(
        run_sipp(
            "sim_registrar_app.xml",
            "-key",
            "device",
            DEVICE,
            "-key",
            "dialled",
            DIALLED,
            "-trace_msg",
            port=sipp_port,
            timeout=10,
        )
    )
    await wait_until(
        lambda: sipp.done() or _udp_port_taken(sipp_port), 5, "sipp listening on its UDP port"
    )
    if sipp.done():
        pytest.fail(f"sipp ended before the phone registered:\n{sipp.result().explain()}")

    status = await asyncio.wait_for(agent.register(), 10)
    assert status == 200
    result = await sipp
    assert result.returncode == 0, result.explain()

    # The phone registered once, with its MAC as digest username.
    assert agent.registrations == 1 and agent.last_register_status == 200
    (log,) = (tmp_path / "sipp-sim_registrar_app-u1").glob("*_messages.log")
    trace = log.read_text(errors="replace")
    assert f'username="{agent.mac}"' in trace
    assert 'realm="sipp"' in trace
    # Every CSTA request was answered by the simulated phone, the dialog ended by BYE.
    assert agent.received == {"RequestSystemStatus": 1, "MonitorStart": 1, "MakeCall": 1}
    assert agent.sip_received == {"INFO": 2, "BYE": 1}
    assert agent.usage is None and not agent.linked.is_set()
    # A Yealink keeps its monitors when the CSTA dialog ends (the firmware does not clear
    # them); its monitorCrossRefID is the account index.
    assert list(agent.phone.monitors) == ["0"]
    # The simulated call is still up (alerting an outside party): the phone holds one leg.
    line = agent.phone.lines[0]
    assert len(line.legs) == 1
