"""Calls end to end: simulated phones on real sockets, the server's own monitors, the call
tracker, the journal in SQLite and the notices (issue 17 acceptance).

Each scenario is driven the way it happens in the field (an outside caller, the phone's user,
a CTI client's request) and checked against exactly the journal rows and notices it must
give. The server keeps its own monitor on every line (``journal.enabled``, the default), so
no client has to monitor a line for its calls to be journaled.
"""

from __future__ import annotations

import asyncio
from collections import Counter
from collections.abc import AsyncIterator, Awaitable, Callable

import pytest

from tests.e2e.conftest import Harness, wait_until
from tests.journal.receiver import Receiver
from uacsta.clients.cstatcp import CstaTcpClient
from uacsta.csta import messages as m
from uacsta.csta.types import ConnectionID, ForwardingType
from uacsta.server import Server
from uacsta.simulator.runtime import Simulation
from uacsta.switch.callrecord import CallNotice, CallRecord, Direction, NoticeType, Outcome
from uacsta.switch.monitors import PointState


class Calls:
    """The running server, its simulated phones, a CSTA client and what the server told."""

    def __init__(
        self,
        server: Server,
        sim: Simulation,
        client: CstaTcpClient,
        receiver: Receiver | None = None,
    ) -> None:
        self.server = server
        self.sim = sim
        self.client = client
        self.notices: list[CallNotice] = []
        #: A real HTTP receiver subscribed to every event type (each test compares).
        self.receiver = receiver
        server.hub.notice_listeners.append(self.notices.append)

    async def check_webhooks(self) -> None:
        """Every notice of the test reached the receiver as one signed webhook, none twice."""
        assert self.receiver is not None and self.server.webhooks is not None
        webhooks = self.server.webhooks
        expected = Counter((n.type.value, n.line) for n in self.notices)

        async def all_delivered() -> bool:
            counts = await webhooks.counts()
            return counts == {"pending": 0, "delivered": sum(expected.values()), "failed": 0}

        await poll(all_delivered, "every notice delivered as a webhook", timeout=10.0)
        got = Counter((r.json["type"], r.json["data"].get("line")) for r in self.receiver.requests)
        assert got == expected
        assert all(r.valid for r in self.receiver.requests)
        assert len({r.delivery for r in self.receiver.requests}) == len(self.receiver.requests)

    def line(self, number: str) -> str:
        """The line's device ID as the phone reports it (Mitel adds ``;user=phone``)."""
        device = self.server.hub.switch.devices.resolve(number)
        assert device is not None, number
        return device.device_id

    async def rows(self, number: str) -> list[CallRecord]:
        assert self.server.journal is not None
        records, _next = await self.server.journal.query(line=self.line(number), limit=50)
        return sorted(records, key=lambda r: r.started)

    async def wait_rows(self, number: str, count: int) -> list[CallRecord]:
        found: list[CallRecord] = []

        async def enough() -> bool:
            nonlocal found
            found = await self.rows(number)
            return len(found) >= count

        await poll(enough, f"{count} journal rows of {number}")
        assert len(found) == count, found  # exactly: nothing journaled twice
        return found

    def call_at(self, number: str, state: str | None = None) -> ConnectionID:
        """The call on ``number`` (as clients name it), once the tracker sees it in ``state``."""
        tracker = self.server.hub.switch.calls
        assert tracker is not None
        views = [
            v
            for v in tracker.calls(self.line(number))
            if state is None or str(getattr(v.state, "value", v.state)) == state
        ]
        assert views, f"no call in state {state} at {number}: {tracker.calls(self.line(number))}"
        return ConnectionID(call_id=views[-1].call_id, device_id=self.line(number))

    async def wait_call(self, number: str, state: str) -> ConnectionID:
        def there() -> bool:
            tracker = self.server.hub.switch.calls
            assert tracker is not None
            return any(
                str(getattr(v.state, "value", v.state)) == state
                for v in tracker.calls(self.line(number))
            )

        await wait_until(there, 5.0, f"a call {state} at {number}")
        return self.call_at(number, state)

    async def idle(self, *numbers: str) -> None:
        tracker = self.server.hub.switch.calls
        assert tracker is not None
        for number in numbers:
            await wait_until(
                lambda n=number: not tracker.calls(self.line(n)), 5.0, f"no call left at {number}"
            )

    def notice_types(self, number: str) -> Counter[str]:
        return Counter(n.type.value for n in self.notices if n.line == self.line(number))

    async def request(self, request: m.CstaRequest) -> m.CstaMessage:
        answer = await self.client.request(request)
        assert not isinstance(answer, m.CSTAErrorCode), answer
        return answer

    def external_hangup(self, number: str) -> None:
        assert self.sim.pbx.external_hangup(number, self.sim.now())
        self.sim.flush()

    def external_answer(self, number: str) -> None:
        assert self.sim.pbx.external_answer(number, self.sim.now())
        self.sim.flush()


