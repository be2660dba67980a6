"""Switching function: routing, shared monitors, fan-out, lifecycle (pure, no I/O)."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from uacsta.csta import messages as m
from uacsta.csta.types import ConnectionID, DeviceIdentifier
from uacsta.switch.function import FanOut, SwitchingFunction, ToClient, ToPhone

A_LINE = "sip:100@pbx.example"
B_LINE = "sip:200@pbx.example"


def ready_switch() -> SwitchingFunction:
    sf = SwitchingFunction()
    assert sf.phone_ready("AAAAAAAAAAAA", [A_LINE]) == []
    assert sf.phone_ready("BBBBBBBBBBBB", [B_LINE]) == []
    return sf


def only(actions: list, kind: type) -> list:
    return [a for a in actions if isinstance(a, kind)]


def fanned_out(actions: list) -> list[ToClient]:
    """A phone event's actions: one FanOut, as the per-client actions it stands for."""
    (fan,) = actions
    assert isinstance(fan, FanOut)
    assert all(
        a.message.monitor_cross_ref_id == x
        for a, (_, x) in zip(fan.to_clients(), fan.targets, strict=True)
    )
    return fan.to_clients()


def start_monitor(sf: SwitchingFunction, client: str, device: str, phone_xref: str | None = "p1"):
    actions = sf.client_request(client, f"inv-{client}", m.MonitorStart(monitor_object=device))
    to_phone = only(actions, ToPhone)
    if to_phone and phone_xref is not None:
        (req,) = to_phone
        more = sf.phone_response(req.token, m.MonitorStartResponse(monitor_cross_ref_id=phone_xref))
        actions = actions + more
    # Answered at once, or once the phone answered its own MonitorStart.
    (response,) = [a for a in actions if isinstance(a, ToClient) and a.invoke is not None]
    assert response.invoke == f"inv-{client}"
    assert isinstance(response.message, m.MonitorStartResponse)
    return response.message.monitor_cross_ref_id, actions


def test_monitor_start_answered_when_the_phone_answers_then_back_in_service() -> None:
    sf = ready_switch()
    (to_phone,) = sf.client_request("c1", 7, m.MonitorStart(monitor_object="100"))
    assert isinstance(to_phone, ToPhone) and to_phone.phone == "AAAAAAAAAAAA"
    assert to_phone.request == m.MonitorStart(monitor_object=A_LINE)
    back = sf.phone_response(to_phone.token, m.MonitorStartResponse(monitor_cross_ref_id="43"))
    assert isinstance(back[0], ToClient) and back[0].invoke == 7
    xref = back[0].message.monitor_cross_ref_id
    assert back == [
        ToClient(client="c1", message=m.MonitorStartResponse(monitor_cross_ref_id=xref), invoke=7),
        ToClient(
            client="c1",
            message=m.BackInServiceEvent(
                monitor_cross_ref_id=xref, device=DeviceIdentifier(A_LINE)
            ),
        ),
    ]
    # The point is active now: the next client is answered at once.
    again = sf.client_request("c2", 8, m.MonitorStart(monitor_object="100"))
    assert [type(a.message).__name__ for a in again] == [
        "MonitorStartResponse",
        "BackInServiceEvent",
    ]


def test_two_clients_share_one_phone_monitor_and_get_own_xrefs() -> None:
    sf = ready_switch()
    x1, _ = start_monitor(sf, "c1", A_LINE, "43")
    x2, a2 = start_monitor(sf, "c2", "tel:100", None)
    assert x1 != x2
    assert only(a2, ToPhone) == []  # shared point already active
    assert isinstance(a2[-1].message, m.BackInServiceEvent)
    event = m.DeliveredEvent(monitor_cross_ref_id="43", connection=ConnectionID("5", A_LINE))
    fan = fanned_out(sf.phone_event("AAAAAAAAAAAA", event))
    assert {(a.client, a.message.monitor_cross_ref_id) for a in fan} == {("c1", x1), ("c2", x2)}
    # The phone's call 5 in the switching function's one space of call IDs.
    (seen,) = {a.message.connection for a in fan}
    assert seen.device_id == A_LINE and seen.call_id not in (None, "5")
    assert sf.call_ids.to_phone(seen.call_id) == ("AAAAAAAAAAAA", "5")
    # First client leaves: no MonitorStop yet; second leaves: MonitorStop with the phone's xref.
    assert only(sf.client_request("c1", 1, m.MonitorStop(monitor_cross_ref_id=x1)), ToPhone) == []
    stop = only(sf.client_request("c2", 2, m.MonitorStop(monitor_cross_ref_id=x2)), ToPhone)
    assert [s.request for s in stop] == [m.MonitorStop(monitor_cross_ref_id="43")]
    assert sf.phone_event("AAAAAAAAAAAA", event) == []


