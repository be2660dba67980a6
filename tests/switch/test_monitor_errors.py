"""A phone's negative answer to the server's MonitorStart reaches the clients (sans-IO).

The client's MonitorStart waits for the phone's answer to the monitor point's MonitorStart:
a CSTA error from the phone refuses it under the client's invoke ID; clients already on the
point get MonitorEnded. A phone that keeps failing tells its clients OutOfService once.
"""

from __future__ import annotations

from uacsta.csta import messages as m
from uacsta.switch.function import SwitchAction, SwitchingFunction, ToClient, ToPhone

LINE = "sip:100@pbx.example"
PHONE = "AAAAAAAAAAAA"
REFUSED = m.CSTAErrorCode.operation("invalidDeviceID")


def names(actions: list[SwitchAction]) -> list[tuple[object, str]]:
    return [(a.client, type(a.message).__name__) for a in clients(actions)]


def clients(actions: list[SwitchAction]) -> list[ToClient]:
    return [a for a in actions if isinstance(a, ToClient)]


def one_request(actions: list[SwitchAction]) -> ToPhone:
    (request,) = [a for a in actions if isinstance(a, ToPhone)]
    return request


def test_the_phones_error_refuses_the_clients_monitor_start_under_its_invoke() -> None:
    sf = SwitchingFunction()
    sf.phone_ready(PHONE, [LINE])
    to_phone = one_request(sf.client_request("c1", "0042", m.MonitorStart(monitor_object="100")))
    # A second client while the phone has not answered: waits on the same MonitorStart.
    assert sf.client_request("c2", "0007", m.MonitorStart(monitor_object=LINE)) == []
    actions = sf.phone_response(to_phone.token, REFUSED)
    assert [(a.client, a.invoke, a.message) for a in clients(actions)] == [
        ("c1", "0042", REFUSED),
        ("c2", "0007", REFUSED),
    ]
    assert all("invalidDeviceID" in (a.detail or "") for a in clients(actions))
    assert sf.monitors.client_monitors == {} and sf.monitors.points == {}
    assert sf.pending_count == 0


def test_clients_already_on_the_point_get_monitor_ended_when_its_restart_is_refused() -> None:
    sf = SwitchingFunction()
    sf.phone_ready(PHONE, [LINE])
    start = one_request(sf.client_request("c1", 1, m.MonitorStart(monitor_object="100")))
    answered = clients(
        sf.phone_response(start.token, m.MonitorStartResponse(monitor_cross_ref_id="1"))
    )
    assert isinstance(answered[0].message, m.MonitorStartResponse)
    xref = answered[0].message.monitor_cross_ref_id
    # The phone is lost and comes back: the restore of the monitor is refused.
    assert names(sf.phone_lost(PHONE)) == [("c1", "OutOfServiceEvent")]
    restore = one_request(sf.phone_ready(PHONE, [LINE]))
    # A client that asks meanwhile waits for the same answer.
    assert sf.client_request("c2", 5, m.MonitorStart(monitor_object="100")) == []
    actions = sf.phone_response(restore.token, REFUSED)
    ended, refused = clients(actions)
    assert ended.client == "c1" and ended.invoke is None
    assert isinstance(ended.message, m.MonitorEndedEvent)
    assert ended.message.monitor_cross_ref_id == xref
    assert (refused.client, refused.invoke, refused.message) == ("c2", 5, REFUSED)
    assert sf.monitors.client_monitors == {}
    # A monitor the phone ends itself and then refuses to restart ends the same way.
    start = one_request(sf.client_request("c3", 6, m.MonitorStart(monitor_object="100")))
    sf.phone_response(start.token, m.MonitorStartResponse(monitor_cross_ref_id="2"))
    restart = one_request(sf.phone_event(PHONE, m.MonitorEndedEvent(monitor_cross_ref_id="2")))
    assert names(sf.phone_failed(restart.token, REFUSED, "refused")) == [
        ("c3", "MonitorEndedEvent")
    ]


def test_a_phone_that_does_not_answer_keeps_the_monitor_out_of_service() -> None:
    """A timeout or outOfService is the phone's trouble, not the line's: the client gets its
    monitor, told OutOfService, and it is restored when the phone is ready again."""
    sf = SwitchingFunction()
    sf.phone_ready(PHONE, [LINE])
    start = one_request(sf.client_request("c1", 3, m.MonitorStart(monitor_object="100")))
    actions = sf.phone_failed(start.token, m.CSTAErrorCode.timeout(), "no answer in 5 s")
    assert [(a.invoke, type(a.message).__name__) for a in clients(actions)] == [
        (3, "MonitorStartResponse"),
        (None, "OutOfServiceEvent"),
    ]
    assert len(sf.monitors.client_monitors) == 1


def test_a_phone_failing_again_and_again_sends_out_of_service_once() -> None:
    sf = SwitchingFunction()
    sf.phone_ready(PHONE, [LINE])
    start = one_request(sf.client_request("c1", 1, m.MonitorStart(monitor_object="100")))
    sf.phone_response(start.token, m.MonitorStartResponse(monitor_cross_ref_id="1"))
    assert names(sf.phone_lost(PHONE)) == [("c1", "OutOfServiceEvent")]
    for _ in range(3):  # relinked, its MonitorStart fails, lost again
        restore = one_request(sf.phone_ready(PHONE, [LINE]))
        assert names(sf.phone_lost(PHONE)) == []
        assert sf.phone_response(restore.token, m.MonitorStartResponse()) == []
    restore = one_request(sf.phone_ready(PHONE, [LINE]))
    back = sf.phone_response(restore.token, m.MonitorStartResponse(monitor_cross_ref_id="9"))
    assert names(back) == [("c1", "BackInServiceEvent")]
    # Back in service: the next outage is told again.
    assert names(sf.phone_lost(PHONE)) == [("c1", "OutOfServiceEvent")]


def test_a_line_leaving_before_the_phone_answers_refuses_the_waiting_monitor_start() -> None:
    sf = SwitchingFunction()
    sf.phone_ready(PHONE, [LINE, "sip:101@pbx.example"])
    start = one_request(sf.client_request("c1", 4, m.MonitorStart(monitor_object="100")))
    actions = sf.phone_lines_changed(PHONE, ["sip:101@pbx.example"])
    (refused,) = clients(actions)
    assert (refused.client, refused.invoke, refused.message) == ("c1", 4, REFUSED)
    assert sf.monitors.client_monitors == {}
    # The phone's late answer starts nothing for anyone: its monitor is stopped again.
    stop = one_request(
        sf.phone_response(start.token, m.MonitorStartResponse(monitor_cross_ref_id="1"))
    )
    assert stop.request == m.MonitorStop(monitor_cross_ref_id="1")
