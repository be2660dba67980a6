"""uacsta.csta messages and codec: fixtures, edition handling, round trips, error codes."""

from __future__ import annotations

import dataclasses
import pathlib
import typing
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from lxml import etree

from uacsta.csta import messages as m
from uacsta.csta.codec import (
    FEATURE_EVENTS,
    FEATURE_SERVICES,
    MESSAGE_CLASSES,
    MONITOR_FILTER_EVENTS,
    Edition,
    decode,
    decode_with_edition,
    edition_for_namespace,
    encode,
    response_class_for,
)
from uacsta.csta.errorcodes import (
    ErrorCategory,
    OperationError,
    PerformanceManagementError,
    PrivateDataError,
    SecurityError,
    StateIncompatibilityError,
    SubscribedResourceAvailabilityError,
    SystemResourceAvailabilityError,
)
from uacsta.csta.errors import CstaDecodeError
from uacsta.csta.types import (
    SUBJECT_DEVICE,
    ConnectionID,
    DeviceChoice,
    DeviceIdentifier,
    EventCause,
    ForwardingType,
    LocalConnectionState,
    PassThroughEnum,
)

FIXTURES = pathlib.Path(__file__).parent / "fixtures"
ED5 = "http://www.ecma-international.org/standards/ecma-323/csta/ed5"

# --- deterministic sample instances, one per class --------------------------------------------

#: The name vocabulary of each name-set field (the standard has a flag for each, nothing else).
FLAG_VOCABULARY = {
    # SnapshotServList is written whole (its components are mandatory): see its own test.
    "supported_services": FEATURE_SERVICES
    - {"snapshotCall", "snapshotDevice", "snapshotCallData", "snapshotDeviceData"},
    "supported_events": FEATURE_EVENTS,
    "requested_monitor_filter": MONITOR_FILTER_EVENTS,
    "actual_monitor_filter": MONITOR_FILTER_EVENTS,
}
SAMPLE_FLAGS = {
    "supported_services": frozenset({"makeCall", "answerCall", "singleStepTransferCall"}),
    "supported_events": frozenset({"delivered", "networkReached", "doNotDisturb"}),
    "requested_monitor_filter": frozenset({"delivered", "charging"}),
    "actual_monitor_filter": frozenset({"delivered", "doNotDisturb"}),
}
#: CHOICE alternatives written only when the one before them is unset (the samples set the first).
LATER_ALTERNATIVES = {
    ("SnapshotDeviceResponse", "service_cross_ref_id"),
    ("SnapshotCallResponse", "service_cross_ref_id"),
    ("SnapshotDeviceResponseInfo", "simple_call_state"),
    ("MonitorStart", "monitor_call_object"),
}


def _choice_of(cls: type[Any], name: str) -> DeviceChoice:
    meta = next(f for f in dataclasses.fields(cls) if f.name == name).metadata.get("xml", {})
    choice: DeviceChoice = meta.get("choice") or SUBJECT_DEVICE
    return choice


def _sample_value(owner: str, name: str, hint: Any) -> Any:
    origin = typing.get_origin(hint)
    if origin is tuple:
        item_cls = typing.get_args(hint)[0]
        return (sample_struct(item_cls, 1), sample_struct(item_cls, 2))
    if origin is frozenset:
        return SAMPLE_FLAGS[name]
    args = [a for a in typing.get_args(hint) if a is not type(None)] or [hint]
    for arg in args:
        if isinstance(arg, type) and issubclass(arg, PassThroughEnum):
            return list(arg)[len(name) % len(list(arg))]
    (base,) = args
    if base is str:
        return f"{name}-{owner}" if "id" not in name else "-12"
    if base is bool:
        return len(name) % 2 == 0
    if base is int:
        return len(name)
    if base is ConnectionID:
        return ConnectionID("-12", f"sip:{name}@pbx.example.com")
    if base is DeviceIdentifier:
        return DeviceIdentifier(f"sip:{name}@pbx.example.com")
    raise AssertionError(f"no sample for {hint!r}")


def sample_struct(cls: type[Any], n: int = 0) -> Any:
    hints = typing.get_type_hints(cls)
    values = {}
    for f in dataclasses.fields(cls):
        if f.name == "extensions" or (cls.__name__, f.name) in LATER_ALTERNATIVES:
            continue
        value = _sample_value(cls.__name__, f.name, hints[f.name])
        if isinstance(value, str) and n:
            value = f"{value}{n}"
        values[f.name] = value
    return cls(**values)


