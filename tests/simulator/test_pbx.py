"""Simulated phones connected by the simulated PBX: exact event flows on every side."""

from __future__ import annotations

from dataclasses import dataclass

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from uacsta.csta import codec
from uacsta.csta import messages as m
from uacsta.csta.codec import Edition
from uacsta.csta.types import (
    ConnectionID,
    ConnectionListItem,
    DeviceIdentifier,
    EventCause,
    ForwardingType,
    LocalConnectionState,
    SnapshotCallResponseInfo,
)
from uacsta.simulator import Leg, SimPbx, SimPhone, personality

LCS = LocalConnectionState
EC = EventCause
A = "sip:100@sim.test"  # yealink, callIDs 1, 2, ...; monitor xref "1"
B = "sip:200@sim.test"  # snom, callIDs -1, -2, ...; monitor xref "1"
C = "sip:300@sim.test;user=phone"  # mitel, callIDs 00000001, ...; monitor xref "mon1"
G = "sip:400@sim.test"  # generic (full ECMA-269 phone)
X = "sip:0301234@sim.test"  # outside number


def D(device: str) -> DeviceIdentifier:
    return DeviceIdentifier(device)


def cid(call_id: str, device: str) -> ConnectionID:
    return ConnectionID(call_id, device)


@dataclass
class Sim:
    pbx: SimPbx
    a: SimPhone
    b: SimPhone
    c: SimPhone
    g: SimPhone


def sim(external_answer_delay: float | None = None) -> Sim:
    pbx = SimPbx("sim.test", external_answer_delay=external_answer_delay)
    phones = [
        SimPhone("805EC0000001", personality("yealink"), ["100"], "sim.test", pbx=pbx),
        SimPhone("000413000002", personality("snom"), ["200"], "sim.test", pbx=pbx),
        SimPhone("00085D000003", personality("mitel"), ["300"], "sim.test", pbx=pbx),
        SimPhone("02005E000004", personality("generic"), ["400"], "sim.test", pbx=pbx),
    ]
    for phone in phones:  # the minimal CSTA peer monitors every line first
        ok(phone, m.MonitorStart(monitor_object=phone.lines[0].device_id))
    return Sim(pbx, *phones)


def ok(phone: SimPhone, request: m.CstaRequest, now: float = 0.0) -> m.CstaResponse:
    reply = phone.handle_request(request, now)
    assert reply.response is not None
    assert not isinstance(reply.response, m.CSTAErrorCode), reply.response
    assert codec.decode(codec.encode(reply.response, reply.edition)) == reply.response
    return reply.response


def ev(phone: SimPhone) -> list[m.CstaEvent]:
    """The phone's events; each must survive an ed3 encode/decode round trip."""
    events = phone.drain_events()
    for event in events:
        assert codec.decode(codec.encode(event, Edition.ED3)) == event
    return events


def snap(phone: SimPhone) -> list[tuple[ConnectionID | None, object]]:
    response = ok(phone, m.SnapshotDevice(snapshot_object=phone.lines[0].device_id))
    assert isinstance(response, m.SnapshotDeviceResponse)
    return [(i.connection_identifier, i.local_connection_state) for i in response.snapshot_data]


def connect_a_to_b(s: Sim) -> None:
    """A (yealink) calls B (snom) with MakeCall, B answers with AnswerCall."""
    ok(s.a, m.MakeCall(calling_device=A, called_directory_number="200"))
    ok(s.b, m.AnswerCall(call_to_be_answered=cid("-1", B)))
    ev(s.a), ev(s.b)


