"""Tests for uacsta.sip.dialog: §12 dialogs from captured-style messages, RFC 4028 timers."""

from __future__ import annotations

import pytest

from uacsta.sip.dialog import (
    DEFAULT_SESSION_INTERVAL,
    MIN_SE_FLOOR,
    Dialog,
    DialogCheck,
    DialogError,
    DialogId,
    DialogSet,
    DialogState,
    Refresher,
    SessionExpires,
    interval_after_422,
    negotiate_session_timer_uas,
    parse_min_se,
    parse_session_expires,
    session_timer_from_response,
    session_timer_request_headers,
)
from uacsta.sip.errors import SipParseError
from uacsta.sip.helpers import build_response
from uacsta.sip.message import Request, Response, parse_message
from uacsta.sip.uri import Via

# Our INVITE to a phone (TR/87 CSTA link) through two record-routing proxies.
UAC_INVITE = (
    b"INVITE sip:0004f2aabbcc@192.0.2.20:5060 SIP/2.0\r\n"
    b"Via: SIP/2.0/UDP 192.0.2.1:5060;branch=z9hG4bK776asdhds;rport\r\n"
    b"Max-Forwards: 70\r\n"
    b"From: <sip:uacsta@192.0.2.1>;tag=1928301774\r\n"
    b"To: <sip:101@192.0.2.20>\r\n"
    b"Call-ID: a84b4c76e66710@192.0.2.1\r\n"
    b"CSeq: 1 INVITE\r\n"
    b"Contact: <sip:uacsta@192.0.2.1:5060>\r\n"
    b"Content-Type: application/csta+xml\r\n"
    b"Content-Disposition: signal;handling=required\r\n"
    b"Supported: timer\r\n"
    b"Session-Expires: 1800\r\n"
    b"Min-SE: 90\r\n"
    b"Content-Length: 0\r\n\r\n"
)

UAC_200 = (
    b"SIP/2.0 200 OK\r\n"
    b"Via: SIP/2.0/UDP 192.0.2.1:5060;branch=z9hG4bK776asdhds;rport=5060;received=192.0.2.1\r\n"
    b"Record-Route: <sip:p2.example.org;lr>\r\n"
    b"Record-Route: <sip:p1.example.org;lr>\r\n"
    b"From: <sip:uacsta@192.0.2.1>;tag=1928301774\r\n"
    b"To: <sip:101@192.0.2.20>;tag=snom-7721\r\n"
    b"Call-ID: a84b4c76e66710@192.0.2.1\r\n"
    b"CSeq: 1 INVITE\r\n"
    b"Contact: <sip:101@192.0.2.20:5060;line=kq3gs7e1>;reg-id=1\r\n"
    b"Session-Expires: 1800;refresher=uac\r\n"
    b"Require: timer\r\n"
    b"User-Agent: snom D785/10.1.54.13\r\n"
    b"Content-Type: application/csta+xml\r\n"
    b"Content-Length: 0\r\n\r\n"
)

# An INVITE arriving from a CTI client (TR/87 gateway side), through two proxies.
UAS_INVITE = (
    b"INVITE sips:uacsta@cti.example.org SIP/2.0\r\n"
    b"Via: SIP/2.0/TLS p1.example.org;branch=z9hG4bKp1\r\n"
    b"Via: SIP/2.0/TLS 198.51.100.7:5061;branch=z9hG4bKclient;received=198.51.100.7\r\n"
    b"Max-Forwards: 69\r\n"
    b"Record-Route: <sips:p1.example.org;lr>, <sips:p2.example.org;lr>\r\n"
    b'From: "CTI" <sips:app@client.example.org>;tag=app-99\r\n'
    b"To: <sips:uacsta@cti.example.org>\r\n"
    b"Call-ID: 9f8e7d@client.example.org\r\n"
    b"CSeq: 10 INVITE\r\n"
    b"Contact: <sips:app@198.51.100.7:5061;transport=tls>\r\n"
    b"Supported: timer\r\n"
    b"Session-Expires: 600\r\n"
    b"Content-Length: 0\r\n\r\n"
)


