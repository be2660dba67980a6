"""The uaCSTA dialog driven with SIP message objects, hand-written CSTA and a fake clock."""

from __future__ import annotations

import dataclasses
import itertools
from typing import Any

import pytest

from uacsta.csta import codec
from uacsta.csta import messages as m
from uacsta.sip.message import Request, Response
from uacsta.sip.uri import Via
from uacsta.tr87 import (
    ACCEPTED_TYPES,
    ALLOW,
    TRANSITIONS,
    Answer,
    AuthRequired,
    CstaDialog,
    DialogEvent,
    Established,
    Input,
    InviteTarget,
    LinesChanged,
    Lost,
    Measured,
    PeerRequest,
    PhoneEvent,
    Ready,
    Role,
    SendRequest,
    SendResponse,
    State,
    answer_for_response,
)

AOR = "sip:001565aabbcc@pbx.example"

# Yealink (reference: yealink-uacsta-behaviour.md, "Line list"): ED5x namespace (misspelled),
# one <device> per account holding only deviceID, server port and ;tel= kept.
YEALINK_SFD = b"""<?xml version="1.0" encoding="UTF-8"?>
<SwitchingFunctionDevices xmlns="http://www.ecmainternational.org/standards/ecma-323/csta/ed5">
<serviceCrossRefID>C2527445F5CC4848A7E80CBF0F76A11E</serviceCrossRefID>
<segmentID>1</segmentID>
<lastSegment>true</lastSegment>
<deviceList>
<device><deviceID>sip:101@pbx.example:5060;tel=+4930101</deviceID></device>
<device><deviceID>sip:001565aabbcc@pbx.example:5060</deviceID></device>
</deviceList>
</SwitchingFunctionDevices>"""

# snom (protocol notes): ED3 deviceEntry elements, two segments.
SNOM_SEGMENT_1 = b"""<?xml version="1.0" encoding="UTF-8"?>
<SwitchingFunctionDevices xmlns="http://www.ecma-international.org/standards/ecma-323/csta/ed3">
<segmentID>1</segmentID><lastSegment>false</lastSegment>
<deviceList><deviceEntry><deviceID>sip:455455@ser.intern.snom.de</deviceID></deviceEntry>
</deviceList></SwitchingFunctionDevices>"""
SNOM_SEGMENT_2 = b"""<?xml version="1.0" encoding="UTF-8"?>
<SwitchingFunctionDevices xmlns="http://www.ecma-international.org/standards/ecma-323/csta/ed3">
<segmentID>2</segmentID><lastSegment>true</lastSegment>
<deviceList><deviceEntry><deviceID>sip:455456@ser.intern.snom.de</deviceID></deviceEntry>
</deviceList></SwitchingFunctionDevices>"""

RSS_RESPONSE = b"""<?xml version="1.0" encoding="UTF-8"?>
<RequestSystemStatusResponse xmlns="http://www.ecma-international.org/standards/ecma-323/csta/ed4">
<systemStatus>normal</systemStatus></RequestSystemStatusResponse>"""

GSFD_RESPONSE = b"""<?xml version="1.0" encoding="UTF-8"?>
<GetSwitchingFunctionDevicesResponse xmlns="http://www.ecma-international.org/standards/ecma-323/csta/ed3"/>"""

DELIVERED = b"""<?xml version="1.0" encoding="UTF-8"?>
<DeliveredEvent xmlns="http://www.ecma-international.org/standards/ecma-323/csta/ed3">
<monitorCrossRefID>0</monitorCrossRefID>
<connection><callID>7</callID><deviceID>sip:101@pbx.example:5060;tel=+4930101</deviceID></connection>
<alertingDevice><deviceIdentifier>sip:101@pbx.example:5060</deviceIdentifier></alertingDevice>
<callingDevice><deviceIdentifier>sip:200@pbx.example</deviceIdentifier></callingDevice>
<calledDevice><deviceIdentifier>sip:101@pbx.example</deviceIdentifier></calledDevice>
<lastRedirectionDevice><notRequired/></lastRedirectionDevice>
<localConnectionInfo>alerting</localConnectionInfo>
<cause>newCall</cause>
</DeliveredEvent>"""


def ok(body: bytes = b"", *headers: tuple[str, str], status: int = 200) -> Response:
    extra = (("Content-Type", "application/csta+xml"),) if body else ()
    return Response(status_code=status, reason="OK", headers=(*headers, *extra), body=body)


def info(body: bytes, content_type: str = "application/csta+xml") -> Request:
    return Request(
        method="INFO",
        uri="sip:uacsta@server",
        headers=(("Content-Type", content_type), ("CSeq", "5 INFO")),
        body=body,
    )