def sample_message(cls: type[m.CstaMessage]) -> m.CstaMessage:
    if cls is m.CSTAErrorCode:
        return m.CSTAErrorCode.operation("invalidDeviceID")  # the fixture: an old spelling
    return typing.cast(m.CstaMessage, sample_struct(cls))


SAMPLES = {name: sample_message(cls) for name, cls in MESSAGE_CLASSES.items()}

# --- hypothesis strategies ---------------------------------------------------------------------

_xml_text = st.text(
    alphabet=st.characters(blacklist_categories=("Cs", "Cc", "Cn"), blacklist_characters="\x85"),
    max_size=12,
).map(lambda s: s.strip(" \t\r\n")) | st.sampled_from(
    ["-12", "sip:455455@ser.intern.snom.de", "a&b<c>", "", "tel:+49 89 1234"]
)
_connection = st.builds(ConnectionID, st.none() | _xml_text, st.none() | _xml_text)


def _device_in(choice: DeviceChoice) -> st.SearchStrategy[DeviceIdentifier]:
    empty = st.sampled_from([DeviceIdentifier(None, kind) for kind in choice.empty])  # type: ignore[arg-type]
    return st.builds(DeviceIdentifier, st.none() | _xml_text) | empty


def _strategy_for(cls: type[Any], name: str, hint: Any) -> st.SearchStrategy[Any]:
    origin = typing.get_origin(hint)
    if origin is tuple:
        return st.lists(struct_strategy(typing.get_args(hint)[0]), max_size=3).map(tuple)
    if origin is frozenset:
        return st.frozensets(st.sampled_from(sorted(FLAG_VOCABULARY[name])), max_size=5)
    args = [a for a in typing.get_args(hint) if a is not type(None)] or [hint]
    for arg in args:
        if isinstance(arg, type) and issubclass(arg, PassThroughEnum):
            # an empty enumerated element is an absent one, so generated texts are not empty
            return st.none() | st.sampled_from(list(arg)) | _xml_text.filter(bool)
    (base,) = args
    if base is DeviceIdentifier:
        return st.none() | _device_in(_choice_of(cls, name))
    inner = {
        str: _xml_text,
        bool: st.booleans(),
        int: st.integers(-(10**15), 10**15),
        ConnectionID: _connection,
    }[base]
    return st.none() | inner


def struct_strategy(cls: type[Any]) -> st.SearchStrategy[Any]:
    hints = typing.get_type_hints(cls)
    fields = {
        f.name: _strategy_for(cls, f.name, hints[f.name])
        for f in dataclasses.fields(cls)
        if f.name != "extensions" and (cls.__name__, f.name) not in LATER_ALTERNATIVES
    }
    return st.builds(cls, **fields)


_EXTENSIONS = st.none() | st.sampled_from(
    [
        b'<extensions><privateData><private><v:x xmlns:v="urn:v">1</v:x></private></privateData>'
        b"</extensions>",
        b"<extensions><privateData><private>opaque</private></privateData></extensions>",
    ]
)


def message_strategy() -> st.SearchStrategy[m.CstaMessage]:
    def for_class(cls: type[m.CstaMessage]) -> st.SearchStrategy[m.CstaMessage]:
        if cls is m.CSTAErrorCode:
            # UnspecifiedErrors is NULL: an unspecified error carries no value.
            return st.builds(
                lambda cat, val: m.CSTAErrorCode.of(cat, None if cat == "unspecified" else val),
                st.sampled_from([c.value for c in ErrorCategory]),
                st.sampled_from(["generic", "resourceBusy", "invalidDeviceID", "vendorSpecific"]),
            )
        return struct_strategy(cls)

    base = st.sampled_from(list(MESSAGE_CLASSES.values())).flatmap(for_class)
    return st.builds(lambda msg, ext: dataclasses.replace(msg, extensions=ext), base, _EXTENSIONS)


# --- registry ----------------------------------------------------------------------------------


