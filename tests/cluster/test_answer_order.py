"""Across nodes too, a phone's answer reaches the client before the events the phone sent
after it: a raw Annex J client on node a, a simulated Yealink (which answers MakeCall before
acting on it) linked at node b (see tests/e2e/test_answer_order.py for one node)."""

from __future__ import annotations

import asyncio
import re

import pytest

from tests.cluster.conftest import Nodes
from tests.cluster.test_routing import ready_lines
from tests.e2e.conftest import csta_port, wait_until
from tests.e2e.test_answer_order import LOGIN, MAKE_CALL, MONITOR_START, _frame, _read_frame, _root

pytestmark = pytest.mark.cluster


async def test_answer_precedes_the_events_when_the_phone_is_linked_at_another_node(
    nodes: Nodes,
) -> None:
    a = await nodes.start("a")
    b = await nodes.start("b")
    sim = nodes.simulation()
    nodes.register_with(sim, "b")
    yealink = sim.add_phone("yealink", ["100"], transport="udp")
    await sim.start()
    await wait_until(lambda: bool(ready_lines(a)) and bool(ready_lines(b)), 10, "100 on a")
    assert b.cluster is not None and b.cluster.held == {yealink.mac}
    reader, writer = await asyncio.open_connection("127.0.0.1", csta_port(a))
    try:
        writer.write(_frame(b"0001", LOGIN))
        invoke, xml = await _read_frame(reader)
        assert (invoke, _root(xml)) == (b"0001", "StartApplicationSessionPosResponse"), xml
        writer.write(_frame(b"0002", MONITOR_START))
        invoke, xml = await _read_frame(reader)
        assert (invoke, _root(xml)) == (b"0002", "MonitorStartResponse"), xml
        while True:
            invoke, xml = await _read_frame(reader)
            assert invoke == b"9999", xml
            if _root(xml) == "BackInServiceEvent":
                break

        writer.write(_frame(b"0010", MAKE_CALL))
        invoke, xml = await _read_frame(reader)  # the very next frame is the answer
        assert (invoke, _root(xml)) == (b"0010", "MakeCallResponse"), xml
        call_id = re.search(r"<callID>([^<]*)</callID>", xml)
        assert call_id, xml
        seen: list[str] = []
        while "OriginatedEvent" not in seen:
            invoke, xml = await _read_frame(reader)
            assert invoke == b"9999", xml
            seen.append(_root(xml))
            assert f"<callID>{call_id.group(1)}</callID>" in xml, xml
        assert seen[0] == "ServiceInitiatedEvent", seen
    finally:
        writer.close()
