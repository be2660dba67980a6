"""CSTA XML over TCP (Annex J) gateway with ECMA-354 sessions, over real loopback sockets.

The phone behind the hub is a scripted channel here: this file tests the gateway's framing,
sessions, authentication and routing; end-to-end tests with simulated phones live in e2e/.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable

import pytest

from uacsta.accounts import ClientAccounts
from uacsta.config import ClientAccount
from uacsta.csta import appsession as ecma354
from uacsta.csta import codec
from uacsta.csta import messages as m
from uacsta.csta.framing import FrameDecoder, encode_frame
from uacsta.gateways.cstatcp import FLUSH_BUDGET, CstaTcpGateway
from uacsta.hub import SwitchHub

LINE = "sip:100@pbx.example"


class ScriptedPhone:
    """Answers like a phone would; records what it was asked."""

    def __init__(self) -> None:
        self.requests: list[m.CstaRequest] = []

    def refusal(self, request: m.CstaRequest) -> tuple[m.CSTAErrorCode, str] | None:
        return None

    def csta_request_then(
        self, request: m.CstaRequest, done: Callable[[m.CstaMessage], None]
    ) -> None:
        """Answers a loop iteration later, as a phone's answer comes from the network."""
        answer = self.answer(request)
        if answer is not None:
            asyncio.get_running_loop().call_soon(done, answer)

    def answer(self, request: m.CstaRequest) -> m.CstaMessage | None:
        self.requests.append(request)
        match request:
            case m.MonitorStart():
                return m.MonitorStartResponse(monitor_cross_ref_id="p1")
            case m.GetDoNotDisturb():
                return m.GetDoNotDisturbResponse(do_not_disturb_on=True)
            case m.MonitorStop():
                return m.MonitorStopResponse()
        return m.CSTAErrorCode.operation("invalidFeature")


class Client:
    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader, self.writer = reader, writer
        self.decoder = FrameDecoder()
        self.frames: list[tuple[str, bytes]] = []

    def send(self, invoke: str, xml: bytes) -> None:
        self.writer.write(encode_frame(invoke, xml))

    async def recv(self) -> tuple[str, bytes]:
        while not self.frames:
            data = await asyncio.wait_for(self.reader.read(65536), 5)
            assert data, "connection closed by the server"
            self.decoder.receive_data(data)
            self.frames.extend((f.invoke_id, f.xml) for f in self.decoder.frames())
        return self.frames.pop(0)

    async def recv_csta(self) -> tuple[str, m.CstaMessage]:
        invoke, xml = await self.recv()
        return invoke, codec.decode(xml)

    async def close(self) -> None:
        self.writer.close()
        await self.writer.wait_closed()


