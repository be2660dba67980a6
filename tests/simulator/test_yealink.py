"""The simulated Yealink's CSTA processor against hand-written documents.

Expected bytes are written here by hand from ``yealink-uacsta-behaviour.md`` (pugixml
indentation with tabs, ``<x />``, the namespaces the firmware uses), never by the codec."""

from __future__ import annotations

import pytest

from uacsta.csta.types import LocalConnectionState
from uacsta.simulator.callmodel import SimPhone
from uacsta.simulator.pbx import SimPbx
from uacsta.simulator.personality import personality
from uacsta.simulator.yealink import UNSPECIFIED, YealinkFirmware, account_of, atoi

ED3 = "http://www.ecma-international.org/standards/ecma-323/csta/ed3"
ED5 = "http://www.ecma-international.org/standards/ecma-323/csta/ed5"
ED5X = "http://www.ecmainternational.org/standards/ecma-323/csta/ed5"
DECL = '<?xml version="1.0" encoding="utf-8"?>\n'


def firmware() -> tuple[YealinkFirmware, SimPbx]:
    pbx = SimPbx("sim.test")
    phone = SimPhone("805EC0000001", personality("yealink"), ["100", "101"], "sim.test", pbx=pbx)
    SimPhone("000413000002", personality("snom"), ["200"], "sim.test", pbx=pbx)
    fw = YealinkFirmware(phone, csta_account=("805EC0000001", "192.0.2.1", 5060))
    fw.accounts[1].tel = "+4930101"
    return fw, pbx


def ask(fw: YealinkFirmware, xml: str) -> bytes | None:
    return fw.handle(xml.encode(), 0.0)


def test_line_list_follows_the_get_response_in_the_misspelled_namespace() -> None:
    fw, _ = firmware()
    assert (
        ask(fw, f'<GetSwitchingFunctionDevices xmlns="{ED3}"/>')
        == (
            f'{DECL}<GetSwitchingFunctionDevicesResponse xmlns="{ED5X}">\n'
            "\t<serviceCrossRefID>C2527445F5CC4848A7E80CBF0F76A11E</serviceCrossRefID>\n"
            "</GetSwitchingFunctionDevicesResponse>\n"
        ).encode()
    )
    assert fw.outbox == [
        (
            f'{DECL}<SwitchingFunctionDevices xmlns="{ED5X}">\n'
            "\t<serviceCrossRefID>C2527445F5CC4848A7E80CBF0F76A11E</serviceCrossRefID>\n"
            "\t<lastSegment>true</lastSegment>\n"
            "\t<deviceList>\n"
            "\t\t<device>\n"
            "\t\t\t<deviceID>sip:101@sim.test:5060;tel=+4930101</deviceID>\n"
            "\t\t</device>\n"
            "\t\t<device>\n"
            "\t\t\t<deviceID>sip:100@sim.test:5060</deviceID>\n"
            "\t\t</device>\n"
            "\t\t<device>\n"
            "\t\t\t<deviceID>sip:805EC0000001@192.0.2.1:5060</deviceID>\n"
            "\t\t</device>\n"
            "\t</deviceList>\n"
            "</SwitchingFunctionDevices>\n"
        ).encode()
    ]


def test_names_are_exact_strings_prefix_included_namespace_ignored() -> None:
    fw, _ = firmware()
    prefixed_root = f'<csta:RequestSystemStatus xmlns:csta="{ED3}"/>'
    assert ask(fw, prefixed_root) == UNSPECIFIED
    assert (
        f'{DECL}<CSTAErrorCode xmlns="{ED5}">\n\t<unspecified />\n</CSTAErrorCode>\n'
    ).encode() == UNSPECIFIED
    prefixed_child = (
        f'<MonitorStart xmlns:csta="{ED3}"><monitorObject>'
        "<csta:deviceObject>sip:100@sim.test</csta:deviceObject></monitorObject></MonitorStart>"
    )
    assert ask(fw, prefixed_child) is None  # the child is "absent": silence
    any_namespace = (
        '<MonitorStart xmlns="urn:not-csta"><monitorObject>'
        "<deviceObject>sip:100@sim.test:5060;tel=+4930100</deviceObject></monitorObject>"
        "</MonitorStart>"
    )
    assert (
        ask(fw, any_namespace)
        == (
            f'{DECL}<MonitorStartResponse xmlns="{ED5X}">\n'
            "\t<monitorCrossRefID>0</monitorCrossRefID>\n"
            "\t<monitorExistingCalls>true</monitorExistingCalls>\n"
            "</MonitorStartResponse>\n"
        ).encode()
    )
    assert fw.accounts[0].monitored_as == "sip:100@sim.test:5060"