def test_make_call_answer_clear_exact_events_both_sides() -> None:
    s = sim()
    made = ok(s.a, m.MakeCall(calling_device=A, called_directory_number="200"))
    assert made == m.MakeCallResponse(calling_device=cid("1", A))
    assert ev(s.a) == [
        m.ServiceInitiatedEvent(
            monitor_cross_ref_id="1",
            initiated_connection=cid("1", A),
            initiating_device=D(A),
            local_connection_info=LCS.INITIATED,
            cause=EC.MAKE_CALL,
        ),
        m.OriginatedEvent(
            monitor_cross_ref_id="1",
            originated_connection=cid("1", A),
            calling_device=D(A),
            called_device=D(B),
            local_connection_info=LCS.CONNECTED,
            cause=EC.MAKE_CALL,
        ),
        m.DeliveredEvent(
            monitor_cross_ref_id="1",
            connection=cid("1", B),
            alerting_device=D(B),
            calling_device=D(A),
            called_device=D(B),
            local_connection_info=LCS.CONNECTED,
            cause=EC.NEW_CALL,
        ),
    ]
    assert ev(s.b) == [
        m.DeliveredEvent(
            monitor_cross_ref_id="1",
            connection=cid("-1", B),
            alerting_device=D(B),
            calling_device=D(A),
            called_device=D(B),
            local_connection_info=LCS.ALERTING,
            cause=EC.NEW_CALL,
        )
    ]
    assert snap(s.a) == [(cid("1", A), LCS.CONNECTED)]
    assert snap(s.b) == [(cid("-1", B), LCS.ALERTING)]

    assert ok(s.b, m.AnswerCall(call_to_be_answered=cid("-1", B))) == m.AnswerCallResponse()
    established = {
        "answering_device": D(B),
        "calling_device": D(A),
        "called_device": D(B),
        "local_connection_info": LCS.CONNECTED,
        "cause": EC.NEW_CALL,
    }
    assert ev(s.b) == [
        m.EstablishedEvent(
            monitor_cross_ref_id="1", established_connection=cid("-1", B), **established
        )
    ]
    assert ev(s.a) == [
        m.EstablishedEvent(
            monitor_cross_ref_id="1", established_connection=cid("1", B), **established
        )
    ]
    assert snap(s.a) == [(cid("1", A), LCS.CONNECTED)]
    assert snap(s.b) == [(cid("-1", B), LCS.CONNECTED)]

    assert ok(s.a, m.ClearConnection(connection_to_be_cleared=cid("1", A))) == (
        m.ClearConnectionResponse()
    )
    assert ev(s.a) == [
        m.ConnectionClearedEvent(
            monitor_cross_ref_id="1",
            dropped_connection=cid("1", A),
            releasing_device=D(A),
            local_connection_info=LCS.NULL,
            cause=EC.NORMAL_CLEARING,
        )
    ]
    assert ev(s.b) == [
        m.ConnectionClearedEvent(
            monitor_cross_ref_id="1",
            dropped_connection=cid("-1", A),
            releasing_device=D(A),
            local_connection_info=LCS.NULL,
            cause=EC.NORMAL_CLEARING,
        )
    ]
    assert snap(s.a) == snap(s.b) == []
    assert s.pbx.calls == []


def test_manual_dial_and_scripted_answer_hangup() -> None:
    s = sim()
    s.c.dial("100", 1.0)
    assert [type(e) for e in ev(s.c)] == [
        m.ServiceInitiatedEvent,
        m.OriginatedEvent,
        m.DeliveredEvent,
    ]
    assert s.a.answer("100", 2.0)
    assert not s.a.answer("100", 2.0)
    (delivered, established) = ev(s.a)
    assert delivered == m.DeliveredEvent(
        monitor_cross_ref_id="1",
        connection=cid("1", A),
        alerting_device=D(A),
        calling_device=D(C),
        called_device=D(A),
        local_connection_info=LCS.ALERTING,
        cause=EC.NEW_CALL,
    )
    assert isinstance(established, m.EstablishedEvent)
    (c_est,) = ev(s.c)
    assert c_est == m.EstablishedEvent(
        monitor_cross_ref_id="mon1",
        established_connection=cid("00000001", A),
        answering_device=D(A),
        calling_device=D(C),
        called_device=D(A),
        local_connection_info=LCS.CONNECTED,
        cause=EC.NEW_CALL,
    )
    assert s.a.hangup("100", 3.0)
    assert not s.a.hangup("100", 3.0)
    assert ev(s.c) == [
        m.ConnectionClearedEvent(
            monitor_cross_ref_id="mon1",
            dropped_connection=cid("00000001", A),
            releasing_device=D(A),
            local_connection_info=LCS.NULL,
            cause=EC.NORMAL_CLEARING,
        )
    ]


def test_service_initiated_cause_new_call_for_manual_dial() -> None:
    s = sim()
    s.a.dial("200", 0.0)
    first = ev(s.a)[0]
    assert isinstance(first, m.ServiceInitiatedEvent) and first.cause == EC.NEW_CALL


def test_hold_retrieve_seen_on_both_sides() -> None:
    s = sim()
    connect_a_to_b(s)
    assert ok(s.a, m.HoldCall(call_to_be_held=cid("1", A))) == m.HoldCallResponse()
    assert ev(s.a) == [
        m.HeldEvent(
            monitor_cross_ref_id="1",
            held_connection=cid("1", A),
            holding_device=D(A),
            local_connection_info=LCS.HOLD,
        )
    ]
    assert ev(s.b) == [
        m.HeldEvent(
            monitor_cross_ref_id="1",
            held_connection=cid("-1", A),
            holding_device=D(A),
            local_connection_info=LCS.CONNECTED,
        )
    ]
    assert snap(s.a) == [(cid("1", A), LCS.HOLD)]
    assert snap(s.b) == [(cid("-1", B), LCS.CONNECTED)]
    assert ok(s.a, m.RetrieveCall(call_to_be_retrieved=cid("1", A))) == m.RetrieveCallResponse()
    assert ev(s.a) == [
        m.RetrievedEvent(
            monitor_cross_ref_id="1",
            retrieved_connection=cid("1", A),
            retrieving_device=D(A),
            local_connection_info=LCS.CONNECTED,
        )
    ]
    assert ev(s.b) == [
        m.RetrievedEvent(
            monitor_cross_ref_id="1",
            retrieved_connection=cid("-1", A),
            retrieving_device=D(A),
            local_connection_info=LCS.CONNECTED,
        )
    ]