def test_events_from_other_phone_with_same_xref_are_not_mixed() -> None:
    sf = ready_switch()
    start_monitor(sf, "c1", A_LINE, "1")
    start_monitor(sf, "c2", B_LINE, "1")
    fan = fanned_out(sf.phone_event("BBBBBBBBBBBB", m.HeldEvent(monitor_cross_ref_id="1")))
    assert [a.client for a in fan] == ["c2"]


def test_request_routed_with_alias_rewritten_and_response_to_requester_only() -> None:
    sf = ready_switch()
    actions = sf.client_request(
        "c1", "i1", m.MakeCall(calling_device="100", called_directory_number="200")
    )
    (tp,) = actions
    assert isinstance(tp, ToPhone) and tp.phone == "AAAAAAAAAAAA"
    assert tp.request == m.MakeCall(calling_device=A_LINE, called_directory_number="200")
    resp = m.MakeCallResponse(calling_device=ConnectionID("9", A_LINE))
    (answered,) = sf.phone_response(tp.token, resp)
    assert answered.client == "c1" and answered.invoke == "i1"
    made = answered.message.calling_device
    assert made.device_id == A_LINE and sf.call_ids.to_phone(made.call_id) == ("AAAAAAAAAAAA", "9")
    assert sf.phone_response(tp.token, resp) == []  # answered once only
    # A call ID uacsta never gave out goes to the phone as it is: the phone decides.
    answer = sf.client_request(
        "c2", "i2", m.AnswerCall(call_to_be_answered=ConnectionID("3", "200"))
    )
    assert answer[0].request == m.AnswerCall(call_to_be_answered=ConnectionID("3", B_LINE))


def test_unknown_device_not_ready_and_timeout_errors() -> None:
    sf = ready_switch()
    (err,) = sf.client_request("c1", 1, m.GetDoNotDisturb(device="sip:999@x"))
    assert err.message == m.CSTAErrorCode.operation("invalidDeviceID")
    assert "999" in (err.detail or "")
    sf.phone_lost("AAAAAAAAAAAA")
    (err,) = sf.client_request("c1", 2, m.GetDoNotDisturb(device=A_LINE))
    assert err.message == m.CSTAErrorCode.out_of_service()
    (tp,) = sf.client_request("c1", 3, m.GetDoNotDisturb(device=B_LINE))
    (err,) = sf.phone_failed(tp.token, m.CSTAErrorCode.timeout())
    assert err.message.is_timeout and err.invoke == 3


def test_phone_lost_gives_out_of_service_then_back_in_service_with_monitor_restored() -> None:
    sf = ready_switch()
    xref, _ = start_monitor(sf, "c1", A_LINE, "p1")
    pending = sf.client_request("c1", 5, m.SnapshotDevice(snapshot_object=A_LINE))
    lost = sf.phone_lost("AAAAAAAAAAAA")
    kinds = {type(a.message) for a in lost}
    assert kinds == {m.OutOfServiceEvent, m.CSTAErrorCode}
    assert sf.phone_response(pending[0].token, m.SnapshotDeviceResponse()) == []
    back = sf.phone_ready("AAAAAAAAAAAA", [A_LINE])
    (restart,) = only(back, ToPhone)
    assert restart.request == m.MonitorStart(monitor_object=A_LINE)
    (bis,) = sf.phone_response(restart.token, m.MonitorStartResponse(monitor_cross_ref_id="p2"))
    assert bis.message == m.BackInServiceEvent(
        monitor_cross_ref_id=xref, device=DeviceIdentifier(A_LINE)
    )
    # Events now arrive under the new phone xref only.
    assert sf.phone_event("AAAAAAAAAAAA", m.HeldEvent(monitor_cross_ref_id="p1")) == []
    (held,) = fanned_out(sf.phone_event("AAAAAAAAAAAA", m.HeldEvent(monitor_cross_ref_id="p2")))
    assert held.client == "c1" and held.message.monitor_cross_ref_id == xref