def parse_request(data: bytes) -> Request:
    msg = parse_message(data)
    assert isinstance(msg, Request)
    return msg


def parse_response(data: bytes) -> Response:
    msg = parse_message(data)
    assert isinstance(msg, Response)
    return msg


def reparse(request: Request) -> Request:
    return parse_request(request.to_bytes())


def uac_dialog() -> Dialog:
    return Dialog.from_uac(parse_request(UAC_INVITE), parse_response(UAC_200))


def uas_dialog() -> Dialog:
    return Dialog.from_uas(
        parse_request(UAS_INVITE), "srv-1", "<sips:uacsta@203.0.113.5:5061;transport=tls>"
    )


def incoming(dialog: Dialog, method: str, cseq: int, **kw: str) -> Request:
    """A request from the dialog's peer, as the peer would build it."""
    headers = [
        ("Via", "SIP/2.0/UDP 192.0.2.20:5060;branch=z9hG4bKpeer" + str(cseq)),
        ("From", kw.get("from_", str(dialog.remote_uri))),
        ("To", kw.get("to", str(dialog.local_uri))),
        ("Call-ID", kw.get("call_id", dialog.call_id)),
        ("CSeq", f"{cseq} {method}"),
    ]
    if "contact" in kw:
        headers.append(("Contact", kw["contact"]))
    return reparse(Request(method=method, uri="sip:uacsta@192.0.2.1", headers=tuple(headers)))


# --------------------------------------------------------------------------- creation


def test_from_uac() -> None:
    dialog = uac_dialog()
    assert dialog.id == DialogId("a84b4c76e66710@192.0.2.1", "1928301774", "snom-7721")
    assert dialog.is_uac and dialog.state is DialogState.CONFIRMED
    assert dialog.remote_target == "sip:101@192.0.2.20:5060;line=kq3gs7e1"
    # UAC: the 2xx's Record-Route reversed.
    assert dialog.route_set == ("<sip:p1.example.org;lr>", "<sip:p2.example.org;lr>")
    assert dialog.local_cseq == 1 and dialog.remote_cseq is None
    assert not dialog.secure
    assert dialog.local_contact == "<sip:uacsta@192.0.2.1:5060>"
    assert dialog.local_via == Via(
        transport="UDP", host="192.0.2.1", port=5060, params=(("rport", None),)
    )


def test_from_uac_needs_2xx_and_tolerates_missing_contact() -> None:
    invite = parse_request(UAC_INVITE)
    with pytest.raises(DialogError):
        Dialog.from_uac(invite, build_response(invite, 486, to_tag="x"))
    ok = parse_response(UAC_200).without_header("Contact")
    assert Dialog.from_uac(invite, ok).remote_target == invite.uri


def test_from_uas() -> None:
    dialog = uas_dialog()
    assert dialog.id == DialogId("9f8e7d@client.example.org", "srv-1", "app-99")
    assert not dialog.is_uac
    assert dialog.secure
    assert dialog.remote_target == "sips:app@198.51.100.7:5061;transport=tls"
    # UAS: Record-Route in order.
    assert dialog.route_set == ("<sips:p1.example.org;lr>", "<sips:p2.example.org;lr>")
    assert dialog.remote_cseq == 10 and dialog.local_cseq == 0
    assert (
        dialog.local_uri.tag == "srv-1"
        and str(dialog.local_uri.uri) == "sips:uacsta@cti.example.org"
    )
    assert dialog.remote_uri.display_name == '"CTI"'
    assert dialog.local_via == Via(
        transport="TLS", host="203.0.113.5", port=5061, params=(("rport", None),)
    )


# --------------------------------------------------------------------------- requests


