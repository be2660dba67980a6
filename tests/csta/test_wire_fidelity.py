"""What the codec reads from deployed peers and writes for them (issue 14).

Fixtures in ``fixtures/realworld/`` are written by hand from the documents described in
``reference/real-world-dialects.md`` and ``reference/yealink-uacsta-behaviour.md``; the expected
XML below is written by hand from the ECMA-285 ASN.1 (element names, SEQUENCE order, CHOICE
alternatives), never produced with the codec.
"""

from __future__ import annotations

import pathlib

import pytest
from lxml import etree

from uacsta.csta import messages as m
from uacsta.csta.codec import (
    MESSAGE_CLASSES,
    Dialect,
    Edition,
    decode,
    decode_with_edition,
    encode,
)
from uacsta.csta.errors import CstaDecodeError
from uacsta.csta.types import (
    ConnectionID,
    ConnectionListItem,
    DeviceEntry,
    DeviceIdentifier,
    EventCause,
    ForwardingType,
    ForwardListItem,
    LocalConnectionState,
    SnapshotDeviceResponseInfo,
)

REALWORLD = pathlib.Path(__file__).parent / "fixtures" / "realworld"
DECL = b'<?xml version="1.0" encoding="UTF-8"?>'


def _doc(name: str) -> bytes:
    return (REALWORLD / name).read_bytes()


def _written(message: m.CstaMessage, *, dialect: Dialect | None = None) -> bytes:
    """What the codec writes, without namespace (the element structure is what is checked)."""
    return encode(message, Edition.NONE, dialect=dialect).removeprefix(DECL)


# --- documents from deployed peers ----------------------------------------------------------


def test_yealink_line_list_device_items() -> None:
    msg, edition = decode_with_edition(_doc("yealink-SwitchingFunctionDevices.xml"))
    assert edition is Edition.ED5  # the misspelled host still names ed5
    assert msg == m.SwitchingFunctionDevices(
        service_cross_ref_id="C2527445F5CC4848A7E80CBF0F76A11E",
        last_segment=True,
        device_list=(
            DeviceEntry(device_id="sip:2001@pbx.example.com:5060;tel=+4989123452001"),
            DeviceEntry(device_id="sip:2002@pbx.example.com:5060"),
            DeviceEntry(device_id="sip:cti@uacsta.example.com:5060"),
        ),
    )


def test_line_list_standard_items_and_written_form() -> None:
    data = (
        b"<SwitchingFunctionDevices><serviceCrossRefID>7</serviceCrossRefID>"
        b"<lastSegment>true</lastSegment><deviceList>"
        b"<deviceEntry><deviceID>sip:1@a</deviceID><deviceCategory>station</deviceCategory>"
        b"<deviceModelName>T46U</deviceModelName></deviceEntry>"
        b"<device><deviceID>sip:2@a</deviceID></device>"
        b"</deviceList></SwitchingFunctionDevices>"
    )
    msg = decode(data)
    assert isinstance(msg, m.SwitchingFunctionDevices)
    assert [(e.device_id, e.device_category, e.device_model_name) for e in msg.device_list] == [
        ("sip:1@a", "station", "T46U"),
        ("sip:2@a", None, None),
    ]
    assert _written(msg) == (
        b"<SwitchingFunctionDevices><serviceCrossRefID>7</serviceCrossRefID>"
        b"<lastSegment>true</lastSegment><deviceList>"
        b"<deviceEntry><deviceID>sip:1@a</deviceID><deviceCategory>station</deviceCategory>"
        b"<deviceModelName>T46U</deviceModelName></deviceEntry>"
        b"<deviceEntry><deviceID>sip:2@a</deviceID></deviceEntry>"
        b"</deviceList></SwitchingFunctionDevices>"
    )


