"""Call IDs in one space across the switching function (issue 14 item 6), sans-IO.

Two phones both number their first call ``1`` (snom, Yealink and the others count per
phone); clients must see two different calls, and every call ID a client sends back must
reach its phone as the phone wrote it.
"""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from uacsta.csta import messages as m
from uacsta.csta.types import (
    ConnectionID,
    ConnectionListItem,
    DeviceIdentifier,
    SnapshotDeviceResponseInfo,
)
from uacsta.switch.callids import CallIdSpace
from uacsta.switch.function import FanOut, SwitchingFunction, ToClient, ToPhone

A_LINE = "sip:100@pbx.example"
B_LINE = "sip:200@pbx.example"
PA, PB = "AAAAAAAAAAAA", "BBBBBBBBBBBB"


def switch_with_monitors() -> tuple[SwitchingFunction, str, str]:
    sf = SwitchingFunction()
    sf.phone_ready(PA, [A_LINE])
    sf.phone_ready(PB, [B_LINE])
    xrefs = []
    for line, phone_xref in ((A_LINE, "1"), (B_LINE, "1")):  # both phones call it "1"
        actions = sf.client_request("c", line, m.MonitorStart(monitor_object=line))
        (start,) = [a for a in actions if isinstance(a, ToPhone)]
        # Answered once the phone has answered its own MonitorStart.
        answered = sf.phone_response(
            start.token, m.MonitorStartResponse(monitor_cross_ref_id=phone_xref)
        )
        xrefs.append(answered[0].message.monitor_cross_ref_id)
    return sf, xrefs[0], xrefs[1]


def delivered(sf: SwitchingFunction, phone: str, line: str, call_id: str) -> m.DeliveredEvent:
    event = m.DeliveredEvent(
        monitor_cross_ref_id="1",
        connection=ConnectionID(call_id, line),
        alerting_device=DeviceIdentifier(line),
    )
    (fan,) = sf.phone_event(phone, event)
    assert isinstance(fan, FanOut)
    (action,) = fan.to_clients()
    assert isinstance(action.message, m.DeliveredEvent)
    return action.message


def relay(sf: SwitchingFunction, request: m.CstaRequest) -> ToPhone | ToClient:
    (action,) = sf.client_request("c", "inv", request)
    assert isinstance(action, ToPhone | ToClient)
    return action


def test_the_same_call_id_on_two_phones_is_two_calls_for_clients() -> None:
    sf, _xa, _xb = switch_with_monitors()
    on_a = delivered(sf, PA, A_LINE, "1")
    on_b = delivered(sf, PB, B_LINE, "1")
    assert on_a.connection is not None and on_b.connection is not None
    assert on_a.connection.call_id != on_b.connection.call_id
    # Stable for the call's life: the next event of the same call carries the same ID.
    assert delivered(sf, PA, A_LINE, "1").connection == on_a.connection
    # And the clients' ID names the phone's call when it comes back in a request.
    answer = relay(sf, m.AnswerCall(call_to_be_answered=on_b.connection))
    assert isinstance(answer, ToPhone) and answer.phone == PB
    assert answer.request == m.AnswerCall(call_to_be_answered=ConnectionID("1", B_LINE))


def test_a_call_id_of_another_phone_is_refused_not_relayed() -> None:
    sf, _xa, _xb = switch_with_monitors()
    on_a = delivered(sf, PA, A_LINE, "1")
    assert on_a.connection is not None
    forged = ConnectionID(on_a.connection.call_id, B_LINE)  # A's call, B's device
    refused = relay(sf, m.ClearConnection(connection_to_be_cleared=forged))
    assert isinstance(refused, ToClient)
    assert refused.message == m.CSTAErrorCode.operation("invalidCallID")
    held = relay(
        sf,
        m.TransferCall(held_call=ConnectionID("x", B_LINE), active_call=forged),
    )
    assert isinstance(held, ToClient)
    assert held.message == m.CSTAErrorCode.operation("invalidActiveCallID")


def test_responses_and_snapshots_carry_the_clients_ids() -> None:
    sf, _xa, _xb = switch_with_monitors()
    made = relay(sf, m.MakeCall(calling_device=A_LINE, called_directory_number="200"))
    assert isinstance(made, ToPhone)
    (answer,) = sf.phone_response(
        made.token, m.MakeCallResponse(calling_device=ConnectionID("1", A_LINE))
    )
    event = delivered(sf, PA, A_LINE, "1")
    assert answer.message.calling_device == event.connection  # response and event agree

    snap = relay(sf, m.SnapshotDevice(snapshot_object=A_LINE))
    assert isinstance(snap, ToPhone)
    info = SnapshotDeviceResponseInfo(connection_identifier=ConnectionID("1", A_LINE))
    (snapped,) = sf.phone_response(snap.token, m.SnapshotDeviceResponse(snapshot_data=(info,)))
    assert snapped.message.snapshot_data[0].connection_identifier == event.connection

    consult = relay(sf, m.ConsultationCall(existing_call=event.connection, consulted_device="300"))
    assert isinstance(consult, ToPhone)
    assert consult.request.existing_call == ConnectionID("1", A_LINE)
    (consulted,) = sf.phone_response(
        consult.token, m.ConsultationCallResponse(initiated_call=ConnectionID("2", A_LINE))
    )
    assert sf.call_ids.to_phone(consulted.message.initiated_call.call_id) == (PA, "2")


