"""CTI clients over uaCSTA/SIP (ECMA TR/87) against the server and simulated phones."""

from __future__ import annotations

from tests.e2e.conftest import Harness
from tests.gateways.test_tr87 import Tr87Client
from uacsta.csta import messages as m


def tr87_port(harness: Harness) -> int:
    assert harness.server is not None and harness.server.tr87 is not None
    return harness.server.tr87.ua.transport.listener("tcp").port


async def test_tr87_client_monitors_and_calls_between_simulated_phones(harness: Harness) -> None:
    await harness.start_server()
    sim = harness.simulation()
    caller = sim.add_phone("snom", ["200"], transport="tcp")
    callee = sim.add_phone("fanvil", ["500"], transport="udp")
    await sim.start()
    await harness.wait_state(caller.mac, "ready")
    await harness.wait_state(callee.mac, "ready")

    client = Tr87Client(tr87_port(harness))
    await client.start()
    try:
        first, second = await client.invite(user="crm", password="crm-secret")
        assert first.status_code == 401 and second is not None and second.status_code == 200
        assert isinstance(
            await client.csta(m.MonitorStart(monitor_object="200")), m.MonitorStartResponse
        )
        assert isinstance(await client.next_info(), m.BackInServiceEvent)
        start = await client.csta(m.MonitorStart(monitor_object="500"))
        assert isinstance(await client.next_info(), m.BackInServiceEvent)
        made = await client.csta(m.MakeCall(calling_device="200", called_directory_number="500"))
        assert isinstance(made, m.MakeCallResponse)
        seen: list[m.CstaMessage] = []
        while not any(
            isinstance(e, m.DeliveredEvent) and e.monitor_cross_ref_id == start.monitor_cross_ref_id
            for e in seen
        ):
            seen.append(await client.next_info())
        ringing = next(
            e
            for e in seen
            if isinstance(e, m.DeliveredEvent)
            and e.monitor_cross_ref_id == start.monitor_cross_ref_id
        )
        assert ringing.local_connection_info == "alerting"
        answered = await client.csta(m.AnswerCall(call_to_be_answered=ringing.connection))
        assert isinstance(answered, m.AnswerCallResponse)
        established = set()
        while len(established) < 2:
            event = await client.next_info()
            if isinstance(event, m.EstablishedEvent):
                established.add(event.monitor_cross_ref_id)
        unknown = await client.csta(m.GetDoNotDisturb(device="sip:999@nowhere"))
        assert unknown == m.CSTAErrorCode.operation("invalidDeviceID")
        bye = await client.hangup()
        assert bye.status_code == 200
    finally:
        await client.close()