def test_consultation_then_transfer_three_parties() -> None:
    s = sim()
    connect_a_to_b(s)
    consult = ok(s.a, m.ConsultationCall(existing_call=cid("1", A), consulted_device="300"))
    assert consult == m.ConsultationCallResponse(initiated_call=cid("2", A))
    assert ev(s.a) == [
        m.HeldEvent(
            monitor_cross_ref_id="1",
            held_connection=cid("1", A),
            holding_device=D(A),
            local_connection_info=LCS.HOLD,
            cause=EC.CONSULTATION,
        ),
        m.ServiceInitiatedEvent(
            monitor_cross_ref_id="1",
            initiated_connection=cid("2", A),
            initiating_device=D(A),
            local_connection_info=LCS.INITIATED,
            cause=EC.CONSULTATION,
        ),
        m.OriginatedEvent(
            monitor_cross_ref_id="1",
            originated_connection=cid("2", A),
            calling_device=D(A),
            called_device=D(C),
            local_connection_info=LCS.CONNECTED,
            cause=EC.CONSULTATION,
        ),
        m.DeliveredEvent(
            monitor_cross_ref_id="1",
            connection=cid("2", C),
            alerting_device=D(C),
            calling_device=D(A),
            called_device=D(C),
            local_connection_info=LCS.CONNECTED,
            cause=EC.NEW_CALL,
        ),
    ]
    assert [type(e) for e in ev(s.b)] == [m.HeldEvent]
    assert [type(e) for e in ev(s.c)] == [m.DeliveredEvent]
    s.c.answer(None, 1.0)
    ev(s.a), ev(s.c)
    assert snap(s.a) == [(cid("1", A), LCS.HOLD), (cid("2", A), LCS.CONNECTED)]

    transferred = ok(s.a, m.TransferCall(held_call=cid("1", A), active_call=cid("2", A)))
    assert transferred == m.TransferCallResponse(transferred_call=cid("1", C))
    assert ev(s.a) == [
        m.TransferredEvent(
            monitor_cross_ref_id="1",
            primary_old_call=cid("1", A),
            secondary_old_call=cid("2", A),
            transferring_device=D(A),
            transferred_to_device=D(C),
            local_connection_info=LCS.NULL,
            cause=EC.TRANSFER,
        )
    ]
    assert ev(s.b) == [
        m.TransferredEvent(
            monitor_cross_ref_id="1",
            primary_old_call=cid("-1", A),
            transferring_device=D(A),
            transferred_to_device=D(C),
            transferred_connections=(
                ConnectionListItem(
                    new_connection=cid("-1", C), old_connection=cid("-1", A), endpoint=D(C)
                ),
            ),
            local_connection_info=LCS.CONNECTED,
            cause=EC.TRANSFER,
        )
    ]
    assert ev(s.c) == [
        m.TransferredEvent(
            monitor_cross_ref_id="mon1",
            primary_old_call=cid("00000001", A),
            transferring_device=D(A),
            transferred_to_device=D(C),
            transferred_connections=(
                ConnectionListItem(
                    new_connection=cid("00000001", B),
                    old_connection=cid("00000001", A),
                    endpoint=D(B),
                ),
            ),
            local_connection_info=LCS.CONNECTED,
            cause=EC.TRANSFER,
        )
    ]
    assert snap(s.a) == []
    assert snap(s.b) == [(cid("-1", B), LCS.CONNECTED)]
    assert snap(s.c) == [(cid("00000001", C), LCS.CONNECTED)]
    # B and C now talk to each other: C hangs up, B's call ends.
    ok(s.c, m.ClearConnection(connection_to_be_cleared=cid("00000001", C)))
    assert ev(s.b) == [
        m.ConnectionClearedEvent(
            monitor_cross_ref_id="1",
            dropped_connection=cid("-1", C),
            releasing_device=D(C),
            local_connection_info=LCS.NULL,
            cause=EC.NORMAL_CLEARING,
        )
    ]
    assert s.pbx.calls == []


