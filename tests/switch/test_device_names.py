"""How clients name lines: the resolution rules of ``uacsta.switch.devices`` (sans-IO).

The names are written as CTI clients write them (estos/TAPI: full SIP URI or extension;
OpenScape Voice: ``N<…>;displayNumber=…``; Yealink's line list: ``sip:user@server:port;tel=…``
from ``yealink-uacsta-behaviour.md`` "Line list").
"""

from __future__ import annotations

import pytest

from uacsta.csta import messages as m
from uacsta.csta.types import DeviceIdentifier
from uacsta.switch.devices import DeviceRegistry
from uacsta.switch.function import SwitchingFunction, ToClient, ToPhone

A = "sip:101@pbx.example.com"
B = "sip:101@branch.example.org"


def registry() -> DeviceRegistry:
    reg = DeviceRegistry()
    reg.set_phone_lines("PA", [A, "sip:102@pbx.example.com:5070"])
    reg.set_phone_lines("PB", [B, "sip:201@branch.example.org"], aliases={B: ["tel:+4930101"]})
    reg.set_phone_lines("PC", ["tel:+49 89 300-555", "sip:301@pbx.example.com:5060;tel=+4930301"])
    return reg


@pytest.mark.parametrize(
    ("name", "expected"),
    [
        ("sip:101@pbx.example.com", A),
        ("sip:101@PBX.Example.COM", A),
        ("sips:101@pbx.example.com", A),
        ("sip:101@pbx.example.com:5060;user=phone", A),
        ("<sip:101@pbx.example.com>", A),
        ('"Reception" <sip:101@pbx.example.com;transport=tcp>', A),
        ("sip:102@pbx.example.com", "sip:102@pbx.example.com:5070"),  # line's port, none asked
        ("sip:102@pbx.example.com:5070", "sip:102@pbx.example.com:5070"),
        ("102", "sip:102@pbx.example.com:5070"),
        ("tel:+4930101", B),  # the alias the phone gave the line
        ("tel:+49-30-101", B),
        ("+4930101", B),
        ("201", "sip:201@branch.example.org"),
        ("sip:201@10.0.0.9", "sip:201@branch.example.org"),  # the PBX by another name
        ("tel:+4989300555", "tel:+49 89 300-555"),
        ("N<+4989300555>;displayNumber=+4989300555;noa=nk", "tel:+49 89 300-555"),
        ("tel:+4930301", "sip:301@pbx.example.com:5060;tel=+4930301"),  # ;tel= in the ID
        ("301", "sip:301@pbx.example.com:5060;tel=+4930301"),
    ],
)
def test_a_client_name_resolves_to_the_line(name: str, expected: str) -> None:
    device = registry().resolve(name)
    assert device is not None and device.device_id == expected


def test_a_port_counts_only_when_both_give_one() -> None:
    reg = registry()
    # The line has no port: its user@host decides.
    device = reg.resolve("sip:101@pbx.example.com:5080")
    assert device is not None and device.device_id == A
    # A line listed with :5070 is not sip:…:5080; the name falls back to its user part.
    assert [d.device_id for d in reg.resolve_all("sip:102@pbx.example.com:5080")] == [
        "sip:102@pbx.example.com:5070"
    ]
    reg.set_phone_lines("PD", ["sip:102@elsewhere.example"])
    assert reg.resolve("sip:102@pbx.example.com:5080") is None  # now ambiguous
    assert reg.resolve("sip:102@pbx.example.com:5070") is not None


@pytest.mark.parametrize("name", ["101", "sip:101@10.0.0.9", "N<101>"])
def test_an_extension_two_phones_have_is_ambiguous(name: str) -> None:
    found = registry().resolve_all(name)
    assert sorted(d.device_id for d in found) == sorted([A, B])
    assert registry().resolve(name) is None


@pytest.mark.parametrize("name", ["999", "sip:999@pbx.example.com", "tel:+1555", "", "sip:@x"])
def test_unknown_names_resolve_to_nothing(name: str) -> None:
    assert registry().resolve_all(name) == []


def test_ambiguous_and_unknown_names_are_refused_with_invalid_device_id_saying_why() -> None:
    sf = SwitchingFunction()
    sf.phone_ready("PA", [A])
    sf.phone_ready("PB", [B])
    (refused,) = sf.client_request("c", 1, m.MonitorStart(monitor_object="101"))
    assert isinstance(refused, ToClient) and refused.invoke == 1
    assert refused.message == m.CSTAErrorCode.operation("invalidDeviceID")
    assert "ambiguous" in (refused.detail or "") and A in (refused.detail or "")
    (unknown,) = sf.client_request(
        "c", 2, m.MakeCall(calling_device="999", called_directory_number="1")
    )
    assert isinstance(unknown, ToClient)
    assert unknown.message == m.CSTAErrorCode.operation("invalidDeviceID")
    assert "unknown device" in (unknown.detail or "")
    # The full URI names one line; events carry the line's own device ID, not the client's form.
    (start,) = sf.client_request(
        "c", 3, m.MonitorStart(monitor_object="sip:101@PBX.example.com:5060")
    )
    assert isinstance(start, ToPhone) and start.request == m.MonitorStart(monitor_object=A)
    answered = sf.phone_response(start.token, m.MonitorStartResponse(monitor_cross_ref_id="1"))
    assert isinstance(answered[1], ToClient)
    back = answered[1].message
    assert isinstance(back, m.BackInServiceEvent) and back.device == DeviceIdentifier(A)


def test_a_yealink_line_is_monitored_by_its_tel_uri() -> None:
    sf = SwitchingFunction()
    sf.phone_ready(
        "PY", ["sip:101@pbx.example.com"], aliases={"sip:101@pbx.example.com": ["tel:+4930101"]}
    )
    (start,) = sf.client_request("c", 1, m.MonitorStart(monitor_object="tel:+4930101"))
    assert isinstance(start, ToPhone)
    assert start.request == m.MonitorStart(monitor_object="sip:101@pbx.example.com")
    # The alias goes with the line when the phone stops listing it.
    sf.phone_lines_changed("PY", ["sip:101@pbx.example.com"])
    assert sf.devices.resolve("tel:+4930101") is None
    assert sf.devices.resolve("101") is not None