def test_yealink_transfered_event() -> None:
    msg = decode(_doc("yealink-TransferedEvent.xml"))
    assert msg == m.TransferredEvent(
        monitor_cross_ref_id="0",
        primary_old_call=ConnectionID("17", "sip:2001@pbx.example.com"),
        transferring_device=DeviceIdentifier("sip:2001@pbx.example.com"),
        transferred_to_device=DeviceIdentifier("sip:2003@pbx.example.com"),
        transferred_connections=(ConnectionListItem(),),
        local_connection_info=LocalConnectionState.NULL,
        cause=EventCause.SINGLE_STEP_TRANSFER,
    )
    assert _written(msg).startswith(b"<TransferredEvent>")


def test_yealink_delivered_event() -> None:
    msg = decode(_doc("yealink-DeliveredEvent.xml"))
    assert isinstance(msg, m.DeliveredEvent)
    assert msg.last_redirection_device == DeviceIdentifier.not_known()
    assert msg.local_connection_info is LocalConnectionState.ALERTING
    assert msg.cause is EventCause.NORMAL


def test_deflect_call_target_forms() -> None:
    child_form = decode(_doc("yealink-DeflectCall.xml"))
    expected = m.DeflectCall(
        call_to_be_diverted=ConnectionID("23", "sip:2001@pbx.example.com"),
        new_destination="300",
    )
    assert child_form == expected
    standard = (
        b"<DeflectCall><callToBeDiverted><callID>23</callID>"
        b"<deviceID>sip:2001@pbx.example.com</deviceID></callToBeDiverted>"
        b"<newDestination>300</newDestination></DeflectCall>"
    )
    assert decode(standard) == expected
    assert _written(expected) == standard
    assert _written(expected, dialect=Dialect.YEALINK) == (
        b"<DeflectCall><callToBeDiverted><callID>23</callID>"
        b"<deviceID>sip:2001@pbx.example.com</deviceID></callToBeDiverted>"
        b"<newDestination><device>300</device></newDestination></DeflectCall>"
    )
    # The dialect changes only the messages it has a form for.
    hold = m.HoldCall(call_to_be_held=ConnectionID("23", "d"))
    assert encode(hold, dialect=Dialect.YEALINK) == encode(hold)


@pytest.mark.parametrize("name", ["broadworks-SetForwarding.xml", "broadworks-ForwardingEvent.xml"])
def test_empty_optional_elements_are_absent(name: str) -> None:
    msg = decode(_doc(name))
    assert isinstance(msg, m.SetForwarding | m.ForwardingEvent)
    assert msg.ring_count is None


def test_broadworks_set_forwarding() -> None:
    msg = decode(_doc("broadworks-SetForwarding.xml"))
    assert msg == m.SetForwarding(
        device="2001@as.example.net",
        forwarding_type=ForwardingType.FORWARD_IMMEDIATE,
        activate_forward=True,
        forward_dn="2005",
    )


def test_empty_boolean_and_enum_are_absent() -> None:
    msg = decode(
        b"<ForwardingEvent><forwardingType></forwardingType><forwardStatus/>"
        b"<ringCount> </ringCount></ForwardingEvent>"
    )
    assert msg == m.ForwardingEvent()


def test_hosted_pbx_snapshot_device_misspelling() -> None:
    msg = decode(_doc("hostedpbx-SnapShotDevice.xml"))
    assert msg == m.SnapshotDevice(snapshot_object="tel:+4930123456")
    assert _written(msg) == (
        b"<SnapshotDevice><snapshotObject>tel:+4930123456</snapshotObject></SnapshotDevice>"
    )