def test_client_detach_releases_monitors() -> None:
    sf = ready_switch()
    start_monitor(sf, "c1", A_LINE, "p1")
    start_monitor(sf, "c1", B_LINE, "p9")
    stops = only(sf.client_detach("c1"), ToPhone)
    assert sorted((s.phone, s.request.monitor_cross_ref_id) for s in stops) == [
        ("AAAAAAAAAAAA", "p1"),
        ("BBBBBBBBBBBB", "p9"),
    ]
    assert sf.monitors.client_monitors == {} and sf.monitors.points == {}


def test_last_client_gone_while_monitor_starting_stops_it_when_answered() -> None:
    sf = ready_switch()
    actions = sf.client_request("c1", 1, m.MonitorStart(monitor_object=A_LINE))
    (start,) = only(actions, ToPhone)
    sf.client_detach("c1")
    (stop,) = sf.phone_response(start.token, m.MonitorStartResponse(monitor_cross_ref_id="77"))
    assert stop.request == m.MonitorStop(monitor_cross_ref_id="77")


def test_alternate_call_emulated_with_hold_and_retrieve() -> None:
    sf = ready_switch()
    held, active = ConnectionID("1", "100"), ConnectionID("2", "100")
    (hold,) = sf.client_request("c1", 4, m.AlternateCall(held_call=held, active_call=active))
    assert hold.request == m.HoldCall(call_to_be_held=ConnectionID("2", A_LINE))
    (retrieve,) = sf.phone_response(hold.token, m.HoldCallResponse())
    assert retrieve.request == m.RetrieveCall(call_to_be_retrieved=ConnectionID("1", A_LINE))
    (done,) = sf.phone_response(retrieve.token, m.RetrieveCallResponse())
    assert done == ToClient(client="c1", message=m.AlternateCallResponse(), invoke=4)


def test_unsupported_service_refused_with_reason() -> None:
    sf = SwitchingFunction()
    sf.phone_ready("P", [A_LINE], services=frozenset({"MakeCall"}))
    (err,) = sf.client_request("c", 1, m.SnapshotCall(snapshot_object=ConnectionID("1", A_LINE)))
    assert err.message == m.CSTAErrorCode.operation("invalidFeature")
    assert "does not support SnapshotCall" in (err.detail or "")


def test_get_switching_function_devices_segments_and_changes() -> None:
    sf = SwitchingFunction(segment_size=2)
    sf.phone_ready("P1", ["1", "2", "3"])
    reg = sf.client_request("c", 1, m.SystemRegister(switching_function_devices_changed=True))
    reg_id = reg[0].message.sys_stat_register_id
    actions = sf.client_request("c", 2, m.GetSwitchingFunctionDevices())
    assert isinstance(actions[0].message, m.GetSwitchingFunctionDevicesResponse)
    segments = [a.message for a in actions[1:]]
    assert [len(s.device_list) for s in segments] == [2, 1]
    assert [s.last_segment for s in segments] == [False, True]
    assert [e.device_id for s in segments for e in s.device_list] == ["1", "2", "3"]
    changed = sf.phone_ready("P2", ["4"])
    assert changed == [
        ToClient(client="c", message=m.SwFunctionDevicesChanged(sys_stat_register_id=reg_id))
    ]


