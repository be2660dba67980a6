"""The switching function with its call tracker: its own monitors, notices, journal rows and
the cleanup when a phone is lost (pure, no I/O; events written by hand, ECMA-269 §17.2
flows for an incoming call: Delivered (alerting), Established, ConnectionCleared)."""

from __future__ import annotations

from uacsta.csta import messages as m
from uacsta.csta.types import ConnectionID, DeviceIdentifier, LocalConnectionState
from uacsta.switch.callrecord import NoticeType, Outcome
from uacsta.switch.calls import CallTracker
from uacsta.switch.function import (
    SWITCH,
    FanOut,
    Journal,
    Notify,
    SwitchAction,
    SwitchingFunction,
    ToClient,
    ToPhone,
)

PHONE = "AAAAAAAAAAAA"
LINE = "sip:100@pbx.example"
CALLER = "sip:+4930555@pbx.example"


def tracking_switch(*, own_monitors: bool = True) -> tuple[SwitchingFunction, list[ToPhone]]:
    sf = SwitchingFunction(calls=CallTracker(), own_monitors=own_monitors)
    actions = sf.phone_ready(PHONE, [LINE], now=1000.0)
    return sf, [a for a in actions if isinstance(a, ToPhone)]


def of(actions: list[SwitchAction], kind: type) -> list:
    return [a for a in actions if isinstance(a, kind)]


def notices(actions: list[SwitchAction]) -> list[NoticeType]:
    return [a.notice.type for a in of(actions, Notify)]


def start_own_monitor(sf: SwitchingFunction, to_phone: list[ToPhone], xref: str = "p7") -> None:
    (start,) = to_phone
    assert start.request == m.MonitorStart(monitor_object=LINE)
    answered = sf.phone_response(start.token, m.MonitorStartResponse(monitor_cross_ref_id=xref))
    assert of(answered, ToClient) == []  # nobody to tell: it is the switch's own monitor


def delivered(xref: str = "p7", call: str = "5") -> m.DeliveredEvent:
    return m.DeliveredEvent(
        monitor_cross_ref_id=xref,
        connection=ConnectionID(call_id=call, device_id=LINE),
        alerting_device=DeviceIdentifier(LINE),
        calling_device=DeviceIdentifier(CALLER),
        called_device=DeviceIdentifier(LINE),
        local_connection_info=LocalConnectionState.ALERTING,
        cause="newCall",
    )


def established(xref: str = "p7", call: str = "5") -> m.EstablishedEvent:
    return m.EstablishedEvent(
        monitor_cross_ref_id=xref,
        established_connection=ConnectionID(call_id=call, device_id=LINE),
        answering_device=DeviceIdentifier(LINE),
        calling_device=DeviceIdentifier(CALLER),
        called_device=DeviceIdentifier(LINE),
        local_connection_info=LocalConnectionState.CONNECTED,
        cause="newCall",
    )


def cleared(xref: str = "p7", call: str = "5") -> m.ConnectionClearedEvent:
    return m.ConnectionClearedEvent(
        monitor_cross_ref_id=xref,
        dropped_connection=ConnectionID(call_id=call, device_id=LINE),
        releasing_device=DeviceIdentifier(LINE),
        local_connection_info=LocalConnectionState.NULL,
        cause="normalClearing",
    )


def test_ready_phone_gets_the_switchs_own_monitor_and_a_phone_online_notice() -> None:
    sf = SwitchingFunction(calls=CallTracker(), own_monitors=True)
    actions = sf.phone_ready(PHONE, [LINE], now=1000.0)
    (start,) = of(actions, ToPhone)
    assert start.request == m.MonitorStart(monitor_object=LINE)
    (online,) = of(actions, Notify)
    assert online.notice.type is NoticeType.PHONE_ONLINE and online.notice.phone == PHONE
    assert online.notice.data["lines"] == [LINE] and online.notice.at == 1000.0
    assert not [a for a in actions if isinstance(a, ToClient) and a.client is SWITCH]


def test_without_own_monitors_nothing_is_started_for_the_journal() -> None:
    _sf, to_phone = tracking_switch(own_monitors=False)
    assert to_phone == []


def test_calls_on_a_line_no_client_monitors_reach_the_journal() -> None:
    sf, to_phone = tracking_switch()
    start_own_monitor(sf, to_phone)
    ringing = sf.phone_event(PHONE, delivered(), 1001.0)
    assert of(ringing, FanOut) == []  # no client monitors the line
    assert notices(ringing) == [NoticeType.CALL_RINGING]
    answered = sf.phone_event(PHONE, established(), 1004.0)
    assert notices(answered) == [NoticeType.CALL_ANSWERED]
    ended = sf.phone_event(PHONE, cleared(), 1010.0)
    assert notices(ended) == [NoticeType.CALL_ENDED]
    (row,) = of(ended, Journal)
    record = row.record
    assert record.line == LINE and record.phone == PHONE and record.outcome is Outcome.ANSWERED
    assert (record.started, record.answered, record.ended) == (1001.0, 1004.0, 1010.0)
    assert record.talk_seconds == 6.0 and record.ring_seconds == 3.0