def test_values_are_untrimmed_and_devices_matched_by_user_and_server() -> None:
    fw, _ = firmware()
    spaced = "<MonitorStart><monitorObject><deviceObject> sip:100@sim.test</deviceObject>"
    assert ask(fw, spaced + "</monitorObject></MonitorStart>") is None
    param = "<MonitorStart><monitorObject><deviceObject>sip:100@sim.test;user=phone"
    assert ask(fw, param + "</deviceObject></monitorObject></MonitorStart>") is None
    assert account_of("sips:100@sim.test:5061;tel=+49") == ("100", "sim.test")
    assert (atoi(" 12abc"), atoi("abc"), atoi("-3"), atoi(None)) == (12, 0, -3, 0)
    second = "<MonitorStart><monitorObject><deviceObject>sip:101@sim.test</deviceObject>"
    answer = ask(fw, second + "</monitorObject></MonitorStart>")
    assert answer is not None and b"<monitorCrossRefID>1</monitorCrossRefID>" in answer


def _ring(fw: YealinkFirmware, pbx: SimPbx) -> str:
    pbx.incoming_call("100", "0301234567", 0.0)
    leg = fw.phone.lines[0].legs[0]
    assert leg.state == LocalConnectionState.ALERTING
    return leg.call_id


def test_deflect_reads_new_destination_device_only() -> None:
    fw, pbx = firmware()
    call = _ring(fw, pbx)
    standard = (
        f"<DeflectCall><callToBeDiverted><callID>{call}</callID></callToBeDiverted>"
        "<newDestination>200</newDestination></DeflectCall>"
    )
    assert ask(fw, standard) is None
    yealink_form = (
        f"<DeflectCall><callToBeDiverted><callID>{call}</callID></callToBeDiverted>"
        "<newDestination><device>200</device></newDestination></DeflectCall>"
    )
    assert ask(fw, yealink_form) == f'{DECL}<DeflectCallResponse xmlns="{ED5}" />\n'.encode()
    assert [leg.state for leg in pbx.phones[1].legs()] == [LocalConnectionState.ALERTING]


def test_generate_digits_reads_characters_to_send() -> None:
    fw, pbx = firmware()
    call = _ring(fw, pbx)
    pbx.answer(fw.phone.lines[0].legs[0], 0.0)
    old_name = (
        f"<GenerateDigits><connectionToSendDigits><callID>{call}</callID>"
        "</connectionToSendDigits><charToSend>12</charToSend></GenerateDigits>"
    )
    assert ask(fw, old_name) is None
    no_call = "<GenerateDigits><charactersToSend>12</charactersToSend></GenerateDigits>"
    assert ask(fw, no_call) is None
    unknown = (
        "<GenerateDigits><connectionToSendDigits><callID>99</callID></connectionToSendDigits>"
        "<charactersToSend>12</charactersToSend></GenerateDigits>"
    )
    assert ask(fw, unknown) is None
    right = old_name.replace("charToSend", "charactersToSend")
    assert ask(fw, right) == f'{DECL}<GenerateDigitsResponse xmlns="{ED5}" />\n'.encode()


def test_positive_answer_even_when_the_action_fails() -> None:
    fw, _ = firmware()
    # AnswerCall for a call that does not exist: positive anyway (answer first, act second).
    answer = "<AnswerCall><callToBeAnswered><callID>42</callID></callToBeAnswered></AnswerCall>"
    assert ask(fw, answer) == f'{DECL}<AnswerCallResponse xmlns="{ED5}" />\n'.encode()
    # HoldCall names no call: silence.
    hold = "<HoldCall><callToBeHeld><callID>42</callID></callToBeHeld></HoldCall>"
    assert ask(fw, hold) is None


@pytest.mark.parametrize(
    "root",
    ["SetMessageWaitingIndicator", "SnapshotCall", "ClearCall", "DialDigits",
     "GetCSTAFeatures", "SystemRegisterCancel", "SingleStepConferenceCall"],
)  # fmt: skip
def test_unhandled_services_get_unspecified(root: str) -> None:
    fw, _ = firmware()
    assert ask(fw, f"<{root}/>") == UNSPECIFIED


def test_answer_editions_and_silence_on_bad_xml() -> None:
    fw, _ = firmware()
    dnd = ask(fw, "<GetDoNotDisturb><device>sip:100@sim.test</device></GetDoNotDisturb>")
    assert (
        dnd
        == (
            f'{DECL}<GetDoNotDisturbResponse xmlns="{ED3}">\n'
            "\t<doNotDisturbOn>false</doNotDisturbOn>\n"
            "</GetDoNotDisturbResponse>\n"
        ).encode()
    )
    mwi = "<GetMessageWaitingIndicator><device>sip:100@sim.test</device>"
    assert (
        ask(fw, mwi + "</GetMessageWaitingIndicator>")
        == (
            f'{DECL}<GetMessageWaitingIndicatorResponse xmlns="{ED5X}">\n'
            "\t<messageWaitingOn>true</messageWaitingOn>\n"
            "</GetMessageWaitingIndicatorResponse>\n"
        ).encode()
    )
    assert ask(fw, "<MakeCall><callingDevice>") is None
    assert (
        ask(fw, "<SystemRegister/>")
        == (
            f'{DECL}<SystemRegisterResponse xmlns="{ED5X}">\n'
            "\t<sysStatRegisterID>2</sysStatRegisterID>\n"
            "</SystemRegisterResponse>\n"
        ).encode()
    )