def test_create_request_loose_routing_and_cseq_increments() -> None:
    dialog = uac_dialog()
    info = dialog.create_request(
        "INFO",
        branch="z9hG4bKinfo1",
        body=b"<MonitorStart/>",
        content_type="application/csta+xml",
        extra_headers=(("Content-Disposition", "signal;handling=required"),),
    )
    info = reparse(info)
    assert info.uri == "sip:101@192.0.2.20:5060;line=kq3gs7e1"
    assert info.header_values("Route") == ["<sip:p1.example.org;lr>", "<sip:p2.example.org;lr>"]
    assert str(info.cseq) == "2 INFO"
    assert info.top_via.branch == "z9hG4bKinfo1" and info.top_via.wants_rport
    assert info.from_.tag == "1928301774" and info.to.tag == "snom-7721"
    assert info.call_id == dialog.call_id
    assert info.header("Contact") is None
    assert info.content_type == "application/csta+xml"
    assert info.body == b"<MonitorStart/>"
    assert info.header("Max-Forwards") == "70"
    reinvite = dialog.create_request("INVITE", branch="z9hG4bKre")
    assert str(reinvite.cseq) == "3 INVITE"
    assert reinvite.header("Contact") == "<sip:uacsta@192.0.2.1:5060>"
    bye = dialog.create_request("BYE", branch="z9hG4bKbye")
    assert bye.cseq.seq == 4 and dialog.local_cseq == 4


def test_create_request_without_routes_and_custom_via() -> None:
    invite = parse_request(UAC_INVITE)
    ok = parse_response(UAC_200).without_header("Record-Route")
    dialog = Dialog.from_uac(invite, ok)
    via = Via(transport="TCP", host="192.0.2.1", port=5060)
    request = dialog.create_request("INFO", branch="z9hG4bKx", via=via)
    assert request.header("Route") is None
    assert request.header("Via") == "SIP/2.0/TCP 192.0.2.1:5060;branch=z9hG4bKx"


def test_built_request_reads_as_its_text_parses() -> None:
    """The Via, From and To a built request answers with (not parsed back from its own
    text) equal what a peer parses from the bytes we send."""
    dialog = uac_dialog()
    built = dialog.create_request("INFO", branch="z9hG4bKseed", body=b"x", content_type="a/b")
    wire = reparse(built)
    assert built.top_via == wire.top_via and built.top_via.branch == "z9hG4bKseed"
    assert built.from_ == wire.from_ and built.to == wire.to
    assert str(built.from_) == built.header("From") and str(built.to) == built.header("To")


def test_create_request_strict_routing() -> None:
    dialog = uac_dialog()
    dialog.route_set = ("<sip:strict.example.org>", "<sip:p2.example.org;lr>")
    request = dialog.create_request("INFO", branch="z9hG4bKs")
    assert request.uri == "sip:strict.example.org"
    assert request.header_values("Route") == [
        "<sip:p2.example.org;lr>",
        "<sip:101@192.0.2.20:5060;line=kq3gs7e1>",
    ]


def test_create_request_refusals() -> None:
    dialog = uac_dialog()
    for method in ("ACK", "CANCEL"):
        with pytest.raises(DialogError):
            dialog.create_request(method, branch="z9hG4bKa")
    dialog.local_via = None
    with pytest.raises(DialogError):
        dialog.create_request("INFO", branch="z9hG4bKa")
    dialog.terminate()
    with pytest.raises(DialogError):
        dialog.create_request("BYE", branch="z9hG4bKa")
    assert dialog.local_cseq == 1


def test_create_ack_for_2xx() -> None:
    dialog = uac_dialog()
    ok = parse_response(UAC_200)
    ack = reparse(dialog.create_ack(ok, branch="z9hG4bKack"))
    assert ack.method == "ACK"
    assert str(ack.cseq) == "1 ACK"
    assert ack.top_via.branch == "z9hG4bKack"
    assert ack.uri == dialog.remote_target
    assert ack.header_values("Route") == list(dialog.route_set)
    assert ack.header("Contact") is None
    assert dialog.local_cseq == 1  # ACK does not take a CSeq
    with pytest.raises(DialogError):
        dialog.create_ack(build_response(parse_request(UAC_INVITE), 486), branch="z9hG4bKn")


