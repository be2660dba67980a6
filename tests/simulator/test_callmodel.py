"""A single simulated phone: requests, responses, its own events, personalities, quirks."""

from __future__ import annotations

import pytest

from uacsta.csta import codec
from uacsta.csta import messages as m
from uacsta.csta.codec import Edition
from uacsta.csta.types import (
    ConnectionID,
    DeviceCategory,
    DeviceEntry,
    DeviceIdentifier,
    ForwardingType,
    ForwardListItem,
    LocalConnectionState,
    SnapshotDeviceResponseInfo,
    SystemStatusValue,
)
from uacsta.phones.vendors import detect
from uacsta.simulator import PERSONALITIES, SimPbx, SimPhone, personality

DOMAIN = "sim.test"


def drain(phone: SimPhone) -> list[m.CstaEvent]:
    """The phone's events; each must survive an ed3 encode/decode round trip."""
    events = phone.drain_events()
    for event in events:
        assert codec.decode(codec.encode(event, Edition.ED3)) == event
    return events


def req(phone: SimPhone, request: m.CstaRequest, now: float = 0.0) -> m.CstaResponse:
    reply = phone.handle_request(request, now)
    assert reply.response is not None
    assert codec.decode(codec.encode(reply.response, reply.edition)) == reply.response
    return reply.response


def make(vendor: str, *numbers: str) -> SimPhone:
    oui = PERSONALITIES[vendor].mac_oui
    return SimPhone(oui + "000001", personality(vendor), list(numbers), DOMAIN)


@pytest.mark.parametrize("vendor", ["yealink", "snom", "mitel", "auerswald", "fanvil"])
def test_personality_is_recognised_by_vendor_detection(vendor: str) -> None:
    p = PERSONALITIES[vendor]
    assert detect(p.user_agent).vendor == vendor
    assert detect(None, p.mac_oui + "123456").vendor == vendor


def test_line_device_id_styles() -> None:
    assert make("yealink", "100").lines[0].device_id == "sip:100@sim.test"
    assert make("mitel", "100").lines[0].device_id == "sip:100@sim.test;user=phone"
    assert make("auerswald", "100").lines[0].device_id == "100"
    with pytest.raises(ValueError):
        SimPhone("X", personality("yealink"), [], DOMAIN)


def test_monitor_start_stop_xrefs_per_personality() -> None:
    phone = make("mitel", "300", "301")
    r1 = req(phone, m.MonitorStart(monitor_object="sip:300@sim.test;user=phone"))
    r2 = req(phone, m.MonitorStart(monitor_object="301"))
    assert r1 == m.MonitorStartResponse(monitor_cross_ref_id="mon1")
    assert r2 == m.MonitorStartResponse(monitor_cross_ref_id="mon2")
    assert req(phone, m.MonitorStop(monitor_cross_ref_id="mon1")) == m.MonitorStopResponse()
    assert req(phone, m.MonitorStop(monitor_cross_ref_id="mon1")) == m.CSTAErrorCode.operation(
        "invalidCrossRefID"
    )
    assert req(phone, m.MonitorStart(monitor_object="999")) == m.CSTAErrorCode.operation(
        "invalidDeviceID"
    )


def test_system_services_and_switching_function_devices() -> None:
    phone = make("snom", "200", "201")
    reply = phone.handle_request(m.RequestSystemStatus(), 0.0, Edition.ED3)
    assert reply.response == m.RequestSystemStatusResponse(system_status=SystemStatusValue.NORMAL)
    assert reply.edition is Edition.ED5  # snom answers ed5 even to ed3
    reg = req(phone, m.SystemRegister(switching_function_devices_changed=True))
    assert reg == m.SystemRegisterResponse(sys_stat_register_id="1")
    assert req(phone, m.SystemRegisterCancel(sys_stat_register_id="1")) == (
        m.SystemRegisterCancelResponse()
    )
    assert req(phone, m.SystemRegisterCancel(sys_stat_register_id="1")) == (
        m.CSTAErrorCode.operation("invalidCrossRefID")
    )
    assert req(phone, m.GetSwitchingFunctionDevices()) == m.GetSwitchingFunctionDevicesResponse(
        service_cross_ref_id="2"
    )
    (sfd,) = phone.drain_requests()
    assert sfd == m.SwitchingFunctionDevices(
        service_cross_ref_id="2",
        segment_id=1,
        last_segment=True,
        device_list=(
            DeviceEntry(device_id="sip:200@sim.test", device_category=DeviceCategory.STATION),
            DeviceEntry(device_id="sip:201@sim.test", device_category=DeviceCategory.STATION),
        ),
    )
    assert codec.decode(codec.encode(sfd, Edition.ED5)) == sfd
    assert phone.drain_requests() == []