def test_registry_names_and_shapes() -> None:
    assert len(MESSAGE_CLASSES) >= 95
    for name, cls in MESSAGE_CLASSES.items():
        assert name == cls.__name__
        assert dataclasses.is_dataclass(cls)
        params = cls.__dataclass_params__  # type: ignore[attr-defined]
        assert params.frozen
        assert hasattr(cls, "__slots__")
        if issubclass(cls, m.CstaEvent):
            assert name.endswith("Event")
    for required in [
        "MakeCall",
        "DeliveredEvent",
        "SwitchingFunctionDevices",
        "CSTAErrorCode",
        "SnapshotDeviceResponse",
        "SetForwarding",
        "SwFunctionDevicesChanged",
        "SystemRegisterAbort",
        "GetCSTAFeaturesResponse",
    ]:
        assert required in MESSAGE_CLASSES


def test_response_class_for() -> None:
    assert response_class_for(m.MakeCall) is m.MakeCallResponse
    assert response_class_for(m.SnapshotDevice) is m.SnapshotDeviceResponse
    assert response_class_for(m.SystemRegisterAbort) is None
    for name, cls in MESSAGE_CLASSES.items():
        if issubclass(cls, m.CstaRequest) and name not in {
            "SystemRegisterAbort",
            "SwitchingFunctionDevices",
        }:
            assert response_class_for(cls) is not None, name


def test_fields_snake_case_of_xml_names() -> None:
    assert m.DeliveredEvent(monitor_cross_ref_id="1").monitor_cross_ref_id == "1"
    out = encode(m.SystemRegisterResponse(sys_stat_register_id="43"))
    assert b"<sysStatRegisterID>43</sysStatRegisterID>" in out
    out = encode(m.SetForwarding(forward_dn="200"))
    assert b"<forwardDN>200</forwardDN>" in out


# --- fixtures ----------------------------------------------------------------------------------

SAMPLE_FIXTURES = sorted(FIXTURES.glob("samples/*.xml"))


def test_every_class_has_a_fixture() -> None:
    assert {p.stem for p in SAMPLE_FIXTURES} == set(MESSAGE_CLASSES)


@pytest.mark.parametrize("path", SAMPLE_FIXTURES, ids=lambda p: p.stem)
def test_sample_fixture_decodes_to_expected_values(path: pathlib.Path) -> None:
    data = path.read_bytes()
    message = decode(data)
    assert type(message).__name__ == path.stem
    assert message == SAMPLES[path.stem]
    _, edition = decode_with_edition(data)
    assert decode(encode(message, edition)) == message


def _fixture(name: str) -> bytes:
    return (FIXTURES / name).read_bytes()


def _canonical(data: bytes) -> bytes:
    """A hand-written, indented fixture as the codec writes it: no whitespace between tags,
    double-quoted declaration (a text operation on the fixture, not the codec)."""
    body = data.split(b"?>", 1)[1]
    body = b"".join(line.strip() for line in body.splitlines())
    return b'<?xml version="1.0" encoding="UTF-8"?>' + body


def test_snom_monitor_start() -> None:
    msg, edition = decode_with_edition(_fixture("snom/MonitorStart.xml"))
    assert edition is Edition.ED5
    assert msg == m.MonitorStart(monitor_object="sip:455455@ser.intern.snom.de")


def test_snom_monitor_start_response() -> None:
    msg = decode(_fixture("snom/MonitorStartResponse.xml"))
    assert msg == m.MonitorStartResponse(monitor_cross_ref_id="43", monitor_existing_calls=True)


def test_snom_system_register_and_response() -> None:
    msg = decode(_fixture("snom/SystemRegister.xml"))
    assert msg == m.SystemRegister(switching_function_devices_changed=True)
    resp = decode(_fixture("snom/SystemRegisterResponse.xml"))
    assert resp == m.SystemRegisterResponse(sys_stat_register_id="43")


def test_snom_make_call_and_response() -> None:
    msg = decode(_fixture("snom/MakeCall.xml"))
    assert msg == m.MakeCall(
        calling_device="sip:455455@ser.intern.snom.de",
        called_directory_number="455360",
        auto_originate="doNotPrompt",
    )
    resp = decode(_fixture("snom/MakeCallResponse.xml"))
    assert isinstance(resp, m.MakeCallResponse)
    assert resp.calling_device == ConnectionID("2", "sip:455455@ser.intern.snom.de")


def test_snom_snapshot_device_response() -> None:
    resp = decode(_fixture("snom/SnapshotDeviceResponse.xml"))
    assert isinstance(resp, m.SnapshotDeviceResponse)
    (info,) = resp.snapshot_data
    assert info.connection_identifier == ConnectionID("-12", "sip:455455@ser.intern.snom.de")
    assert info.local_connection_state is LocalConnectionState.ALERTING