def test_account_restricted_to_devices() -> None:
    sf = ready_switch()
    sf.client_attach("c", allowed_devices=["100"])
    (err,) = sf.client_request("c", 1, m.MonitorStart(monitor_object=B_LINE))
    assert err.message == m.CSTAErrorCode.operation("privilegeViolationOnSpecifiedDevice")
    (to_phone,) = sf.client_request("c", 2, m.MonitorStart(monitor_object=A_LINE))
    assert isinstance(to_phone, ToPhone)
    ok = sf.phone_response(to_phone.token, m.MonitorStartResponse(monitor_cross_ref_id="1"))
    assert ok[0].invoke == 2 and isinstance(ok[0].message, m.MonitorStartResponse)


def test_unknown_service_and_monitor_stop_of_other_client() -> None:
    sf = ready_switch()
    (err,) = sf.client_request("c", 1, m.UnknownMessage(name="Foo", xml=b"<Foo/>"))
    assert err.message == m.CSTAErrorCode.operation("invalidFeature")
    xref, _ = start_monitor(sf, "c1", A_LINE)
    (err,) = sf.client_request("c2", 2, m.MonitorStop(monitor_cross_ref_id=xref))
    assert err.message == m.CSTAErrorCode.operation("invalidCrossRefID")


OPS = st.lists(
    st.tuples(
        st.sampled_from(["start", "stop", "detach", "lost", "ready", "answer", "fail", "event"]),
        st.sampled_from(["c1", "c2", "c3"]),
        st.sampled_from([A_LINE, B_LINE]),
    ),
    max_size=40,
)


@settings(max_examples=150, deadline=None)
@given(OPS)
def test_random_lifecycles_leave_no_leaks(ops) -> None:
    """Whatever happens, once every client leaves no monitor or point remains."""
    sf = ready_switch()
    xrefs: dict[str, list[str]] = {}
    outstanding: list[ToPhone] = []
    answered: set[str] = set()
    phone_of = {A_LINE: "AAAAAAAAAAAA", B_LINE: "BBBBBBBBBBBB"}
    counter = 0
    for op, client, line in ops:
        actions: list = []
        if op == "start":
            actions = sf.client_request(client, 0, m.MonitorStart(monitor_object=line))
        elif op == "stop" and xrefs.get(client):
            actions = sf.client_request(
                client, 0, m.MonitorStop(monitor_cross_ref_id=xrefs[client].pop())
            )
        elif op == "detach":
            actions = sf.client_detach(client)
            xrefs.pop(client, None)
        elif op == "lost":
            actions = sf.phone_lost(phone_of[line])
        elif op == "ready":
            actions = sf.phone_ready(phone_of[line], [line])
        elif op in ("answer", "fail") and outstanding:
            tp = outstanding.pop(0)
            if op == "answer":
                counter += 1
                resp = (
                    m.MonitorStartResponse(monitor_cross_ref_id=f"x{counter}")
                    if isinstance(tp.request, m.MonitorStart)
                    else m.MonitorStopResponse()
                )
                actions = sf.phone_response(tp.token, resp)
            else:
                actions = sf.phone_failed(tp.token, m.CSTAErrorCode.timeout())
        elif op == "event":
            actions = sf.phone_event(
                phone_of[line], m.HeldEvent(monitor_cross_ref_id=f"x{counter}")
            )
        for a in [c for b in actions for c in (b.to_clients() if isinstance(b, FanOut) else [b])]:
            if isinstance(a, ToPhone):
                outstanding.append(a)
            else:
                assert isinstance(a, ToClient)
                if isinstance(a.message, m.MonitorStartResponse):  # at once or deferred
                    xref = a.message.monitor_cross_ref_id
                    assert xref in sf.monitors.client_monitors and xref not in answered
                    answered.add(xref)
                    xrefs.setdefault(str(a.client), []).append(xref)
                if isinstance(a.message, m.CstaEvent):
                    assert a.message.monitor_cross_ref_id in sf.monitors.client_monitors
                    # No event before the client's MonitorStart is answered.
                    assert a.message.monitor_cross_ref_id in answered
    for client in ("c1", "c2", "c3"):
        sf.client_detach(client)
    assert sf.monitors.client_monitors == {}
    assert sf.monitors.points == {}