def test_conference_three_parties_then_one_leaves() -> None:
    s = sim()
    connect_a_to_b(s)
    ok(s.a, m.ConsultationCall(existing_call=cid("1", A), consulted_device="300"))
    ok(s.c, m.AnswerCall(call_to_be_answered=cid("00000001", C)))
    ev(s.a), ev(s.b), ev(s.c)
    conf = ok(s.a, m.ConferenceCall(held_call=cid("1", A), active_call=cid("2", A)))
    items = (
        ConnectionListItem(new_connection=cid("1", B), old_connection=cid("1", B), endpoint=D(B)),
        ConnectionListItem(new_connection=cid("1", C), old_connection=cid("2", C), endpoint=D(C)),
    )
    assert conf == m.ConferenceCallResponse(conference_call=cid("1", A), connections=items)
    assert ev(s.a) == [
        m.ConferencedEvent(
            monitor_cross_ref_id="1",
            primary_old_call=cid("1", A),
            secondary_old_call=cid("2", A),
            conferencing_device=D(A),
            added_party=D(C),
            conference_connections=items,
            local_connection_info=LCS.CONNECTED,
            cause=EC.CONFERENCE,
        )
    ]
    assert ev(s.b) == [
        m.ConferencedEvent(
            monitor_cross_ref_id="1",
            primary_old_call=cid("-1", A),
            conferencing_device=D(A),
            added_party=D(C),
            conference_connections=(
                ConnectionListItem(new_connection=cid("-1", C), endpoint=D(C)),
            ),
            local_connection_info=LCS.CONNECTED,
            cause=EC.CONFERENCE,
        )
    ]
    assert ev(s.c) == [
        m.ConferencedEvent(
            monitor_cross_ref_id="mon1",
            primary_old_call=cid("00000001", A),
            conferencing_device=D(A),
            added_party=D(C),
            conference_connections=(
                ConnectionListItem(new_connection=cid("00000001", B), endpoint=D(B)),
            ),
            local_connection_info=LCS.CONNECTED,
            cause=EC.CONFERENCE,
        )
    ]
    assert snap(s.a) == [(cid("1", A), LCS.CONNECTED)]
    # B leaves: the conference goes on as A + C.
    s.b.hangup(None, 5.0)
    cleared = {
        "releasing_device": D(B),
        "local_connection_info": LCS.CONNECTED,
        "cause": EC.NORMAL_CLEARING,
    }
    assert ev(s.a) == [
        m.ConnectionClearedEvent(
            monitor_cross_ref_id="1", dropped_connection=cid("1", B), **cleared
        )
    ]
    assert ev(s.c) == [
        m.ConnectionClearedEvent(
            monitor_cross_ref_id="mon1", dropped_connection=cid("00000001", B), **cleared
        )
    ]
    assert snap(s.a) == [(cid("1", A), LCS.CONNECTED)]
    assert snap(s.c) == [(cid("00000001", C), LCS.CONNECTED)]


def test_single_step_transfer() -> None:
    s = sim()
    connect_a_to_b(s)
    sst = ok(s.a, m.SingleStepTransferCall(active_call=cid("1", A), transferred_to="300"))
    assert sst == m.SingleStepTransferCallResponse(transferred_call=cid("1", C))
    assert ev(s.a) == [
        m.TransferredEvent(
            monitor_cross_ref_id="1",
            primary_old_call=cid("1", A),
            transferring_device=D(A),
            transferred_to_device=D(C),
            local_connection_info=LCS.NULL,
            cause=EC.SINGLE_STEP_TRANSFER,
        )
    ]
    delivered = {
        "alerting_device": D(C),
        "calling_device": D(B),
        "called_device": D(C),
        "last_redirection_device": D(A),
        "cause": EC.SINGLE_STEP_TRANSFER,
    }
    assert ev(s.b) == [
        m.TransferredEvent(
            monitor_cross_ref_id="1",
            primary_old_call=cid("-1", A),
            transferring_device=D(A),
            transferred_to_device=D(C),
            local_connection_info=LCS.CONNECTED,
            cause=EC.SINGLE_STEP_TRANSFER,
        ),
        m.DeliveredEvent(
            monitor_cross_ref_id="1",
            connection=cid("-1", C),
            local_connection_info=LCS.CONNECTED,
            **delivered,
        ),
    ]
    assert ev(s.c) == [
        m.DeliveredEvent(
            monitor_cross_ref_id="mon1",
            connection=cid("00000001", C),
            local_connection_info=LCS.ALERTING,
            **delivered,
        )
    ]
    s.c.answer(None, 1.0)
    (est,) = ev(s.b)
    assert isinstance(est, m.EstablishedEvent)
    assert est.established_connection == cid("-1", C)


def test_deflect_ringing_call() -> None:
    s = sim()
    ok(s.a, m.MakeCall(calling_device=A, called_directory_number="200"))
    ev(s.a), ev(s.b)
    ok(s.b, m.DeflectCall(call_to_be_diverted=cid("-1", B), new_destination="300"))
    diverted = {
        "diverting_device": D(B),
        "new_destination": D(C),
        "calling_device": D(A),
        "called_device": D(B),
        "cause": EC.REDIRECTED,
    }
    assert ev(s.b) == [
        m.DivertedEvent(
            monitor_cross_ref_id="1",
            connection=cid("-1", B),
            local_connection_info=LCS.NULL,
            **diverted,
        )
    ]
    delivered = {
        "alerting_device": D(C),
        "calling_device": D(A),
        "called_device": D(B),
        "last_redirection_device": D(B),
        "cause": EC.REDIRECTED,
    }
    assert ev(s.a) == [
        m.DivertedEvent(
            monitor_cross_ref_id="1",
            connection=cid("1", B),
            local_connection_info=LCS.CONNECTED,
            **diverted,
        ),
        m.DeliveredEvent(
            monitor_cross_ref_id="1",
            connection=cid("1", C),
            local_connection_info=LCS.CONNECTED,
            **delivered,
        ),
    ]
    assert ev(s.c) == [
        m.DeliveredEvent(
            monitor_cross_ref_id="mon1",
            connection=cid("00000001", C),
            local_connection_info=LCS.ALERTING,
            **delivered,
        )
    ]
    assert snap(s.b) == []


