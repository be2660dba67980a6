"""Call tracker: records, notices and snapshots from hand-written event sequences.

Every sequence here is written by hand, not produced by the simulator: the Yealink ones from
the firmware's event table (``/work/shared/reference/yealink-uacsta-behaviour.md``,
"Events": which event each trigger sends and with which devices, states and causes), the
others from ECMA-269's call flows (events and fields per ECMA-285's ASN.1 in
``/work/shared/reference/ecma-285-asn1/``). Each test names its source. Call IDs are in the
clients' space (``<phone prefix>.<phone's ID>``), as the switching function hands them over.
"""

from __future__ import annotations

import itertools
from dataclasses import replace

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from uacsta.csta import codec
from uacsta.csta import messages as m
from uacsta.csta.types import (
    ConnectionID,
    ConnectionListItem,
    DeviceIdentifier,
    EventCause,
    LocalConnectionState,
    SnapshotCallResponseInfo,
    SnapshotDeviceResponseInfo,
)
from uacsta.switch.callrecord import CallNotice, CallRecord, Direction, NoticeType, Outcome
from uacsta.switch.calls import CallTracker, CallView, TrackerOutput, split_device

PHONE_A = "001565AAAAAA"
PHONE_B = "001565BBBBBB"
# Lines as a Yealink monitor reports itself (the MonitorStart device string).
LINE_A = "sip:100@pbx.example"
LINE_B = "sip:200@pbx.example"
# A far end as Yealink writes it: "sip:" + remote user + "@" + remote server.
EXT = "sip:+4930123@carrier.example"
EXT_NUMBER = "+4930123"
THIRD = "sip:300@pbx.example"

LCS = LocalConnectionState
N = NoticeType


def dev(value: str) -> DeviceIdentifier:
    return DeviceIdentifier(value)


def make_tracker(**kwargs: object) -> CallTracker:
    numbers = itertools.count(1)
    tracker = CallTracker(id_factory=lambda: f"r{next(numbers)}", **kwargs)  # type: ignore[arg-type]
    tracker.line_added(PHONE_A, LINE_A)
    tracker.line_added(PHONE_B, LINE_B)
    return tracker


class Feed:
    """Feeds a tracker and keeps everything it produced, in order."""

    def __init__(self, tracker: CallTracker | None = None) -> None:
        self.tracker = tracker or make_tracker()
        self.records: list[CallRecord] = []
        self.notices: list[CallNotice] = []
        self.cleared: list[tuple[str, m.ConnectionClearedEvent]] = []

    def keep(self, out: TrackerOutput) -> TrackerOutput:
        self.records.extend(out.records)
        self.notices.extend(out.notices)
        self.cleared.extend(out.cleared)
        return out

    def __call__(self, now: float, event: m.CstaEvent, line: str = LINE_A) -> TrackerOutput:
        phone = PHONE_A if line == LINE_A else PHONE_B
        return self.keep(self.tracker.event(phone, line, event, now))

    def types(self, line: str | None = None) -> list[NoticeType]:
        return [n.type for n in self.notices if line is None or n.line == line]


# --- Yealink event shapes (behaviour doc, "Events" table) --------------------------------------


def yl_ringing(cid: str, line: str = LINE_A, remote: str = EXT) -> m.DeliveredEvent:
    """Incoming call alerting: alerting local, calling remote, called local; alerting; normal."""
    return m.DeliveredEvent(
        monitor_cross_ref_id="0",
        connection=ConnectionID(cid, line),
        alerting_device=dev(line),
        calling_device=dev(remote),
        called_device=dev(line),
        last_redirection_device=DeviceIdentifier.not_known(),
        local_connection_info=LCS.ALERTING,
        cause=EventCause.NORMAL,
    )


def yl_ringback(cid: str, line: str = LINE_A, remote: str = EXT) -> m.DeliveredEvent:
    """Outgoing ringback: alerting remote, calling local, called remote; *connected*."""
    return m.DeliveredEvent(
        monitor_cross_ref_id="0",
        connection=ConnectionID(cid, line),
        alerting_device=dev(remote),
        calling_device=dev(line),
        called_device=dev(remote),
        last_redirection_device=DeviceIdentifier.not_known(),
        local_connection_info=LCS.CONNECTED,
        cause=EventCause.NORMAL,
    )


def yl_initiated(cid: str, line: str = LINE_A) -> m.ServiceInitiatedEvent:
    return m.ServiceInitiatedEvent(
        monitor_cross_ref_id="0",
        initiated_connection=ConnectionID(cid, line),
        initiating_device=dev(line),
        local_connection_info=LCS.INITIATED,
        cause=EventCause.MAKE_CALL,
    )


def yl_originated(cid: str, line: str = LINE_A, remote: str = EXT) -> m.OriginatedEvent:
    return m.OriginatedEvent(
        monitor_cross_ref_id="0",
        originated_connection=ConnectionID(cid, line),
        calling_device=dev(line),
        called_device=dev(remote),
        local_connection_info=LCS.CONNECTED,
        cause=EventCause.NORMAL,
    )


def yl_established(
    cid: str, line: str = LINE_A, remote: str = EXT, *, incoming: bool = True
) -> m.EstablishedEvent:
    """answering/calling/called = local/remote/local (incoming), remote/local/remote (out)."""
    local, far = dev(line), dev(remote)
    return m.EstablishedEvent(
        monitor_cross_ref_id="0",
        established_connection=ConnectionID(cid, line),
        answering_device=local if incoming else far,
        calling_device=far if incoming else local,
        called_device=local if incoming else far,
        last_redirection_device=DeviceIdentifier.not_known(),
        local_connection_info=LCS.CONNECTED,
        cause=EventCause.NORMAL,
    )


def yl_cleared(cid: str, line: str = LINE_A) -> m.ConnectionClearedEvent:
    """Call ended, either side: releasing device always local; null; normalClearing."""
    return m.ConnectionClearedEvent(
        monitor_cross_ref_id="0",
        dropped_connection=ConnectionID(cid, line),
        releasing_device=dev(line),
        local_connection_info=LCS.NULL,
        cause=EventCause.NORMAL_CLEARING,
    )


def yl_held(cid: str, line: str = LINE_A) -> m.HeldEvent:
    return m.HeldEvent(
        monitor_cross_ref_id="0",
        held_connection=ConnectionID(cid, line),
        holding_device=dev(line),
        local_connection_info=LCS.HOLD,
        cause=EventCause.NORMAL,
    )


def yl_retrieved(cid: str, line: str = LINE_A) -> m.RetrievedEvent:
    return m.RetrievedEvent(
        monitor_cross_ref_id="0",
        retrieved_connection=ConnectionID(cid, line),
        retrieving_device=dev(line),
        local_connection_info=LCS.CONNECTED,
        cause=EventCause.NORMAL,
    )


def yl_failed(cid: str, line: str = LINE_A, remote_user: str = EXT_NUMBER) -> m.FailedEvent:
    """Call failed: failing local, calling = far-end user name only, called local; null;
    callCancelled (whatever failed)."""
    return m.FailedEvent(
        monitor_cross_ref_id="0",
        failed_connection=ConnectionID(cid, line),
        failing_device=dev(line),
        calling_device=dev(remote_user),
        called_device=dev(line),
        last_redirection_device=DeviceIdentifier.not_known(),
        local_connection_info=LCS.NULL,
        cause=EventCause.CALL_CANCELLED,
    )


