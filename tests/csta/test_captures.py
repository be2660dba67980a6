"""Every concrete document of the reference material, decoded and checked value by value.

The fixtures in ``fixtures/captures/`` are copied from the references as they give them
(3CX guide capture, the snom examples of ``uacsta-protocol-notes.md``) or, where a reference
only describes a document (Yealink firmware behaviour, real-world dialects, Cisco CME,
ECMA-354 logins), written by hand from that description; the comment at the top of such a
fixture says so. The expected values below are read off the references, not off the codec.
"""

from __future__ import annotations

import pathlib

import pytest

from uacsta.csta import appsession as ecma354
from uacsta.csta import messages as m
from uacsta.csta.codec import Edition, decode, decode_with_edition, encode, rcc_line
from uacsta.csta.types import (
    AutoOriginate,
    ConnectionID,
    ConnectionListItem,
    DeviceIdentifier,
    EventCause,
    ForwardingType,
    ForwardListItem,
    LocalConnectionState,
    SnapshotDeviceResponseInfo,
    SystemStatusValue,
)
from uacsta.sip.message import Request, parse_message

CAPTURES = pathlib.Path(__file__).parent / "fixtures" / "captures"

SNOM = "sip:455455@ser.intern.snom.de"
Y = "sip:2001@pbx.example.com"  # the monitored Yealink account string
Y2, Y3 = "sip:2002@pbx.example.com", "sip:2003@pbx.example.com"
OSV1 = "N<302118840101>;displayNumber=302118840101;noa=nk"
OSV2 = "N<302118840102>;displayNumber=302118840102;noa=nk"


def _doc(name: str) -> bytes:
    return (CAPTURES / name).read_bytes()


def dev(value: str) -> DeviceIdentifier:
    return DeviceIdentifier(value=value, kind="deviceIdentifier")


def conn(call_id: str, device_id: str = Y) -> ConnectionID:
    return ConnectionID(call_id=call_id, device_id=device_id)


NOT_KNOWN = DeviceIdentifier(value=None, kind="notKnown")