def test_other_phones_answer_in_the_request_edition() -> None:
    phone = make("mitel", "100")
    assert phone.handle_request(m.RequestSystemStatus(), 0.0, Edition.ED4).edition is Edition.ED4
    assert PERSONALITIES["snom"].event_edition is Edition.ED5


@pytest.mark.parametrize(
    ("vendor", "request_", "supported"),
    [
        # The Yealink firmware handles SystemRegister and AlternateCall itself (its source is
        # newer evidence than the estos table).
        ("yealink", m.SystemRegister(), True),
        ("mitel", m.SystemRegister(), False),
        ("auerswald", m.SystemRegister(), True),
        ("snom", m.SnapshotCall(snapshot_object=ConnectionID("1", "x")), False),
        ("yealink", m.AlternateCall(), True),
        ("snom", m.AlternateCall(), False),
        # Not in snom's estos table at all: offered, the phone's answer decides.
        ("snom", m.ClearCall(), True),
        ("yealink", m.DialDigits(), False),
        ("generic", m.ClearCall(), True),
        ("yealink", m.GetCSTAFeatures(), False),
    ],
)
def test_unsupported_services_are_refused(
    vendor: str, request_: m.CstaRequest, supported: bool
) -> None:
    phone = make(vendor, "100")
    response = req(phone, request_)
    refused = response == m.CSTAErrorCode.operation("invalidFeature")
    assert refused is not supported


def test_dnd_forwarding_mwi_with_events() -> None:
    phone = make("yealink", "100")
    dev = "sip:100@sim.test"
    req(phone, m.MonitorStart(monitor_object=dev))
    assert req(phone, m.GetDoNotDisturb(device=dev)) == m.GetDoNotDisturbResponse(
        do_not_disturb_on=False
    )
    assert req(phone, m.SetDoNotDisturb(device=dev, do_not_disturb_on=True)) == (
        m.SetDoNotDisturbResponse()
    )
    assert req(phone, m.GetDoNotDisturb(device=dev)) == m.GetDoNotDisturbResponse(
        do_not_disturb_on=True
    )
    assert drain(phone) == [
        m.DoNotDisturbEvent(
            monitor_cross_ref_id="1", device=DeviceIdentifier(dev), do_not_disturb_on=True
        )
    ]
    set_fwd = m.SetForwarding(
        device=dev,
        activate_forward=True,
        forwarding_type=ForwardingType.FORWARD_IMMEDIATE,
        forward_dn="200",
    )
    assert req(phone, set_fwd) == m.SetForwardingResponse()
    assert drain(phone) == [
        m.ForwardingEvent(
            monitor_cross_ref_id="1",
            device=DeviceIdentifier(dev),
            forwarding_type=ForwardingType.FORWARD_IMMEDIATE,
            forward_status=True,
            forward_to="200",
        )
    ]
    assert req(phone, m.GetForwarding(device=dev)) == m.GetForwardingResponse(
        forwarding_list=(
            ForwardListItem(
                forwarding_type=ForwardingType.FORWARD_IMMEDIATE,
                forward_status=True,
                forward_dn="200",
            ),
            ForwardListItem(forwarding_type=ForwardingType.FORWARD_BUSY, forward_status=False),
            ForwardListItem(forwarding_type=ForwardingType.FORWARD_NO_ANS, forward_status=False),
        )
    )
    no_dn = m.SetForwarding(
        device=dev, activate_forward=True, forwarding_type=ForwardingType.FORWARD_BUSY
    )
    assert req(phone, no_dn) == m.CSTAErrorCode.operation("invalidForwardingDestination")
    odd = m.SetForwarding(device=dev, activate_forward=True, forwarding_type="forwardDND")
    assert req(phone, odd) == m.CSTAErrorCode.operation("invalidFeature")
    assert req(phone, m.SetForwarding(device=dev, forwarding_type="forwardBusy")) == (
        m.CSTAErrorCode.operation("valueOutOfRange")
    )
    assert req(phone, m.SetMessageWaitingIndicator(device=dev, message_waiting_on=True)) == (
        m.SetMessageWaitingIndicatorResponse()
    )
    assert req(phone, m.GetMessageWaitingIndicator(device=dev)) == (
        m.GetMessageWaitingIndicatorResponse(message_waiting_on=True)
    )
    assert drain(phone) == [
        m.MessageWaitingEvent(
            monitor_cross_ref_id="1", target_device=DeviceIdentifier(dev), message_waiting_on=True
        )
    ]
    for bad in (
        m.SetDoNotDisturb(device=dev),
        m.SetMessageWaitingIndicator(device=dev),
        m.GetDoNotDisturb(device="nope"),
        m.GetForwarding(device="nope"),
        m.GetMessageWaitingIndicator(device="nope"),
    ):
        assert isinstance(req(phone, bad), m.CSTAErrorCode)