TARGET = InviteTarget(
    uri="sip:001565aabbcc@192.0.2.7:5062",
    to=AOR,
    contact="<sip:uacsta@192.0.2.1:5060;transport=tcp>",
    via=Via(transport="TCP", host="192.0.2.1", port=5060),
    call_id="abc@uacsta",
)


def state_of(d: CstaDialog) -> State:
    """The state now (read through a call: mypy keeps no narrowing across inputs)."""
    return d.state


def unmeasured(d: CstaDialog) -> list[DialogEvent]:
    """The events but the latency measurements (tested on their own)."""
    return [e for e in d.events() if not isinstance(e, Measured)]


def sends(events: list[DialogEvent]) -> list[SendRequest]:
    return [e for e in events if isinstance(e, SendRequest)]


def only_send(d: CstaDialog) -> SendRequest:
    out = sends(d.events())
    assert len(out) == 1, out
    return out[0]


def decoded(send: SendRequest) -> m.CstaMessage:
    return codec.decode(send.body)


def phone_dialog(**kw: object) -> CstaDialog:
    args: dict[str, object] = {
        "role": Role.SERVER_TO_PHONE,
        "aor": AOR,
        "services": frozenset({"SystemRegister"}),
        "keepalive_interval": 30.0,
        "session_expires": 1800,
        "csta_timeout": 4.0,
        "own_account": AOR,
    }
    args.update(kw)
    return CstaDialog(**args)  # type: ignore[arg-type]


def ready_dialog(now: float = 0.0, sfd: bytes = YEALINK_SFD) -> CstaDialog:
    d = phone_dialog()
    d.start(TARGET, now)
    invite = only_send(d)
    d.receive_response(
        invite.token, ok(RSS_RESPONSE, ("Session-Expires", "1800;refresher=uac")), now
    )
    register = only_send(d)
    d.receive_response(register.token, ok(), now)
    gsfd = only_send(d)
    d.receive_response(gsfd.token, ok(GSFD_RESPONSE), now)
    d.receive_request(info(sfd), now)
    events = d.events()
    assert any(isinstance(e, Ready) for e in events)
    assert d.state is State.READY
    return d


# --- set-up --------------------------------------------------------------------------------------
def test_invite_carries_request_system_status_and_session_timer() -> None:
    d = phone_dialog()
    assert d.state is State.IDLE
    d.start(TARGET, 0.0)
    assert state_of(d) is State.INVITING
    invite = only_send(d)
    assert invite.method == "INVITE" and invite.request is not None
    assert invite.request.uri == TARGET.uri
    assert invite.request.call_id == "abc@uacsta"
    assert invite.request.cseq.seq == 1
    assert invite.request.top_via.branch
    assert isinstance(decoded(invite), m.RequestSystemStatus)
    headers = dict(invite.headers)
    assert headers["Content-Disposition"] == "signal;handling=required"
    assert headers["Session-Expires"] == "1800;refresher=uac"
    assert headers["Allow"] == ALLOW[Role.SERVER_TO_PHONE]
    assert invite.timeout == 8.0


def test_invite_through_an_edge_carries_the_path_as_route_set() -> None:
    """RFC 3327 §5.3: the registered Path, in order, as Route; the contact stays the
    Request-URI (loose routing); a challenged retry keeps it."""
    edge = "<sip:192.0.2.10;lr;received=sip:198.51.100.7:41000>"
    d = phone_dialog()
    d.start(dataclasses.replace(TARGET, route=("<sip:10.0.0.5;lr>", edge)), 0.0)
    invite = only_send(d)
    assert invite.request is not None
    assert invite.request.uri == TARGET.uri
    assert invite.request.header_values("Route") == ["<sip:10.0.0.5;lr>", edge]
    assert [n for n, _ in invite.headers][:3] == ["Via", "Max-Forwards", "Route"]
    d.authorize((("Authorization", "Digest x"),), 0.0)
    retry = only_send(d)
    assert retry.request is not None
    assert retry.request.header_values("Route") == ["<sip:10.0.0.5;lr>", edge]