#: (fixture, edition named by its namespace, the message it carries)
DOCUMENTS: list[tuple[str, Edition, m.CstaMessage]] = [
    # --- phone-uacsta-configuration-3cx.txt: the INFO body of the capture (3CX -> phone)
    (
        "3cx-MonitorStart.xml",
        Edition.ED5,
        m.MonitorStart(monitor_object="sip:181@172.16.7.255:5060"),
    ),
    # --- uacsta-protocol-notes.md: the snom examples, verbatim
    ("snom-MonitorStart.xml", Edition.ED5, m.MonitorStart(monitor_object=SNOM)),
    (
        "snom-MonitorStartResponse.xml",
        Edition.ED5,
        m.MonitorStartResponse(monitor_cross_ref_id="43", monitor_existing_calls=True),
    ),
    (
        "snom-SystemRegister.xml",
        Edition.ED5,
        m.SystemRegister(switching_function_devices_changed=True),
    ),
    (
        "snom-SystemRegisterResponse.xml",
        Edition.ED5,
        m.SystemRegisterResponse(sys_stat_register_id="43"),
    ),
    (
        "snom-MakeCall.xml",
        Edition.ED5,
        m.MakeCall(
            calling_device=SNOM,
            called_directory_number="455360",
            auto_originate=AutoOriginate.DO_NOT_PROMPT,
        ),
    ),
    ("snom-MakeCallResponse.xml", Edition.ED5, m.MakeCallResponse(calling_device=conn("2", SNOM))),
    (
        "snom-SnapshotDeviceResponse.xml",
        Edition.ED5,
        m.SnapshotDeviceResponse(
            snapshot_data=(
                SnapshotDeviceResponseInfo(
                    connection_identifier=conn("-12", SNOM),
                    local_connection_state=LocalConnectionState.ALERTING,
                ),
            )
        ),
    ),
    (
        "notes-CSTAErrorCode-invalidDeviceID.xml",
        Edition.NONE,
        m.CSTAErrorCode.operation("invalidDeviceID"),
    ),
    ("notes-CSTAErrorCode-unspecified.xml", Edition.NONE, m.CSTAErrorCode.unspecified()),
    (
        "notes-RequestSystemStatusResponse.xml",
        Edition.ED3,
        m.RequestSystemStatusResponse(system_status=SystemStatusValue.NORMAL),
    ),
    # --- real-world-dialects.md: snom's ed5 answers with single quotes and SIP URIs
    (
        "snom-ed5-MonitorStartResponse-singlequoted.xml",
        Edition.ED5,
        m.MonitorStartResponse(monitor_cross_ref_id="7", monitor_existing_calls=True),
    ),
    (
        "snom-ed5-SnapshotDeviceResponse-sipuri.xml",
        Edition.ED5,
        m.SnapshotDeviceResponse(
            snapshot_data=(
                SnapshotDeviceResponseInfo(
                    connection_identifier=conn("-12", SNOM + ";user=phone"),
                    local_connection_state=LocalConnectionState.CONNECTED,
                ),
            )
        ),
    ),
    # --- real-world-dialects.md: client documents (prefixed, no namespace, OpenScape IDs)
    ("client-MonitorStart-prefixed.xml", Edition.ED4, m.MonitorStart(monitor_object=SNOM)),
    (
        "client-MakeCall-nonamespace.xml",
        Edition.NONE,
        m.MakeCall(calling_device="455455", called_directory_number="455360"),
    ),
    (
        "client-MonitorStart-openscape-device.xml",
        Edition.ED4,
        m.MonitorStart(monitor_object="N<455455>;displayNumber=455455;noa=nk"),
    ),
    # --- cisco-cme-cti-csta.txt: the capabilities exchange
    ("cisco-GetCSTAFeatures.xml", Edition.ED3, m.GetCSTAFeatures()),
    # --- yealink-uacsta-behaviour.md: answers (misspelled ED5x host names ed5)
    (
        "yealink-MonitorStartResponse.xml",
        Edition.ED5,
        m.MonitorStartResponse(monitor_cross_ref_id="0", monitor_existing_calls=True),
    ),
    (
        "yealink-GetSwitchingFunctionDevicesResponse.xml",
        Edition.ED5,
        m.GetSwitchingFunctionDevicesResponse(
            service_cross_ref_id="C2527445F5CC4848A7E80CBF0F76A11E"
        ),
    ),
    (
        "yealink-SystemRegisterResponse.xml",
        Edition.ED5,
        m.SystemRegisterResponse(sys_stat_register_id="2"),
    ),
    ("yealink-MakeCallResponse.xml", Edition.ED5, m.MakeCallResponse(calling_device=conn("24"))),
    (
        "yealink-GetDoNotDisturbResponse.xml",
        Edition.ED3,
        m.GetDoNotDisturbResponse(do_not_disturb_on=True),
    ),
    (
        "yealink-GetForwardingResponse.xml",
        Edition.ED5,
        m.GetForwardingResponse(
            forwarding_list=(
                ForwardListItem(
                    forwarding_type=ForwardingType.FORWARD_IMMEDIATE,
                    forward_status=True,
                    forward_dn="tel:300",
                ),
                ForwardListItem(
                    forwarding_type=ForwardingType.FORWARD_BUSY,
                    forward_status=False,
                    forward_dn="tel:",
                ),
                ForwardListItem(
                    forwarding_type=ForwardingType.FORWARD_NO_ANS,
                    forward_status=False,
                    forward_dn="tel:",
                    ring_duration=0,
                ),
            )
        ),
    ),
    (
        "yealink-SnapshotDeviceResponse.xml",
        Edition.ED5,
        m.SnapshotDeviceResponse(
            snapshot_data=(
                SnapshotDeviceResponseInfo(
                    connection_identifier=conn("23"),
                    local_connection_state=LocalConnectionState.HOLD,
                ),
            )
        ),
    ),
    (
        "yealink-SnapshotDeviceResponse-idle.xml",
        Edition.ED5,
        m.SnapshotDeviceResponse(snapshot_data=()),
    ),
    (
        "yealink-GetMessageWaitingIndicatorResponse.xml",
        Edition.ED5,
        m.GetMessageWaitingIndicatorResponse(message_waiting_on=False),
    ),
    ("yealink-CSTAErrorCode.xml", Edition.ED5, m.CSTAErrorCode.unspecified()),
    (
        "yealink-SwFunctionDevicesChanged.xml",
        Edition.ED5,
        m.SwFunctionDevicesChanged(sys_stat_register_id="2"),
    ),
    # --- yealink-uacsta-behaviour.md: events
    (
        "yealink-ServiceInitiatedEvent.xml",
        Edition.ED5,
        m.ServiceInitiatedEvent(
            monitor_cross_ref_id="0",
            initiated_connection=conn("24"),
            initiating_device=dev(Y),
            local_connection_info=LocalConnectionState.INITIATED,
            cause=EventCause.MAKE_CALL,
        ),
    ),
    (
        "yealink-OriginatedEvent.xml",
        Edition.ED5,
        m.OriginatedEvent(
            monitor_cross_ref_id="0",
            originated_connection=conn("24"),
            calling_device=dev(Y),
            called_device=dev(Y2),
            local_connection_info=LocalConnectionState.CONNECTED,
            cause=EventCause.NORMAL,
        ),
    ),
    (
        "yealink-EstablishedEvent.xml",
        Edition.ED5,
        m.EstablishedEvent(
            monitor_cross_ref_id="0",
            established_connection=conn("23"),
            answering_device=dev(Y),
            calling_device=dev(Y2),
            called_device=dev(Y),
            last_redirection_device=NOT_KNOWN,
            local_connection_info=LocalConnectionState.CONNECTED,
            cause=EventCause.NORMAL,
        ),
    ),
    (
        "yealink-ConnectionClearedEvent.xml",
        Edition.ED5,
        m.ConnectionClearedEvent(
            monitor_cross_ref_id="0",
            dropped_connection=conn("23"),
            releasing_device=dev(Y),
            local_connection_info=LocalConnectionState.NULL,
            cause=EventCause.NORMAL_CLEARING,
        ),
    ),
    (
        "yealink-HeldEvent.xml",
        Edition.ED5,
        m.HeldEvent(
            monitor_cross_ref_id="0",
            held_connection=conn("23"),
            holding_device=dev(Y),
            local_connection_info=LocalConnectionState.HOLD,
            cause=EventCause.NORMAL,
        ),
    ),
    (
        "yealink-RetrievedEvent.xml",
        Edition.ED5,
        m.RetrievedEvent(
            monitor_cross_ref_id="0",
            retrieved_connection=conn("23"),
            retrieving_device=dev(Y),
            local_connection_info=LocalConnectionState.CONNECTED,
            cause=EventCause.NORMAL,
        ),
    ),
    (
        "yealink-ConferencedEvent.xml",
        Edition.ED5,
        m.ConferencedEvent(
            monitor_cross_ref_id="0",
            primary_old_call=conn("23"),
            secondary_old_call=conn("25"),
            conferencing_device=dev(Y),
            conference_connections=tuple(
                ConnectionListItem(new_connection=conn("23|25", d)) for d in (Y, Y2, Y3)
            ),
            local_connection_info=LocalConnectionState.CONNECTED,
            cause=EventCause.NORMAL,
        ),
    ),
    (
        "yealink-DivertedEvent.xml",
        Edition.ED5,
        m.DivertedEvent(
            monitor_cross_ref_id="0",
            connection=conn("23"),
            diverting_device=dev(Y),
            new_destination=dev("300"),
            last_redirection_device=NOT_KNOWN,
            local_connection_info=LocalConnectionState.NULL,
            cause=EventCause.NORMAL,
        ),
    ),
    (
        "yealink-FailedEvent.xml",
        Edition.ED5,
        m.FailedEvent(
            monitor_cross_ref_id="0",
            failed_connection=conn("23"),
            failing_device=dev(Y),
            calling_device=dev("2002"),
            called_device=dev(Y),
            local_connection_info=LocalConnectionState.NULL,
            cause=EventCause.CALL_CANCELLED,
        ),
    ),
    (
        "yealink-DigitsGeneratedEvent.xml",
        Edition.ED5,
        m.DigitsGeneratedEvent(
            monitor_cross_ref_id="0", connection=conn("23"), digit_generated_list="5"
        ),
    ),
    (
        "yealink-DoNotDisturbEvent.xml",
        Edition.ED5,
        m.DoNotDisturbEvent(monitor_cross_ref_id="0", device=dev(Y), do_not_disturb_on=True),
    ),
    (
        "yealink-ForwardingEvent.xml",
        Edition.ED5,
        m.ForwardingEvent(
            monitor_cross_ref_id="0",
            device=dev(Y),
            forwarding_type=ForwardingType.FORWARD_NO_ANS,
            forward_status=True,
            forward_to="tel:300",
            ring_count=4,
        ),
    ),
]