def test_snom_error_code() -> None:
    err = decode(_fixture("snom/CSTAErrorCode.xml"))
    assert isinstance(err, m.CSTAErrorCode)
    assert err.category is ErrorCategory.OPERATION
    assert err.value is OperationError.INVALID_DEVICE_ID
    assert err == m.CSTAErrorCode.operation("invalidDeviceID")


def test_yealink_ed3_delivered_event() -> None:
    msg, edition = decode_with_edition(_fixture("yealink/DeliveredEvent.xml"))
    assert edition is Edition.ED3
    assert msg == m.DeliveredEvent(
        monitor_cross_ref_id="1",
        connection=ConnectionID("3", "2001"),
        alerting_device=DeviceIdentifier("2001"),
        calling_device=DeviceIdentifier("2002"),
        called_device=DeviceIdentifier("2001"),
        last_redirection_device=DeviceIdentifier(None, "notKnown"),
        local_connection_info=LocalConnectionState.ALERTING,
        cause=EventCause.NEW_CALL,
    )


def test_yealink_sw_function_devices_changed() -> None:
    msg = decode(_fixture("yealink/SwFunctionDevicesChanged.xml"))
    assert msg == m.SwFunctionDevicesChanged(sys_stat_register_id="7")
    alias = decode(
        b'<SwitchingFunctionDevicesChanged xmlns="' + ED5.encode() + b'">'
        b"<sysStatRegisterID>7</sysStatRegisterID></SwitchingFunctionDevicesChanged>"
    )
    assert alias == msg
    assert b"<SwFunctionDevicesChanged " in encode(alias)


def test_no_namespace_established_event() -> None:
    msg, edition = decode_with_edition(_fixture("nonamespace/EstablishedEvent.xml"))
    assert edition is Edition.NONE
    assert isinstance(msg, m.EstablishedEvent)
    assert msg.established_connection == ConnectionID("12", "sip:201@pbx")
    assert msg.calling_device == DeviceIdentifier(None, "restricted")
    assert msg.local_connection_info == "connected"
    assert msg.cause == "normal"


def test_switching_function_devices_list() -> None:
    msg = decode(_fixture("snom/SwitchingFunctionDevices.xml"))
    assert isinstance(msg, m.SwitchingFunctionDevices)
    assert msg.segment_id == 1
    assert msg.last_segment is True
    assert [e.device_id for e in msg.device_list] == [
        "sip:455455@ser.intern.snom.de",
        "sip:455456@ser.intern.snom.de",
    ]
    assert msg.device_list[0].device_category == "station"


def test_get_forwarding_response_list() -> None:
    msg = decode(_fixture("yealink/GetForwardingResponse.xml"))
    assert isinstance(msg, m.GetForwardingResponse)
    assert [(i.forwarding_type, i.forward_status, i.forward_dn) for i in msg.forwarding_list] == [
        (ForwardingType.FORWARD_IMMEDIATE, True, "200"),
        (ForwardingType.FORWARD_BUSY, False, None),
    ]


def test_features_response_old_true_leaves_decode() -> None:
    msg = decode(
        b"<GetCSTAFeaturesResponse><supportedServices><callControlServices>"
        b"<makeCall>true</makeCall><answerCall>false</answerCall></callControlServices>"
        b"<vendorServices><fancy>true</fancy></vendorServices></supportedServices>"
        b"<supportedEvents><callControlEvents><delivered>true</delivered></callControlEvents>"
        b"</supportedEvents></GetCSTAFeaturesResponse>"
    )
    assert isinstance(msg, m.GetCSTAFeaturesResponse)
    assert msg.supported_services == {"makeCall", "fancy"}
    assert msg.supported_events == {"delivered"}
    # Written in the ECMA-285 lists; "fancy" has no flag in the standard and is left out.
    assert encode(msg, Edition.NONE) == (
        b'<?xml version="1.0" encoding="UTF-8"?><GetCSTAFeaturesResponse><supportedServices>'
        b"<callControlServList><makeCall/></callControlServList></supportedServices>"
        b"<supportedEvents><callControlEvtsList><delivered/></callControlEvtsList>"
        b"</supportedEvents></GetCSTAFeaturesResponse>"
    )