def test_set_up_learns_yealink_lines_without_the_mac_account() -> None:
    d = phone_dialog()
    d.start(TARGET, 0.0)
    invite = only_send(d)
    d.receive_response(
        invite.token, ok(RSS_RESPONSE, ("Session-Expires", "1800;refresher=uac")), 0.0
    )
    assert d.state is State.LEARNING
    assert d.edition is codec.Edition.ED4  # answers in the edition the phone speaks
    events = d.events()
    assert isinstance(events[0], Established)
    register = sends(events)[0]
    assert isinstance(decoded(register), m.SystemRegister)
    d.receive_response(register.token, ok(), 0.1)
    gsfd = only_send(d)
    assert isinstance(decoded(gsfd), m.GetSwitchingFunctionDevices)
    d.receive_response(gsfd.token, ok(GSFD_RESPONSE), 0.2)
    assert d.get_timer() == pytest.approx(4.2)  # waiting for SwitchingFunctionDevices
    d.receive_request(info(YEALINK_SFD), 0.3)
    events = unmeasured(d)
    assert isinstance(events[0], SendResponse) and events[0].status_code == 200
    ready = events[1]
    assert isinstance(ready, Ready)
    assert ready.lines == ["sip:101@pbx.example"]
    assert ready.aliases == {"sip:101@pbx.example": ["tel:+4930101"]}
    assert state_of(d) is State.READY
    assert d.get_timer() == pytest.approx(30.3)  # keep-alive


def test_lines_arriving_before_the_get_answer() -> None:
    d = phone_dialog(services=frozenset())
    d.start(TARGET, 0.0)
    d.receive_response(only_send(d).token, ok(), 0.0)
    gsfd = only_send(d)  # no SystemRegister: not offered
    assert isinstance(decoded(gsfd), m.GetSwitchingFunctionDevices)
    d.receive_request(info(SNOM_SEGMENT_1), 0.1)
    d.receive_request(info(SNOM_SEGMENT_2), 0.1)
    assert d.state is State.LEARNING
    d.events()
    d.receive_response(gsfd.token, ok(GSFD_RESPONSE), 0.2)
    (ready,) = [e for e in d.events() if isinstance(e, Ready)]
    assert ready.lines == ["sip:455455@ser.intern.snom.de", "sip:455456@ser.intern.snom.de"]


def test_no_line_list_falls_back_to_the_aor() -> None:
    d = phone_dialog(services=frozenset(), own_account=None)
    d.start(TARGET, 0.0)
    d.receive_response(only_send(d).token, ok(), 0.0)
    gsfd = only_send(d)
    d.receive_response(gsfd.token, ok(GSFD_RESPONSE), 1.0)
    assert d.get_timer() == pytest.approx(5.0)
    d.handle_timer(5.0)
    (ready,) = [e for e in d.events() if isinstance(e, Ready)]
    assert ready.lines == [AOR]


def test_refused_get_falls_back_to_the_aor() -> None:
    d = phone_dialog(services=frozenset())
    d.start(TARGET, 0.0)
    d.receive_response(only_send(d).token, ok(), 0.0)
    gsfd = only_send(d)
    d.receive_response(gsfd.token, ok(status=500), 1.0)
    (ready,) = [e for e in d.events() if isinstance(e, Ready)]
    assert ready.lines == [AOR]


def test_unanswered_system_register_loses_the_dialog() -> None:
    d = phone_dialog()
    d.start(TARGET, 0.0)
    d.receive_response(only_send(d).token, ok(), 0.0)
    register = only_send(d)
    d.receive_timeout(register.token, 4.0)
    (lost,) = [e for e in d.events() if isinstance(e, Lost)]
    assert lost.reason == "the phone does not answer CSTA requests"
    assert not lost.was_ready
    assert d.state is State.LOST
    assert d.timeouts == 1


@pytest.mark.parametrize(
    ("status", "reason"),
    [
        (486, "phone answered the CSTA INVITE with 486 Busy"),
        (403, "phone answered the CSTA INVITE with 403 Busy"),
    ],
)
def test_rejected_invite(status: int, reason: str) -> None:
    d = phone_dialog()
    d.start(TARGET, 0.0)
    d.receive_response(only_send(d).token, Response(status_code=status, reason="Busy"), 0.0)
    (lost,) = d.events()
    assert isinstance(lost, Lost) and lost.reason == reason


def test_invite_timeout() -> None:
    d = phone_dialog()
    d.start(TARGET, 0.0)
    d.receive_timeout(only_send(d).token, 8.0)
    (lost,) = d.events()
    assert isinstance(lost, Lost) and lost.reason == "the phone did not answer the CSTA INVITE"


def test_422_retries_with_min_se_then_gives_up() -> None:
    d = phone_dialog(session_expires=90)
    d.start(TARGET, 0.0)
    for _ in range(3):
        invite = only_send(d)
        d.receive_response(
            invite.token, Response(status_code=422, headers=(("Min-SE", "600"),)), 0.0
        )
    invite = only_send(d)
    assert dict(invite.headers)["Session-Expires"] == "600;refresher=uac"
    d.receive_response(invite.token, Response(status_code=422, headers=(("Min-SE", "600"),)), 0.0)
    (lost,) = d.events()
    assert isinstance(lost, Lost) and lost.reason == "CSTA INVITE not accepted after retries"