async def poll(predicate: Callable[[], Awaitable[bool]], what: str, timeout: float = 5.0) -> None:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while not await predicate():
        if loop.time() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        await asyncio.sleep(0.02)


async def start(harness: Harness, receiver: Receiver | None = None) -> Calls:
    server = await harness.start_server()
    sim = harness.simulation(external_answer_delay=None)
    agents = [
        sim.add_phone("snom", ["100"], transport="udp"),
        sim.add_phone("snom", ["200"], transport="tcp"),
        sim.add_phone("mitel", ["300"], transport="tcp"),
        sim.add_phone("yealink", ["400"], transport="tcp"),
    ]
    await sim.start()
    for agent in agents:
        await harness.wait_state(agent.mac, "ready")
    # The server's own monitor is active on every line before any call starts.
    await wait_until(
        lambda: (
            len(server.hub.switch.monitors.points) == 4
            and all(
                p.state is PointState.ACTIVE for p in server.hub.switch.monitors.points.values()
            )
        ),
        5.0,
        "the server's monitors",
    )
    calls = Calls(server, sim, await harness.csta_client(), receiver)
    if receiver is not None:
        assert server.webhooks is not None
        await server.webhooks.add_endpoint(
            url=receiver.url, events=[t.value for t in NoticeType], secret=receiver.secret
        )
    return calls


@pytest.fixture
async def calls(harness: Harness) -> AsyncIterator[Calls]:
    """The phones, a client, and a real webhook receiver for every event type."""
    receiver = await Receiver(secret="journal-e2e-secret-0123456789").start()
    try:
        yield await start(harness, receiver)
    finally:
        await receiver.stop()


def check(
    record: CallRecord,
    *,
    direction: Direction,
    outcome: Outcome,
    remote: str | None = None,
    target: str | None = None,
    answered: bool,
) -> None:
    assert record.direction is direction, record
    assert record.outcome is outcome, record
    if remote is not None:
        assert record.remote_number == remote, record
    if target is not None:
        assert record.target is not None and target in record.target, record
    assert (record.answered is not None) is answered, record
    assert record.started <= (record.answered or record.started) <= record.ended
    assert record.talk_seconds >= 0 and record.ring_seconds >= 0


async def test_incoming_answered_and_missed(calls: Calls) -> None:
    calls.sim.incoming_call("100", "+4930555")
    await calls.wait_call("100", "alerting")
    assert calls.sim.answer("100")
    await calls.wait_call("100", "connected")
    assert calls.sim.hangup("100")
    (row,) = await calls.wait_rows("100", 1)
    check(row, direction=Direction.INCOMING, outcome=Outcome.ANSWERED, remote="+4930555",
          answered=True)  # fmt: skip
    assert row.phone == calls.server.hub.switch.devices.resolve("100").phone  # type: ignore[union-attr]

    calls.sim.incoming_call("200", "+4930556")
    await calls.wait_call("200", "alerting")
    calls.external_hangup("+4930556")
    (missed,) = await calls.wait_rows("200", 1)
    check(missed, direction=Direction.INCOMING, outcome=Outcome.MISSED, remote="+4930556",
          answered=False)  # fmt: skip
    assert calls.notice_types("100") == Counter(
        {"call.ringing": 1, "call.answered": 1, "call.ended": 1}
    )
    assert calls.notice_types("200") == Counter(
        {"call.ringing": 1, "call.missed": 1, "call.ended": 1}
    )
    await calls.check_webhooks()