def test_no_events_without_monitor_and_after_monitor_stop() -> None:
    phone = make("fanvil", "100")
    phone.set_dnd("100", True)
    assert drain(phone) == []
    xref = req(phone, m.MonitorStart(monitor_object="100"))
    assert isinstance(xref, m.MonitorStartResponse)
    req(phone, m.MonitorStop(monitor_cross_ref_id=xref.monitor_cross_ref_id))
    phone.set_dnd("100", False)
    assert drain(phone) == []


def test_silent_and_offline_phone_answers_nothing() -> None:
    phone = make("yealink", "100")
    phone.silent = True
    assert phone.handle_request(m.RequestSystemStatus(), 0.0).response is None
    phone.silent = False
    phone.online = False
    assert phone.handle_request(m.RequestSystemStatus(), 0.0).response is None


def test_call_state_errors() -> None:
    phone = make("yealink", "100")
    dev = "sip:100@sim.test"
    inv = m.CSTAErrorCode.state_incompatibility("invalidConnectionID")
    assert req(phone, m.AnswerCall(call_to_be_answered=ConnectionID("9", dev))) == inv
    assert req(phone, m.ClearConnection()) == inv
    assert req(
        phone, m.MakeCall(calling_device="sip:999@sim.test", called_directory_number="1")
    ) == (m.CSTAErrorCode.operation("invalidDeviceID"))
    assert req(phone, m.MakeCall(calling_device=dev)) == m.CSTAErrorCode.operation(
        "invalidCalledDevice"
    )
    made = req(phone, m.MakeCall(calling_device=dev, called_directory_number="555"))
    assert made == m.MakeCallResponse(calling_device=ConnectionID("1", dev))
    own = ConnectionID("1", dev)
    # A standalone phone gets a private PBX: 555 is outside and rings forever.
    assert isinstance(phone.pbx, SimPbx)
    assert phone.pbx.get_timer() is None
    assert req(phone, m.AnswerCall(call_to_be_answered=own)) == (
        m.CSTAErrorCode.state_incompatibility("noCallToAnswer")
    )
    assert req(phone, m.RetrieveCall(call_to_be_retrieved=own)) == (
        m.CSTAErrorCode.state_incompatibility("noHeldCall")
    )
    assert req(phone, m.DeflectCall(call_to_be_diverted=own, new_destination="1")) == (
        m.CSTAErrorCode.state_incompatibility("invalidObjectState")
    )
    assert req(phone, m.GenerateDigits(connection_to_send_digits=own)) == (
        m.CSTAErrorCode.operation("valueOutOfRange")
    )
    assert req(phone, m.ConsultationCall(existing_call=own)) == m.CSTAErrorCode.operation(
        "invalidCalledDevice"
    )
    assert req(phone, m.HoldCall(call_to_be_held=own)) == m.HoldCallResponse()
    assert req(phone, m.HoldCall(call_to_be_held=own)) == (
        m.CSTAErrorCode.state_incompatibility("noActiveCall")
    )
    assert req(phone, m.GenerateDigits(connection_to_send_digits=own, characters_to_send="1")) == (
        m.CSTAErrorCode.state_incompatibility("noActiveCall")
    )
    assert req(phone, m.SnapshotDevice(snapshot_object=dev)) == m.SnapshotDeviceResponse(
        snapshot_data=(
            SnapshotDeviceResponseInfo(
                connection_identifier=own, local_connection_state=LocalConnectionState.HOLD
            ),
        )
    )
    # The far end's connection (own callID + far device) names the same call.
    far = ConnectionID("1", "sip:555@sim.test")
    assert req(phone, m.ClearConnection(connection_to_be_cleared=far)) == (
        m.ClearConnectionResponse()
    )
    assert req(phone, m.SnapshotDevice(snapshot_object=dev)) == m.SnapshotDeviceResponse()


def test_too_many_calls_on_a_line() -> None:
    phone = make("snom", "200")
    for n in range(4):
        assert isinstance(
            req(phone, m.MakeCall(calling_device="200", called_directory_number=f"9{n}")),
            m.MakeCallResponse,
        )
    assert req(phone, m.MakeCall(calling_device="200", called_directory_number="99")) == (
        m.CSTAErrorCode.system_resource_availability("resourceBusy")
    )
    with pytest.raises(RuntimeError):
        phone.dial("98", 0.0)