def test_422_without_min_se() -> None:
    d = phone_dialog()
    d.start(TARGET, 0.0)
    d.receive_response(only_send(d).token, Response(status_code=422), 0.0)
    (lost,) = d.events()
    assert isinstance(lost, Lost) and lost.reason == "phone answered 422 without Min-SE"


def test_challenge_is_answered_once() -> None:
    d = phone_dialog()
    d.start(TARGET, 0.0)
    challenge = Response(status_code=401, reason="Unauthorized")
    d.receive_response(only_send(d).token, challenge, 0.0)
    (auth,) = d.events()
    assert isinstance(auth, AuthRequired) and auth.response is challenge
    d.authorize((("Authorization", "Digest x"),), 0.0)
    invite = only_send(d)
    assert ("Authorization", "Digest x") in invite.headers
    assert invite.request is not None and invite.request.cseq.seq == 2
    d.receive_response(invite.token, challenge, 0.0)
    (lost,) = d.events()
    assert (
        isinstance(lost, Lost)
        and lost.reason == "phone answered the CSTA INVITE with 401 Unauthorized"
    )


# --- requests ------------------------------------------------------------------------------------
def test_request_answered_with_the_client_form_of_lines() -> None:
    d = ready_dialog()
    token = d.csta_request(m.MonitorStart(monitor_object="sip:101@pbx.example"), 1.0)
    send = only_send(d)
    assert send.token == token and send.method == "INFO"
    sent = decoded(send)
    assert isinstance(sent, m.MonitorStart)
    assert sent.monitor_object == "sip:101@pbx.example:5060;tel=+4930101"  # the phone's form
    assert d.in_flight == 1
    body = codec.encode(m.MonitorStartResponse(monitor_cross_ref_id="0"), codec.Edition.ED5)
    d.receive_response(token, ok(body), 1.25)
    (answer,) = d.events()  # the latency travels in the answer: no Measured for it
    assert isinstance(answer, Answer) and answer.token == token
    assert answer.message == m.MonitorStartResponse(monitor_cross_ref_id="0")
    assert answer.service == "MonitorStart"
    assert answer.latency == pytest.approx(0.25)
    assert d.in_flight == 0


def test_not_ready_and_too_many_in_flight() -> None:
    d = phone_dialog()
    d.csta_request(m.RequestSystemStatus(), 0.0)
    (answer,) = d.events()
    assert isinstance(answer, Answer)
    assert answer.message == m.CSTAErrorCode.system_resource_availability("outOfService")
    d = ready_dialog()
    for _ in range(32):
        d.csta_request(m.RequestSystemStatus(), 1.0)
    assert len(sends(d.events())) == 32
    d.csta_request(m.RequestSystemStatus(), 1.0)
    (answer,) = d.events()
    assert isinstance(answer, Answer)
    assert answer.message == m.CSTAErrorCode.performance_management("performanceLimitExceeded")


OOS = m.CSTAErrorCode.system_resource_availability("outOfService")
GENERIC = m.CSTAErrorCode.operation("generic")


@pytest.mark.parametrize(
    ("response", "expected", "lost"),
    [
        (Response(status_code=408), OOS, True),
        (Response(status_code=481), OOS, True),
        (Response(status_code=503), OOS, True),
        (Response(status_code=503, headers=(("Retry-After", "5"),)), GENERIC, False),
        (Response(status_code=500), GENERIC, False),
        (Response(status_code=200), m.RequestSystemStatusResponse(), False),
        (Response(status_code=200, body=b"<not-xml"), GENERIC, False),
        (None, m.CSTAErrorCode.timeout(), False),
    ],
)
def test_sip_status_to_csta(response: Response | None, expected: m.CstaMessage, lost: bool) -> None:
    answer, why = answer_for_response(m.RequestSystemStatus(), response)
    assert answer == expected
    assert (why is not None) is lost


def test_monitor_start_without_cross_ref_loses_the_dialog() -> None:
    answer, why = answer_for_response(m.MonitorStart(monitor_object="x"), Response(status_code=200))
    assert answer == OOS
    assert why == "answered MonitorStart with no monitorCrossRefID (an empty 200)"
    d = ready_dialog()
    token = d.csta_request(m.MonitorStart(monitor_object="sip:101@pbx.example"), 1.0)
    d.events()
    d.receive_response(token, Response(status_code=500, reason="Oops"), 1.0)
    events = unmeasured(d)
    assert isinstance(events[0], Lost) and events[0].was_ready
    assert events[0].reason == "answered MonitorStart with SIP 500 Oops"
    assert isinstance(events[1], Answer) and events[1].message == OOS