def test_features_response_standard_lists() -> None:
    # Hand-written from CSTA-get-csta-features-service / CSTA-capability-exchange: the lists in
    # GetCSTAFeatureResult order, each service/event a (flag-less) BIT STRING element.
    data = _fixture("standard/GetCSTAFeaturesResponse.xml")
    msg = decode(data)
    assert msg == m.GetCSTAFeaturesResponse(
        supported_services=frozenset(
            {
                "getCSTAFeatures",
                "getSwitchingFunctionDevices",
                "systemRegister",
                "requestSystemStatus",
                "monitorStart",
                "monitorStop",
                "snapshotCall",
                "snapshotDevice",
                "snapshotCallData",
                "snapshotDeviceData",
                "answerCall",
                "clearConnection",
                "makeCall",
                "singleStepTransferCall",
                "generateDigits",
                "getMessageWaitingIndicator",
                "getDoNotDisturb",
                "setForwarding",
            }
        ),
        supported_events=frozenset(
            {
                "delivered",
                "established",
                "networkReached",
                "digitsGenerated",
                "doNotDisturb",
                "backInService",
            }
        ),
    )
    assert encode(msg, Edition.ED5) == _canonical(data)


def test_features_snapshot_list_is_written_whole() -> None:
    # SnapshotServList's four components are not OPTIONAL in ECMA-285.
    out = encode(m.GetCSTAFeaturesResponse(supported_services=frozenset({"snapshotDevice"})))
    assert (
        b"<supportedServices><snapshotServList><snapshotCall/><snapshotDevice/>"
        b"<snapshotCallData/><snapshotDeviceData/></snapshotServList></supportedServices>" in out
    )


# --- editions and namespaces -------------------------------------------------------------------


@pytest.mark.parametrize(
    ("namespace", "edition"),
    [
        ("http://www.ecma-international.org/standards/ecma-323/csta/ed2", Edition.ED2),
        ("http://www.ecma-international.org/standards/ecma-323/csta/ed3", Edition.ED3),
        ("http://www.ecma-international.org/standards/ecma-323/csta/ed4", Edition.ED4),
        ("http://www.ecma-international.org/standards/ecma-323/csta/ed5", Edition.ED5),
        ("http://www.ecma-international.org/standards/ecma-323/csta/ed6", Edition.ED6),
        ("http://www.ecma-internatioal.org/standards/ecma-323/csta/ed5", Edition.ED5),
        ("https://www.ecma-international.org/standards/ecma-323/csta/ed4", Edition.ED4),
        ("http://www.ecmainternational.org/standards/ecma-323/csta/ed3", Edition.ED3),
        ("http://www.ecma.ch/standards/ecma-323/csta/ed2", Edition.ED2),
        ("http://www.ecma-international.org/standards/ecma-323/csta/ed3/priv1", Edition.ED3),
        ("urn:vendor:csta", Edition.ED3),
        ("http://www.ecma-international.org/standards/ecma-323/csta/ed9", Edition.ED3),
        (None, Edition.NONE),
    ],
)
def test_any_namespace_decodes_by_local_name(namespace: str | None, edition: Edition) -> None:
    xmlns = f' xmlns="{namespace}"' if namespace else ""
    data = (
        f"<SystemRegisterResponse{xmlns}><sysStatRegisterID>43</sysStatRegisterID>"
        "</SystemRegisterResponse>".encode()
    )
    msg, got = decode_with_edition(data)
    assert msg == m.SystemRegisterResponse(sys_stat_register_id="43")
    assert got is edition
    assert edition_for_namespace(namespace) is edition


def test_prefixed_namespace_decodes() -> None:
    data = (
        b'<csta:HoldCall xmlns:csta="' + ED5.encode() + b'"><csta:callToBeHeld>'
        b"<csta:callID>1</csta:callID><csta:deviceID>d</csta:deviceID></csta:callToBeHeld>"
        b"</csta:HoldCall>"
    )
    assert decode(data) == m.HoldCall(call_to_be_held=ConnectionID("1", "d"))


@pytest.mark.parametrize("edition", list(Edition), ids=lambda e: e.name)
def test_encode_canonical_form(edition: Edition) -> None:
    out = encode(m.MonitorStop(monitor_cross_ref_id="43"), edition)
    assert out.startswith(b'<?xml version="1.0" encoding="UTF-8"?>')
    root = etree.fromstring(out)
    assert root.tag == (f"{{{edition.value}}}MonitorStop" if edition.value else "MonitorStop")
    assert root.nsmap == ({None: edition.value} if edition.value else {})
    empty = encode(m.RequestSystemStatus(), edition)
    assert empty.endswith(b"/>")