def yl_diverted(cid: str, target: str, line: str = LINE_A) -> m.DivertedEvent:
    """DeflectCall carried out: diverting local, newDestination as typed; null; normal."""
    return m.DivertedEvent(
        monitor_cross_ref_id="0",
        connection=ConnectionID(cid, line),
        diverting_device=dev(line),
        new_destination=dev(target),
        last_redirection_device=DeviceIdentifier.not_known(),
        local_connection_info=LCS.NULL,
        cause=EventCause.NORMAL,
    )


def yl_transferred(
    primary: str, to: str, secondary: str | None = None, line: str = LINE_A
) -> m.TransferredEvent:
    """TransferedEvent: primary (and secondary for attended) old call, transferring local,
    transferred-to remote, one empty connectionListItem, null, singleStepTransfer/transfer."""
    return m.TransferredEvent(
        monitor_cross_ref_id="0",
        primary_old_call=ConnectionID(primary, line),
        secondary_old_call=None if secondary is None else ConnectionID(secondary, line),
        transferring_device=dev(line),
        transferred_to_device=dev(to),
        transferred_connections=(ConnectionListItem(),),
        local_connection_info=LCS.NULL,
        cause=EventCause.SINGLE_STEP_TRANSFER if secondary is None else EventCause.TRANSFER,
    )


def summary(record: CallRecord) -> dict[str, object]:
    """A record without its id, with its durations."""
    return {
        "line": record.line,
        "phone": record.phone,
        "call_id": record.call_id,
        "direction": record.direction,
        "remote": record.remote_number,
        "started": record.started,
        "answered": record.answered,
        "ended": record.ended,
        "ring": record.ring_seconds,
        "talk": record.talk_seconds,
        "outcome": record.outcome,
        "target": record.target,
        "cause": record.cause,
        "related": record.related,
        "internal": record.internal,
    }


def expect(
    call_id: str,
    direction: Direction,
    outcome: Outcome,
    *,
    started: float,
    ended: float,
    answered: float | None = None,
    remote: str | None = EXT_NUMBER,
    target: str | None = None,
    cause: str | None = "normalClearing",
    related: tuple[str, ...] = (),
    line: str = LINE_A,
    internal: bool = False,
) -> dict[str, object]:
    return {
        "line": line,
        "phone": PHONE_A if line == LINE_A else PHONE_B,
        "call_id": call_id,
        "direction": direction,
        "remote": remote,
        "started": started,
        "answered": answered,
        "ended": ended,
        "ring": (answered if answered is not None else ended) - started,
        "talk": 0.0 if answered is None else ended - answered,
        "outcome": outcome,
        "target": target,
        "cause": cause,
        "related": related,
        "internal": internal,
    }


def records(feed: Feed) -> list[dict[str, object]]:
    return [summary(r) for r in feed.records]


def ended_notices_carry_records(feed: Feed) -> None:
    """call.missed / call.ended carry the record; every record has exactly one call.ended."""
    ended = [n.record for n in feed.notices if n.type is N.CALL_ENDED]
    assert ended == feed.records
    for notice in feed.notices:
        assert (notice.record is not None) == (notice.type in {N.CALL_ENDED, N.CALL_MISSED})


# --- incoming ----------------------------------------------------------------------------------


def far_end_hangs_up(cid: str) -> m.ConnectionClearedEvent:
    # ECMA-269: the far end's connection clears, it is the releasing device.
    return m.ConnectionClearedEvent(
        dropped_connection=ConnectionID(cid, EXT),
        releasing_device=dev(EXT),
        local_connection_info=LCS.NULL,
        cause=EventCause.NORMAL_CLEARING,
    )


@pytest.mark.parametrize(
    "hang_up", [yl_cleared, far_end_hangs_up], ids=["we-hang-up", "far-end-hangs-up"]
)
def test_incoming_answered_then_hung_up(hang_up: object) -> None:
    # Yealink: Delivered (incoming), Established, then ConnectionCleared (we hang up); the
    # far end hanging up in ECMA-269's form ends it the same way.
    feed = Feed()
    feed(100.0, yl_ringing("1.5"))
    assert feed.tracker.calls(LINE_A) == [
        CallView(
            call_id="1.5",
            line=LINE_A,
            phone=PHONE_A,
            direction=Direction.INCOMING,
            state=LCS.ALERTING,
            remote_number=EXT_NUMBER,
            remote_name=None,
            remote_device=EXT,
            started=100.0,
            answered=None,
            held=False,
            related=(),
            internal=False,
        )
    ]
    feed(104.5, yl_established("1.5"))
    feed(164.5, hang_up("1.5"))  # type: ignore[operator]
    assert records(feed) == [
        expect(
            "1.5", Direction.INCOMING, Outcome.ANSWERED, started=100.0, answered=104.5, ended=164.5
        )
    ]
    assert feed.records[0].ring_seconds == 4.5 and feed.records[0].talk_seconds == 60.0
    assert feed.types() == [N.CALL_RINGING, N.CALL_ANSWERED, N.CALL_ENDED]
    ringing = feed.notices[0]
    assert (ringing.line, ringing.phone, ringing.call_id) == (LINE_A, PHONE_A, "1.5")
    assert (ringing.direction, ringing.remote_number, ringing.at) == (
        Direction.INCOMING,
        EXT_NUMBER,
        100.0,
    )
    ended_notices_carry_records(feed)
    assert feed.tracker.calls() == []


def caller_cancels_yealink(cid: str) -> m.CstaEvent:
    # Yealink event build: FailedEvent, cause callCancelled, state null.
    return yl_failed(cid)


def caller_cancels_ecma(cid: str) -> m.CstaEvent:
    # ECMA-269: the caller's connection clears while ours alerts; the caller releases.
    return far_end_hangs_up(cid)


@pytest.mark.parametrize(
    ("gives_up", "cause"),
    [(caller_cancels_yealink, "callCancelled"), (caller_cancels_ecma, "normalClearing")],
    ids=["yealink-failed", "ecma-269-cleared"],
)
def test_incoming_missed_when_the_caller_gives_up(gives_up: object, cause: str) -> None:
    feed = Feed()
    feed(100.0, yl_ringing("1.6"))
    feed(125.0, gives_up("1.6"))  # type: ignore[operator]
    assert records(feed) == [
        expect("1.6", Direction.INCOMING, Outcome.MISSED, started=100.0, ended=125.0, cause=cause)
    ]
    # Rule: a missed call gives call.missed and then call.ended, both with the record.
    assert feed.types() == [N.CALL_RINGING, N.CALL_MISSED, N.CALL_ENDED]
    assert feed.notices[1].record == feed.records[0]
    ended_notices_carry_records(feed)


def test_a_yealink_failed_then_cleared_missed_call_has_one_record() -> None:
    # Should the firmware follow its FailedEvent with a ConnectionCleared, nothing doubles.
    feed = Feed()
    feed(100.0, yl_ringing("1.6"))
    feed(125.0, yl_failed("1.6"))
    feed(125.1, yl_cleared("1.6"))
    assert [r.outcome for r in feed.records] == [Outcome.MISSED]
    assert feed.types() == [N.CALL_RINGING, N.CALL_MISSED, N.CALL_ENDED]