def test_transport_failure_loses_the_dialog() -> None:
    d = ready_dialog()
    token = d.csta_request(m.RequestSystemStatus(), 1.0)
    d.events()
    d.receive_failure(token, "connection reset", 1.0)
    lost, answer = d.events()
    assert isinstance(lost, Lost) and lost.reason == "sending to the phone failed: connection reset"
    assert isinstance(answer, Answer) and answer.message == OOS


# --- keep-alive and refresh ----------------------------------------------------------------------
def test_keepalive_on_the_grid_and_rearmed_after_the_answer() -> None:
    d = ready_dialog(now=0.05)
    assert d.get_timer() == pytest.approx(30.1)  # 30.05 rounded up to the 0.1 s grid
    d.handle_timer(30.1)
    keepalive = only_send(d)
    assert isinstance(decoded(keepalive), m.RequestSystemStatus)
    assert d.get_timer() == pytest.approx(900.1)  # the session refresh; keep-alive in flight
    d.receive_response(keepalive.token, ok(RSS_RESPONSE), 30.5)
    (measured,) = d.events()  # the keep-alive's latency, for the metric
    assert measured == Measured(service="RequestSystemStatus", seconds=30.5 - 30.1)
    assert d.get_timer() == pytest.approx(60.5)


def test_unanswered_keepalive_loses_the_dialog() -> None:
    d = ready_dialog()
    d.handle_timer(30.0)
    d.receive_timeout(only_send(d).token, 34.0)
    (lost,) = d.events()
    assert isinstance(lost, Lost) and lost.was_ready
    assert lost.reason == "the phone does not answer CSTA requests"
    assert d.get_timer() is None


def test_refresh_by_reinvite_at_half_the_interval() -> None:
    d = ready_dialog()
    assert d.session_refresh_at == pytest.approx(900.0)
    d.handle_timer(900.0)  # the keep-alive is due too: the refresh goes first
    refresh = only_send(d)
    assert d.state is State.REFRESHING
    assert refresh.method == "INVITE" and refresh.request is None
    assert dict(refresh.headers)["Content-Disposition"] == "signal;handling=required"
    assert d.csta_request(m.RequestSystemStatus(), 900.0) > 0
    assert sends(d.events())  # requests flow during a refresh
    d.receive_response(
        refresh.token, ok(RSS_RESPONSE, ("Session-Expires", "1800;refresher=uac")), 901.0
    )
    assert state_of(d) is State.READY
    assert d.session_refresh_at == pytest.approx(1801.0)


def test_refresh_422_retry_then_failure() -> None:
    d = ready_dialog()
    d.handle_timer(900.0)
    refresh = only_send(d)
    d.receive_response(
        refresh.token, Response(status_code=422, headers=(("Min-SE", "3600"),)), 900.0
    )
    retry = only_send(d)
    assert dict(retry.headers)["Session-Expires"] == "3600;refresher=uac"
    d.receive_response(retry.token, Response(status_code=422, headers=(("Min-SE", "3600"),)), 900.0)
    (lost,) = d.events()
    assert isinstance(lost, Lost) and lost.reason == "session refresh failed"


def test_refresh_refused() -> None:
    d = ready_dialog()
    d.handle_timer(900.0)
    d.receive_response(only_send(d).token, Response(status_code=481), 900.0)
    (lost,) = d.events()
    assert isinstance(lost, Lost) and lost.reason == "session refresh answered 481"


def test_session_expires_when_the_phone_refreshes_and_does_not() -> None:
    d = phone_dialog(services=frozenset(), own_account=None)
    d.start(TARGET, 0.0)
    d.receive_response(only_send(d).token, ok(b"", ("Session-Expires", "90;refresher=uas")), 0.0)
    d.receive_response(only_send(d).token, ok(status=500), 0.0)
    d.events()
    assert d.session_expires_at == pytest.approx(60.0)  # 90 - min(32, 30)
    assert d.get_timer() == pytest.approx(30.0)  # keep-alive first
    d.handle_timer(30.0)
    d.receive_response(only_send(d).token, ok(RSS_RESPONSE), 30.0)
    assert d.get_timer() == pytest.approx(60.0)
    d.handle_timer(60.0)
    (lost,) = unmeasured(d)
    assert isinstance(lost, Lost) and lost.reason == "the phone did not refresh the session"