def test_dnd_on_callee_fails_the_caller() -> None:
    s = sim()
    ok(s.b, m.SetDoNotDisturb(device=B, do_not_disturb_on=True))
    ev(s.b)
    ok(s.a, m.MakeCall(calling_device=A, called_directory_number="200"))
    assert ev(s.a)[2:] == [
        m.FailedEvent(
            monitor_cross_ref_id="1",
            failed_connection=cid("1", B),
            failing_device=D(B),
            calling_device=D(A),
            called_device=D(B),
            local_connection_info=LCS.FAIL,
            cause=EC.DO_NOT_DISTURB,
        )
    ]
    assert ev(s.b) == []
    assert snap(s.a) == [(cid("1", A), LCS.FAIL)]
    ok(s.a, m.ClearConnection(connection_to_be_cleared=cid("1", A)))
    assert ev(s.a) == [
        m.ConnectionClearedEvent(
            monitor_cross_ref_id="1",
            dropped_connection=cid("1", A),
            releasing_device=D(A),
            local_connection_info=LCS.NULL,
            cause=EC.NORMAL_CLEARING,
        )
    ]
    assert s.pbx.calls == []


def test_immediate_forwarding_diverts_to_destination() -> None:
    s = sim()
    ok(
        s.b,
        m.SetForwarding(
            device=B,
            activate_forward=True,
            forwarding_type=ForwardingType.FORWARD_IMMEDIATE,
            forward_dn="300",
        ),
    )
    ev(s.b)
    ok(s.a, m.MakeCall(calling_device=A, called_directory_number="200"))
    diverted = {
        "diverting_device": D(B),
        "new_destination": D(C),
        "calling_device": D(A),
        "called_device": D(B),
        "cause": EC.CALL_FORWARD_IMMEDIATE,
    }
    assert ev(s.b) == [
        m.DivertedEvent(
            monitor_cross_ref_id="1",
            connection=cid("-1", B),
            local_connection_info=LCS.NULL,
            **diverted,
        )
    ]
    a_events = ev(s.a)
    assert a_events[2:] == [
        m.DivertedEvent(
            monitor_cross_ref_id="1",
            connection=cid("1", B),
            local_connection_info=LCS.CONNECTED,
            **diverted,
        ),
        m.DeliveredEvent(
            monitor_cross_ref_id="1",
            connection=cid("1", C),
            alerting_device=D(C),
            calling_device=D(A),
            called_device=D(B),
            last_redirection_device=D(B),
            local_connection_info=LCS.CONNECTED,
            cause=EC.CALL_FORWARD_IMMEDIATE,
        ),
    ]
    (c_delivered,) = ev(s.c)
    assert isinstance(c_delivered, m.DeliveredEvent)
    assert c_delivered.local_connection_info == LCS.ALERTING
    assert c_delivered.last_redirection_device == D(B)
    assert snap(s.b) == []


def test_forwarding_loop_fails() -> None:
    s = sim()
    s.b.set_forwarding("200", ForwardingType.FORWARD_IMMEDIATE, True, "300")
    s.c.set_forwarding("300", ForwardingType.FORWARD_IMMEDIATE, True, "200")
    s.a.dial("200", 0.0)
    last = ev(s.a)[-1]
    assert isinstance(last, m.FailedEvent) and last.cause == EC.DEST_NOT_OBTAINABLE


def test_busy_and_busy_forwarding() -> None:
    s = sim()
    s.b.lines[0].call_waiting = False
    connect_a_to_b(s)
    s.c.dial("200", 0.0)
    failed = ev(s.c)[-1]
    assert isinstance(failed, m.FailedEvent) and failed.cause == EC.BUSY
    assert failed.failed_connection == cid("00000001", B)
    s.c.hangup(None, 0.0)
    s.b.set_forwarding(None, ForwardingType.FORWARD_BUSY, True, "400")
    ev(s.b), ev(s.c)
    s.c.dial("200", 1.0)
    c_events = ev(s.c)
    assert [type(e) for e in c_events[2:]] == [m.DivertedEvent, m.DeliveredEvent]
    assert c_events[-1].cause == EC.CALL_FORWARD_BUSY  # type: ignore[attr-defined]
    (g_delivered,) = ev(s.g)
    assert isinstance(g_delivered, m.DeliveredEvent)
    assert g_delivered.alerting_device == D(G)