def test_reinvite_2xx_refreshes_target_and_ack_uses_it() -> None:
    dialog = uac_dialog()
    reinvite = dialog.create_request("INVITE", branch="z9hG4bKre")
    ok = build_response(reinvite, 200, headers=(("Contact", "<sip:101@192.0.2.99:5070>"),))
    dialog.receive_response(ok)
    assert dialog.remote_target == "sip:101@192.0.2.99:5070"
    ack = dialog.create_ack(ok, branch="z9hG4bKack2")
    assert ack.uri == "sip:101@192.0.2.99:5070" and ack.cseq.seq == 2
    # A 2xx to a non-refresh request does not move the target.
    info = dialog.create_request("INFO", branch="z9hG4bKi")
    dialog.receive_response(build_response(info, 200, headers=(("Contact", "<sip:x@h>"),)))
    assert dialog.remote_target == "sip:101@192.0.2.99:5070"


@pytest.mark.parametrize("code", [408, 481])
def test_408_or_481_terminates_the_dialog(code: int) -> None:
    dialog = uac_dialog()
    info = dialog.create_request("INFO", branch="z9hG4bKi")
    dialog.receive_response(build_response(info, code))
    assert dialog.state is DialogState.TERMINATED


# --------------------------------------------------------------------------- incoming


def test_receive_request_cseq_order() -> None:
    dialog = uac_dialog()
    assert dialog.receive_request(incoming(dialog, "INFO", 5)) is DialogCheck.ACCEPT
    assert dialog.remote_cseq == 5
    assert dialog.receive_request(incoming(dialog, "INFO", 5)) is DialogCheck.ACCEPT
    check = dialog.receive_request(incoming(dialog, "INFO", 4))
    assert check is DialogCheck.OUT_OF_ORDER and check.status_code == 500
    assert dialog.remote_cseq == 5
    assert dialog.receive_request(incoming(dialog, "INFO", 6)) is DialogCheck.ACCEPT
    assert DialogCheck.ACCEPT.status_code is None


def test_receive_request_wrong_dialog_is_481() -> None:
    dialog = uac_dialog()
    for kw in (
        {"call_id": "other@h"},
        {"to": "<sip:uacsta@192.0.2.1>;tag=wrong"},
        {"from_": "<sip:101@192.0.2.20>;tag=wrong"},
    ):
        check = dialog.receive_request(incoming(dialog, "INFO", 7, **kw))
        assert check is DialogCheck.NOT_THIS_DIALOG and check.status_code == 481
    dialog.terminate()
    assert dialog.receive_request(incoming(dialog, "INFO", 8)) is DialogCheck.NOT_THIS_DIALOG


def test_bound_dialog_refuses_other_peers_before_touching_cseq_or_target() -> None:
    dialog = uac_dialog()
    dialog.peer = ("udp", ("192.0.2.20", 5060))
    for method, peer in (
        ("INFO", ("udp", ("192.0.2.20", 5999))),  # same host, other port
        ("BYE", ("udp", ("198.51.100.9", 5060))),
        ("INVITE", ("tcp", 7)),
        ("INFO", None),  # the adapter did not say: refused, not trusted
    ):
        request = incoming(dialog, method, 1000, contact="<sip:evil@198.51.100.9>")
        check = dialog.receive_request(request, peer=peer)
        assert check is DialogCheck.FOREIGN_PEER and check.status_code == 481
        assert dialog.remote_cseq is None
        assert dialog.remote_target == "sip:101@192.0.2.20:5060;line=kq3gs7e1"
        assert dialog.state is DialogState.CONFIRMED
    check = dialog.receive_request(incoming(dialog, "INFO", 1), peer=("udp", ("192.0.2.20", 5060)))
    assert check is DialogCheck.ACCEPT and dialog.remote_cseq == 1
    dialogs = DialogSet()
    dialogs.add(dialog)
    stray = incoming(dialog, "INFO", 2)
    assert dialogs.check_request(stray, peer=("tcp", 9)) == (dialog, DialogCheck.FOREIGN_PEER)


