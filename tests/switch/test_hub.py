"""The hub carries out a fan-out: one event object for sinks that encode it once, a copy with
the client's cross-ref for the others, and a failing sink stops no one."""

from __future__ import annotations

import asyncio
from collections.abc import Callable

from uacsta.csta import messages as m
from uacsta.csta.types import ConnectionID, DeviceIdentifier, LocalConnectionState
from uacsta.hub import SwitchHub
from uacsta.switch.callrecord import CallNotice, CallRecord, NoticeType, Outcome
from uacsta.switch.calls import CallTracker
from uacsta.switch.function import SwitchingFunction, ToClient, event_to_client

LINE = "sip:100@pbx.example"
MAC = "001565000001"


class Phone:
    def refusal(self, request: m.CstaRequest) -> tuple[m.CSTAErrorCode, str] | None:
        return None

    def csta_request_then(
        self, request: m.CstaRequest, done: Callable[[m.CstaMessage], None]
    ) -> None:
        assert isinstance(request, m.MonitorStart)
        asyncio.get_running_loop().call_soon(
            done, m.MonitorStartResponse(monitor_cross_ref_id="p1")
        )


class Sink:
    """A gateway's client that takes only whole actions (as the TR/87 and web gateways do)."""

    def __init__(self) -> None:
        self.actions: list[ToClient] = []
        self.answered = asyncio.Event()

    def deliver(self, action: ToClient) -> None:
        self.actions.append(action)
        self.answered.set()

    def deliver_event(self, event: m.CstaEvent, xref: str) -> None:
        self.deliver(event_to_client(self, event, xref))

    def xref(self) -> str:
        (started,) = [a.message for a in self.actions if a.invoke is not None]
        assert isinstance(started, m.MonitorStartResponse)
        return started.monitor_cross_ref_id


class EventSink(Sink):
    """A client that takes the shared event and its cross-ref (as CSTA over TCP does)."""

    def __init__(self) -> None:
        super().__init__()
        self.events: list[tuple[m.CstaEvent, str]] = []

    def deliver_event(self, event: m.CstaEvent, xref: str) -> None:
        self.events.append((event, xref))


class BrokenSink(EventSink):
    def deliver_event(self, event: m.CstaEvent, xref: str) -> None:
        raise RuntimeError("client gone wrong")


async def test_fan_out_reaches_each_kind_of_sink_with_its_own_cross_ref() -> None:
    hub = SwitchHub()
    hub.phone_ready(MAC, Phone(), [LINE])
    plain, shared, broken, other = Sink(), EventSink(), BrokenSink(), EventSink()
    for invoke, sink in enumerate((broken, plain, shared, other)):
        hub.client_attach(sink)
        hub.client_request(sink, invoke, m.MonitorStart(monitor_object=LINE))
        await asyncio.wait_for(sink.answered.wait(), 5)
    xrefs = {plain.xref(), shared.xref(), broken.xref(), other.xref()}
    assert len(xrefs) == 4  # one monitor point in the phone, a cross-ref per client

    event = m.HeldEvent(monitor_cross_ref_id="p1")
    before = hub.events_relayed
    hub.phone_event(MAC, event)
    assert shared.events == [(event, shared.xref())]  # the phone's event object itself
    assert other.events == [(event, other.xref())]
    (copy,) = [a for a in plain.actions if isinstance(a.message, m.HeldEvent)]
    assert copy.message == m.HeldEvent(monitor_cross_ref_id=plain.xref())
    assert hub.events_relayed == before + 4


class NoticeSink(EventSink):
    def __init__(self) -> None:
        super().__init__()
        self.notices: list[CallNotice] = []

    def deliver_notice(self, notice: CallNotice) -> None:
        self.notices.append(notice)


async def test_journal_rows_and_notices_reach_their_takers_whatever_one_of_them_does() -> None:
    """Listeners (webhooks) get every notice, the line's monitoring clients theirs, the journal
    writer every row; one that raises stops none of the others (the hub's clock dates them)."""
    tracker = CallTracker()
    hub = SwitchHub(SwitchingFunction(calls=tracker), clock=lambda: 1000.0)
    rows: list[CallRecord] = []
    heard: list[CallNotice] = []

    def broken(_notice: CallNotice) -> None:
        raise RuntimeError("listener gone wrong")

    hub.on_record = rows.append
    hub.notice_listeners += [broken, heard.append]
    hub.phone_ready(MAC, Phone(), [LINE])
    client = NoticeSink()
    hub.client_attach(client)
    hub.client_request(client, 1, m.MonitorStart(monitor_object=LINE))
    await asyncio.wait_for(client.answered.wait(), 5)
    alerting = m.DeliveredEvent(
        monitor_cross_ref_id="p1",
        connection=ConnectionID(call_id="7", device_id=LINE),
        alerting_device=DeviceIdentifier(LINE),
        calling_device=DeviceIdentifier("sip:+4930555@pbx.example"),
        local_connection_info=LocalConnectionState.ALERTING,
    )
    hub.phone_event(MAC, alerting)
    hub.phone_event(
        MAC,
        m.ConnectionClearedEvent(
            monitor_cross_ref_id="p1",
            dropped_connection=ConnectionID(call_id="7", device_id="sip:+4930555@pbx.example"),
            releasing_device=DeviceIdentifier("sip:+4930555@pbx.example"),
        ),
    )
    kinds = [n.type for n in heard]
    assert kinds[0] is NoticeType.PHONE_ONLINE
    assert kinds[1:] == [NoticeType.CALL_RINGING, NoticeType.CALL_MISSED, NoticeType.CALL_ENDED]
    assert [n.type for n in client.notices] == kinds[1:]  # the monitoring client's notices
    (row,) = rows
    assert row.outcome is Outcome.MISSED and row.started == row.ended == 1000.0