# --- round trips -------------------------------------------------------------------------------


@pytest.mark.parametrize("edition", list(Edition), ids=lambda e: e.name)
@pytest.mark.parametrize("name", list(MESSAGE_CLASSES))
def test_round_trip_every_class_every_edition(name: str, edition: Edition) -> None:
    message = SAMPLES[name]
    assert decode(encode(message, edition)) == message
    assert decode_with_edition(encode(message, edition))[1] is edition


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(message=message_strategy(), edition=st.sampled_from(list(Edition)))
def test_generated_messages_round_trip(message: m.CstaMessage, edition: Edition) -> None:
    data = encode(message, edition)
    assert decode(data) == message
    assert encode(decode(data), edition) == data


def test_empty_message_round_trips() -> None:
    for cls in MESSAGE_CLASSES.values():
        if cls is m.CSTAErrorCode:
            continue
        message = cls()
        assert decode(encode(message)) == message


# --- tolerance ---------------------------------------------------------------------------------


def test_unknown_root_is_kept_verbatim() -> None:
    data = b'<?xml version="1.0"?>\n<FancyVendorThing xmlns="urn:x"><a>1</a></FancyVendorThing>'
    msg, edition = decode_with_edition(data)
    assert msg == m.UnknownMessage(name="FancyVendorThing", xml=data)
    assert edition is Edition.ED3
    assert encode(msg, Edition.ED5) == data


def test_ecma354_root_is_unknown_here() -> None:
    data = (
        b'<StartApplicationSession xmlns="http://www.ecma-international.org/standards/ecma-354/'
        b'appl_session"><applicationInfo/></StartApplicationSession>'
    )
    assert isinstance(decode(data), m.UnknownMessage)


def test_unknown_children_ignored_missing_children_none() -> None:
    data = (
        b'<MakeCall xmlns="' + ED5.encode() + b'"><vendorHint>x</vendorHint>'
        b"<calledDirectoryNumber> 455360\n</calledDirectoryNumber><!-- comment -->"
        b"<servicesPermitted><x>true</x></servicesPermitted></MakeCall>"
    )
    msg = decode(data)
    assert msg == m.MakeCall(called_directory_number="455360")
    assert decode(b"<MakeCall/>") == m.MakeCall()


def test_device_forms() -> None:
    def dev(inner: str) -> DeviceIdentifier | None:
        msg = decode(f"<DoNotDisturbEvent><device>{inner}</device></DoNotDisturbEvent>".encode())
        assert isinstance(msg, m.DoNotDisturbEvent)
        return msg.device

    assert dev("<deviceIdentifier>200</deviceIdentifier>") == DeviceIdentifier("200")
    assert dev("200") == DeviceIdentifier("200")  # plain text, as some phones send
    assert dev("<notKnown/>") == DeviceIdentifier(None, "notKnown")
    assert dev("<notRequired/>") == DeviceIdentifier(None, "notRequired")
    assert dev("<restricted/>") == DeviceIdentifier(None, "restricted")
    assert dev("") == DeviceIdentifier(None)
    assert DeviceIdentifier("x").is_known and not DeviceIdentifier.not_known().is_known
    assert DeviceIdentifier.restricted().kind == "restricted"


def test_enum_values_pass_through() -> None:
    msg = decode(
        b"<ConnectionClearedEvent><cause>vendorSpecialCause</cause>"
        b"<localConnectionInfo>weird</localConnectionInfo></ConnectionClearedEvent>"
    )
    assert isinstance(msg, m.ConnectionClearedEvent)
    assert msg.cause == "vendorSpecialCause"
    assert not isinstance(msg.cause, EventCause)
    assert msg.local_connection_info == "weird"
    assert EventCause.coerce("normalClearing") is EventCause.NORMAL_CLEARING
    assert EventCause.coerce("other") == "other"


