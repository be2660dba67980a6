"""The hub carries out a fan-out: one event object for sinks that encode it once, a copy with
the client's cross-ref for the others, and a failing sink stops no one."""

from __future__ import annotations

import asyncio
from collections.abc import Callable

from uacsta.csta import messages as m
from uacsta.hub import SwitchHub
from uacsta.switch.function import ToClient, event_to_client

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
