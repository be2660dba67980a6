"""A phone's answer reaches the client before the events the phone sent after it (issue 14).

The Yealink firmware answers a call-control request before acting on it
(``yealink-uacsta-behaviour.md``): its ``SIP/2.0 200 OK`` carrying MakeCallResponse is on the
wire before the INFOs with the events the call causes. A client must get them in that order;
TR/87 clients (SIPp's scenario among them) and TAPI drivers treat an event for a call whose
MakeCallResponse has not arrived as a protocol error. Here the real server, a simulated Yealink
on real sockets, and a CSTA-over-TCP client written from ECMA-323 Annex J that reads the raw
frames one by one, in the order they arrive.
"""

from __future__ import annotations

import asyncio
import re
import struct

import pytest

from tests.e2e.conftest import Harness, csta_port

ED3 = "http://www.ecma-international.org/standards/ecma-323/csta/ed3"
LOGIN = (
    '<?xml version="1.0" encoding="UTF-8"?>'
    '<StartApplicationSession xmlns="http://www.ecma-international.org/standards/ecma-354/appl_session">'
    "<applicationInfo><applicationID>order</applicationID><applicationSpecificInfo>"
    '<ns1:SessionLoginInfo xmlns:ns1="http://www.avaya.com/csta">'
    "<ns1:userName>crm</ns1:userName><ns1:password>crm-secret</ns1:password>"
    "</ns1:SessionLoginInfo></applicationSpecificInfo></applicationInfo>"
    f"<requestedProtocolVersions><protocolVersion>{ED3}</protocolVersion>"
    "</requestedProtocolVersions>"
    "<requestedSessionDuration>180</requestedSessionDuration></StartApplicationSession>"
)
MONITOR_START = (
    f'<?xml version="1.0" encoding="UTF-8"?><MonitorStart xmlns="{ED3}">'
    "<monitorObject><deviceObject>100</deviceObject></monitorObject></MonitorStart>"
)
MAKE_CALL = (
    f'<?xml version="1.0" encoding="UTF-8"?><MakeCall xmlns="{ED3}">'
    "<callingDevice>100</callingDevice>"
    "<calledDirectoryNumber>0301234567</calledDirectoryNumber></MakeCall>"
)


def _frame(invoke: bytes, xml: str) -> bytes:
    body = invoke + xml.encode()
    return b"\x00\x00" + struct.pack(">H", len(body) + 4) + body


async def _read_frame(reader: asyncio.StreamReader) -> tuple[bytes, str]:
    head = await asyncio.wait_for(reader.readexactly(4), 10)
    assert head[:2] == b"\x00\x00", head
    body = await asyncio.wait_for(reader.readexactly(struct.unpack(">H", head[2:])[0] - 4), 10)
    return body[:4], body[4:].decode()


def _root(xml: str) -> str:
    match = re.search(r"<(?!\?)(?:\w+:)?(\w+)", xml)
    assert match, xml
    return match.group(1)


@pytest.mark.parametrize("transport", ["tcp", "udp"])
async def test_make_call_response_precedes_the_events_it_causes(
    harness: Harness, transport: str
) -> None:
    await harness.start_server()
    sim = harness.simulation()
    yealink = sim.add_phone("yealink", ["100"], transport=transport)
    await sim.start()
    await harness.wait_state(yealink.mac, "ready")
    assert harness.server is not None
    reader, writer = await asyncio.open_connection("127.0.0.1", csta_port(harness.server))
    try:
        writer.write(_frame(b"0001", LOGIN))
        invoke, xml = await _read_frame(reader)
        assert (invoke, _root(xml)) == (b"0001", "StartApplicationSessionPosResponse"), xml

        writer.write(_frame(b"0002", MONITOR_START))
        invoke, xml = await _read_frame(reader)
        assert (invoke, _root(xml)) == (b"0002", "MonitorStartResponse"), xml
        # Whatever the monitor start itself brings (BackInService and the like) comes first.
        while True:
            invoke, xml = await _read_frame(reader)
            assert invoke == b"9999", xml
            if _root(xml) == "BackInServiceEvent":
                break

        writer.write(_frame(b"0010", MAKE_CALL))
        # The very next frame is the answer: no event of this call before it.
        invoke, xml = await _read_frame(reader)
        assert (invoke, _root(xml)) == (b"0010", "MakeCallResponse"), xml
        call_id = re.search(r"<callID>([^<]*)</callID>", xml)
        assert call_id, xml
        # ... and the events the phone sent after it follow, for that call.
        seen: list[str] = []
        while "OriginatedEvent" not in seen:
            invoke, xml = await _read_frame(reader)
            assert invoke == b"9999", xml
            seen.append(_root(xml))
            assert f"<callID>{call_id.group(1)}</callID>" in xml, xml
        assert seen[0] == "ServiceInitiatedEvent", seen
    finally:
        writer.close()