def test_every_capture_has_a_case() -> None:
    covered = {name for name, _, _ in DOCUMENTS} | {
        "3cx-INFO-MonitorStart.sip",
        "avaya-StartApplicationSession.xml",
        "lcs-RequestSystemStatus.xml",
        "openscape-DeliveredEvent-prefixed.xml",
    }
    assert {p.name for p in CAPTURES.iterdir()} == covered


@pytest.mark.parametrize(("name", "edition", "expected"), DOCUMENTS, ids=[d[0] for d in DOCUMENTS])
def test_capture_decodes_to_its_values(
    name: str, edition: Edition, expected: m.CstaMessage
) -> None:
    message, got_edition = decode_with_edition(_doc(name))
    assert message == expected
    assert got_edition is edition


def test_3cx_info_capture() -> None:
    """The INFO of the 3CX capture, headers as the guide lists them (the request line from the
    packet list; Wireshark's ``\\n`` are the body's newlines: Content-Length 282 counts them)."""
    request = parse_message(_doc("3cx-INFO-MonitorStart.sip"))
    assert isinstance(request, Request)
    assert request.method == "INFO"
    assert request.uri == "sip:181@172.16.21.111:5060"
    assert request.call_id == "Z005LqRT8eY1GorDyGJ4dg.."
    assert request.content_type == "application/csta+xml"
    assert len(request.body) == 282
    assert decode(request.body) == m.MonitorStart(monitor_object="sip:181@172.16.7.255:5060")