def test_uas_dialog_remote_cseq_from_invite() -> None:
    dialog = uas_dialog()
    assert dialog.receive_request(incoming(dialog, "INFO", 9)) is DialogCheck.OUT_OF_ORDER
    assert dialog.receive_request(incoming(dialog, "BYE", 11)) is DialogCheck.ACCEPT


def test_ack_and_cancel_skip_the_cseq_check() -> None:
    dialog = uas_dialog()
    ack = incoming(dialog, "ACK", 10)
    assert dialog.receive_request(ack) is DialogCheck.ACCEPT
    dialog.receive_request(incoming(dialog, "INFO", 12))
    assert dialog.receive_request(incoming(dialog, "ACK", 10)) is DialogCheck.ACCEPT
    assert dialog.remote_cseq == 12


def test_incoming_reinvite_refreshes_target() -> None:
    dialog = uac_dialog()
    request = incoming(dialog, "INVITE", 1, contact="<sip:101@192.0.2.21:5062>")
    assert dialog.receive_request(request) is DialogCheck.ACCEPT
    assert dialog.remote_target == "sip:101@192.0.2.21:5062"
    # INFO with a Contact is not a target refresh.
    dialog.receive_request(incoming(dialog, "INFO", 2, contact="<sip:elsewhere@h>"))
    assert dialog.remote_target == "sip:101@192.0.2.21:5062"


# --------------------------------------------------------------------------- DialogSet


def test_dialog_set_lookup_and_481() -> None:
    dialogs = DialogSet()
    uac, uas = uac_dialog(), uas_dialog()
    dialogs.add(uac)
    dialogs.add(uas)
    assert len(dialogs) == 2 and uac.id in dialogs
    assert dialogs.get(uac.id) is uac
    request = incoming(uac, "INFO", 3)
    assert dialogs.find_for_request(request) is uac
    assert dialogs.check_request(request) == (uac, DialogCheck.ACCEPT)
    stray = incoming(uac, "INFO", 3, to="<sip:uacsta@192.0.2.1>;tag=gone")
    assert dialogs.check_request(stray) == (None, DialogCheck.NOT_THIS_DIALOG)
    info = uac.create_request("INFO", branch="z9hG4bKq")
    assert dialogs.find_for_response(build_response(info, 200)) is uac
    uac.terminate()
    assert dialogs.prune() == [uac]
    assert list(dialogs) == [uas]
    assert dialogs.remove(uas.id) is uas
    assert dialogs.remove(uas.id) is None


# --------------------------------------------------------------------------- RFC 4028


def test_parse_session_expires_and_min_se() -> None:
    assert parse_session_expires("1800;refresher=uac") == SessionExpires(1800, Refresher.UAC)
    assert parse_session_expires(" 90 ; refresher=UAS;x=1") == SessionExpires(90, Refresher.UAS)
    assert parse_session_expires("600") == SessionExpires(600)
    assert str(SessionExpires(1800, Refresher.UAS)) == "1800;refresher=uas"
    assert str(SessionExpires(1800)) == "1800"
    assert parse_min_se("90") == 90 and parse_min_se("120;foo") == 120
    for bad in ("", "abc", "0", "-5", "1800;refresher=proxy", "12345678901"):
        with pytest.raises(SipParseError):
            parse_session_expires(bad)
    with pytest.raises(SipParseError):
        parse_min_se("x")


def test_compact_session_expires_header() -> None:
    ok = parse_response(UAC_200.replace(b"Session-Expires:", b"x:"))
    assert session_timer_from_response(ok) == SessionExpires(1800, Refresher.UAC)