def test_blind_transfer_is_reported_as_transfered_event() -> None:
    fw, pbx = firmware()
    monitor = "<MonitorStart><monitorObject><deviceObject>sip:100@sim.test:5060</deviceObject>"
    assert ask(fw, monitor + "</monitorObject></MonitorStart>") is not None
    call = _ring(fw, pbx)
    pbx.answer(fw.phone.lines[0].legs[0], 0.0)
    fw.phone.drain_events()
    sst = (
        f"<SingleStepTransferCall><activeCall><callID>{call}</callID></activeCall>"
        "<transferredTo>200</transferredTo></SingleStepTransferCall>"
    )
    assert (
        ask(fw, sst)
        == (
            f'{DECL}<SingleStepTransferCallResponse xmlns="{ED5}">\n'
            "\t<transferredCall>\n"
            f"\t\t<callID>{call}</callID>\n"
            "\t\t<deviceID>200</deviceID>\n"
            "\t</transferredCall>\n"
            "</SingleStepTransferCallResponse>\n"
        ).encode()
    )
    documents = [doc for e in fw.phone.drain_events() for doc in fw.render_event(e)]
    transfered = [d for d in documents if b"<TransferedEvent" in d]
    assert transfered == [
        (
            f'{DECL}<TransferedEvent xmlns="{ED5}">\n'
            "\t<monitorCrossRefID>0</monitorCrossRefID>\n"
            "\t<primaryOldCall>\n"
            f"\t\t<callID>{call}</callID>\n"
            "\t\t<deviceID>sip:100@sim.test:5060</deviceID>\n"
            "\t</primaryOldCall>\n"
            "\t<transferringDevice>\n"
            "\t\t<deviceIdentifier>sip:100@sim.test:5060</deviceIdentifier>\n"
            "\t</transferringDevice>\n"
            "\t<transferredToDevice>\n"
            "\t\t<deviceIdentifier>sip:200@sim.test</deviceIdentifier>\n"
            "\t</transferredToDevice>\n"
            "\t<transferredConnections>\n"
            "\t\t<connectionListItem />\n"
            "\t</transferredConnections>\n"
            "\t<localConnectionInfo>null</localConnectionInfo>\n"
            "\t<cause>singleStepTransfer</cause>\n"
            "</TransferedEvent>\n"
        ).encode()
    ]
    # No ConnectionClearedEvent for a transferred call.
    assert not any(b"ConnectionClearedEvent" in d for d in documents)


def test_make_call_while_ringing_is_left_unanswered() -> None:
    fw, pbx = firmware()
    _ring(fw, pbx)
    make = (
        "<MakeCall><callingDevice>sip:101@sim.test</callingDevice>"
        "<calledDirectoryNumber>200</calledDirectoryNumber></MakeCall>"
    )
    assert ask(fw, make) is None


def test_snapshot_device_reports_the_focused_call_only() -> None:
    fw, pbx = firmware()
    assert (
        ask(fw, "<SnapshotDevice/>")
        == (
            f'{DECL}<SnapshotDeviceResponse xmlns="{ED5X}">\n'
            "\t<crossRefIDorSnapshotData>\n"
            "\t\t<snapshotData />\n"
            "\t</crossRefIDorSnapshotData>\n"
            "</SnapshotDeviceResponse>\n"
        ).encode()
    )
    first = _ring(fw, pbx)
    pbx.answer(fw.phone.lines[0].legs[0], 0.0)
    pbx.hold(fw.phone.lines[0].legs[0], 0.0)
    pbx.incoming_call("101", "0309999", 0.0)
    # snapshotObject is ignored; one item: the ringing call (the held one is not listed).
    answer = ask(
        fw, "<SnapshotDevice><snapshotObject>sip:100@sim.test</snapshotObject></SnapshotDevice>"
    )
    assert answer is not None
    assert answer.count(b"<snapshotDeviceResponseInfo>") == 1
    assert b"<localConnectionState>alerting</localConnectionState>" in answer
    assert f"<callID>{first}</callID>".encode() not in answer
    assert b"<deviceID>sip:101@sim.test</deviceID>" in answer