# --- from the phone ------------------------------------------------------------------------------
def test_events_lines_changed_and_housekeeping() -> None:
    d = ready_dialog()
    d.receive_request(info(DELIVERED), 1.0)
    reply, event = d.events()
    assert isinstance(reply, SendResponse) and reply.status_code == 200 and not reply.body
    assert isinstance(event, PhoneEvent)
    assert isinstance(event.event, m.DeliveredEvent)
    assert event.event.connection is not None
    assert event.event.connection.device_id == "sip:101@pbx.example"  # the client's form
    changed = b"""<SwFunctionDevicesChanged xmlns="http://www.ecmainternational.org/standards/ecma-323/csta/ed5"><sysStatRegisterID>2</sysStatRegisterID></SwFunctionDevicesChanged>"""
    d.receive_request(info(changed), 2.0)
    reply, reread = d.events()
    assert isinstance(reply, SendResponse)
    assert isinstance(codec.decode(reply.body), m.SwFunctionDevicesChangedResponse)
    assert isinstance(reread, SendRequest)
    assert isinstance(decoded(reread), m.GetSwitchingFunctionDevices)
    d.receive_response(reread.token, ok(GSFD_RESPONSE), 2.0)
    d.receive_request(info(SNOM_SEGMENT_2), 2.1)
    _reply, lines_changed = unmeasured(d)
    assert isinstance(lines_changed, LinesChanged)
    assert lines_changed.lines == ["sip:455456@ser.intern.snom.de"]


@pytest.mark.parametrize(
    ("body", "answer"),
    [
        (
            b"<SystemStatus xmlns='http://www.ecma-international.org/standards/ecma-323/csta/ed3'><systemStatus>normal</systemStatus></SystemStatus>",
            m.SystemStatusResponse,
        ),
        (
            b"<RequestSystemStatus xmlns='http://www.ecma-international.org/standards/ecma-323/csta/ed3'/>",
            m.RequestSystemStatusResponse,
        ),
        (
            b"<MonitorStop xmlns='http://www.ecma-international.org/standards/ecma-323/csta/ed3'><monitorCrossRefID>0</monitorCrossRefID></MonitorStop>",
            m.MonitorStopResponse,
        ),
        (
            b"<MakeCall xmlns='http://www.ecma-international.org/standards/ecma-323/csta/ed3'><callingDevice>a</callingDevice><calledDirectoryNumber>b</calledDirectoryNumber></MakeCall>",
            m.CSTAErrorCode,
        ),
        (b"<garbage", m.CSTAErrorCode),
    ],
)
def test_answers_to_what_the_phone_sends(body: bytes, answer: type) -> None:
    d = ready_dialog()
    d.receive_request(info(body), 1.0)
    reply = d.events()[0]
    assert isinstance(reply, SendResponse) and reply.status_code == 200
    assert isinstance(codec.decode(reply.body), answer)


def test_monitor_stop_from_the_phone_ends_the_monitor() -> None:
    d = ready_dialog()
    d.receive_request(
        info(
            b"<MonitorStop xmlns='http://www.ecma-international.org/standards/ecma-323/csta/ed3'><monitorCrossRefID>0</monitorCrossRefID></MonitorStop>"
        ),
        1.0,
    )
    _reply, ended = d.events()
    assert isinstance(ended, PhoneEvent)
    assert ended.event == m.MonitorEndedEvent(monitor_cross_ref_id="0")


def test_content_types_per_role() -> None:
    assert "text/xml" in ACCEPTED_TYPES[Role.SERVER_TO_PHONE]
    assert ACCEPTED_TYPES[Role.CLIENT_GATEWAY] == frozenset({"application/csta+xml"})
    d = ready_dialog()
    d.receive_request(info(DELIVERED, "text/xml"), 1.0)
    assert [type(e) for e in d.events()] == [SendResponse, PhoneEvent]
    d.receive_request(info(DELIVERED, "text/plain"), 1.0)
    (reply,) = d.events()
    assert isinstance(reply, SendResponse) and reply.status_code == 415


def test_bye_options_and_unknown_methods() -> None:
    d = ready_dialog()
    options = Request(method="OPTIONS", uri="sip:x", headers=())
    d.receive_request(options, 1.0)
    (reply,) = d.events()
    assert isinstance(reply, SendResponse) and reply.status_code == 200
    assert reply.headers == (("Allow", ALLOW[Role.SERVER_TO_PHONE]),)
    d.receive_request(Request(method="MESSAGE", uri="sip:x", headers=()), 1.0)
    (reply,) = d.events()
    assert isinstance(reply, SendResponse) and reply.status_code == 501
    d.receive_request(Request(method="BYE", uri="sip:x", headers=()), 1.0)
    reply, lost = d.events()
    assert isinstance(reply, SendResponse) and reply.status_code == 200
    assert isinstance(lost, Lost) and lost.reason == "BYE from the phone" and lost.was_ready