def declined_unnamed(cid: str) -> m.ConnectionClearedEvent:
    # A phone declining with a refusal cause and no releasing device.
    return m.ConnectionClearedEvent(
        dropped_connection=ConnectionID(cid, LINE_A), cause="callRejected"
    )


@pytest.mark.parametrize(
    ("decline", "cause"),
    [(yl_cleared, "normalClearing"), (declined_unnamed, "callRejected")],
    ids=["yealink-released-by-line", "refusal-cause"],
)
def test_incoming_rejected_by_the_user(decline: object, cause: str) -> None:
    # Yealink: a declined ringing call ends with ConnectionCleared, releasing device local
    # (ECMA-269: ClearConnection on the alerting connection; the line releases).
    feed = Feed()
    feed(100.0, yl_ringing("1.7"))
    feed(103.0, decline("1.7"))  # type: ignore[operator]
    assert records(feed) == [
        expect("1.7", Direction.INCOMING, Outcome.REJECTED, started=100.0, ended=103.0, cause=cause)
    ]
    assert feed.types() == [N.CALL_RINGING, N.CALL_ENDED]


# --- outgoing ----------------------------------------------------------------------------------


def test_outgoing_answered() -> None:
    # Yealink: ServiceInitiated (dial screen), Originated (placed), Delivered (ringback,
    # state connected), Established (answering = remote), ConnectionCleared.
    feed = Feed()
    feed(200.0, yl_initiated("1.8"))
    (view,) = feed.tracker.calls(LINE_A)
    assert (view.direction, view.state, view.remote_number) == (
        Direction.OUTGOING,
        LCS.INITIATED,
        None,
    )
    feed(203.0, yl_originated("1.8"))
    feed(204.0, yl_ringback("1.8"))
    feed(210.0, yl_established("1.8", incoming=False))
    feed(250.0, yl_cleared("1.8"))
    assert records(feed) == [
        expect(
            "1.8", Direction.OUTGOING, Outcome.ANSWERED, started=200.0, answered=210.0, ended=250.0
        )
    ]
    assert feed.types() == [N.CALL_DIALING, N.CALL_ANSWERED, N.CALL_ENDED]
    assert feed.notices[0].at == 203.0 and feed.notices[0].remote_number == EXT_NUMBER


def far_end_never_answers_yealink(cid: str) -> m.CstaEvent:
    return yl_failed(cid)


def far_end_never_answers_ecma(cid: str) -> m.CstaEvent:
    return far_end_hangs_up(cid)


@pytest.mark.parametrize(
    ("fails", "cause"),
    [
        (far_end_never_answers_yealink, "callCancelled"),
        (far_end_never_answers_ecma, "normalClearing"),
    ],
    ids=["yealink-failed", "ecma-269-far-end-cleared"],
)
def test_outgoing_unanswered(fails: object, cause: str) -> None:
    feed = Feed()
    feed(300.0, yl_originated("1.9"))
    feed(301.0, yl_ringback("1.9"))
    feed(331.0, fails("1.9"))  # type: ignore[operator]
    assert records(feed) == [
        expect(
            "1.9",
            Direction.OUTGOING,
            Outcome.UNANSWERED,
            started=300.0,
            ended=331.0,
            cause=cause,
        )
    ]
    assert feed.types() == [N.CALL_DIALING, N.CALL_ENDED]


def test_outgoing_cancelled_by_us() -> None:
    # Yealink: we hang up during ringback: ConnectionCleared, releasing local.
    feed = Feed()
    feed(300.0, yl_initiated("1.10"))
    feed(302.0, yl_originated("1.10"))
    feed(303.0, yl_ringback("1.10"))
    feed(309.0, yl_cleared("1.10"))
    assert records(feed) == [
        expect("1.10", Direction.OUTGOING, Outcome.CANCELLED, started=300.0, ended=309.0)
    ]
    assert feed.types() == [N.CALL_DIALING, N.CALL_ENDED]


def test_outgoing_busy() -> None:
    # ECMA-269 call to a busy device, seen at the caller: Failed (failing = called device,
    # cause busy, our connection in Fail while the busy tone plays), then we hang up.
    feed = Feed()
    feed(400.0, yl_initiated("1.11"))
    feed(401.0, yl_originated("1.11"))
    feed(
        401.5,
        m.FailedEvent(
            failed_connection=ConnectionID("1.11", LINE_A),
            failing_device=dev(EXT),
            calling_device=dev(LINE_A),
            called_device=dev(EXT),
            last_redirection_device=DeviceIdentifier.not_known(),
            local_connection_info=LCS.FAIL,
            cause=EventCause.BUSY,
        ),
    )
    assert [v.state for v in feed.tracker.calls(LINE_A)] == [LCS.FAIL]
    feed(404.0, yl_cleared("1.11"))
    assert records(feed) == [
        expect("1.11", Direction.OUTGOING, Outcome.BUSY, started=400.0, ended=404.0, cause="busy")
    ]
    assert feed.types() == [N.CALL_DIALING, N.CALL_ENDED]


def test_incoming_busy() -> None:
    # ECMA-269 call to a busy device, seen at that device: Failed, failing = the line,
    # calling = the caller, cause busy (PBXs passing Q.850 on write userBusy).
    feed = Feed()
    feed(
        500.0,
        m.FailedEvent(
            failed_connection=ConnectionID("1.12", LINE_A),
            failing_device=dev(LINE_A),
            calling_device=dev(EXT),
            called_device=dev(LINE_A),
            local_connection_info=LCS.NULL,
            cause="userBusy",
        ),
    )
    assert records(feed) == [
        expect(
            "1.12", Direction.INCOMING, Outcome.BUSY, started=500.0, ended=500.0, cause="userBusy"
        )
    ]
    assert feed.types() == [N.CALL_ENDED]


# --- diversion ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("cause", "source"),
    [(EventCause.NORMAL, "yealink DeflectCall"), (EventCause.REDIRECTED, "ECMA-285 cause")],
)
def test_deflected_while_ringing(cause: EventCause, source: str) -> None:
    # Yealink: DeflectCall gives DivertedEvent (diverting local, newDestination as typed,
    # null, normal) and no ConnectionCleared after it.
    feed = Feed()
    feed(600.0, yl_ringing("1.13"))
    event = yl_diverted("1.13", "300")
    feed(607.0, replace(event, cause=cause))
    feed(607.5, yl_cleared("1.13"))  # a late clearing changes nothing
    assert records(feed) == [
        expect(
            "1.13",
            Direction.INCOMING,
            Outcome.DEFLECTED,
            started=600.0,
            ended=607.0,
            target="300",
            cause=str(cause),
        )
    ], source
    assert feed.types() == [N.CALL_RINGING, N.CALL_ENDED]


