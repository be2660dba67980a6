"""A phone's CSTA error on the server's MonitorStart reaches the client, against the real server.

The phone's answer is hand-written ECMA-323 (``CSTAErrorCode`` with ``operation`` /
``invalidDeviceID``, ECMA-285 OperationErrors value 12), sent by a simulated phone whose
MonitorStart handling is replaced; everything else about the phone is the simulator's.
"""

from __future__ import annotations

from typing import Any

from tests.e2e.conftest import Harness, wait_until
from uacsta.csta import messages as m

ERROR = (
    b'<?xml version="1.0" encoding="UTF-8"?>'
    b'<CSTAErrorCode xmlns="http://www.ecma-international.org/standards/ecma-323/csta/ed4">'
    b"<operation>invalidDeviceID</operation></CSTAErrorCode>"
)
GARBAGE = b"<<<MonitorStartResponse not XML"


def answer_monitor_start(agent: Any, status: int, body: bytes) -> dict[str, int]:
    """Make ``agent`` answer every MonitorStart with ``status``/``body``; counts them."""
    proper = agent._in_dialog
    seen = {"MonitorStart": 0}

    def faulty(sr: Any) -> None:
        if sr.request.method == "INFO" and b"<MonitorStart" in sr.request.body:
            seen["MonitorStart"] += 1
            sr.reply(status, body=body, content_type="application/csta+xml")
            return
        proper(sr)

    agent._in_dialog = faulty
    return seen


async def test_the_phones_error_answers_the_clients_monitor_start(harness: Harness) -> None:
    await harness.start_server(journal=False)  # counts the phone's monitors
    sim = harness.simulation()
    agent = sim.add_phone("snom", ["100", "101"], transport="tcp")
    seen = answer_monitor_start(agent, 200, ERROR)
    await sim.start()
    await harness.wait_state(agent.mac, "ready")
    client = await harness.csta_client()
    refused = await client.request(m.MonitorStart(monitor_object="100"))
    assert refused == m.CSTAErrorCode.operation("invalidDeviceID")
    assert seen["MonitorStart"] == 1
    # The phone keeps serving: it is still ready, the client's session goes on.
    assert harness.state(agent.mac) == "ready"
    switch = harness.server.hub.switch  # type: ignore[union-attr]
    assert switch.monitors.client_monitors == {} and switch.pending_count == 0
    features = await client.request(m.GetCSTAFeatures())
    assert isinstance(features, m.GetCSTAFeaturesResponse)


async def test_a_refused_restore_ends_the_monitors_of_clients_on_the_line(
    harness: Harness,
) -> None:
    """A monitor that worked is restored after the phone comes back; the phone refuses it
    now: the client that held it gets MonitorEnded, not silence."""
    await harness.start_server(journal=False, relink_backoff=0.1)
    sim = harness.simulation()
    agent = sim.add_phone("snom", ["100"], transport="tcp")
    await sim.start()
    await harness.wait_state(agent.mac, "ready")
    client = await harness.csta_client()
    started = await client.request(m.MonitorStart(monitor_object="100"))
    assert isinstance(started, m.MonitorStartResponse), started
    await client.wait_for(m.BackInServiceEvent)
    seen = answer_monitor_start(agent, 200, ERROR)
    agent.drop_connection()
    out = await client.wait_for(m.OutOfServiceEvent)
    assert isinstance(out, m.OutOfServiceEvent)
    assert out.monitor_cross_ref_id == started.monitor_cross_ref_id
    assert await agent.register() == 200
    # The switching function ends the client's monitor: MonitorStop (ECMA-269 Phase III's
    # form of MonitorEnded), sent as a request to the client.
    ended = await client.wait_for(m.MonitorStop)
    assert isinstance(ended, m.MonitorStop)
    assert ended.monitor_cross_ref_id == started.monitor_cross_ref_id
    assert seen["MonitorStart"] == 1
    switch = harness.server.hub.switch  # type: ignore[union-attr]
    await wait_until(lambda: not switch.monitors.client_monitors, what="monitor released")


async def test_a_phone_answering_garbage_again_and_again_is_told_out_of_service_once(
    harness: Harness,
) -> None:
    server = await harness.start_server(journal=False, relink_backoff=0.05, relink_backoff_max=0.2)
    sim = harness.simulation()
    agent = sim.add_phone("snom", ["100"], transport="tcp")
    seen = answer_monitor_start(agent, 200, GARBAGE)
    await sim.start()
    await harness.wait_state(agent.mac, "ready")
    client = await harness.csta_client()
    started = await client.request(m.MonitorStart(monitor_object="100"))
    assert isinstance(started, m.MonitorStartResponse), started
    assert isinstance(await client.event(5), m.OutOfServiceEvent)
    # It keeps failing on every relink...
    await wait_until(lambda: seen["MonitorStart"] >= 3, what="three failed relinks")
    # ...and the client heard OutOfService once.
    extra: list[m.CstaMessage] = []
    try:
        while True:
            extra.append(await client.event(0.3))
    except TimeoutError:
        pass
    assert extra == []
    # The same failure again and again: each relink waits twice as long as the last, capped.
    assert server.phones is not None
    reason, repeats, _when = server.phones._relink_failures[agent.mac]
    assert "MonitorStart" in reason and repeats >= 2
    assert server.phones._relink_delay(agent.mac, reason, _when) == 0.2
    assert server.phones._relink_delay(agent.mac, "BYE from the phone", _when) == 0.05