def test_private_data_under_the_root_is_kept_and_relayed() -> None:
    msg = decode(_doc("hostedpbx-TransferedEvent-privateData.xml"))
    assert isinstance(msg, m.TransferredEvent)
    assert msg.cause is EventCause.TRANSFER
    assert msg.extensions is not None
    out = encode(msg, Edition.ED3)
    root = etree.fromstring(out)
    ns = "{http://www.ecma-international.org/standards/ecma-323/csta/ed3}"
    # Written where ECMA-323 has it: extensions/privateData, last in the message.
    assert root[-1].tag == ns + "extensions"
    (tenant,) = root.iter("{urn:example:hostedpbx}Tenant")
    assert tenant.text == "acme"
    assert [a.tag for a in tenant.iterancestors()][:3] == [
        ns + "private",
        ns + "privateData",
        ns + "extensions",
    ]
    assert decode(out) == msg


def test_private_data_under_the_root_joins_existing_extensions() -> None:
    msg = decode(
        b"<HeldEvent><extensions><privateData><private><a>1</a></private></privateData>"
        b"</extensions><privateData><private><b>2</b></private></privateData></HeldEvent>"
    )
    assert msg.extensions == (
        b"<extensions><privateData><private><a>1</a></private></privateData>"
        b"<privateData><private><b>2</b></private></privateData></extensions>"
    )


def test_openscape_prefixed_call_information_event() -> None:
    msg, edition = decode_with_edition(_doc("openscape-CallInformationEvent.xml"))
    assert edition is Edition.ED4
    device = "N<302118840101>;displayNumber=302118840101;noa=nk"
    assert isinstance(msg, m.CallInformationEvent)
    assert msg.monitor_cross_ref_id == "1e06"
    assert msg.connection == ConnectionID("FF000100000000005B0D6A5B1B240000", device)
    assert msg.device == DeviceIdentifier(device)
    assert msg.calling_device == DeviceIdentifier(
        "N<302118840102>;displayNumber=302118840102;noa=nk"
    )
    assert msg.account_info == "4711"
    assert msg.correlator_data == "0A1B"
    # Siemens private data survives a relay, in its own namespace.
    assert msg.extensions is not None
    out = encode(msg, Edition.ED4)
    (info,) = etree.fromstring(out).iter("{http://www.siemens.com/schema/csta}userToUserInfo")
    assert info.text == "order 17"


def test_document_without_namespace() -> None:
    msg, edition = decode_with_edition(_doc("zultys-DeliveredEvent-nonamespace.xml"))
    assert edition is Edition.NONE
    assert isinstance(msg, m.DeliveredEvent)
    assert msg.last_redirection_device == DeviceIdentifier("200")
    assert msg.cause is EventCause.REDIRECTED


def test_utf16_declaration_on_utf8_bytes() -> None:
    msg = decode(_doc("dotnet-MakeCall-utf16-declaration.xml"))
    assert msg == m.MakeCall(
        calling_device="sip:jürgen@pbx.example.com", called_directory_number="+49891234"
    )


@pytest.mark.parametrize(
    "data",
    [
        b'<?xml version="1.0" encoding="utf-16"?><MakeCall>',
        b'<?xml version="1.0" encoding="utf-16"?><!DOCTYPE x [<!ENTITY a "b">]><MakeCall/>',
        b'<?xml version="1.0" encoding="utf-16"?>',
    ],
)
def test_utf16_declaration_does_not_excuse_broken_documents(data: bytes) -> None:
    with pytest.raises(CstaDecodeError):
        decode(data)


def test_real_utf16_document_still_reads() -> None:
    data = (
        '<?xml version="1.0" encoding="utf-16"?><MakeCall><calledDirectoryNumber>'
        "5\u00e4</calledDirectoryNumber></MakeCall>"
    ).encode("utf-16")
    assert decode(data) == m.MakeCall(called_directory_number="5\u00e4")