def test_forwarded_immediately() -> None:
    # ECMA-269 forwarding (immediate) at the forwarding device: a DivertedEvent, cause
    # callForwardImmediate, without a Delivered first (the call never rang here).
    feed = Feed()
    feed(
        700.0,
        m.DivertedEvent(
            connection=ConnectionID("1.14", LINE_A),
            diverting_device=dev(LINE_A),
            new_destination=dev(THIRD),
            calling_device=dev(EXT),
            called_device=dev(LINE_A),
            last_redirection_device=DeviceIdentifier.not_known(),
            local_connection_info=LCS.NULL,
            cause=EventCause.CALL_FORWARD_IMMEDIATE,
        ),
    )
    assert records(feed) == [
        expect(
            "1.14",
            Direction.INCOMING,
            Outcome.FORWARDED,
            started=700.0,
            ended=700.0,
            target="300",
            cause="callForwardImmediate",
        )
    ]
    assert feed.types() == [N.CALL_ENDED]


def test_picked_up_elsewhere_and_answered_elsewhere() -> None:
    # ECMA-269: a pickup diverts the call from the ringing device (cause callPickup); a
    # group call answered at another member shows Established with that answering device.
    feed = Feed()
    feed(800.0, yl_ringing("1.15"))
    feed(
        805.0,
        m.DivertedEvent(
            connection=ConnectionID("1.15", LINE_A),
            diverting_device=dev(LINE_A),
            new_destination=dev(THIRD),
            cause=EventCause.CALL_PICKUP,
        ),
    )
    feed(810.0, yl_ringing("1.16"))
    feed(812.0, replace(yl_established("1.16"), answering_device=dev(THIRD)))
    assert [(r.call_id, r.outcome, r.target, r.answered) for r in feed.records] == [
        ("1.15", Outcome.ANSWERED_ELSEWHERE, "300", None),
        ("1.16", Outcome.ANSWERED_ELSEWHERE, "300", None),
    ]
    assert feed.types() == [N.CALL_RINGING, N.CALL_ENDED, N.CALL_RINGING, N.CALL_ENDED]


# --- transfer and conference -------------------------------------------------------------------


def test_blind_transfer() -> None:
    # Yealink: SingleStepTransferCall on an answered call gives TransferedEvent (primary old
    # call only, cause singleStepTransfer) and no ConnectionCleared.
    feed = Feed()
    feed(900.0, yl_ringing("1.20"))
    feed(902.0, yl_established("1.20"))
    feed(930.0, yl_transferred("1.20", THIRD))
    assert records(feed) == [
        expect(
            "1.20",
            Direction.INCOMING,
            Outcome.TRANSFERRED,
            started=900.0,
            answered=902.0,
            ended=930.0,
            target="300",
            cause="singleStepTransfer",
        )
    ]
    assert feed.types() == [N.CALL_RINGING, N.CALL_ANSWERED, N.CALL_ENDED]


def test_attended_transfer() -> None:
    # Yealink: the answered call is held, a consultation call is placed and answered, then
    # TransferCall gives TransferedEvent with both old calls (cause transfer).
    feed = Feed()
    feed(1000.0, yl_ringing("1.21"))
    feed(1001.0, yl_established("1.21"))
    feed(1010.0, yl_held("1.21"))
    feed(1011.0, yl_initiated("1.22"))
    feed(1012.0, yl_originated("1.22", remote=THIRD))
    feed(1013.0, yl_ringback("1.22", remote=THIRD))
    feed(1015.0, yl_established("1.22", remote=THIRD, incoming=False))
    views = feed.tracker.calls(LINE_A)
    assert [(v.call_id, v.held, v.state, v.related) for v in views] == [
        ("1.21", True, LCS.HOLD, ("1.22",)),
        ("1.22", False, LCS.CONNECTED, ("1.21",)),
    ]
    feed(1030.0, yl_transferred("1.21", THIRD, secondary="1.22"))
    assert records(feed) == [
        expect(
            "1.21",
            Direction.INCOMING,
            Outcome.TRANSFERRED,
            started=1000.0,
            answered=1001.0,
            ended=1030.0,
            target="300",
            cause="transfer",
            related=("1.22",),
        ),
        expect(
            "1.22",
            Direction.OUTGOING,
            Outcome.TRANSFERRED,
            started=1011.0,
            answered=1015.0,
            ended=1030.0,
            remote="300",
            target=EXT_NUMBER,
            cause="transfer",
            related=("1.21",),
        ),
    ]
    assert feed.types() == [
        N.CALL_RINGING,
        N.CALL_ANSWERED,
        N.CALL_HELD,
        N.CALL_DIALING,
        N.CALL_ANSWERED,
        N.CALL_ENDED,
        N.CALL_ENDED,
    ]
    ended_notices_carry_records(feed)


def yl_conferenced(held: str, active: str, line: str = LINE_A) -> m.ConferencedEvent:
    """ConferencedEvent: both old calls, conferencingDevice local, three connection items
    with the conference's callID ``held|active``, connected, normal."""
    conf = f"{held}|{active}"
    items = tuple(
        ConnectionListItem(
            new_connection=ConnectionID(conf, device), old_connection=ConnectionID(old, device)
        )
        for old, device in ((active, line), (active, THIRD), (held, EXT))
    )
    return m.ConferencedEvent(
        monitor_cross_ref_id="0",
        primary_old_call=ConnectionID(held, line),
        secondary_old_call=ConnectionID(active, line),
        conferencing_device=dev(line),
        conference_connections=items,
        local_connection_info=LCS.CONNECTED,
        cause=EventCause.NORMAL,
    )


def test_three_party_conference() -> None:
    # Yealink: held call + answered consultation call, ConferenceCall gives ConferencedEvent;
    # the end is a ConnectionCleared on the conference ID ``held|active`` (local), then one
    # for the far end (releasing = the remote).
    feed = Feed()
    feed(1100.0, yl_ringing("1.30"))
    feed(1101.0, yl_established("1.30"))
    feed(1110.0, yl_held("1.30"))
    feed(1111.0, yl_originated("1.31", remote=THIRD))
    feed(1112.0, yl_ringback("1.31", remote=THIRD))
    feed(1114.0, yl_established("1.31", remote=THIRD, incoming=False))
    feed(1120.0, yl_conferenced("1.30", "1.31"))
    assert [(v.call_id, v.held, v.state) for v in feed.tracker.calls(LINE_A)] == [
        ("1.30", False, LCS.CONNECTED),
        ("1.31", False, LCS.CONNECTED),
    ]
    feed(1200.0, yl_cleared("1.30|1.31"))
    feed(
        1200.1,
        m.ConnectionClearedEvent(
            dropped_connection=ConnectionID("1.30|1.31", EXT),
            releasing_device=dev(EXT),
            local_connection_info=LCS.NULL,
            cause=EventCause.NORMAL_CLEARING,
        ),
    )
    assert records(feed) == [
        expect(
            "1.30",
            Direction.INCOMING,
            Outcome.ANSWERED,
            started=1100.0,
            answered=1101.0,
            ended=1200.0,
            related=("1.31",),
        ),
        expect(
            "1.31",
            Direction.OUTGOING,
            Outcome.ANSWERED,
            started=1111.0,
            answered=1114.0,
            ended=1200.0,
            remote="300",
            related=("1.30",),
        ),
    ]
    assert feed.types() == [
        N.CALL_RINGING,
        N.CALL_ANSWERED,
        N.CALL_HELD,
        N.CALL_DIALING,
        N.CALL_ANSWERED,
        N.CALL_RETRIEVED,  # the held call joined the conference
        N.CALL_ENDED,
        N.CALL_ENDED,
    ]


