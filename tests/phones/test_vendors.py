"""Vendor profiles: what each phone is offered, why a service is refused, and which requests a
Yealink would leave unanswered (``yealink-uacsta-behaviour.md``, estos manual §2.4)."""

from __future__ import annotations

import pytest

from uacsta.csta import messages as m
from uacsta.csta.types import ConnectionID
from uacsta.phones.vendors import ALL_SERVICES, GENERIC, PROFILES, WriteForm, detect
from uacsta.tr87.lines import account_key as _account_key
from uacsta.tr87.lines import client_device_id

YEALINK = PROFILES["yealink"]
LINE = "sip:100@pbx.example"


def test_an_unrecognised_phone_gets_every_service() -> None:
    assert detect("SomePhone/1.0").profile is GENERIC
    assert GENERIC.services() == frozenset(ALL_SERVICES)
    assert all(GENERIC.refusal(s) is None for s in ALL_SERVICES)
    assert GENERIC.predict_silence(m.GenerateDigits()) is None  # its answers decide


def test_fanvil_has_no_published_table_so_every_service_is_offered() -> None:
    assert PROFILES["fanvil"].services() == frozenset(ALL_SERVICES)


@pytest.mark.parametrize(
    "service",
    [
        "GetMessageWaitingIndicator", "ReconnectCall", "AlternateCall", "DeflectCall",
        "ConferenceCall", "ConsultationCall", "TransferCall", "GenerateDigits",
        "SnapshotDevice", "SystemRegister", "MonitorStop",
    ],
)  # fmt: skip
def test_yealink_offers_what_the_firmware_handles(service: str) -> None:
    assert YEALINK.supports(service)


@pytest.mark.parametrize(
    "service",
    [
        "SetMessageWaitingIndicator", "SnapshotCall", "ClearCall", "DialDigits",
        "DirectedPickupCall", "SingleStepConferenceCall", "SystemRegisterCancel",
        "GetLogicalDeviceInformation", "GetPhysicalDeviceInformation",
    ],
)  # fmt: skip
def test_yealink_refuses_what_the_firmware_answers_unspecified_with_the_reason(
    service: str,
) -> None:
    refusal = YEALINK.refusal(service)
    assert refusal is not None
    assert refusal.error() == m.CSTAErrorCode.operation("serviceNotSupported")
    assert "<unspecified/>" in refusal.reason and service in refusal.reason


def test_yealink_quirks_and_write_form() -> None:
    assert not YEALINK.emulate_alternate_call  # native AlternateCall
    assert YEALINK.silent_errors and YEALINK.answers_before_acting
    assert YEALINK.write_form is WriteForm.YEALINK
    assert "subscription" in YEALINK.notes["GetMessageWaitingIndicator"]


def test_mwi_is_not_refused_for_any_vendor() -> None:
    for profile in (*PROFILES.values(), GENERIC):
        assert profile.supports("GetMessageWaitingIndicator"), profile.key


def test_estos_tables_refuse_with_their_reason_and_firmware_gates() -> None:
    snom = PROFILES["snom"]
    assert snom.supports("AlternateCall")  # emulated with HoldCall + RetrieveCall
    assert snom.emulate_alternate_call
    refusal = snom.refusal("SnapshotCall")
    assert refusal is not None and "estos" in refusal.reason
    assert snom.supports("DeflectCall", "8.7.4.1") and snom.supports("DeflectCall", "10.1")
    old = snom.refusal("DeflectCall", "8.7.3.25")
    assert old is not None
    assert old.reason == "DeflectCall needs snom firmware 8.7.4 or later (this phone runs 8.7.3.25)"
    assert not PROFILES["mitel"].supports("SystemRegister")
    assert PROFILES["mitel"].supports("SnapshotCall")
    assert PROFILES["auerswald"].supports("SystemRegister")


def _silent(request: m.CstaRequest) -> str | None:
    found = YEALINK.predict_silence(request)
    return None if found is None else f"{found.category}/{found.value}"


@pytest.mark.parametrize(
    ("request_", "expected"),
    [
        (m.GenerateDigits(connection_to_send_digits=ConnectionID("3", LINE)),
         "operation/invalidParameterValue"),
        (m.GenerateDigits(connection_to_send_digits=ConnectionID(None, LINE),
                          characters_to_send="1"), "operation/invalidCallID"),
        (m.DeflectCall(call_to_be_diverted=ConnectionID("3", LINE)),
         "operation/invalidDestination"),
        (m.MakeCall(calling_device=LINE), "operation/invalidCalledDeviceID"),
        (m.HoldCall(call_to_be_held=ConnectionID("abc", LINE)), "operation/invalidCallID"),
        (m.TransferCall(held_call=ConnectionID("1", None), active_call=ConnectionID("2", LINE)),
         "operation/invalidHeldDeviceID"),
        (m.AlternateCall(active_call=ConnectionID("2", LINE)), "operation/invalidCallID"),
        (m.SetForwarding(device=LINE, forwarding_type="forwardDND"),
         "operation/invalidForwardingType"),
        (m.MonitorStop(), "operation/invalidMonitorCrossRefID"),
        # Well-formed: whether the phone answers depends on its state (the timeout stays).
        (m.HoldCall(call_to_be_held=ConnectionID("4711", LINE)), None),
        (m.ClearConnection(connection_to_be_cleared=ConnectionID("3|4", LINE)), None),
        (m.GenerateDigits(connection_to_send_digits=ConnectionID("3", LINE),
                          characters_to_send="12#"), None),
        (m.DeflectCall(call_to_be_diverted=ConnectionID("3", LINE), new_destination="200"),
         None),
        (m.MakeCall(calling_device=LINE, called_directory_number="200"), None),
    ],
)  # fmt: skip
def test_yealink_silence_predicted_from_the_request(
    request_: m.CstaRequest, expected: str | None
) -> None:
    assert _silent(request_) == expected
    found = YEALINK.predict_silence(request_)
    if found is not None:
        assert found.reason.endswith("the Yealink firmware would leave it unanswered")


@pytest.mark.parametrize(
    ("listed", "client"),
    [
        ("sip:100@pbx.example:5060", "sip:100@pbx.example"),
        ("sip:101@pbx.example:5060;tel=+4930101", "sip:101@pbx.example"),
        ("sips:102@pbx.example:5061", "sips:102@pbx.example"),
        ("sip:103@[2001:db8::1]:5060", "sip:103@[2001:db8::1]"),
        ("sip:300@pbx.example;user=phone", "sip:300@pbx.example;user=phone"),
        ("tel:+4930100", "tel:+4930100"),
        ("100", "100"),
    ],
)
def test_lines_as_clients_name_them(listed: str, client: str) -> None:
    assert client_device_id(listed) == client


def test_account_key_matches_as_the_firmware_does() -> None:
    key = _account_key("sip:100@PBX.example:5060;tel=+4930100")
    assert key == "100@pbx.example"
    assert _account_key("sip:100@pbx.example") == key
    assert _account_key("tel:+4930100") is None
    assert _account_key("sip:pbx.example") is None