@pytest.mark.parametrize(
    ("inner", "expected"),
    [
        ("<numberDialed>200</numberDialed>", DeviceIdentifier("200")),
        ("<numberdialed>200</numberdialed>", DeviceIdentifier("200")),
        ("<deviceIdentifier>200</deviceIdentifier>", DeviceIdentifier("200")),
        ("<notKnown/>", DeviceIdentifier(None, "notKnown")),
        ("<notRequired/>", DeviceIdentifier(None, "notRequired")),
        ("<notSpecified/>", DeviceIdentifier(None, "notSpecified")),
        ("<restricted/>", DeviceIdentifier(None, "restricted")),
    ],
)
def test_redirection_device_alternatives(inner: str, expected: DeviceIdentifier) -> None:
    data = f"<DivertedEvent><lastRedirectionDevice>{inner}</lastRedirectionDevice></DivertedEvent>"
    msg = decode(data.encode())
    assert isinstance(msg, m.DivertedEvent)
    assert msg.last_redirection_device == expected
    written = "<numberDialed>200</numberDialed>" if expected.value else f"<{expected.kind}/>"
    assert f"<lastRedirectionDevice>{written}</lastRedirectionDevice>".encode() in _written(msg)


def test_subject_device_writes_only_its_own_alternatives() -> None:
    # SubjectDeviceID has no notRequired: a relayed one becomes notKnown, not invalid XML.
    msg = m.HeldEvent(holding_device=DeviceIdentifier(None, "notRequired"))
    assert _written(msg) == b"<HeldEvent><holdingDevice><notKnown/></holdingDevice></HeldEvent>"


# --- what the codec writes, message by message (ECMA-285 names, order, CHOICEs) ---------------


def test_generate_digits_written() -> None:
    msg = m.GenerateDigits(
        connection_to_send_digits=ConnectionID("5", "sip:2001@pbx"), characters_to_send="12#"
    )
    assert _written(msg) == (
        b"<GenerateDigits><connectionToSendDigits><callID>5</callID>"
        b"<deviceID>sip:2001@pbx</deviceID></connectionToSendDigits>"
        b"<charactersToSend>12#</charactersToSend></GenerateDigits>"
    )
    old = decode(
        b"<GenerateDigits><connectionToSendDigits><callID>5</callID>"
        b"<deviceID>sip:2001@pbx</deviceID></connectionToSendDigits>"
        b"<charToSend>12#</charToSend></GenerateDigits>"
    )
    assert old == msg


def test_dial_digits_written() -> None:
    msg = m.DialDigits(
        dialling_connection=ConnectionID("5", "sip:2001@pbx"), dialling_sequence="0049"
    )
    assert _written(msg) == (
        b"<DialDigits><diallingConnection><callID>5</callID><deviceID>sip:2001@pbx</deviceID>"
        b"</diallingConnection><diallingSequence>0049</diallingSequence></DialDigits>"
    )
    assert (
        decode(
            b"<DialDigits><callToBeDialed><callID>5</callID><deviceID>sip:2001@pbx</deviceID>"
            b"</callToBeDialed><dialingSequence>0049</dialingSequence></DialDigits>"
        )
        == msg
    )


def test_delivered_event_sequence_order() -> None:
    msg = m.DeliveredEvent(
        monitor_cross_ref_id="1",
        connection=ConnectionID("5", "200"),
        alerting_device=DeviceIdentifier("200"),
        calling_device=DeviceIdentifier.restricted(),
        called_device=DeviceIdentifier("200"),
        last_redirection_device=DeviceIdentifier("300"),
        network_calling_device=DeviceIdentifier("+4930"),
        local_connection_info=LocalConnectionState.ALERTING,
        cause=EventCause.REDIRECTED,
    )
    assert _written(msg) == (
        b"<DeliveredEvent><monitorCrossRefID>1</monitorCrossRefID>"
        b"<connection><callID>5</callID><deviceID>200</deviceID></connection>"
        b"<alertingDevice><deviceIdentifier>200</deviceIdentifier></alertingDevice>"
        b"<callingDevice><restricted/></callingDevice>"
        b"<calledDevice><deviceIdentifier>200</deviceIdentifier></calledDevice>"
        b"<lastRedirectionDevice><numberDialed>300</numberDialed></lastRedirectionDevice>"
        b"<localConnectionInfo>alerting</localConnectionInfo><cause>redirected</cause>"
        b"<networkCallingDevice><deviceIdentifier>+4930</deviceIdentifier>"
        b"</networkCallingDevice></DeliveredEvent>"
    )