def test_a_conference_member_leaving_ends_only_its_call() -> None:
    # Yealink: one member leaving a conference gives only the far-end ConnectionCleared,
    # dropped = the conference ID with that member's URI.
    feed = Feed()
    feed(1100.0, yl_established("1.30"))
    feed(1101.0, yl_held("1.30"))
    feed(1102.0, yl_originated("1.31", remote=THIRD))
    feed(1103.0, yl_established("1.31", remote=THIRD, incoming=False))
    feed(1104.0, yl_conferenced("1.30", "1.31"))
    feed(
        1150.0,
        m.ConnectionClearedEvent(
            dropped_connection=ConnectionID("1.30|1.31", THIRD),
            releasing_device=dev(THIRD),
            cause=EventCause.NORMAL_CLEARING,
        ),
    )
    assert [(r.call_id, r.outcome) for r in feed.records] == [("1.31", Outcome.ANSWERED)]
    assert [v.call_id for v in feed.tracker.calls(LINE_A)] == ["1.30"]


def test_a_member_leaving_a_conference_under_one_call_id() -> None:
    # ECMA-269: the conference goes on under the primary call's ID (the connection list's
    # new connections); a member leaving clears its connection on that call ID.
    feed = Feed()
    feed(1.0, yl_established("1.30"))
    feed(2.0, yl_held("1.30"))
    feed(3.0, yl_established("1.31", remote=THIRD, incoming=False))
    feed(
        4.0,
        m.ConferencedEvent(
            primary_old_call=ConnectionID("1.30", LINE_A),
            secondary_old_call=ConnectionID("1.31", LINE_A),
            conferencing_device=dev(LINE_A),
            added_party=dev(THIRD),
            conference_connections=(
                ConnectionListItem(
                    new_connection=ConnectionID("1.30", LINE_A),
                    old_connection=ConnectionID("1.31", LINE_A),
                ),
            ),
            cause=EventCause.CONFERENCE,
        ),
    )
    feed(
        5.0,
        m.ConnectionClearedEvent(
            dropped_connection=ConnectionID("1.30", THIRD), releasing_device=dev(THIRD)
        ),
    )
    assert [(r.call_id, r.outcome) for r in feed.records] == [("1.31", Outcome.ANSWERED)]
    feed(6.0, m.ConnectionClearedEvent(dropped_connection=ConnectionID("1.30", LINE_A)))
    assert [(r.call_id, r.outcome) for r in feed.records] == [
        ("1.31", Outcome.ANSWERED),
        ("1.30", Outcome.ANSWERED),
    ]


def test_the_conferencing_line_hanging_up_ends_every_member_call() -> None:
    # ECMA-269: after ConferencedEvent the device has one connection, on the primary call's
    # ID; its ConnectionCleared (dropped = its own connection) ends the consultation too.
    feed = Feed()
    feed(1.0, yl_established("1.30"))
    feed(2.0, yl_held("1.30"))
    feed(3.0, yl_established("1.31", remote=THIRD, incoming=False))
    feed(
        4.0,
        m.ConferencedEvent(
            primary_old_call=ConnectionID("1.30", LINE_A),
            secondary_old_call=ConnectionID("1.31", LINE_A),
            conferencing_device=dev(LINE_A),
            added_party=dev(THIRD),
            cause=EventCause.CONFERENCE,
        ),
    )
    feed(
        9.0,
        m.ConnectionClearedEvent(
            dropped_connection=ConnectionID("1.30", LINE_A), releasing_device=dev(LINE_A)
        ),
    )
    assert sorted((r.call_id, r.outcome, r.ended) for r in feed.records) == [
        ("1.30", Outcome.ANSWERED, 9.0),
        ("1.31", Outcome.ANSWERED, 9.0),
    ]
    assert feed.tracker.calls(LINE_A) == []


# --- internal, hold ----------------------------------------------------------------------------


def test_internal_call_between_two_tracked_lines() -> None:
    # Line 100 (phone A) calls line 200 (phone B). Each phone reports its own side with its
    # own call ID (Yealink shapes): one record per line, each with its own direction.
    feed = Feed()
    feed(1300.0, yl_initiated("1.40"))
    feed(1301.0, yl_originated("1.40", remote=LINE_B))
    feed(1301.5, yl_ringing("2.7", line=LINE_B, remote=LINE_A), line=LINE_B)
    feed(1301.6, yl_ringback("1.40", remote=LINE_B))
    feed(1305.0, yl_established("2.7", line=LINE_B, remote=LINE_A), line=LINE_B)
    feed(1305.1, yl_established("1.40", remote=LINE_B, incoming=False))
    assert [(v.line, v.direction, v.remote_number, v.internal) for v in feed.tracker.calls()] == [
        (LINE_A, Direction.OUTGOING, "200", True),
        (LINE_B, Direction.INCOMING, "100", True),
    ]
    feed(1340.0, yl_cleared("1.40"))
    feed(1340.1, yl_cleared("2.7", line=LINE_B), line=LINE_B)
    assert records(feed) == [
        expect(
            "1.40",
            Direction.OUTGOING,
            Outcome.ANSWERED,
            started=1300.0,
            answered=1305.1,
            ended=1340.0,
            remote="200",
            internal=True,
        ),
        expect(
            "2.7",
            Direction.INCOMING,
            Outcome.ANSWERED,
            started=1301.5,
            answered=1305.0,
            ended=1340.1,
            remote="100",
            line=LINE_B,
            internal=True,
        ),
    ]
    assert feed.types(LINE_A) == [N.CALL_DIALING, N.CALL_ANSWERED, N.CALL_ENDED]
    assert feed.types(LINE_B) == [N.CALL_RINGING, N.CALL_ANSWERED, N.CALL_ENDED]
    assert feed.records[0].to_json()["internal"] is True


def test_hold_and_retrieve() -> None:
    # Yealink: HeldEvent / RetrievedEvent, holding/retrieving device local; the phone may
    # report a state twice, and the far end holding us (ECMA-269: holding device = the far
    # end) leaves our connection connected.
    feed = Feed()
    feed(1400.0, yl_ringing("1.50"))
    feed(1401.0, yl_established("1.50"))
    feed(1410.0, yl_held("1.50"))
    feed(1410.5, yl_held("1.50"))
    (view,) = feed.tracker.calls(LINE_A)
    assert (view.held, view.state) == (True, LCS.HOLD)
    feed(1420.0, yl_retrieved("1.50"))
    feed(1420.5, yl_retrieved("1.50"))
    feed(1430.0, m.HeldEvent(held_connection=ConnectionID("1.50", EXT), holding_device=dev(EXT)))
    (view,) = feed.tracker.calls(LINE_A)
    assert (view.held, view.state) == (False, LCS.CONNECTED)
    feed(1440.0, yl_held("1.50"))
    feed(1450.0, yl_retrieved("1.50"))
    feed(1460.0, yl_cleared("1.50"))
    assert feed.types() == [
        N.CALL_RINGING,
        N.CALL_ANSWERED,
        N.CALL_HELD,
        N.CALL_RETRIEVED,
        N.CALL_HELD,
        N.CALL_RETRIEVED,
        N.CALL_ENDED,
    ]
    assert [r.outcome for r in feed.records] == [Outcome.ANSWERED]