def test_openscape_prefixed_delivered_event_keeps_its_private_data() -> None:
    message, edition = decode_with_edition(_doc("openscape-DeliveredEvent-prefixed.xml"))
    assert edition is Edition.ED4
    assert isinstance(message, m.DeliveredEvent)
    assert message.monitor_cross_ref_id == "1e07"
    assert message.connection == conn("FF000100000000005B0D6A5B1B250000", OSV1)
    assert message.alerting_device == dev(OSV1)
    assert message.calling_device == dev(OSV2)
    assert message.called_device == dev(OSV1)
    assert message.last_redirection_device == DeviceIdentifier(value=None, kind="notRequired")
    assert message.local_connection_info is LocalConnectionState.ALERTING
    assert message.cause is EventCause.NEW_CALL
    # scx: private data survives a relay: written out again, with its namespace.
    relayed = encode(message, Edition.ED5)
    assert b'xmlns:scx="http://www.siemens.com/schema/csta"' in relayed
    assert b"<scx:callingPartyName>Alice</scx:callingPartyName>" in relayed
    again = decode(relayed)
    assert isinstance(again, m.DeliveredEvent) and again.connection == message.connection


def test_microsoft_rcc_request_system_status_carries_its_line() -> None:
    message = decode(_doc("lcs-RequestSystemStatus.xml"))
    assert isinstance(message, m.RequestSystemStatus)
    assert message.sys_stat_register_id is None
    assert message.extensions is not None
    assert rcc_line(message) == "tel:455455;phone-context=dialstring"


def test_lcs_line_absent() -> None:
    assert rcc_line(m.RequestSystemStatus()) is None
    assert rcc_line(decode(_doc("snom-MonitorStart.xml"))) is None


def test_avaya_session_login() -> None:
    start = ecma354.decode_appsession(_doc("avaya-StartApplicationSession.xml"))
    assert isinstance(start, ecma354.StartApplicationSession)
    assert start.application_id == "TestApp"
    assert start.requested_protocol_versions == (ecma354.CSTA_ED3,)
    assert start.requested_session_duration == 180
    assert start.credentials is not None
    assert start.credentials.user_name == "crm"
    assert start.credentials.password == "crm-secret"
    assert start.credentials.session_cleanup_delay == 60
    assert start.credentials.shape is ecma354.CredentialsShape.AVAYA