def test_connection_list_written() -> None:
    msg = m.ConferencedEvent(
        primary_old_call=ConnectionID("1", "200"),
        conference_connections=(
            ConnectionListItem(
                new_connection=ConnectionID("3", "201"),
                old_connection=ConnectionID("2", "201"),
                endpoint=DeviceIdentifier("201"),
            ),
            ConnectionListItem(endpoint=DeviceIdentifier.not_known()),
        ),
        cause=EventCause.CONFERENCE,
    )
    assert _written(msg) == (
        b"<ConferencedEvent><primaryOldCall><callID>1</callID><deviceID>200</deviceID>"
        b"</primaryOldCall><conferenceConnections><connectionListItem>"
        b"<newConnection><callID>3</callID><deviceID>201</deviceID></newConnection>"
        b"<oldConnection><callID>2</callID><deviceID>201</deviceID></oldConnection>"
        b"<endpoint><deviceID>201</deviceID></endpoint></connectionListItem>"
        b"<connectionListItem><endpoint><notKnown/></endpoint></connectionListItem>"
        b"</conferenceConnections><cause>conference</cause></ConferencedEvent>"
    )
    # The old endpoint form (deviceIdentifier) is still read.
    old = decode(
        b"<ConferencedEvent><conferenceConnections><connectionListItem><endpoint>"
        b"<deviceIdentifier>201</deviceIdentifier></endpoint></connectionListItem>"
        b"</conferenceConnections></ConferencedEvent>"
    )
    assert isinstance(old, m.ConferencedEvent)
    assert old.conference_connections[0].endpoint == DeviceIdentifier("201")


def test_monitor_filters_written() -> None:
    request = m.MonitorStart(
        monitor_object="sip:2001@pbx", requested_monitor_filter=frozenset({"held", "forwarding"})
    )
    assert _written(request) == (
        b"<MonitorStart><monitorObject><deviceObject>sip:2001@pbx</deviceObject>"
        b"</monitorObject><requestedMonitorFilter><callControl><held>true</held></callControl>"
        b"<logicalDeviceFeature><forwarding>true</forwarding></logicalDeviceFeature>"
        b"</requestedMonitorFilter></MonitorStart>"
    )
    response = m.MonitorStartResponse(
        monitor_cross_ref_id="0",
        actual_monitor_filter=frozenset({"messageWaiting", "backInService"}),
        monitor_existing_calls=True,
    )
    assert _written(response) == (
        b"<MonitorStartResponse><monitorCrossRefID>0</monitorCrossRefID><actualMonitorFilter>"
        b"<physicalDeviceFeature><messageWaiting>true</messageWaiting></physicalDeviceFeature>"
        b"<maintenance><backInService>true</backInService></maintenance></actualMonitorFilter>"
        b"<monitorExistingCalls>true</monitorExistingCalls></MonitorStartResponse>"
    )


def test_set_forwarding_written() -> None:
    msg = m.SetForwarding(
        device="200",
        activate_forward=True,
        forwarding_type=ForwardingType.FORWARD_NO_ANS,
        forward_dn="300",
        ring_count=4,
    )
    assert _written(msg) == (
        b"<SetForwarding><device>200</device><forwardingType>forwardNoAns</forwardingType>"
        b"<activateForward>true</activateForward><forwardDN>300</forwardDN>"
        b"<ringCount>4</ringCount></SetForwarding>"
    )