@pytest.fixture
async def gateway():
    hub = SwitchHub()
    phone = ScriptedPhone()
    hub.phone_ready("001565000001", phone, [LINE])
    accounts = ClientAccounts([ClientAccount(name="crm", password="s3cret")])
    gw = CstaTcpGateway(hub, accounts, session_duration=60)
    server = await gw.listen("127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]

    async def connect() -> Client:
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        return Client(reader, writer)

    yield gw, hub, phone, connect
    await gw.close()
    await hub.close()


def start_session(user: str, password: str, version: str = ecma354.CSTA_ED5) -> bytes:
    return ecma354.encode_appsession(
        ecma354.StartApplicationSession(
            application_id="test-crm",
            requested_protocol_versions=(version,),
            requested_session_duration=60,
            credentials=ecma354.SessionLoginInfo(user_name=user, password=password),
        )
    )


async def test_session_monitor_events_and_requests(gateway) -> None:
    _gw, hub, phone, connect = gateway
    c = await connect()
    c.send("0001", start_session("crm", "s3cret"))
    invoke, xml = await c.recv()
    assert invoke == "0001"
    pos = ecma354.decode_appsession(xml)
    assert isinstance(pos, ecma354.StartApplicationSessionPosResponse)
    assert pos.actual_protocol_version == ecma354.CSTA_ED5

    c.send("0002", codec.encode(m.MonitorStart(monitor_object="100"), codec.Edition.ED5))
    invoke, resp = await c.recv_csta()
    assert invoke == "0002" and isinstance(resp, m.MonitorStartResponse)
    invoke, back = await c.recv_csta()
    assert invoke == "9999" and isinstance(back, m.BackInServiceEvent)
    assert back.monitor_cross_ref_id == resp.monitor_cross_ref_id
    assert phone.requests[0] == m.MonitorStart(monitor_object=LINE)

    hub.phone_event("001565000001", m.HeldEvent(monitor_cross_ref_id="p1"))
    invoke, xml = await c.recv()
    assert invoke == "9999" and b"ecma-323/csta/ed5" in xml  # answered in the client's edition
    assert codec.decode(xml) == m.HeldEvent(monitor_cross_ref_id=resp.monitor_cross_ref_id)

    c.send("0003", codec.encode(m.GetDoNotDisturb(device=LINE), codec.Edition.ED5))
    invoke, dnd = await c.recv_csta()
    assert invoke == "0003" and dnd == m.GetDoNotDisturbResponse(do_not_disturb_on=True)

    c.send("0004", codec.encode(m.GetDoNotDisturb(device="sip:999@nowhere")))
    invoke, err = await c.recv_csta()
    assert invoke == "0004" and err == m.CSTAErrorCode.operation("invalidDeviceID")

    # Disconnect without StopApplicationSession: the monitor is released in the phone.
    await c.close()
    for _ in range(100):
        if any(isinstance(r, m.MonitorStop) for r in phone.requests):
            break
        await asyncio.sleep(0.01)
    assert phone.requests[-1] == m.MonitorStop(monitor_cross_ref_id="p1")
    assert hub.switch.monitors.client_monitors == {}


async def test_wrong_password_and_requests_before_login_are_refused(gateway) -> None:
    _gw, _hub, phone, connect = gateway
    c = await connect()
    c.send("0001", codec.encode(m.MonitorStart(monitor_object="100")))
    invoke, err = await c.recv_csta()
    assert invoke == "0001" and err == m.CSTAErrorCode.operation("securityViolation")
    c.send("0002", start_session("crm", "wrong"))
    invoke, xml = await c.recv()
    neg = ecma354.decode_appsession(xml)
    assert isinstance(neg, ecma354.StartApplicationSessionNegResponse)
    assert phone.requests == []
    c.send("0003", start_session("crm", "s3cret"))
    _, xml = await c.recv()
    assert isinstance(ecma354.decode_appsession(xml), ecma354.StartApplicationSessionPosResponse)
    await c.close()


async def test_malformed_documents_get_errors_and_the_connection_keeps_serving(gateway) -> None:
    _gw, _hub, _phone, connect = gateway
    c = await connect()
    c.send("0001", start_session("crm", "s3cret"))
    await c.recv()
    hostile = (
        b'<?xml version="1.0"?><!DOCTYPE x [<!ENTITY a "aaaa"><!ENTITY b "&a;&a;&a;">]>'
        b"<MonitorStart>&b;</MonitorStart>"
    )
    for invoke, doc in (("0002", b"<MonitorStart><unclosed>"), ("0003", hostile)):
        c.send(invoke, doc)
        got, err = await c.recv_csta()
        assert got == invoke and err == m.CSTAErrorCode.operation("generic")
    c.send("0004", codec.encode(m.RequestSystemStatus()))
    invoke, ok = await c.recv_csta()
    assert invoke == "0004" and isinstance(ok, m.RequestSystemStatusResponse)
    await c.close()


async def test_broken_framing_closes_only_that_connection(gateway) -> None:
    _gw, _hub, _phone, connect = gateway
    bad = await connect()
    bad.writer.write(b"\x01\x02\x00\x10garbage-garbage")
    assert await asyncio.wait_for(bad.reader.read(100), 5) == b""
    await bad.close()
    good = await connect()
    good.send("0001", start_session("crm", "s3cret"))
    _, xml = await good.recv()
    assert isinstance(ecma354.decode_appsession(xml), ecma354.StartApplicationSessionPosResponse)
    await good.close()


async def test_stop_application_session_and_server_terminate(gateway) -> None:
    gw, _hub, _phone, connect = gateway
    c = await connect()
    c.send("0001", start_session("crm", "s3cret"))
    _, xml = await c.recv()
    session_id = ecma354.decode_appsession(xml).session_id
    c.send(
        "0002",
        ecma354.encode_appsession(
            ecma354.StopApplicationSession(session_id=session_id, defined_end_reason="normal")
        ),
    )
    _, xml = await c.recv()
    assert isinstance(ecma354.decode_appsession(xml), ecma354.StopApplicationSessionPosResponse)
    assert await asyncio.wait_for(c.reader.read(100), 5) == b""
    await c.close()

    d = await connect()
    d.send("0001", start_session("crm", "s3cret"))
    await d.recv()
    await gw.close()
    _, xml = await d.recv()
    assert isinstance(ecma354.decode_appsession(xml), ecma354.ApplicationSessionTerminated)
    await d.close()


async def test_session_timer_reset_then_expiry_terminates_and_releases() -> None:
    hub = SwitchHub()
    phone = ScriptedPhone()
    hub.phone_ready("001565000001", phone, [LINE])
    gw = CstaTcpGateway(
        hub, ClientAccounts([ClientAccount(name="crm", password="s3cret")]), session_duration=1
    )
    server = await gw.listen("127.0.0.1", 0)
    reader, writer = await asyncio.open_connection("127.0.0.1", server.sockets[0].getsockname()[1])
    c = Client(reader, writer)
    try:
        start = ecma354.StartApplicationSession(
            application_id="t",
            requested_protocol_versions=(ecma354.CSTA_ED3,),
            requested_session_duration=1,
            credentials=ecma354.SessionLoginInfo(user_name="crm", password="s3cret"),
        )
        c.send("0001", ecma354.encode_appsession(start))
        _, xml = await c.recv()
        pos = ecma354.decode_appsession(xml)
        assert pos.actual_session_duration == 1
        c.send("0002", codec.encode(m.MonitorStart(monitor_object=LINE)))
        await c.recv()  # MonitorStartResponse
        await c.recv()  # BackInService
        reset = ecma354.ResetApplicationSessionTimer(
            session_id=pos.session_id, requested_session_duration=1
        )
        c.send("0003", ecma354.encode_appsession(reset))
        invoke, xml = await c.recv()
        assert invoke == "0003"
        assert isinstance(
            ecma354.decode_appsession(xml), ecma354.ResetApplicationSessionTimerPosResponse
        )
        _, xml = await c.recv()  # no more resets: the session expires about 1 s later
        ended = ecma354.decode_appsession(xml)
        assert isinstance(ended, ecma354.ApplicationSessionTerminated)
        assert await asyncio.wait_for(reader.read(100), 5) == b""
        assert hub.switch.monitors.client_monitors == {}
    finally:
        await c.close()
        await gw.close()
        await hub.close()


async def test_login_throttle_and_connection_limit_per_address() -> None:
    from uacsta.throttle import AuthThrottle

    hub = SwitchHub()
    gw = CstaTcpGateway(
        hub,
        ClientAccounts([ClientAccount(name="crm", password="s3cret")]),
        throttle=AuthThrottle(max_failures=2, block_time=30),
        max_connections_per_address=1,
    )
    server = await gw.listen("127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    c = Client(reader, writer)
    try:
        c.send("0001", start_session("crm", "wrong"))
        _, xml = await c.recv()
        assert isinstance(
            ecma354.decode_appsession(xml), ecma354.StartApplicationSessionNegResponse
        )
        # While this connection is open, a second one from the same address is refused.
        r2, w2 = await asyncio.open_connection("127.0.0.1", port)
        assert await asyncio.wait_for(r2.read(100), 5) == b""
        w2.close()
        await w2.wait_closed()
        c.send("0002", start_session("crm", "wrong"))
        _, xml = await c.recv()
        assert isinstance(
            ecma354.decode_appsession(xml), ecma354.StartApplicationSessionNegResponse
        )
        c.send("0003", start_session("crm", "s3cret"))  # right, but the source is blocked
        _, xml = await c.recv()
        assert isinstance(
            ecma354.decode_appsession(xml), ecma354.StartApplicationSessionNegResponse
        )
    finally:
        await c.close()
        await gw.close()
        await hub.close()


async def test_queued_frames_wait_for_the_iteration_end_only_within_the_flush_budget() -> None:
    gw = CstaTcpGateway(SwitchHub(), ClientAccounts([]), session_duration=60)

    class Queue:
        def __init__(self) -> None:
            self.writes = 0

        def flush(self) -> None:
            self.writes += 1

    first, second = Queue(), Queue()
    gw.want_flush(first)  # type: ignore[arg-type]
    gw.flush_if_overdue()
    assert first.writes == 0  # a fresh batch waits for the end of the loop iteration
    busy_until = time.perf_counter() + 2 * FLUSH_BUDGET  # a long burst of work
    while time.perf_counter() < busy_until:
        pass
    gw.want_flush(second)  # type: ignore[arg-type]
    gw.flush_if_overdue()
    assert (first.writes, second.writes) == (1, 1)  # the old frame did not wait longer
    await asyncio.sleep(0)  # the end-of-iteration pass finds nothing left to write
    assert (first.writes, second.writes) == (1, 1)
    gw.want_flush(first)  # type: ignore[arg-type]
    await asyncio.sleep(0)
    assert first.writes == 2  # and a new batch is scheduled again