def test_no_answer_forwarding_by_timer() -> None:
    s = sim()
    s.pbx.no_answer_timeout = 15.0
    s.b.set_forwarding(None, ForwardingType.FORWARD_NO_ANS, True, "300")
    ev(s.b)
    s.a.dial("200", 100.0)
    ev(s.a), ev(s.b)
    assert s.pbx.get_timer() == 115.0
    s.pbx.handle_timer(114.0)
    assert ev(s.b) == []
    s.pbx.handle_timer(115.0)
    (diverted,) = ev(s.b)
    assert isinstance(diverted, m.DivertedEvent)
    assert diverted.cause == EC.CALL_FORWARD_NO_ANSWER
    assert [type(e) for e in ev(s.a)] == [m.DivertedEvent, m.DeliveredEvent]
    assert s.pbx.get_timer() is None


def test_no_answer_timer_cancelled_by_answer() -> None:
    s = sim()
    s.b.set_forwarding(None, ForwardingType.FORWARD_NO_ANS, True, "300")
    s.a.dial("200", 0.0)
    s.b.answer(None, 1.0)
    assert s.pbx.get_timer() is None


def test_external_number_answers_after_delay() -> None:
    s = sim(external_answer_delay=3.0)
    ok(s.a, m.MakeCall(calling_device=A, called_directory_number="0301234"), now=10.0)
    assert ev(s.a)[2] == m.DeliveredEvent(
        monitor_cross_ref_id="1",
        connection=cid("1", X),
        alerting_device=D(X),
        calling_device=D(A),
        called_device=D(X),
        local_connection_info=LCS.CONNECTED,
        cause=EC.NEW_CALL,
    )
    assert s.pbx.get_timer() == 13.0
    s.pbx.handle_timer(12.9)
    assert ev(s.a) == []
    s.pbx.handle_timer(13.0)
    assert ev(s.a) == [
        m.EstablishedEvent(
            monitor_cross_ref_id="1",
            established_connection=cid("1", X),
            answering_device=D(X),
            calling_device=D(A),
            called_device=D(X),
            local_connection_info=LCS.CONNECTED,
            cause=EC.NEW_CALL,
        )
    ]
    assert s.pbx.get_timer() is None
    assert s.pbx.external_hangup("0301234", 20.0)
    assert ev(s.a) == [
        m.ConnectionClearedEvent(
            monitor_cross_ref_id="1",
            dropped_connection=cid("1", X),
            releasing_device=D(X),
            local_connection_info=LCS.NULL,
            cause=EC.NORMAL_CLEARING,
        )
    ]
    assert not s.pbx.external_hangup("0301234", 20.0)


def test_external_number_rings_forever_and_scripted_answer() -> None:
    s = sim()
    s.a.dial("0301234", 0.0)
    assert s.pbx.get_timer() is None
    assert s.pbx.external_answer("sip:0301234@elsewhere", 50.0)
    assert not s.pbx.external_answer("0301234", 50.0)
    assert snap(s.a) == [(cid("1", A), LCS.CONNECTED)]
    s.pbx.busy_numbers.add("0309999")
    s.b.dial("0309999", 0.0)
    failed = ev(s.b)[-1]
    assert isinstance(failed, m.FailedEvent) and failed.cause == EC.BUSY


def test_incoming_outside_call_and_snapshot_call() -> None:
    s = sim()
    s.pbx.incoming_call("400", "0301234", 0.0)
    assert ev(s.g) == [
        m.DeliveredEvent(
            monitor_cross_ref_id="1",
            connection=cid("1", G),
            alerting_device=D(G),
            calling_device=D(X),
            called_device=D(G),
            local_connection_info=LCS.ALERTING,
            cause=EC.NEW_CALL,
        )
    ]
    assert ok(s.g, m.SnapshotCall(snapshot_object=cid("1", G))) == m.SnapshotCallResponse(
        snapshot_data=(
            SnapshotCallResponseInfo(
                device_on_call=D(X),
                call_identifier=cid("1", X),
                local_connection_state=LCS.CONNECTED,
            ),
            SnapshotCallResponseInfo(
                device_on_call=D(G),
                call_identifier=cid("1", G),
                local_connection_state=LCS.ALERTING,
            ),
        )
    )
    ok(s.g, m.AnswerCall(call_to_be_answered=cid("1", G)))
    ev(s.g)
    # An outside caller to a DND phone is simply turned away.
    s.b.set_dnd(None, True)
    ev(s.b)
    s.pbx.incoming_call("200", "0307777", 0.0)
    assert ev(s.b) == []
    assert len(s.pbx.calls) == 1


def test_offline_callee_fails() -> None:
    s = sim()
    s.b.online = False
    s.a.dial("200", 0.0)
    failed = ev(s.a)[-1]
    assert isinstance(failed, m.FailedEvent) and failed.cause == EC.DEST_OUT_OF_ORDER