async def test_outgoing_unanswered_and_busy(calls: Calls) -> None:
    calls.sim.dial("300", "+4940777")
    await calls.wait_call("300", "connected")  # the caller's own connection
    assert calls.sim.hangup("300")
    (cancelled,) = await calls.wait_rows("300", 1)
    check(cancelled, direction=Direction.OUTGOING, outcome=Outcome.CANCELLED, remote="+4940777",
          answered=False)  # fmt: skip

    calls.sim.pbx.busy_numbers.add("+4940999")
    calls.sim.dial("300", "+4940999")
    await wait_until(
        lambda: any(
            str(getattr(v.state, "value", v.state)) == "fail"
            for v in calls.server.hub.switch.calls.calls(calls.line("300"))  # type: ignore[union-attr]
        ),
        5.0,
        "the busy call failed",
    )
    assert calls.sim.hangup("300")
    rows = await calls.wait_rows("300", 2)
    check(rows[1], direction=Direction.OUTGOING, outcome=Outcome.BUSY, remote="+4940999",
          answered=False)  # fmt: skip
    assert calls.notice_types("300")["call.ended"] == 2
    assert calls.notice_types("300")["call.dialing"] == 2
    await calls.check_webhooks()


async def test_deflect_and_forward(calls: Calls) -> None:
    calls.sim.incoming_call("100", "+4930557")
    ringing = await calls.wait_call("100", "alerting")
    await calls.request(m.DeflectCall(call_to_be_diverted=ringing, new_destination="200"))
    (deflected,) = await calls.wait_rows("100", 1)
    check(deflected, direction=Direction.INCOMING, outcome=Outcome.DEFLECTED, remote="+4930557",
          target="200", answered=False)  # fmt: skip
    await calls.wait_call("200", "alerting")
    calls.external_hangup("+4930557")
    (missed,) = await calls.wait_rows("200", 1)
    check(missed, direction=Direction.INCOMING, outcome=Outcome.MISSED, answered=False)

    forward = m.SetForwarding(
        device=calls.line("300"),
        activate_forward=True,
        forwarding_type=ForwardingType.FORWARD_IMMEDIATE,
        forward_dn="200",
    )
    await calls.request(forward)
    await wait_until(
        lambda: calls.notice_types("300")["forwarding.changed"] == 1, 5.0, "forwarding notice"
    )
    calls.sim.incoming_call("300", "+4930558")
    await calls.wait_call("200", "alerting")
    assert calls.sim.answer("200")
    await calls.wait_call("200", "connected")
    assert calls.sim.hangup("200")
    (forwarded,) = await calls.wait_rows("300", 1)
    check(forwarded, direction=Direction.INCOMING, outcome=Outcome.FORWARDED, target="200",
          answered=False)  # fmt: skip
    rows = await calls.wait_rows("200", 2)
    check(rows[1], direction=Direction.INCOMING, outcome=Outcome.ANSWERED, remote="+4930558",
          answered=True)  # fmt: skip
    await calls.check_webhooks()