# --- phone lost, duplicates, missing fields, bounds --------------------------------------------


def test_phone_lost_mid_call() -> None:
    feed = Feed()
    feed(1500.0, yl_ringing("1.60"))
    feed(1501.0, yl_established("1.60"))
    feed(1502.0, yl_ringing("1.61"))
    feed(1503.0, yl_ringing("2.9", line=LINE_B), line=LINE_B)
    out = feed.keep(feed.tracker.phone_lost(PHONE_A, 1600.0))
    assert [summary(r) for r in out.records] == [
        expect(
            "1.60",
            Direction.INCOMING,
            Outcome.LOST_WITH_PHONE,
            started=1500.0,
            answered=1501.0,
            ended=1600.0,
            cause="networkOutOfOrder",
        ),
        expect(
            "1.61",
            Direction.INCOMING,
            Outcome.LOST_WITH_PHONE,
            started=1502.0,
            ended=1600.0,
            cause="networkOutOfOrder",
        ),
    ]
    assert [n.type for n in out.notices] == [N.CALL_ENDED, N.CALL_ENDED]
    assert out.cleared == tuple(
        (
            LINE_A,
            m.ConnectionClearedEvent(
                dropped_connection=ConnectionID(cid, LINE_A),
                releasing_device=DeviceIdentifier(LINE_A),
                local_connection_info=LCS.NULL,
                cause=EventCause.NETWORK_OUT_OF_ORDER,
            ),
        )
        for cid in ("1.60", "1.61")
    )
    assert feed.tracker.calls(LINE_A) == []
    assert [v.call_id for v in feed.tracker.calls()] == ["2.9"]  # the other phone's call stays
    # The link back: the phone's late events for those calls change nothing.
    feed(1700.0, yl_cleared("1.60"))
    feed(1700.0, yl_established("1.61"))
    assert len(feed.records) == 2 and feed.tracker.calls(LINE_A) == []
    assert feed.tracker.phone_lost(PHONE_A, 1800.0) == TrackerOutput()


def test_line_removed_ends_its_calls_as_lost() -> None:
    feed = Feed()
    feed(10.0, yl_established("1.1"))
    out = feed.tracker.line_removed(LINE_A, 20.0)
    assert [(r.outcome, r.ended) for r in out.records] == [(Outcome.LOST_WITH_PHONE, 20.0)]
    assert [line for line, _ in out.cleared] == [LINE_A]
    assert feed.tracker.calls() == []
    # A call to the removed line's number is no longer internal.
    feed(30.0, yl_ringing("2.2", line=LINE_B, remote=LINE_A), line=LINE_B)
    assert [v.internal for v in feed.tracker.calls(LINE_B)] == [False]


def test_repeated_events_give_one_notice_each_and_one_record() -> None:
    # Yealink re-sends states: Established again on a call-info update; a ConnectionCleared
    # or a Delivered may come twice. One record, one notice per happening.
    feed = Feed()
    feed(1.0, yl_ringing("1.70"))
    feed(1.1, yl_ringing("1.70"))
    feed(2.0, yl_established("1.70"))
    feed(3.0, yl_established("1.70"))
    feed(2.5, yl_ringing("1.70"))  # an answered call does not ring again
    feed(9.0, yl_cleared("1.70"))
    feed(9.1, yl_cleared("1.70"))
    feed(9.2, yl_ringing("1.70"))  # late: the call ended here
    assert records(feed) == [
        expect("1.70", Direction.INCOMING, Outcome.ANSWERED, started=1.0, answered=2.0, ended=9.0)
    ]
    assert feed.types() == [N.CALL_RINGING, N.CALL_ANSWERED, N.CALL_ENDED]


def test_events_with_missing_fields_never_raise() -> None:
    feed = Feed()
    # Bare events and events about no known call: nothing at all.
    for event in (
        m.DeliveredEvent(),
        m.EstablishedEvent(),
        m.ConnectionClearedEvent(),
        m.CallClearedEvent(),
        m.HeldEvent(),
        m.RetrievedEvent(),
        m.DivertedEvent(),
        m.FailedEvent(),
        m.TransferredEvent(),
        m.ConferencedEvent(),
        m.OriginatedEvent(),
        m.ServiceInitiatedEvent(),
        m.NetworkReachedEvent(),
        m.DoNotDisturbEvent(),
        m.DigitsGeneratedEvent(),
        m.BackInServiceEvent(),
        m.DeliveredEvent(connection=ConnectionID(None, LINE_A)),
        m.ConnectionClearedEvent(dropped_connection=ConnectionID("1.99", None)),
    ):
        assert feed(1.0, event) == TrackerOutput(), event
    # A call ID and nothing else: a ringing call with no number; events without a call ID
    # then name the line's only call.
    feed(2.0, m.DeliveredEvent(connection=ConnectionID("1.80")))
    feed(3.0, m.EstablishedEvent(established_connection=ConnectionID("1.80")))
    feed(4.0, m.HeldEvent())
    feed(5.0, m.ConnectionClearedEvent())
    assert records(feed) == [
        expect(
            "1.80",
            Direction.INCOMING,
            Outcome.ANSWERED,
            started=2.0,
            answered=3.0,
            ended=5.0,
            remote=None,
            cause=None,
        )
    ]
    assert feed.types() == [N.CALL_RINGING, N.CALL_ANSWERED, N.CALL_HELD, N.CALL_ENDED]
    # Restricted and unknown devices are no number.
    feed(
        6.0,
        m.DeliveredEvent(
            connection=ConnectionID("1.81"),
            alerting_device=dev(LINE_A),
            calling_device=DeviceIdentifier.restricted(),
        ),
    )
    assert [v.remote_number for v in feed.tracker.calls(LINE_A)] == [None]


def test_idle_calls_end_by_the_timer() -> None:
    feed = Feed(make_tracker(max_idle=100.0))
    assert feed.tracker.get_timer() is None
    feed(1000.0, yl_ringing("1.90"))
    feed(1001.0, yl_established("1.90"))
    assert feed.tracker.get_timer() == 1101.0
    assert feed.keep(feed.tracker.handle_timer(1100.9)) == TrackerOutput()
    feed(1050.0, yl_held("1.90"))
    assert feed.tracker.get_timer() == 1150.0
    out = feed.keep(feed.tracker.handle_timer(1150.0))
    # It ends at its last event: the wait adds no talk time.
    assert [summary(r) for r in out.records] == [
        expect(
            "1.90",
            Direction.INCOMING,
            Outcome.FAILED,
            started=1000.0,
            answered=1001.0,
            ended=1050.0,
            cause="no events",
        )
    ]
    assert [n.type for n in out.notices] == [N.CALL_ENDED] and out.notices[0].at == 1150.0
    assert feed.tracker.get_timer() is None and feed.tracker.calls() == []