def test_get_forwarding_response_written() -> None:
    msg = m.GetForwardingResponse(
        forwarding_list=(
            ForwardListItem(
                forwarding_type=ForwardingType.FORWARD_NO_ANS,
                forward_status=True,
                forward_dn="300",
                ring_duration=20,
            ),
        )
    )
    assert _written(msg) == (
        b"<GetForwardingResponse><forwardingList><forwardListItem>"
        b"<forwardingType>forwardNoAns</forwardingType><forwardStatus>true</forwardStatus>"
        b"<forwardDN>300</forwardDN><ringDuration>20</ringDuration></forwardListItem>"
        b"</forwardingList></GetForwardingResponse>"
    )


def test_snapshot_device_response_is_a_choice() -> None:
    info = SnapshotDeviceResponseInfo(
        connection_identifier=ConnectionID("5", "200"),
        local_connection_state=LocalConnectionState.HOLD,
        simple_call_state="callEstablishedHeld",
    )
    msg = m.SnapshotDeviceResponse(service_cross_ref_id="9", snapshot_data=(info,))
    assert _written(msg) == b"<SnapshotDeviceResponse><crossRefIDorSnapshotData>" + (
        b"<serviceCrossRefID>9</serviceCrossRefID></crossRefIDorSnapshotData>"
        b"</SnapshotDeviceResponse>"
    )
    data_only = m.SnapshotDeviceResponse(snapshot_data=(info,))
    assert _written(data_only) == (
        b"<SnapshotDeviceResponse><crossRefIDorSnapshotData><snapshotData>"
        b"<snapshotDeviceResponseInfo><connectionIdentifier><callID>5</callID>"
        b"<deviceID>200</deviceID></connectionIdentifier><localCallState><compoundCallState>"
        b"<localConnectionState>hold</localConnectionState></compoundCallState>"
        b"</localCallState></snapshotDeviceResponseInfo></snapshotData>"
        b"</crossRefIDorSnapshotData></SnapshotDeviceResponse>"
    )
    simple = decode(
        b"<SnapshotDeviceResponse><crossRefIDorSnapshotData><snapshotData>"
        b"<snapshotDeviceResponseInfo><localCallState><simpleCallState>callDelivered"
        b"</simpleCallState></localCallState></snapshotDeviceResponseInfo></snapshotData>"
        b"</crossRefIDorSnapshotData></SnapshotDeviceResponse>"
    )
    assert isinstance(simple, m.SnapshotDeviceResponse)
    assert simple.snapshot_data[0].simple_call_state == "callDelivered"


def test_message_waiting_event_device_for_message_is_a_device_id() -> None:
    msg = m.MessageWaitingEvent(
        target_device=DeviceIdentifier("200"), device_for_message="800", message_waiting_on=True
    )
    assert _written(msg) == (
        b"<MessageWaitingEvent><targetDevice><deviceIdentifier>200</deviceIdentifier>"
        b"</targetDevice><deviceForMessage>800</deviceForMessage>"
        b"<messageWaitingOn>true</messageWaitingOn></MessageWaitingEvent>"
    )


def test_call_cleared_event_has_no_local_connection_info() -> None:
    msg = decode(
        b"<CallClearedEvent><clearedCall><callID>1</callID></clearedCall>"
        b"<localConnectionInfo>null</localConnectionInfo><cause>normalClearing</cause>"
        b"</CallClearedEvent>"
    )
    assert _written(msg) == (
        b"<CallClearedEvent><clearedCall><callID>1</callID></clearedCall>"
        b"<cause>normalClearing</cause></CallClearedEvent>"
    )


@pytest.mark.parametrize(
    ("error", "xml"),
    [
        (
            m.CSTAErrorCode.timeout(),
            b"<systemResourceAvailability>resourceOutOfService</systemResourceAvailability>",
        ),
        (
            m.CSTAErrorCode.out_of_service(),
            b"<systemResourceAvailability>deviceOutOfService</systemResourceAvailability>",
        ),
        (
            m.CSTAErrorCode.operation("invalidCrossRefId"),
            b"<operation>invalidCrossRefID</operation>",
        ),
        (m.CSTAErrorCode(category="unspecified", value="x"), b"<unspecified/>"),
    ],
)
def test_error_values_written(error: m.CSTAErrorCode, xml: bytes) -> None:
    assert _written(error) == b"<CSTAErrorCode>" + xml + b"</CSTAErrorCode>"


