"""Line names: the clients' form of what Yealink and snom list, and the way back."""

from __future__ import annotations

from uacsta.csta import messages as m
from uacsta.tr87 import LineForms, account_key, client_device_id


def test_client_device_id() -> None:
    assert client_device_id("sip:101@pbx.example:5060;tel=+4930101") == "sip:101@pbx.example"
    assert client_device_id("sip:101@[2001:db8::1]:5060") == "sip:101@[2001:db8::1]"
    assert client_device_id("sip:101@pbx;user=phone") == "sip:101@pbx;user=phone"
    assert client_device_id("tel:+4930101") == "tel:+4930101"
    assert client_device_id("sip:pbx.example") == "sip:pbx.example"


def test_account_key() -> None:
    assert account_key("sips:101@PBX.example:5061;transport=tls") == "101@pbx.example"
    assert account_key("tel:+49") is None
    assert account_key("sip:pbx") is None


def test_learn_leaves_out_the_mac_account_unless_alone() -> None:
    forms = LineForms()
    own = "sip:001565aabbcc@pbx.example"
    lines = forms.learn(
        ["sip:101@pbx.example:5060;tel=+4930101", "sip:001565aabbcc@pbx.example:5060"],
        own_account=own,
    )
    assert lines == ["sip:101@pbx.example"]
    assert forms.aliases() == {"sip:101@pbx.example": ["tel:+4930101"]}
    assert forms.learn(["sip:001565aabbcc@pbx.example:5060"], own_account=own) == [
        "sip:001565aabbcc@pbx.example"
    ]


def test_accounts_differing_only_in_port_stay_apart() -> None:
    forms = LineForms()
    lines = forms.learn(["sip:101@pbx:5060", "sip:101@pbx:5070"])
    assert lines == ["sip:101@pbx", "sip:101@pbx:5070"]


def test_round_trip_of_device_fields() -> None:
    forms = LineForms()
    forms.learn(["sip:101@pbx.example:5060;tel=+4930101"])
    request = m.MakeCall(calling_device="sip:101@pbx.example", called_directory_number="200")
    sent = forms.to_phone_form(request)
    assert isinstance(sent, m.MakeCall)
    assert sent.calling_device == "sip:101@pbx.example:5060;tel=+4930101"
    assert sent.called_directory_number == "200"  # not a device of the phone's own
    back = forms.to_client_form(m.MonitorStart(monitor_object=sent.calling_device))
    assert back.monitor_object == "sip:101@pbx.example"
    plain = LineForms()
    assert plain.to_phone_form(request) is request