def test_uac_negotiation_helpers() -> None:
    assert session_timer_request_headers() == (
        ("Session-Expires", str(DEFAULT_SESSION_INTERVAL)),
        ("Min-SE", str(MIN_SE_FLOOR)),
        ("Supported", "timer"),
    )
    assert session_timer_request_headers(300, min_se=120, refresher=Refresher.UAC)[0] == (
        "Session-Expires",
        "300;refresher=uac",
    )
    invite = parse_request(UAC_INVITE)
    too_small = build_response(invite, 422, headers=(("Min-SE", "1200"),))
    assert interval_after_422(too_small, 300) == 1200
    assert interval_after_422(too_small, 1800) == 1800
    with pytest.raises(SipParseError):
        interval_after_422(build_response(invite, 422), 300)
    assert session_timer_from_response(parse_response(UAC_200)) == SessionExpires(
        1800, Refresher.UAC
    )
    no_timer = parse_response(UAC_200).without_header("Session-Expires")
    assert session_timer_from_response(no_timer) is None
    no_refresher = parse_response(UAC_200).with_header_set("Session-Expires", "900")
    assert session_timer_from_response(no_refresher) == SessionExpires(900, Refresher.UAC)


def test_uas_negotiation() -> None:
    request = parse_request(UAS_INVITE)  # Session-Expires: 600, Supported: timer
    answer = negotiate_session_timer_uas(request)
    assert answer.status_code == 200
    assert answer.session_expires == SessionExpires(600, Refresher.UAC)
    assert answer.headers == (("Session-Expires", "600;refresher=uac"), ("Require", "timer"))
    answer = negotiate_session_timer_uas(request, preferred_refresher=Refresher.UAS)
    assert answer.session_expires == SessionExpires(600, Refresher.UAS)
    # Too small → 422 with our Min-SE.
    answer = negotiate_session_timer_uas(request, min_se=1800)
    assert answer.status_code == 422 and answer.headers == (("Min-SE", "1800"),)
    # The UAC asked for a refresher: kept.
    asked = request.with_header_set("Session-Expires", "600;refresher=uas")
    assert negotiate_session_timer_uas(asked).session_expires == SessionExpires(600, Refresher.UAS)
    # A UAC without timer support cannot refresh and gets no Require: timer.
    plain = request.without_header("Supported").with_header_set(
        "Session-Expires", "600;refresher=uac"
    )
    answer = negotiate_session_timer_uas(plain)
    assert answer.session_expires == SessionExpires(600, Refresher.UAS)
    assert answer.headers == (("Session-Expires", "600;refresher=uas"),)
    # No Session-Expires: no session timer.
    answer = negotiate_session_timer_uas(request.without_header("Session-Expires"))
    assert answer.status_code == 200 and answer.session_expires is None and answer.headers == ()


def test_session_deadlines_when_we_refresh() -> None:
    dialog = uac_dialog()
    assert dialog.get_timer() is None
    dialog.session_refreshed(1000.0, 1800, Refresher.UAC)
    assert dialog.session_we_refresh
    assert dialog.session_refresh_at == 1900.0  # half the interval
    assert dialog.session_expires_at is None
    assert dialog.get_timer() == 1900.0
    # A UAS-side dialog refreshing with its own re-INVITE (it is the refresh's UAC).
    uas = uas_dialog()
    uas.session_refreshed(0.0, 600, Refresher.UAC, local_is_uac=True)
    assert uas.session_refresh_at == 300.0


def test_session_deadlines_when_peer_refreshes() -> None:
    dialog = uas_dialog()
    dialog.session_refreshed(1000.0, 600, Refresher.UAC)  # the CTI client (UAC) refreshes
    assert not dialog.session_we_refresh
    assert dialog.session_refresh_at is None
    assert dialog.session_expires_at == 1000.0 + 600 - 32  # min(32, 200) = 32
    dialog.session_refreshed(2000.0, 90, Refresher.UAC)
    assert dialog.session_expires_at == 2000.0 + 90 - 30  # min(32, 30) = 30
    assert dialog.get_timer() == 2060.0
    uac = uac_dialog()
    uac.session_refreshed(0.0, 1800, Refresher.UAS)
    assert uac.session_expires_at == 1800 - 32
    uac.session_timer_off()
    assert uac.get_timer() is None and uac.session_interval is None