@pytest.mark.parametrize(
    "data",
    [
        b"<GetDoNotDisturbResponse><doNotDisturbOn>maybe</doNotDisturbOn></GetDoNotDisturbResponse>",
        b"<SwitchingFunctionDevices><segmentID>x1</segmentID></SwitchingFunctionDevices>",
        b"<SwitchingFunctionDevices><segmentID>1_000</segmentID></SwitchingFunctionDevices>",
    ],
)
def test_unreadable_typed_value_is_decode_error(data: bytes) -> None:
    with pytest.raises(CstaDecodeError):
        decode(data)


def test_boolean_lexical_forms() -> None:
    for text, value in [("true", True), ("1", True), (" false ", False), ("0", False)]:
        msg = decode(
            f"<GetDoNotDisturbResponse><doNotDisturbOn>{text}</doNotDisturbOn>"
            "</GetDoNotDisturbResponse>".encode()
        )
        assert msg == m.GetDoNotDisturbResponse(do_not_disturb_on=value)


# --- extensions / private data ----------------------------------------------------------------


def test_private_data_survives_edition_change() -> None:
    data = _fixture("snom/RequestSystemStatus-privateData.xml")
    msg = decode(data)
    assert msg.extensions is not None
    for edition in Edition:
        again = decode(encode(msg, edition))
        assert again.extensions == msg.extensions
    ext = etree.fromstring(msg.extensions)
    assert ext.tag == "extensions"
    (line,) = ext.iter("{http://schemas.microsoft.com/Lcs/2005/04/RCCExtension}line")
    assert line.text == "tel:73124;phone-context=dialstring"
    # Re-emitted inside the message's namespace, the CSTA wrapper elements join it.
    root = etree.fromstring(encode(msg, Edition.ED3))
    assert (
        root[0].tag == "{http://www.ecma-international.org/standards/ecma-323/csta/ed3}extensions"
    )


def test_extensions_on_events_and_errors() -> None:
    ext = b"<extensions><privateData><private><q>\xc3\xa4</q></private></privateData></extensions>"
    for msg in [
        m.HeldEvent(monitor_cross_ref_id="1", extensions=ext),
        m.CSTAErrorCode.unspecified(),
        dataclasses.replace(m.CSTAErrorCode.timeout(), extensions=ext),
    ]:
        assert decode(encode(msg, Edition.ED4)) == msg


def test_bad_extensions_rejected_on_encode() -> None:
    with pytest.raises(ValueError, match="extensions"):
        encode(m.HoldCall(extensions=b"<foo/>"))


def test_encode_rejects_text_xml_cannot_carry() -> None:
    with pytest.raises(ValueError, match="cannot be carried"):
        encode(m.MakeCall(calling_device="a\x00b"))
    with pytest.raises(TypeError):
        encode(m.CstaRequest())


def test_escaping() -> None:
    msg = m.MakeCall(calling_device='<a href="x">&amp;</a>', called_directory_number="1\r\n2")
    out = encode(msg)
    assert b"&lt;a" in out and b"&amp;amp;" in out
    assert decode(out) == msg


# --- CSTAErrorCode -----------------------------------------------------------------------------


def test_error_code_forms() -> None:
    text_form = decode(b"<CSTAErrorCode><operation>generic</operation></CSTAErrorCode>")
    assert text_form == m.CSTAErrorCode.operation()
    unspecified = decode(
        b'<CSTAErrorCode xmlns="' + ED5.encode() + b'"><unspecified/></CSTAErrorCode>'
    )
    assert isinstance(unspecified, m.CSTAErrorCode) and unspecified.is_unspecified
    assert decode(b"<CSTAErrorCode/>") == m.CSTAErrorCode.unspecified()
    odd = decode(b"<CSTAErrorCode><vendorCategory>oops</vendorCategory></CSTAErrorCode>")
    assert odd == m.CSTAErrorCode(category="vendorCategory", value="oops")
    assert decode(encode(odd)) == odd