def test_alternate_call_native_on_generic_phone_and_clear_call() -> None:
    s = sim()
    ok(s.g, m.MakeCall(calling_device=G, called_directory_number="100"))
    s.a.answer(None, 0.0)
    ok(s.g, m.ConsultationCall(existing_call=cid("1", G), consulted_device="200"))
    s.b.answer(None, 0.0)
    ev(s.a), ev(s.b), ev(s.g)
    ok(s.g, m.AlternateCall(held_call=cid("1", G), active_call=cid("2", G)))
    assert ev(s.g) == [
        m.HeldEvent(
            monitor_cross_ref_id="1",
            held_connection=cid("2", G),
            holding_device=D(G),
            local_connection_info=LCS.HOLD,
            cause=EC.ALTERNATE,
        ),
        m.RetrievedEvent(
            monitor_cross_ref_id="1",
            retrieved_connection=cid("1", G),
            retrieving_device=D(G),
            local_connection_info=LCS.CONNECTED,
            cause=EC.ALTERNATE,
        ),
    ]
    assert [type(e) for e in ev(s.a)] == [m.RetrievedEvent]
    assert [type(e) for e in ev(s.b)] == [m.HeldEvent]
    assert snap(s.g) == [(cid("1", G), LCS.CONNECTED), (cid("2", G), LCS.HOLD)]
    ok(s.g, m.ClearCall(call_to_be_cleared=cid("1", G)))
    assert ev(s.g) == [
        m.CallClearedEvent(
            monitor_cross_ref_id="1",
            cleared_call=ConnectionID("1"),
            cause=EC.NORMAL_CLEARING,
        )
    ]
    assert ev(s.a) == [
        m.CallClearedEvent(
            monitor_cross_ref_id="1",
            cleared_call=ConnectionID("1"),
            cause=EC.NORMAL_CLEARING,
        )
    ]
    assert snap(s.g) == [(cid("2", G), LCS.HOLD)]


def test_answer_and_retrieve_put_the_other_call_on_hold() -> None:
    s = sim()
    connect_a_to_b(s)
    s.c.dial("100", 0.0)
    ev(s.a)
    ok(s.a, m.AnswerCall(call_to_be_answered=cid("2", A)))
    assert [type(e) for e in ev(s.a)] == [m.HeldEvent, m.EstablishedEvent]
    assert snap(s.a) == [(cid("1", A), LCS.HOLD), (cid("2", A), LCS.CONNECTED)]
    ok(s.a, m.RetrieveCall(call_to_be_retrieved=cid("1", A)))
    assert [type(e) for e in ev(s.a)] == [m.HeldEvent, m.RetrievedEvent]
    assert snap(s.a) == [(cid("1", A), LCS.CONNECTED), (cid("2", A), LCS.HOLD)]
    # Transfer needs a held and an active call; the same call twice is refused.
    assert s.a.handle_request(
        m.TransferCall(held_call=cid("2", A), active_call=cid("2", A)), 0.0
    ).response == m.CSTAErrorCode.state_incompatibility("noActiveCall")


def test_generate_digits() -> None:
    s = sim()
    connect_a_to_b(s)
    ok(s.a, m.GenerateDigits(connection_to_send_digits=cid("1", A), characters_to_send="12#"))
    assert ev(s.a) == [
        m.DigitsGeneratedEvent(
            monitor_cross_ref_id="1", connection=cid("1", A), digit_generated_list="12#"
        )
    ]
    assert ev(s.b) == []


def test_yealink_stays_silent_on_make_call_while_ringing() -> None:
    s = sim()
    s.b.dial("100", 0.0)
    assert s.a.handle_request(m.MakeCall(calling_device=A, called_directory_number="300"), 0.0) == (
        s.a.handle_request(m.MakeCall(calling_device=A, called_directory_number="300"), 0.0)
    )
    reply = s.a.handle_request(m.MakeCall(calling_device=A, called_directory_number="300"), 0.0)
    assert reply.response is None
    # snom answers it
    s.c.dial("200", 0.0)
    assert isinstance(
        s.b.handle_request(
            m.MakeCall(calling_device=B, called_directory_number="400"), 0.0
        ).response,
        m.MakeCallResponse,
    )


def test_duplicate_number_refused() -> None:
    pbx = SimPbx("sim.test")
    SimPhone("805EC0000001", personality("yealink"), ["100"], "sim.test", pbx=pbx)
    try:
        SimPhone("805EC0000002", personality("yealink"), ["100"], "sim.test", pbx=pbx)
    except ValueError:
        pass
    else:
        raise AssertionError("duplicate number accepted")


# --- property: random scripts never raise and both sides stay consistent ----------------------

NUMBERS = ["100", "200", "300", "400", "0301234", "999"]


def _conn(phone: SimPhone, index: int) -> ConnectionID:
    legs = phone.legs()
    if not legs:
        return ConnectionID("nope", phone.lines[0].device_id)
    return legs[index % len(legs)].own