async def test_blind_and_attended_transfer(calls: Calls) -> None:
    calls.sim.incoming_call("100", "+4930559")
    await calls.wait_call("100", "alerting")
    assert calls.sim.answer("100")
    talking = await calls.wait_call("100", "connected")
    await calls.request(m.SingleStepTransferCall(active_call=talking, transferred_to="200"))
    (blind,) = await calls.wait_rows("100", 1)
    check(blind, direction=Direction.INCOMING, outcome=Outcome.TRANSFERRED, remote="+4930559",
          target="200", answered=True)  # fmt: skip
    await calls.wait_call("200", "alerting")
    assert calls.sim.answer("200")
    await calls.wait_call("200", "connected")
    calls.external_hangup("+4930559")
    (taken,) = await calls.wait_rows("200", 1)
    check(taken, direction=Direction.INCOMING, outcome=Outcome.ANSWERED, answered=True)

    calls.sim.incoming_call("100", "+4930560")
    await calls.wait_call("100", "alerting")
    assert calls.sim.answer("100")
    first = await calls.wait_call("100", "connected")
    consult = await calls.request(m.ConsultationCall(existing_call=first, consulted_device="300"))
    assert isinstance(consult, m.ConsultationCallResponse) and consult.initiated_call is not None
    await calls.wait_call("300", "alerting")
    assert calls.sim.answer("300")
    await calls.wait_call("300", "connected")
    await calls.request(m.TransferCall(held_call=first, active_call=consult.initiated_call))
    rows = await calls.wait_rows("100", 3)  # the blind one, then the two of the attended one
    assert sorted(r.outcome.value for r in rows[1:]) == ["transferred", "transferred"]
    assert {r.direction for r in rows[1:]} == {Direction.INCOMING, Direction.OUTGOING}
    assert all(r.answered is not None for r in rows[1:])
    await calls.idle("100")
    calls.external_hangup("+4930560")
    (at_300,) = await calls.wait_rows("300", 1)
    assert at_300.answered is not None and at_300.direction is Direction.INCOMING
    await calls.check_webhooks()


async def test_conference(calls: Calls) -> None:
    calls.sim.incoming_call("100", "+4930561")
    await calls.wait_call("100", "alerting")
    assert calls.sim.answer("100")
    first = await calls.wait_call("100", "connected")
    consult = await calls.request(m.ConsultationCall(existing_call=first, consulted_device="200"))
    assert isinstance(consult, m.ConsultationCallResponse) and consult.initiated_call is not None
    await calls.wait_call("200", "alerting")
    assert calls.sim.answer("200")
    await calls.wait_call("200", "connected")
    joined = await calls.request(
        m.ConferenceCall(held_call=first, active_call=consult.initiated_call)
    )
    assert isinstance(joined, m.ConferenceCallResponse)
    assert calls.sim.hangup("100")
    assert calls.sim.hangup("200")  # the outside party is left alone: the call ends
    rows = await calls.wait_rows("100", 2)
    assert {r.outcome for r in rows} == {Outcome.ANSWERED}
    assert any(r.related for r in rows)  # the conference links the calls
    await calls.wait_rows("200", 1)
    await calls.check_webhooks()


async def test_phone_lost_mid_call(calls: Calls) -> None:
    started = await calls.client.request(m.MonitorStart(monitor_object=calls.line("400")))
    assert isinstance(started, m.MonitorStartResponse)
    xref = started.monitor_cross_ref_id
    calls.sim.incoming_call("400", "+4930562")
    await calls.wait_call("400", "alerting")
    assert calls.sim.answer("400")
    talking = await calls.wait_call("400", "connected")
    agent = next(
        a for a in calls.sim.agents.values() if "400" in [ln.number for ln in a.phone.lines]
    )
    agent.drop_connection()
    (lost,) = await calls.wait_rows("400", 1)
    check(lost, direction=Direction.INCOMING, outcome=Outcome.LOST_WITH_PHONE, remote="+4930562",
          answered=True)  # fmt: skip
    # The client that was told of the call is told it ended, then that the line is out.
    cleared = await calls.client.wait_for(m.ConnectionClearedEvent)
    while cleared.monitor_cross_ref_id != xref:
        cleared = await calls.client.wait_for(m.ConnectionClearedEvent)
    assert cleared.dropped_connection is not None
    assert cleared.dropped_connection.call_id == talking.call_id
    out = await calls.client.wait_for(m.OutOfServiceEvent)
    assert out.monitor_cross_ref_id == xref
    assert calls.notice_types("400")["call.ended"] == 1
    offline = [n for n in calls.notices if n.type is NoticeType.PHONE_OFFLINE]
    assert [n.phone for n in offline] == [agent.mac]
    await calls.check_webhooks()