def test_error_code_helpers() -> None:
    timeout = m.CSTAErrorCode.timeout()
    assert timeout.is_timeout and not timeout.is_out_of_service
    assert timeout.value is SystemResourceAvailabilityError.RESOURCE_OUT_OF_SERVICE
    assert not m.CSTAErrorCode.operation().is_timeout
    down = m.CSTAErrorCode.out_of_service()
    assert down.is_out_of_service and not down.is_timeout
    assert down.value is SystemResourceAvailabilityError.DEVICE_OUT_OF_SERVICE
    assert m.CSTAErrorCode.security().category is ErrorCategory.SECURITY
    assert m.CSTAErrorCode.state_incompatibility("noActiveCall").value == "noActiveCall"
    assert (
        m.CSTAErrorCode.subscribed_resource_availability().category
        is ErrorCategory.SUBSCRIBED_RESOURCE_AVAILABILITY
    )
    assert m.CSTAErrorCode.performance_management().category is ErrorCategory.PERFORMANCE_MANAGEMENT
    assert m.CSTAErrorCode.private_data().category is ErrorCategory.PRIVATE_DATA
    assert m.CSTAErrorCode.system_resource_availability("resourceBusy").value == "resourceBusy"
    vendor = m.CSTAErrorCode.operation("somethingNew")
    assert vendor.value == "somethingNew" and not isinstance(vendor.value, PassThroughEnum)
    assert (
        encode(m.CSTAErrorCode.operation("invalidDeviceID"), Edition.NONE)
        == b'<?xml version="1.0" encoding="UTF-8"?><CSTAErrorCode><operation>invalidDeviceID'
        b"</operation></CSTAErrorCode>"
    )
    with pytest.raises(ValueError, match="element name"):
        encode(m.CSTAErrorCode(category="bad name", value="x"))


ASN1_DIR = pathlib.Path(__file__).resolve().parents[3] / "shared" / "reference" / "ecma-285-asn1"


def _asn1_enumerated(module: str, type_name: str) -> set[str]:
    text = (ASN1_DIR / module).read_text(encoding="utf-8")
    body = text[text.index(type_name + " ::= ENUMERATED") :]
    body = body[body.index("{") : body.index("}")]
    return {line.split("(")[0].strip(" {\t,") for line in body.splitlines() if "(" in line}


@pytest.mark.parametrize(
    ("asn1_type", "enum_cls"),
    [
        ("OperationErrors", OperationError),
        ("SecurityErrors", SecurityError),
        ("StateIncompatibilityErrors", StateIncompatibilityError),
        ("SystemResourceAvailabilityErrors", SystemResourceAvailabilityError),
        ("SubscribedResourceAvailabilityErrors", SubscribedResourceAvailabilityError),
        ("PerformanceManagementErrors", PerformanceManagementError),
        ("PrivateDataInfoErrors", PrivateDataError),
    ],
)
def test_error_values_are_ecma_285(asn1_type: str, enum_cls: type[PassThroughEnum]) -> None:
    # Read from the ECMA-285 module itself, so a misspelt value cannot hide.
    assert {v.value for v in enum_cls} == _asn1_enumerated("error-definition.asn1", asn1_type)
    assert {c.value for c in ErrorCategory} == {
        "operation",
        "security",
        "stateIncompatibility",
        "systemResourceAvailability",
        "subscribedResourceAvailability",
        "performanceManagement",
        "privateData",
        "unspecified",
    }


def test_event_causes_are_ecma_285() -> None:
    assert {c.value for c in EventCause} == _asn1_enumerated("event-cause.asn1", "EventCause")


@pytest.mark.parametrize(
    ("category", "old", "standard"),
    [
        ("operation", "invalidCrossRefId", "invalidCrossRefID"),
        ("operation", "invalidCstaDeviceIdentifier", "invalidDeviceID"),
        ("operation", "privilegeViolationOnSpecifiedDevice", "privilegeViolationSpecifiedDevice"),
        ("stateIncompatibility", "invalidConnectionID", "invalidConnectionIDForActiveCall"),
        ("systemResourceAvailability", "outOfService", "deviceOutOfService"),
        ("systemResourceAvailability", "timeout", "resourceOutOfService"),
    ],
)
def test_old_error_spellings_decode_to_the_standard(category: str, old: str, standard: str) -> None:
    data = f"<CSTAErrorCode><{category}>{old}</{category}></CSTAErrorCode>".encode()
    error = decode(data)
    assert isinstance(error, m.CSTAErrorCode)
    assert error.value == standard and isinstance(error.value, PassThroughEnum)
    assert f"<{category}>{standard}</{category}>".encode() in encode(error)


def test_old_event_cause_spellings_decode_to_the_standard() -> None:
    msg = decode(b"<QueuedEvent><cause>acdBusy</cause></QueuedEvent>")
    assert isinstance(msg, m.QueuedEvent)
    assert msg.cause is EventCause.ACD_BUSY
    assert b"<cause>aCDBusy</cause>" in encode(msg)