def test_a_line_keeps_at_most_max_calls() -> None:
    feed = Feed(make_tracker(max_calls_per_line=2))
    feed(1.0, yl_ringing("1.1"))
    feed(2.0, yl_ringing("1.2"))
    feed(3.0, yl_ringing("1.3"))
    assert [v.call_id for v in feed.tracker.calls(LINE_A)] == ["1.2", "1.3"]
    assert [(r.call_id, r.outcome, r.cause) for r in feed.records] == [
        ("1.1", Outcome.FAILED, "too many calls")
    ]


# --- DND, forwarding ---------------------------------------------------------------------------


def test_dnd_and_forwarding_notices_once_per_change() -> None:
    # Yealink: DoNotDisturbEvent (device, doNotDisturbOn); ForwardingEvent (forwardingType,
    # forwardStatus, forwardTo = "tel:" + target, ringCount for no-answer).
    feed = Feed()
    dnd_on = m.DoNotDisturbEvent(device=dev(LINE_A), do_not_disturb_on=True)
    feed(1.0, dnd_on)
    feed(1.5, dnd_on)
    feed(2.0, m.DoNotDisturbEvent(device=dev(LINE_A), do_not_disturb_on=False))
    fwd = m.ForwardingEvent(
        device=dev(LINE_A),
        forwarding_type="forwardImmediate",
        forward_status=True,
        forward_to="tel:300",
    )
    feed(3.0, fwd)
    feed(3.5, fwd)
    feed(
        4.0,
        m.ForwardingEvent(
            device=dev(LINE_A),
            forwarding_type="forwardNoAns",
            forward_status=False,
            forward_to="tel:",
        ),
    )
    assert [(n.type, n.at, n.line, n.phone, n.data) for n in feed.notices] == [
        (N.DND_CHANGED, 1.0, LINE_A, PHONE_A, {"on": True}),
        (N.DND_CHANGED, 2.0, LINE_A, PHONE_A, {"on": False}),
        (
            N.FORWARDING_CHANGED,
            3.0,
            LINE_A,
            PHONE_A,
            {"type": "forwardImmediate", "on": True, "to": "300"},
        ),
        (
            N.FORWARDING_CHANGED,
            4.0,
            LINE_A,
            PHONE_A,
            {"type": "forwardNoAns", "on": False, "to": None},
        ),
    ]


# --- snapshots ---------------------------------------------------------------------------------


def test_snapshots_from_tracked_state() -> None:
    feed = Feed()
    feed(1.0, yl_ringing("1.1"))
    feed(2.0, yl_established("1.1"))
    feed(3.0, yl_held("1.1"))
    feed(4.0, yl_originated("1.2", remote=THIRD))
    feed(5.0, yl_ringback("1.2", remote=THIRD))
    assert feed.tracker.snapshot_device(LINE_A) == m.SnapshotDeviceResponse(
        snapshot_data=(
            SnapshotDeviceResponseInfo(
                connection_identifier=ConnectionID("1.1", LINE_A),
                endpoint_device=dev(EXT),
                local_connection_state=LCS.HOLD,
            ),
            SnapshotDeviceResponseInfo(
                connection_identifier=ConnectionID("1.2", LINE_A),
                endpoint_device=dev(THIRD),
                local_connection_state=LCS.CONNECTED,
            ),
        )
    )
    assert feed.tracker.snapshot_device(LINE_B) == m.SnapshotDeviceResponse()
    assert feed.tracker.snapshot_call("1.2") == m.SnapshotCallResponse(
        snapshot_data=(
            SnapshotCallResponseInfo(
                device_on_call=dev(LINE_A),
                call_identifier=ConnectionID("1.2", LINE_A),
                local_connection_state=LCS.CONNECTED,
            ),
            SnapshotCallResponseInfo(
                device_on_call=dev(THIRD),
                call_identifier=ConnectionID("1.2", THIRD),
                local_connection_state=LCS.ALERTING,
            ),
        )
    )
    assert feed.tracker.snapshot_call("9.9") is None


# --- Yealink documents decoded -----------------------------------------------------------------

ED5 = "http://www.ecma-international.org/standards/ecma-323/csta/ed5"


def yealink_doc(body: str) -> m.CstaEvent:
    """A document as the firmware writes it (pugixml: declaration, tabs, ed5 namespace)."""
    event = codec.decode(f'<?xml version="1.0" encoding="utf-8"?>\n{body}'.encode())
    assert isinstance(event, m.CstaEvent)
    return event


def test_yealink_documents_blind_transfer() -> None:
    # Written after the behaviour doc's event table: Delivered (incoming), Established,
    # TransferedEvent (misspelled root). Call IDs as the phone writes them.
    docs = [
        f"""<DeliveredEvent xmlns="{ED5}">
\t<monitorCrossRefID>0</monitorCrossRefID>
\t<connection><callID>12</callID><deviceID>sip:100@pbx.example</deviceID></connection>
\t<alertingDevice><deviceIdentifier>sip:100@pbx.example</deviceIdentifier></alertingDevice>
\t<callingDevice><deviceIdentifier>sip:+4930123@carrier.example</deviceIdentifier></callingDevice>
\t<calledDevice><deviceIdentifier>sip:100@pbx.example</deviceIdentifier></calledDevice>
\t<lastRedirectionDevice><notKnown /></lastRedirectionDevice>
\t<localConnectionInfo>alerting</localConnectionInfo>
\t<cause>normal</cause>
</DeliveredEvent>""",
        f"""<EstablishedEvent xmlns="{ED5}">
\t<monitorCrossRefID>0</monitorCrossRefID>
\t<establishedConnection><callID>12</callID><deviceID>sip:100@pbx.example</deviceID></establishedConnection>
\t<answeringDevice><deviceIdentifier>sip:100@pbx.example</deviceIdentifier></answeringDevice>
\t<callingDevice><deviceIdentifier>sip:+4930123@carrier.example</deviceIdentifier></callingDevice>
\t<calledDevice><deviceIdentifier>sip:100@pbx.example</deviceIdentifier></calledDevice>
\t<lastRedirectionDevice><notKnown /></lastRedirectionDevice>
\t<localConnectionInfo>connected</localConnectionInfo>
\t<cause>normal</cause>
</EstablishedEvent>""",
        f"""<TransferedEvent xmlns="{ED5}">
\t<monitorCrossRefID>0</monitorCrossRefID>
\t<primaryOldCall><callID>12</callID><deviceID>sip:100@pbx.example</deviceID></primaryOldCall>
\t<transferringDevice><deviceIdentifier>sip:100@pbx.example</deviceIdentifier></transferringDevice>
\t<transferredToDevice><deviceIdentifier>sip:300@pbx.example</deviceIdentifier></transferredToDevice>
\t<transferredConnections><connectionListItem /></transferredConnections>
\t<localConnectionInfo>null</localConnectionInfo>
\t<cause>singleStepTransfer</cause>
</TransferedEvent>""",
    ]
    feed = Feed()
    for now, doc in zip((10.0, 12.0, 40.0), docs, strict=True):
        feed(now, yealink_doc(doc))
    assert records(feed) == [
        expect(
            "12",
            Direction.INCOMING,
            Outcome.TRANSFERRED,
            started=10.0,
            answered=12.0,
            ended=40.0,
            target="300",
            cause="singleStepTransfer",
        )
    ]
    assert feed.types() == [N.CALL_RINGING, N.CALL_ANSWERED, N.CALL_ENDED]