def test_yealink_conference_form_maps_each_part() -> None:
    sf, _xa, _xb = switch_with_monitors()
    first, second = delivered(sf, PA, A_LINE, "3"), delivered(sf, PA, A_LINE, "4")
    assert first.connection is not None and second.connection is not None
    conf = relay(sf, m.ConferenceCall(held_call=first.connection, active_call=second.connection))
    assert isinstance(conf, ToPhone)
    assert conf.request == m.ConferenceCall(
        held_call=ConnectionID("3", A_LINE), active_call=ConnectionID("4", A_LINE)
    )
    response = m.ConferenceCallResponse(
        conference_call=ConnectionID("3|4", A_LINE),
        connections=(ConnectionListItem(new_connection=ConnectionID("3|4", "sip:300@x")),),
    )
    (answer,) = sf.phone_response(conf.token, response)
    joined = answer.message.conference_call.call_id
    assert joined == f"{first.connection.call_id}|{second.connection.call_id}"
    assert answer.message.connections[0].new_connection.call_id == joined
    clear = relay(sf, m.ClearConnection(connection_to_be_cleared=ConnectionID(joined, A_LINE)))
    assert isinstance(clear, ToPhone)
    assert clear.request == m.ClearConnection(connection_to_be_cleared=ConnectionID("3|4", A_LINE))


def test_transferred_and_conferenced_lists_are_mapped() -> None:
    space = CallIdSpace()
    event = m.ConferencedEvent(
        monitor_cross_ref_id="1",
        primary_old_call=ConnectionID("1", A_LINE),
        secondary_old_call=ConnectionID("2", A_LINE),
        conference_connections=(
            ConnectionListItem(
                new_connection=ConnectionID("1", A_LINE), old_connection=ConnectionID("2")
            ),
        ),
    )
    mapped = space.message_to_client(PA, event)
    prefix = space.prefix(PA)
    assert mapped.primary_old_call == ConnectionID(f"{prefix}.1", A_LINE)
    item = mapped.conference_connections[0]
    assert item.new_connection == ConnectionID(f"{prefix}.1", A_LINE)
    assert item.old_connection == ConnectionID(f"{prefix}.2")
    assert space.message_to_phone(mapped) == event


def test_messages_without_call_ids_are_not_copied() -> None:
    space = CallIdSpace()
    event = m.BackInServiceEvent(monitor_cross_ref_id="1", device=DeviceIdentifier(A_LINE))
    assert space.message_to_client(PA, event) is event
    no_call = m.DeliveredEvent(monitor_cross_ref_id="1", connection=ConnectionID(None, A_LINE))
    assert space.message_to_client(PA, no_call) is no_call


def test_a_removed_phone_loses_its_prefix_for_good() -> None:
    sf, _xa, _xb = switch_with_monitors()
    old = delivered(sf, PA, A_LINE, "1").connection
    assert old is not None and old.call_id is not None
    sf.phone_removed(PA)
    assert len(sf.call_ids) <= 1
    assert sf.call_ids.to_phone(old.call_id) == (None, old.call_id)
    sf.phone_ready(PA, [A_LINE])
    assert sf.call_ids.to_client(PA, "1") != old.call_id  # never the old call's ID


def test_a_lost_phone_keeps_its_prefix() -> None:
    """A link lost and re-established: the calls on the phone keep the IDs clients know."""
    sf, _xa, _xb = switch_with_monitors()
    before = delivered(sf, PA, A_LINE, "1").connection
    sf.phone_lost(PA)
    sf.phone_ready(PA, [A_LINE])
    assert sf.call_ids.to_client(PA, "1") == before.call_id  # type: ignore[union-attr]


def test_mixed_phones_in_one_id_name_no_phone() -> None:
    space = CallIdSpace()
    a, b = space.to_client(PA, "1"), space.to_client(PB, "1")
    assert space.to_phone(f"{a}|{b}") == ("*", f"{a}|{b}")


@given(
    phone=st.sampled_from([PA, PB, "C"]),
    call_id=st.text(min_size=1, max_size=20),
)
def test_round_trip_for_any_call_id(phone: str, call_id: str) -> None:
    space = CallIdSpace()
    space.prefix("other")
    mapped = space.to_client(phone, call_id)
    owner, local = space.to_phone(mapped)
    assert local == call_id
    if any(call_id.split("|")):
        assert owner == phone