def test_reinvite_from_the_phone_sets_the_session_timer() -> None:
    d = ready_dialog()
    reinvite = Request(
        method="INVITE",
        uri="sip:x",
        headers=(("Session-Expires", "600;refresher=uac"), ("Supported", "timer")),
    )
    d.receive_request(reinvite, 10.0)
    (reply,) = d.events()
    assert isinstance(reply, SendResponse) and reply.status_code == 200
    assert isinstance(codec.decode(reply.body), m.RequestSystemStatusResponse)
    assert ("Session-Expires", "600;refresher=uac") in reply.headers
    assert d.session_expires_at == pytest.approx(10.0 + 600 - 32)
    assert d.session_refresh_at is None


def test_stop_asks_for_bye_only_once_established() -> None:
    d = phone_dialog()
    d.start(TARGET, 0.0)
    d.events()
    d.stop()
    (lost,) = d.events()
    assert isinstance(lost, Lost) and not lost.send_bye and lost.reason == "stopped"
    d = ready_dialog()
    d.stop("disabled")
    (lost,) = d.events()
    assert isinstance(lost, Lost) and lost.send_bye and lost.reason == "disabled"
    d.stop("again")
    assert d.events() == []


# --- UAS roles -----------------------------------------------------------------------------------
def client_invite(**extra: str) -> Request:
    headers = {"Content_Type": "application/csta+xml", "Supported": "timer", **extra}
    return Request(
        method="INVITE",
        uri="sip:uacsta@server",
        headers=tuple((k.replace("_", "-"), v) for k, v in headers.items()),
        body=b"<RequestSystemStatus xmlns='http://www.ecma-international.org/standards/ecma-323/csta/ed4'/>",
    )


def test_gateway_accepts_the_invite_and_answers_the_body() -> None:
    d = CstaDialog(role=Role.CLIENT_GATEWAY)
    invite = client_invite(Session_Expires="1800")
    d.receive_request(invite, 0.0)
    reply, established = d.events()
    assert isinstance(reply, SendResponse) and reply.status_code == 200 and reply.new_to_tag
    assert isinstance(codec.decode(reply.body), m.RequestSystemStatusResponse)
    assert ("Allow", ALLOW[Role.CLIENT_GATEWAY]) in reply.headers
    assert isinstance(established, Established) and established.request is invite
    assert d.state is State.READY
    assert d.edition is codec.Edition.ED4
    assert d.session_expires_at == pytest.approx(1800 - 32)  # the client refreshes


def test_gateway_refuses_other_content_types_and_short_timers() -> None:
    d = CstaDialog(role=Role.CLIENT_GATEWAY)
    d.receive_request(client_invite(Content_Type="text/xml"), 0.0)
    (reply,) = d.events()
    assert isinstance(reply, SendResponse) and reply.status_code == 415
    d.receive_request(client_invite(Session_Expires="10"), 0.0)
    (reply,) = d.events()
    assert isinstance(reply, SendResponse) and reply.status_code == 422
    assert d.state is State.IDLE


def test_gateway_hands_csta_requests_to_its_owner() -> None:
    d = CstaDialog(role=Role.CLIENT_GATEWAY)
    d.receive_request(client_invite(), 0.0)
    d.events()
    body = b"<MonitorStart xmlns='http://www.ecma-international.org/standards/ecma-323/csta/ed3'><monitorObject><deviceObject>sip:101@pbx</deviceObject></monitorObject></MonitorStart>"
    request = info(body)
    d.receive_request(request, 1.0)
    (peer,) = d.events()
    assert isinstance(peer, PeerRequest) and isinstance(peer.message, m.MonitorStart)
    d.answer_peer(request, m.MonitorStartResponse(monitor_cross_ref_id="1"))
    (reply,) = d.events()
    assert isinstance(reply, SendResponse) and reply.request is request
    assert codec.decode(reply.body) == m.MonitorStartResponse(monitor_cross_ref_id="1")


MAKE_CALL = (
    b"<MakeCall xmlns='http://www.ecma-international.org/standards/ecma-323/csta/ed3'>"
    b"<callingDevice>101</callingDevice><calledDirectoryNumber>200</calledDirectoryNumber>"
    b"</MakeCall>"
)