def _request(phone: SimPhone, kind: int, i: int, j: int, number: str) -> m.CstaRequest:
    dev = phone.lines[0].device_id
    c1, c2 = _conn(phone, i), _conn(phone, j)
    requests: list[m.CstaRequest] = [
        m.MakeCall(calling_device=dev, called_directory_number=number),
        m.AnswerCall(call_to_be_answered=c1),
        m.ClearConnection(connection_to_be_cleared=c1),
        m.ClearCall(call_to_be_cleared=c1),
        m.HoldCall(call_to_be_held=c1),
        m.RetrieveCall(call_to_be_retrieved=c1),
        m.AlternateCall(held_call=c1, active_call=c2),
        m.ConsultationCall(existing_call=c1, consulted_device=number),
        m.TransferCall(held_call=c1, active_call=c2),
        m.ConferenceCall(held_call=c1, active_call=c2),
        m.SingleStepTransferCall(active_call=c1, transferred_to=number),
        m.DeflectCall(call_to_be_diverted=c1, new_destination=number),
        m.GenerateDigits(connection_to_send_digits=c1, characters_to_send="5"),
        m.SetDoNotDisturb(device=dev, do_not_disturb_on=bool(i % 2)),
        m.SetForwarding(
            device=dev,
            activate_forward=bool(i % 2),
            forwarding_type=[
                ForwardingType.FORWARD_IMMEDIATE,
                ForwardingType.FORWARD_BUSY,
                ForwardingType.FORWARD_NO_ANS,
            ][j % 3],
            forward_dn=number,
        ),
        m.SnapshotDevice(snapshot_object=dev),
        m.SnapshotCall(snapshot_object=c1),
    ]
    return requests[kind % len(requests)]


def _check_consistent(s: Sim) -> None:
    phones = [s.a, s.b, s.c, s.g]
    for phone in phones:
        snapshot = snap(phone)
        assert snapshot == [(leg.own, leg.state) for leg in phone.legs()]
        for leg in phone.legs():
            assert leg.call is not None and leg in leg.call.parties
            assert leg.call in s.pbx.calls
            assert leg.state != LCS.NULL
    for call in s.pbx.calls:
        assert call.parties
        alerting = [p for p in call.parties if p.state == LCS.ALERTING]
        assert len(alerting) <= 1
        if len(call.parties) == 1:
            # Only a caller left alone: still dialling into nothing (failed).
            assert call.parties[0].state == LCS.FAIL
        if not alerting:
            # No one rings: everyone in the call is connected (or holding): both views agree.
            assert all(p.state in (LCS.CONNECTED, LCS.HOLD, LCS.FAIL) for p in call.parties)
            if len(call.parties) >= 2:
                assert all(p.state in (LCS.CONNECTED, LCS.HOLD) for p in call.parties)
        for party in call.parties:
            assert party.call is call
            if isinstance(party, Leg):
                assert party.phone in phones and party in party.phone.legs()


ACTION = st.tuples(
    st.integers(0, 3),  # phone
    st.integers(0, 29),  # request kind (>= 17: scripted action; 23-27: answer, made likely)
    st.integers(0, 5),
    st.integers(0, 5),
    st.sampled_from(NUMBERS),
)


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(ACTION, max_size=30))
def test_random_scripts_never_raise_and_stay_consistent(
    actions: list[tuple[int, int, int, int, str]],
) -> None:
    s = sim(external_answer_delay=2.0)
    s.pbx.no_answer_timeout = 3.0
    phones = [s.a, s.b, s.c, s.g]
    now = 0.0
    for who, kind, i, j, number in actions:
        now += 1.0
        phone = phones[who]
        if kind >= 28:
            # Join a held and an active call by state, so that three-party calls happen.
            held = [leg.own for leg in phone.legs() if leg.state == LCS.HOLD]
            active = [leg.own for leg in phone.legs() if leg.state == LCS.CONNECTED]
            if held and active:
                join = m.ConferenceCall if kind == 28 else m.TransferCall
                phone.handle_request(join(held_call=held[0], active_call=active[0]), now)
        elif kind == 17 or kind >= 23:
            phone.answer(None, now)
        elif kind == 18:
            phone.hangup(None, now)
        elif kind == 19:
            s.pbx.incoming_call(phone.lines[0].number, "0307777", now)
        elif kind == 20:
            s.pbx.external_hangup(number, now)
        elif kind == 21:
            timer = s.pbx.get_timer()
            if timer is not None:
                now = max(now, timer)
                s.pbx.handle_timer(now)
        elif kind == 22:
            s.pbx.external_answer(number, now)
        else:
            reply = phone.handle_request(_request(phone, kind, i, j, number), now)
            if reply.response is not None:
                encoded = codec.encode(reply.response, reply.edition)
                assert codec.decode(encoded) == reply.response
        for p in phones:
            ev(p)
        _check_consistent(s)
