"""Line ownership and per-client monitor limits in the switching function (sans-IO).

Issue 15 item 4: a phone that reports another, ready phone's line does not get it; the
owner losing its link or an operator's decision moves it. Issue 15 item 7: monitors per
client are bounded, for the clients of every gateway alike.
"""

from __future__ import annotations

from uacsta.csta import messages as m
from uacsta.csta.types import ConnectionID
from uacsta.switch.devices import LineConflict
from uacsta.switch.function import FanOut, SwitchingFunction, ToClient, ToPhone

LINE = "sip:100@pbx.example"
OWNER, THIEF = "OWNER0000001", "THIEF0000001"


def owned_and_monitored() -> tuple[SwitchingFunction, str, list[LineConflict]]:
    sf = SwitchingFunction()
    conflicts: list[LineConflict] = []
    sf.on_conflict = conflicts.append
    sf.phone_ready(OWNER, [LINE])
    actions = sf.client_request("c", 1, m.MonitorStart(monitor_object="100"))
    (start,) = [a for a in actions if isinstance(a, ToPhone)]
    answered = sf.phone_response(start.token, m.MonitorStartResponse(monitor_cross_ref_id="0"))
    xref = answered[0].message.monitor_cross_ref_id
    return sf, xref, conflicts


def test_a_ready_owner_keeps_its_line() -> None:
    sf, xref, conflicts = owned_and_monitored()
    actions = sf.phone_ready(THIEF, [LINE, "sip:300@pbx.example"])
    assert not [a for a in actions if isinstance(a, ToClient)]  # no MonitorEnded for "c"
    assert sf.devices.resolve("100").phone == OWNER  # type: ignore[union-attr]
    assert sf.devices.resolve("300").phone == THIEF  # type: ignore[union-attr]
    assert conflicts == [LineConflict(LINE, THIEF, OWNER)]
    assert sf.devices.conflicts(THIEF) == conflicts
    # The same report again is the same conflict: logged once.
    sf.phone_lines_changed(THIEF, [LINE])
    assert len(conflicts) == 1
    # Requests for the line go to the owner.
    (to_phone,) = sf.client_request(
        "c", 2, m.MakeCall(calling_device="100", called_directory_number="200")
    )
    assert isinstance(to_phone, ToPhone) and to_phone.phone == OWNER
    # The thief's events under the owner's monitor cross-ref reach nobody.
    forged = m.DeliveredEvent(monitor_cross_ref_id="0", connection=ConnectionID("1", LINE))
    assert sf.phone_event(THIEF, forged) == []
    (fan,) = sf.phone_event(OWNER, forged)
    assert isinstance(fan, FanOut) and fan.targets == (("c", xref),)


def test_the_line_moves_when_the_owner_is_lost() -> None:
    sf, _xref, conflicts = owned_and_monitored()
    sf.phone_ready(THIEF, [LINE])
    actions = sf.phone_lost(OWNER)
    assert sf.devices.resolve("100").phone == THIEF  # type: ignore[union-attr]
    ended = [a.message for a in actions if isinstance(a, ToClient)]
    assert [type(e).__name__ for e in ended] == ["OutOfServiceEvent", "MonitorEndedEvent"]
    # The old owner, back, is the one refused now.
    sf.phone_ready(OWNER, [LINE])
    assert sf.devices.resolve("100").phone == THIEF  # type: ignore[union-attr]
    assert sf.devices.conflicts(OWNER) == [LineConflict(LINE, OWNER, THIEF)]
    assert sf.devices.conflicts(THIEF) == []
    assert conflicts[-1] == LineConflict(LINE, OWNER, THIEF)


def test_a_line_of_a_phone_not_ready_moves_on_report() -> None:
    sf, _xref, _conflicts = owned_and_monitored()
    sf.phone_lost(OWNER)
    sf.phone_ready(THIEF, [LINE])
    assert sf.devices.resolve("100").phone == THIEF  # type: ignore[union-attr]
    assert sf.devices.conflicts() == []