async def test_each_happening_is_one_signed_webhook(harness: Harness) -> None:
    """A real HTTP receiver (tests/journal/receiver.py) checks every signature the documented
    way; each call happening reaches it exactly once, each with its own delivery ID."""
    calls = await start(harness)
    secret = "receiver-secret-0123456789"
    receiver = await Receiver(secret=secret).start()
    try:
        webhooks = calls.server.webhooks
        assert webhooks is not None
        kinds = ["call.ringing", "call.answered", "call.missed", "call.ended", "phone.offline"]
        await webhooks.add_endpoint(url=receiver.url, events=kinds, secret=secret)
        calls.sim.incoming_call("100", "+4930570")
        await calls.wait_call("100", "alerting")
        assert calls.sim.answer("100")
        await calls.wait_call("100", "connected")
        assert calls.sim.hangup("100")
        calls.sim.incoming_call("200", "+4930571")
        await calls.wait_call("200", "alerting")
        calls.external_hangup("+4930571")
        await calls.wait_rows("100", 1)
        await calls.wait_rows("200", 1)
        agent = next(a for a in calls.sim.agents.values() if a.phone.lines[0].number == "400")
        agent.drop_connection()
        expected = {
            ("call.ringing", calls.line("100")),
            ("call.answered", calls.line("100")),
            ("call.ended", calls.line("100")),
            ("call.ringing", calls.line("200")),
            ("call.missed", calls.line("200")),
            ("call.ended", calls.line("200")),
            ("phone.offline", None),
        }

        async def all_delivered() -> bool:
            counts = await webhooks.counts()
            return counts == {"pending": 0, "delivered": len(expected), "failed": 0}

        # The outbox holds one row per event and endpoint: all delivered, none pending.
        await poll(all_delivered, "every webhook delivered", timeout=10.0)
        got = [(r.json["type"], r.json["data"].get("line")) for r in receiver.requests]
        assert sorted(got, key=str) == sorted(expected, key=str)  # each exactly once
        assert all(r.valid for r in receiver.requests)
        assert len({r.delivery for r in receiver.requests}) == len(receiver.requests)
        missed = next(r.json for r in receiver.requests if r.json["type"] == "call.missed")
        assert missed["data"]["call"]["outcome"] == "missed"
        assert missed["data"]["call"]["remote_number"] == "+4930571"
        offline = next(r.json for r in receiver.requests if r.json["type"] == "phone.offline")
        assert offline["data"]["phone"] == agent.mac
    finally:
        await receiver.stop()


async def test_yealink_firmware_calls_are_journaled(calls: Calls) -> None:
    """The Yealink firmware's own event forms (simulator/yealink.py, from the firmware's
    CSTA processor): an answered and a missed incoming call, and a call made from the line."""
    calls.sim.incoming_call("400", "+4930580")
    await calls.wait_call("400", "alerting")
    assert calls.sim.answer("400")
    await calls.wait_call("400", "connected")
    assert calls.sim.hangup("400")
    (answered,) = await calls.wait_rows("400", 1)
    check(answered, direction=Direction.INCOMING, outcome=Outcome.ANSWERED, remote="+4930580",
          answered=True)  # fmt: skip
    calls.sim.incoming_call("400", "+4930581")
    await calls.wait_call("400", "alerting")
    calls.external_hangup("+4930581")
    rows = await calls.wait_rows("400", 2)
    assert rows[1].outcome is Outcome.MISSED, rows[1]
    assert rows[1].answered is None and rows[1].remote_number == "+4930581"
    calls.sim.dial("400", "200")
    await calls.wait_call("200", "alerting")
    assert calls.sim.answer("200")
    await calls.wait_call("200", "connected")
    assert calls.sim.hangup("200")
    rows = await calls.wait_rows("400", 3)
    check(rows[2], direction=Direction.OUTGOING, outcome=Outcome.ANSWERED, remote="200",
          answered=True)  # fmt: skip
    assert rows[2].internal  # 200 is a line of this server
    (at_200,) = await calls.wait_rows("200", 1)
    assert at_200.direction is Direction.INCOMING and at_200.internal
    await calls.check_webhooks()