# --- devices -----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("value", "number", "name"),
    [
        ("sip:200@pbx.example:5060", "200", None),
        ("sips:200@pbx.example", "200", None),
        ("tel:+4930123;phone-context=example", "+4930123", None),
        ("sip:+4930123@carrier.example;user=phone", "+4930123", None),
        ('"Alice" <sip:200@pbx.example>', "200", "Alice"),
        ("N<302118840101>;displayNumber=302118840101;noa=nk", "302118840101", None),
        ("200", "200", None),
        ("", None, None),
        (None, None, None),
    ],
)
def test_split_device(value: str | None, number: str | None, name: str | None) -> None:
    assert split_device(value) == (number, name)


def test_a_yealink_line_with_tel_alias_knows_itself() -> None:
    # Yealink lists a line as "sip:" + user@server:port + ";tel=" + its CSTA tel URL.
    tracker = make_tracker()
    line = "sip:300@pbx.example:5060;tel=+4930300"
    tracker.line_added(PHONE_A, line)
    out = tracker.event(PHONE_A, line, yl_ringing("1.1", line="sip:300@pbx.example"), 1.0)
    assert [n.type for n in out.notices] == [N.CALL_RINGING]
    out = tracker.event(PHONE_A, LINE_B, yl_ringing("2.1", line=LINE_B, remote="tel:+4930300"), 1.0)
    assert [v.internal for v in tracker.calls(LINE_B)] == [True]


# --- properties --------------------------------------------------------------------------------

LINES = (LINE_A, LINE_B)
CALL_IDS = ("1", "2", "3", "1|2")
DEVICES = st.sampled_from((LINE_A, LINE_B, EXT, THIRD, None))
CAUSES = st.sampled_from(
    (None, "normalClearing", "busy", "callCancelled", "callForwardImmediate", "callPickup", "x")
)
STATES = st.sampled_from((None, "alerting", "connected", "hold", "fail", "null", "bogus"))


def _connection(draw: st.DrawFn) -> ConnectionID | None:
    call_id = draw(st.sampled_from((*CALL_IDS, None)))
    return draw(st.sampled_from((None, ConnectionID(call_id, draw(DEVICES)))))


def _device(draw: st.DrawFn) -> DeviceIdentifier | None:
    value = draw(DEVICES)
    return None if value is None else DeviceIdentifier(value)


@st.composite
def events(draw: st.DrawFn) -> m.CstaEvent:
    c, d, cause, lci = _connection(draw), _device(draw), draw(CAUSES), draw(STATES)
    other = _connection(draw)
    kind = draw(st.integers(0, 13))
    return [
        lambda: m.DeliveredEvent(
            connection=c, alerting_device=d, calling_device=_device(draw), local_connection_info=lci
        ),
        lambda: m.EstablishedEvent(
            established_connection=c, answering_device=d, calling_device=_device(draw)
        ),
        lambda: m.ServiceInitiatedEvent(initiated_connection=c),
        lambda: m.OriginatedEvent(originated_connection=c, called_device=d),
        lambda: m.ConnectionClearedEvent(dropped_connection=c, releasing_device=d, cause=cause),
        lambda: m.CallClearedEvent(cleared_call=c, cause=cause),
        lambda: m.HeldEvent(held_connection=c, holding_device=d),
        lambda: m.RetrievedEvent(retrieved_connection=c, retrieving_device=d),
        lambda: m.DivertedEvent(
            connection=c, diverting_device=d, new_destination=_device(draw), cause=cause
        ),
        lambda: m.FailedEvent(
            failed_connection=c, calling_device=d, local_connection_info=lci, cause=cause
        ),
        lambda: m.TransferredEvent(
            primary_old_call=c, secondary_old_call=other, transferring_device=d, cause=cause
        ),
        lambda: m.ConferencedEvent(
            primary_old_call=c,
            secondary_old_call=other,
            conference_connections=(ConnectionListItem(new_connection=ConnectionID("9", None)),),
        ),
        lambda: m.DoNotDisturbEvent(do_not_disturb_on=draw(st.sampled_from((None, True, False)))),
        lambda: m.ForwardingEvent(forwarding_type="forwardBusy", forward_to=draw(DEVICES)),
    ][kind]()


@settings(max_examples=300, deadline=None)
@given(
    st.lists(
        st.tuples(st.sampled_from(LINES), events(), st.floats(0, 10)), min_size=1, max_size=40
    ),
    st.integers(1, 3),
)
def test_any_event_sequence_keeps_the_invariants(
    steps: list[tuple[str, m.CstaEvent, float]], max_calls: int
) -> None:
    feed = Feed(make_tracker(max_calls_per_line=max_calls, max_idle=50.0))
    now = 0.0
    for line, event, dt in steps:
        now += dt
        feed(now, event, line=line)
        feed.keep(feed.tracker.handle_timer(now))
        for each in LINES:
            assert len(feed.tracker.calls(each)) <= max_calls
    keys = [(r.line, r.call_id) for r in feed.records]
    assert len(keys) == len(set(keys)), "one record per call per line"
    once = [
        (n.type, n.line, n.call_id)
        for n in feed.notices
        if n.type in {N.CALL_RINGING, N.CALL_DIALING, N.CALL_ANSWERED}
    ]
    assert len(once) == len(set(once)), "ringing, dialing, answered: once per call per line"
    ended_notices_carry_records(feed)
    for record in feed.records:
        assert record.started <= (record.answered or record.started) <= record.ended
    feed.keep(feed.tracker.phone_lost(PHONE_A, now + 1))
    assert [v for v in feed.tracker.calls() if v.phone == PHONE_A] == []
    keys = [(r.line, r.call_id) for r in feed.records]
    assert len(keys) == len(set(keys))


def test_a_phone_that_always_names_itself_releasing_reports_missed_calls() -> None:
    # Yealink: releasingDevice is the local account for every call end (behaviour doc,
    # events table), so a ringing call it reports cleared was most likely given up by the
    # caller: missed (a missed-call alert beats none); a refusal cause still says rejected.
    tracker = make_tracker()
    tracker.line_added(PHONE_A, LINE_A, names_releasing_device=False)
    feed = Feed(tracker)
    feed(1.0, yl_ringing("1.40"))
    feed(9.0, yl_cleared("1.40"))
    feed(10.0, yl_ringing("1.41"))
    feed(
        12.0,
        m.ConnectionClearedEvent(
            dropped_connection=ConnectionID("1.41", LINE_A),
            releasing_device=dev(LINE_A),
            cause=EventCause.BUSY,  # declined with 486 Busy Here
        ),
    )
    assert [(r.call_id, r.outcome) for r in feed.records] == [
        ("1.40", Outcome.MISSED),
        ("1.41", Outcome.REJECTED),
    ]
    assert N.CALL_MISSED in feed.types()
    # The same events from a phone that names who hung up: the line declined the first.
    other = Feed()
    other(1.0, yl_ringing("1.40"))
    other(9.0, yl_cleared("1.40"))
    assert [r.outcome for r in other.records] == [Outcome.REJECTED]