def test_an_operator_assigns_the_line() -> None:
    sf, xref, _conflicts = owned_and_monitored()
    sf.phone_ready(THIEF, [LINE])  # here: the new desk phone, the owner still up
    actions = sf.assign_line(LINE, THIEF)
    assert sf.devices.resolve("100").phone == THIEF  # type: ignore[union-attr]
    assert sf.devices.assigned_to(LINE) == THIEF
    ended = [a for a in actions if isinstance(a, ToClient)]
    assert [(a.client, type(a.message).__name__) for a in ended] == [("c", "MonitorEndedEvent")]
    # The old owner, still up, is told to stop its monitor of the line.
    (stop,) = [a for a in actions if isinstance(a, ToPhone)]
    assert stop.phone == OWNER and stop.request == m.MonitorStop(monitor_cross_ref_id="0")
    assert sf.devices.conflicts(OWNER) == [LineConflict(LINE, OWNER, THIEF)]
    # Assigned: even a lost new owner does not hand it back on the old one's report.
    sf.phone_lost(THIEF)
    sf.phone_lines_changed(OWNER, [LINE])
    assert sf.devices.resolve("100").phone == THIEF  # type: ignore[union-attr]
    assert xref not in sf.monitors.client_monitors


def test_assigning_before_the_phone_reports_the_line() -> None:
    sf, _xref, _conflicts = owned_and_monitored()
    assert sf.assign_line(LINE, THIEF) == []  # THIEF has not claimed it: nothing moves yet
    assert sf.devices.resolve("100").phone == OWNER  # type: ignore[union-attr]
    sf.phone_ready(THIEF, [LINE])
    assert sf.devices.resolve("100").phone == THIEF  # type: ignore[union-attr]


def test_an_assigned_line_is_refused_to_others_even_unowned() -> None:
    sf = SwitchingFunction()
    sf.assign_line(LINE, OWNER)
    sf.phone_ready(THIEF, [LINE])
    assert sf.devices.resolve("100") is None
    assert sf.devices.conflicts(THIEF) == [LineConflict(LINE, THIEF, OWNER)]
    sf.phone_ready(OWNER, [LINE])
    assert sf.devices.resolve("100").phone == OWNER  # type: ignore[union-attr]


def test_removing_a_phone_forgets_its_claims_and_assignments() -> None:
    sf, _xref, _conflicts = owned_and_monitored()
    sf.phone_ready(THIEF, [LINE])
    sf.phone_removed(THIEF)
    assert sf.devices.conflicts() == []
    sf.assign_line("sip:900@pbx.example", OWNER)
    sf.phone_removed(OWNER)
    assert sf.devices.assigned_to("sip:900@pbx.example") is None


def test_monitor_number_n_plus_one_is_refused_for_any_client() -> None:
    sf = SwitchingFunction(max_monitors_per_client=3)
    sf.phone_ready(OWNER, [LINE])
    for client in ("tcp-client", "tr87-session", "websocket"):
        for n in range(3):
            answer = sf.client_request(client, n, m.MonitorStart(monitor_object=LINE))
            # Waits for the phone's answer to the point's MonitorStart (sent once): no refusal.
            assert not [a for a in answer if isinstance(a, ToClient)]
        (refused,) = sf.client_request(client, 9, m.MonitorStart(monitor_object=LINE))
        assert refused.message == m.CSTAErrorCode.system_resource_availability(
            "overallMonitorLimitExceeded"
        )
        assert "clients.max_monitors" in (refused.detail or "")
        assert sf.monitors.count_of(client) == 3
    # A monitor stopped makes room again.
    xref = sf.monitors.monitors_of("websocket")[0].cross_ref_id
    sf.client_request("websocket", 10, m.MonitorStop(monitor_cross_ref_id=xref))
    assert sf.client_request("websocket", 11, m.MonitorStart(monitor_object=LINE)) == []
    assert sf.monitors.count_of("websocket") == 3