def client_dialog(**options: Any) -> CstaDialog:
    d = CstaDialog(role=Role.CLIENT_GATEWAY, **options)
    d.receive_request(client_invite(), 0.0)
    d.events()
    return d


def test_gateway_answers_timeout_when_the_owner_does_not_and_drops_the_late_answer() -> None:
    d = client_dialog(csta_timeout=3.0, session_expires=1800)
    request = info(MAKE_CALL)
    d.receive_request(request, 10.0)
    (peer,) = d.events()
    assert isinstance(peer, PeerRequest) and isinstance(peer.message, m.MakeCall)
    deadline = d.get_timer()
    assert deadline is not None and 13.0 <= deadline < 13.2  # on the wake-up grid
    d.handle_timer(12.9)
    assert d.events() == []
    d.handle_timer(deadline)
    (reply,) = d.events()
    assert isinstance(reply, SendResponse) and reply.request is request
    assert reply.status_code == 200 and codec.decode(reply.body) == m.CSTAErrorCode.timeout()
    d.answer_peer(request, m.MakeCallResponse())  # the owner, too late
    assert d.events() == []
    assert d.get_timer() is None or d.get_timer() > 100.0  # nothing left but the session


def test_gateway_refuses_requests_beyond_its_limit_and_forgets_them_when_lost() -> None:
    d = client_dialog(max_peer_requests=2)
    first, second, third = info(MAKE_CALL), info(MAKE_CALL), info(MAKE_CALL)
    for request in (first, second, third):
        d.receive_request(request, 1.0)
    one, two, busy = d.events()
    assert isinstance(one, PeerRequest) and one.request is first
    assert isinstance(two, PeerRequest) and two.request is second
    assert isinstance(busy, SendResponse) and busy.request is third
    assert codec.decode(busy.body) == m.CSTAErrorCode.system_resource_availability("resourceBusy")
    d.answer_peer(first, m.MakeCallResponse())
    (answered,) = d.events()
    assert isinstance(answered, SendResponse) and answered.request is first
    d.stop("client gone")
    (lost,) = d.events()
    assert isinstance(lost, Lost)
    d.answer_peer(second, m.MakeCallResponse())  # the switch answers after the end
    assert d.events() == []
    assert d.get_timer() is None


def test_overlapping_reinvite_is_491() -> None:
    d = ready_dialog()
    d.handle_timer(900.0)
    only_send(d)
    d.receive_request(Request(method="INVITE", uri="sip:x", headers=()), 900.0)
    (reply,) = d.events()
    assert isinstance(reply, SendResponse) and reply.status_code == 491


# --- the table -----------------------------------------------------------------------------------
def test_every_live_state_can_be_lost_and_lost_is_terminal() -> None:
    for state in State:
        if state is not State.LOST:
            assert TRANSITIONS[(state, Input.FAILURE)] is State.LOST
    assert not [key for key in TRANSITIONS if key[0] is State.LOST]


@pytest.mark.parametrize(("state", "inp"), list(itertools.product(State, Input)))
def test_table_pairs(state: State, inp: Input) -> None:
    """A pair outside the table leaves the state as it is (a stale input)."""
    d = phone_dialog()
    d.state = state
    d._step(inp, "why")
    assert d.state is TRANSITIONS.get((state, inp), state)
    lost = [e for e in d.events() if isinstance(e, Lost)]
    assert bool(lost) == (state is not State.LOST and d.state is State.LOST)


def test_digest_challenge_answered_with_the_phone_credentials() -> None:
    d = phone_dialog()
    d.start(TARGET, 0.0)
    challenge = Response(
        status_code=401,
        reason="Unauthorized",
        headers=(("WWW-Authenticate", 'Digest realm="snom", nonce="abc", algorithm=MD5'),),
    )
    d.receive_response(only_send(d).token, challenge, 0.0)
    d.events()
    d.answer_challenge("001565aabbcc", "secret", 0.0)
    invite = only_send(d)
    value = dict(invite.headers)["Authorization"]
    assert value.startswith("Digest ") and 'username="001565aabbcc"' in value
    assert f'uri="{TARGET.uri}"' in value


def test_challenge_without_its_header_gives_up() -> None:
    d = phone_dialog()
    d.start(TARGET, 0.0)
    d.receive_response(only_send(d).token, Response(status_code=407, reason="Proxy Auth"), 0.0)
    d.events()
    d.answer_challenge("001565aabbcc", "secret", 0.0)
    (lost,) = d.events()
    assert isinstance(lost, Lost)
    assert lost.reason == "phone answered the CSTA INVITE with 407 Proxy Auth"