def test_monitor_ended_notice_goes_out_as_monitor_stop() -> None:
    # ECMA-269 Phase III has no Monitor Ended event: the switching function sends MonitorStop.
    notice = m.MonitorEndedEvent(monitor_cross_ref_id="311", cause=EventCause.NORMAL)
    assert _written(notice) == (
        b"<MonitorStop><monitorCrossRefID>311</monitorCrossRefID></MonitorStop>"
    )
    assert "MonitorEndedEvent" not in MESSAGE_CLASSES
    # A Phase II peer's event is still read.
    old = decode(_doc("phase2-MonitorEndedEvent.xml"))
    assert old == m.MonitorEndedEvent(
        monitor_cross_ref_id="311", cause=EventCause.RESOURCES_NOT_AVAILABLE
    )


# --- mandatory lists written when empty (ECMA-285: SEQUENCE OF / CHOICE components) ----------


EMPTY_MANDATORY_LISTS = [
    # snapshot-device.asn1: crossRefIDorSnapshotData is not OPTIONAL; the Yealink reference:
    # "empty snapshotData when idle".
    (
        m.SnapshotDeviceResponse(),
        b"<SnapshotDeviceResponse><crossRefIDorSnapshotData><snapshotData/>"
        b"</crossRefIDorSnapshotData></SnapshotDeviceResponse>",
    ),
    (
        m.SnapshotCallResponse(),
        b"<SnapshotCallResponse><crossRefIDorSnapshotData><snapshotData/>"
        b"</crossRefIDorSnapshotData></SnapshotCallResponse>",
    ),
    (
        m.SnapshotDeviceResponse(service_cross_ref_id="7"),
        b"<SnapshotDeviceResponse><crossRefIDorSnapshotData><serviceCrossRefID>7"
        b"</serviceCrossRefID></crossRefIDorSnapshotData></SnapshotDeviceResponse>",
    ),
    (
        m.GetForwardingResponse(),
        b"<GetForwardingResponse><forwardingList/></GetForwardingResponse>",
    ),
    (
        m.GetCSTAFeaturesResponse(),
        b"<GetCSTAFeaturesResponse><supportedServices/></GetCSTAFeaturesResponse>",
    ),
    (
        m.SwitchingFunctionDevices(),
        b"<SwitchingFunctionDevices><deviceList/></SwitchingFunctionDevices>",
    ),
    (
        m.ConferencedEvent(monitor_cross_ref_id="1"),
        b"<ConferencedEvent><monitorCrossRefID>1</monitorCrossRefID><conferenceConnections/>"
        b"</ConferencedEvent>",
    ),
    (
        m.TransferredEvent(monitor_cross_ref_id="1"),
        b"<TransferredEvent><monitorCrossRefID>1</monitorCrossRefID><transferredConnections/>"
        b"</TransferredEvent>",
    ),
]


@pytest.mark.parametrize(
    ("message", "expected"), EMPTY_MANDATORY_LISTS, ids=lambda v: type(v).__name__
)
def test_mandatory_list_written_when_empty(message: m.CstaMessage, expected: bytes) -> None:
    assert _written(message) == expected
    assert decode(expected) == message


def test_idle_snapshot_device_response_with_namespace() -> None:
    ns = "http://www.ecma-international.org/standards/ecma-323/csta/ed3"
    assert encode(m.SnapshotDeviceResponse(), Edition.ED3) == (
        DECL
        + f'<SnapshotDeviceResponse xmlns="{ns}"><crossRefIDorSnapshotData>'
        "<snapshotData/></crossRefIDorSnapshotData></SnapshotDeviceResponse>".encode()
    )