def test_a_client_shares_the_switchs_monitor_point() -> None:
    sf, to_phone = tracking_switch()
    start_own_monitor(sf, to_phone)
    actions = sf.client_request("c1", 1, m.MonitorStart(monitor_object="100"))
    assert of(actions, ToPhone) == []  # the point is already active in the phone
    started, back = of(actions, ToClient)
    assert isinstance(started.message, m.MonitorStartResponse) and started.invoke == 1
    assert isinstance(back.message, m.BackInServiceEvent)
    xref = started.message.monitor_cross_ref_id
    ringing = sf.phone_event(PHONE, delivered(), 1001.0)
    (fan,) = of(ringing, FanOut)
    assert fan.targets == (("c1", xref),)  # the switch's own monitor gets no copy
    (notify,) = of(ringing, Notify)
    assert notify.targets == ("c1",)  # the client monitoring the line gets the notice
    stopped = sf.client_request("c1", 2, m.MonitorStop(monitor_cross_ref_id=xref))
    assert of(stopped, ToPhone) == []  # the switch keeps watching the line


def test_lost_phone_ends_its_calls_for_clients_journal_and_listeners() -> None:
    sf, to_phone = tracking_switch()
    start_own_monitor(sf, to_phone)
    actions = sf.client_request("c1", 1, m.MonitorStart(monitor_object="100"))
    xref = of(actions, ToClient)[0].message.monitor_cross_ref_id
    (told,) = of(sf.phone_event(PHONE, delivered(), 1001.0), FanOut)
    assert told.event.connection is not None
    sf.phone_event(PHONE, established(), 1002.0)
    lost = sf.phone_lost(PHONE, now=1030.0, reason="no answer to keep-alive")
    fans = of(lost, FanOut)
    assert [type(f.event) for f in fans] == [m.ConnectionClearedEvent]
    (fan,) = fans
    assert fan.targets == (("c1", xref),)
    assert fan.event.dropped_connection is not None
    assert fan.event.dropped_connection.call_id == told.event.connection.call_id  # as told
    (row,) = of(lost, Journal)
    assert row.record.outcome is Outcome.LOST_WITH_PHONE and row.record.ended == 1030.0
    assert NoticeType.CALL_ENDED in notices(lost) and NoticeType.PHONE_OFFLINE in notices(lost)
    offline = [a.notice for a in of(lost, Notify) if a.notice.type is NoticeType.PHONE_OFFLINE]
    assert offline[0].data["reason"] == "no answer to keep-alive"
    out_of_service = [a for a in of(lost, ToClient) if isinstance(a.message, m.OutOfServiceEvent)]
    assert [a.client for a in out_of_service] == ["c1"]  # none for the switch's own monitor
    # ConnectionCleared reaches the client before OutOfService.
    assert lost.index(fan) < lost.index(out_of_service[0])


def test_phone_back_restores_the_switchs_monitor() -> None:
    sf, to_phone = tracking_switch()
    start_own_monitor(sf, to_phone)
    sf.phone_lost(PHONE, now=1030.0)
    again = sf.phone_ready(PHONE, [LINE], now=1040.0)
    (start,) = of(again, ToPhone)
    assert start.request == m.MonitorStart(monitor_object=LINE)


def test_stopping_server_ends_no_call() -> None:
    sf, to_phone = tracking_switch()
    start_own_monitor(sf, to_phone)
    sf.phone_event(PHONE, delivered(), 1001.0)
    sf.phone_event(PHONE, established(), 1002.0)
    sf.stop_tracking()
    lost = sf.phone_lost(PHONE, now=1030.0, reason="server shutdown")
    assert of(lost, Journal) == [] and of(lost, Notify) == [] and of(lost, FanOut) == []


def test_snapshots_a_phone_lacks_are_answered_from_tracked_calls() -> None:
    sf, to_phone = tracking_switch()
    start_own_monitor(sf, to_phone)
    (told,) = of(sf.phone_event(PHONE, delivered(), 1001.0), Notify)
    call_id = told.notice.call_id
    assert call_id is not None
    (relay,) = sf.client_request(
        "c1", 9, m.SnapshotCall(snapshot_object=ConnectionID(call_id=call_id, device_id=LINE))
    )
    assert isinstance(relay, ToPhone)  # offered to the phone first ...
    unsupported = m.CSTAErrorCode.operation("invalidFeature")
    (answer,) = sf.phone_refused(relay.token, unsupported, "the phone lacks SnapshotCall")
    assert isinstance(answer, ToClient) and answer.invoke == 9  # ... answered by the switch
    assert isinstance(answer.message, m.SnapshotCallResponse)
    assert answer.message.snapshot_data  # the tracked parties of the call
    (relay,) = sf.client_request("c1", 10, m.SnapshotDevice(snapshot_object="100"))
    assert isinstance(relay, ToPhone)
    (answer,) = sf.phone_refused(relay.token, unsupported, "no SnapshotDevice")
    assert isinstance(answer.message, m.SnapshotDeviceResponse)
    (item,) = answer.message.snapshot_data
    assert item.connection_identifier is not None
    assert item.connection_identifier.call_id == call_id  # the ID clients know
    # Other refused services still fail with the link's reason.
    (relay,) = sf.client_request("c1", 11, m.GetDoNotDisturb(device="100"))
    (failed,) = sf.phone_refused(relay.token, unsupported, "no DND here")
    assert failed.message == unsupported and failed.detail == "no DND here"


def test_features_say_snapshots_are_offered_when_calls_are_tracked() -> None:
    sf, _ = tracking_switch()
    services = sf.features().supported_services
    assert {"snapshotCall", "snapshotDevice"} <= services
