"""Tests for uacsta.sip.transaction: every §17 timer path with a fake clock, the layer."""

from __future__ import annotations

import gc

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from uacsta.sip.helpers import build_response
from uacsta.sip.message import Request, Response, parse_message
from uacsta.sip.transaction import (
    INVITE_CLIENT_TRANSITIONS,
    INVITE_SERVER_TRANSITIONS,
    NON_INVITE_CLIENT_TRANSITIONS,
    NON_INVITE_SERVER_TRANSITIONS,
    Action,
    DeliverRequest,
    DeliverResponse,
    Input,
    InviteClientTransaction,
    InviteServerTransaction,
    Lingering,
    NonInviteClientTransaction,
    NonInviteServerTransaction,
    State,
    Terminated,
    TimerSettings,
    Transaction,
    TransactionKey,
    TransactionLayer,
    TransactionStateError,
    TransactionTimeout,
    Transmit,
    TransportFailed,
    build_cancel,
    build_non_2xx_ack,
    client_key,
    server_key,
    timeout_response,
    transaction_key,
    transport_error_response,
)

BRANCH = "z9hG4bK776asdhds"

INVITE_BYTES = (
    b"INVITE sip:0004f2aabbcc@192.0.2.20:5060 SIP/2.0\r\n"
    b"Via: SIP/2.0/UDP 192.0.2.1:5060;branch=" + BRANCH.encode() + b";rport\r\n"
    b"Max-Forwards: 70\r\n"
    b"Route: <sip:proxy1.example.org;lr>, <sip:proxy2.example.org;lr>\r\n"
    b"From: <sip:uacsta@192.0.2.1>;tag=1928301774\r\n"
    b"To: <sip:101@192.0.2.20>\r\n"
    b"Call-ID: a84b4c76e66710@192.0.2.1\r\n"
    b"CSeq: 314159 INVITE\r\n"
    b"Contact: <sip:uacsta@192.0.2.1:5060>\r\n"
    b"Content-Type: application/csta+xml\r\n"
    b"Content-Disposition: signal;handling=required\r\n"
    b"Supported: timer\r\n"
    b"Content-Length: 0\r\n\r\n"
)

INFO_BYTES = (
    b"INFO sip:0004f2aabbcc@192.0.2.20:5060 SIP/2.0\r\n"
    b"v: SIP/2.0/UDP 192.0.2.1:5060;branch=z9hG4bKinfo1\r\n"
    b"Max-Forwards: 70\r\n"
    b"f: <sip:uacsta@192.0.2.1>;tag=1928301774\r\n"
    b"t: <sip:101@192.0.2.20>;tag=phone1\r\n"
    b"i: a84b4c76e66710@192.0.2.1\r\n"
    b"CSeq: 314160 INFO\r\n"
    b"l: 0\r\n\r\n"
)


def _request(data: bytes) -> Request:
    msg = parse_message(data)
    assert isinstance(msg, Request)
    return msg


INVITE = _request(INVITE_BYTES)
INFO = _request(INFO_BYTES)


def resp(request: Request, code: int, *, tag: str | None = "phone1") -> Response:
    """A response as it comes back from the wire (serialized and parsed again)."""
    out = parse_message(build_response(request, code, to_tag=tag).to_bytes())
    assert isinstance(out, Response)
    return out


def transmits(actions: list[Action]) -> list[Request | Response]:
    return [a.message for a in actions if isinstance(a, Transmit)]


def kinds(actions: list[Action]) -> list[type[Action]]:
    return [type(a) for a in actions]


def run_timers(tx: Transaction, until: float) -> list[tuple[float, list[Action]]]:
    """Fire the transaction's timers at their exact deadlines up to ``until``."""
    fired = []
    while (deadline := tx.get_timer()) is not None and deadline <= until:
        fired.append((deadline, tx.handle_timer(deadline)))
    return fired


# --------------------------------------------------------------------------- INVITE client


def test_invite_client_unreliable_retransmits_with_timer_a_then_times_out_with_b() -> None:
    tx = InviteClientTransaction(INVITE, reliable=False)
    assert tx.state is State.CALLING
    actions = tx.start(0.0)
    assert transmits(actions) == [INVITE]
    assert tx.timers() == {Input.TIMER_A: 0.5, Input.TIMER_B: 32.0}
    fired = run_timers(tx, 31.9)
    # A doubles from T1 without a T2 cap (§17.1.1.2).
    assert [t for t, _ in fired] == [0.5, 1.5, 3.5, 7.5, 15.5, 31.5]
    assert all(transmits(a) == [INVITE] for _, a in fired)
    assert all(isinstance(a[0], Transmit) and a[0].data == INVITE.to_bytes() for _, a in fired)
    assert tx.get_timer() == 32.0
    actions = tx.handle_timer(32.0)
    assert kinds(actions) == [TransactionTimeout, Terminated]
    timeout = actions[0]
    assert isinstance(timeout, TransactionTimeout) and timeout.timer == "B"
    assert timeout.response is not None and timeout.response.status_code == 408
    assert tx.state is State.TERMINATED
    assert tx.get_timer() is None
    assert tx.handle_timer(100.0) == []


def test_invite_client_reliable_has_no_retransmission() -> None:
    tx = InviteClientTransaction(INVITE, reliable=True)
    tx.start(10.0)
    assert tx.timers() == {Input.TIMER_B: 42.0}
    assert tx.handle_timer(41.9) == []
    assert kinds(tx.handle_timer(42.0)) == [TransactionTimeout, Terminated]


def test_invite_client_custom_timer_settings() -> None:
    tx = InviteClientTransaction(INVITE, reliable=False, timers=TimerSettings(t1=0.1))
    tx.start(0.0)
    assert tx.timers() == {Input.TIMER_A: 0.1, Input.TIMER_B: pytest.approx(6.4)}


def test_invite_client_provisional_then_2xx() -> None:
    tx = InviteClientTransaction(INVITE, reliable=False)
    tx.start(0.0)
    ringing = resp(INVITE, 180)
    assert tx.receive_response(ringing, 0.2) == [DeliverResponse(response=ringing)]
    assert tx.state is State.PROCEEDING
    assert tx.get_timer() is None  # A and B stop in Proceeding
    assert tx.receive_response(ringing, 0.3) == [DeliverResponse(response=ringing)]
    ok = resp(INVITE, 200)
    actions = tx.receive_response(ok, 1.0)
    assert actions == [DeliverResponse(response=ok), Terminated()]
    assert tx.state is State.TERMINATED
    assert tx.receive_response(ok, 1.1) == []  # 2xx retransmissions are the dialog's


def test_invite_client_2xx_in_calling() -> None:
    tx = InviteClientTransaction(INVITE, reliable=False)
    tx.start(0.0)
    assert kinds(tx.receive_response(resp(INVITE, 200), 0.1)) == [DeliverResponse, Terminated]


def test_invite_client_non_2xx_builds_ack_and_absorbs_retransmissions() -> None:
    tx = InviteClientTransaction(INVITE, reliable=False)
    tx.start(0.0)
    tx.receive_response(resp(INVITE, 100, tag=None), 0.1)
    busy = resp(INVITE, 486)
    actions = tx.receive_response(busy, 2.0)
    assert kinds(actions) == [Transmit, DeliverResponse]
    ack = transmits(actions)[0]
    assert isinstance(ack, Request)
    assert ack.method == "ACK"
    assert ack.uri == INVITE.uri
    assert ack.top_via.branch == BRANCH
    assert len(ack.via) == 1
    assert ack.call_id == INVITE.call_id
    assert ack.from_ == INVITE.from_
    assert ack.to.tag == "phone1"
    assert str(ack.cseq) == "314159 ACK"
    assert ack.header_values("Route") == INVITE.header_values("Route")
    assert ack.body == b""
    assert tx.state is State.COMPLETED
    assert tx.timers() == {Input.TIMER_D: 34.0}
    # A retransmitted final is absorbed: the same ACK again, nothing for the TU.
    again = tx.receive_response(busy, 3.0)
    assert kinds(again) == [Transmit] and transmits(again) == [ack]
    assert tx.receive_response(resp(INVITE, 180), 3.1) == []
    assert tx.receive_response(resp(INVITE, 200), 3.2) == []
    assert tx.handle_timer(33.9) == []
    assert tx.handle_timer(34.0) == [Terminated()]


def test_invite_client_non_2xx_reliable_terminates_at_once() -> None:
    tx = InviteClientTransaction(INVITE, reliable=True)
    tx.start(0.0)
    actions = tx.receive_response(resp(INVITE, 603), 1.0)
    assert kinds(actions) == [Transmit, DeliverResponse, Terminated]
    assert tx.get_timer() is None


def test_build_non_2xx_ack_matches_helper() -> None:
    busy = resp(INVITE, 486)
    ack = build_non_2xx_ack(INVITE, busy)
    assert parse_message(ack.to_bytes()) == ack


@pytest.mark.parametrize("state_input", ["calling", "proceeding"])
def test_invite_client_transport_error(state_input: str) -> None:
    tx = InviteClientTransaction(INVITE, reliable=True)
    tx.start(0.0)
    if state_input == "proceeding":
        tx.receive_response(resp(INVITE, 180), 0.1)
    actions = tx.transport_error(0.2)
    assert kinds(actions) == [TransportFailed, Terminated]
    failed = actions[0]
    assert isinstance(failed, TransportFailed)
    assert failed.response is not None and failed.response.status_code == 503
    assert tx.transport_error(0.3) == []


def test_invite_client_transport_error_in_completed_just_terminates() -> None:
    tx = InviteClientTransaction(INVITE, reliable=False)
    tx.start(0.0)
    tx.receive_response(resp(INVITE, 404), 0.1)
    assert tx.transport_error(0.2) == [Terminated()]


def test_start_twice_is_a_local_error() -> None:
    tx = InviteClientTransaction(INVITE, reliable=False)
    tx.start(0.0)
    with pytest.raises(TransactionStateError):
        tx.start(1.0)
    server = NonInviteServerTransaction(INFO, reliable=False)
    server.start(0.0)
    with pytest.raises(TransactionStateError):
        server.start(1.0)


# --------------------------------------------------------------------------- non-INVITE client


def test_non_invite_client_timer_e_doubles_to_t2_then_f() -> None:
    tx = NonInviteClientTransaction(INFO, reliable=False)
    assert transmits(tx.start(0.0)) == [INFO]
    assert tx.timers() == {Input.TIMER_E: 0.5, Input.TIMER_F: 32.0}
    fired = run_timers(tx, 31.99)
    times = [t for t, _ in fired]
    assert times == [0.5, 1.5, 3.5, 7.5, 11.5, 15.5, 19.5, 23.5, 27.5, 31.5]
    assert all(transmits(a) == [INFO] for _, a in fired)
    actions = tx.handle_timer(32.0)
    assert kinds(actions) == [TransactionTimeout, Terminated]
    assert isinstance(actions[0], TransactionTimeout) and actions[0].timer == "F"
    assert actions[0].response is not None and actions[0].response.status_code == 408


def test_non_invite_client_timeout_fires_before_a_simultaneous_retransmission() -> None:
    # T1=1, T2=16: E at 1, 3, 7, 15, 31, then 63 vs F at 64: no tie; use T1=0.5, T2=0.5:
    # E every 0.5 s, so E and F are both due at 32.0.
    tx = NonInviteClientTransaction(INFO, reliable=False, timers=TimerSettings(t2=0.5))
    tx.start(0.0)
    run_timers(tx, 31.9)
    assert tx.timers() == {Input.TIMER_E: 32.0, Input.TIMER_F: 32.0}
    assert kinds(tx.handle_timer(32.0)) == [TransactionTimeout, Terminated]


def test_non_invite_client_proceeding_retransmits_every_t2() -> None:
    tx = NonInviteClientTransaction(INFO, reliable=False)
    tx.start(0.0)
    trying = resp(INFO, 100, tag=None)
    assert tx.receive_response(trying, 0.2) == [DeliverResponse(response=trying)]
    assert tx.state is State.PROCEEDING
    assert transmits(tx.handle_timer(0.5)) == [INFO]
    assert tx.timers()[Input.TIMER_E] == 4.5
    assert transmits(tx.handle_timer(4.5)) == [INFO]
    assert tx.timers()[Input.TIMER_E] == 8.5
    assert tx.receive_response(trying, 5.0) == [DeliverResponse(response=trying)]
    ok = resp(INFO, 200)
    assert tx.receive_response(ok, 6.0) == [DeliverResponse(response=ok)]
    assert tx.state is State.COMPLETED
    assert tx.timers() == {Input.TIMER_K: 11.0}
    assert tx.receive_response(ok, 7.0) == []  # retransmitted final absorbed
    assert tx.receive_response(trying, 7.0) == []
    assert tx.handle_timer(11.0) == [Terminated()]


def test_non_invite_client_reliable() -> None:
    tx = NonInviteClientTransaction(INFO, reliable=True)
    tx.start(0.0)
    assert tx.timers() == {Input.TIMER_F: 32.0}
    actions = tx.receive_response(resp(INFO, 500), 1.0)
    assert kinds(actions) == [DeliverResponse, Terminated]  # K = 0


def test_non_invite_client_transport_error() -> None:
    tx = NonInviteClientTransaction(INFO, reliable=True)
    tx.start(0.0)
    actions = tx.transport_error(0.0)
    assert kinds(actions) == [TransportFailed, Terminated]
    assert tx.receive_response(resp(INFO, 200), 1.0) == []


# --------------------------------------------------------------------------- INVITE server


def test_invite_server_sends_100_trying_after_200ms() -> None:
    tx = InviteServerTransaction(INVITE, reliable=False)
    assert tx.start(0.0) == []
    assert tx.get_timer() == 0.2
    actions = tx.handle_timer(0.2)
    (trying,) = transmits(actions)
    assert isinstance(trying, Response) and trying.status_code == 100
    assert trying.to.tag is None
    assert tx.state is State.PROCEEDING
    # INVITE retransmission: the last provisional again.
    assert transmits(tx.receive_request(INVITE, 0.5)) == [trying]


def test_invite_server_no_automatic_100_when_tu_answers_first() -> None:
    tx = InviteServerTransaction(INVITE, reliable=False)
    tx.start(0.0)
    assert tx.receive_request(INVITE, 0.05) == []  # nothing sent yet: nothing to re-send
    ringing = build_response(INVITE, 180, to_tag="t1")
    assert transmits(tx.send_response(ringing, 0.1)) == [ringing]
    assert tx.get_timer() is None
    assert tx.handle_timer(1.0) == []
    assert transmits(tx.receive_request(INVITE, 1.0)) == [ringing]


def test_invite_server_trying_disabled_or_immediate() -> None:
    tx = InviteServerTransaction(INVITE, reliable=False, timers=TimerSettings(trying_delay=None))
    assert tx.start(0.0) == []
    assert tx.get_timer() is None
    tx = InviteServerTransaction(INVITE, reliable=False, timers=TimerSettings(trying_delay=0))
    (trying,) = transmits(tx.start(0.0))
    assert isinstance(trying, Response) and trying.status_code == 100


def test_invite_server_2xx_goes_to_accepted_then_timer_l() -> None:
    tx = InviteServerTransaction(INVITE, reliable=True)
    tx.start(0.0)
    ok = build_response(INVITE, 200, to_tag="t1")
    assert tx.send_response(ok, 0.1) == [Transmit.of(ok)]
    assert tx.state is State.ACCEPTED
    assert tx.timers() == {Input.TIMER_L: 32.1}  # RFC 6026: 64*T1 on any transport
    assert tx.receive_request(INVITE, 0.2) == []  # absorbed, not a new INVITE for the TU
    assert tx.send_response(ok, 0.5) == [Transmit.of(ok)]  # the TU's 2xx retransmission
    ack = INVITE.with_header_set("CSeq", "314159 ACK")
    ack = Request(method="ACK", uri=ack.uri, headers=ack.headers)
    assert tx.receive_request(ack, 0.6) == [DeliverRequest(request=ack)]
    assert tx.send_response(build_response(INVITE, 486, to_tag="t1"), 0.7) == []
    assert tx.last_response == ok
    assert tx.handle_timer(32.1) == [Terminated()]
    assert tx.receive_request(INVITE, 33.0) == []


def test_invite_server_non_2xx_retransmits_with_g_and_times_out_with_h() -> None:
    tx = InviteServerTransaction(INVITE, reliable=False)
    tx.start(0.0)
    busy = build_response(INVITE, 486, to_tag="t1")
    assert transmits(tx.send_response(busy, 1.0)) == [busy]
    assert tx.state is State.COMPLETED
    assert tx.timers() == {Input.TIMER_G: 1.5, Input.TIMER_H: 33.0}
    fired = run_timers(tx, 32.99)
    times = [t for t, _ in fired]
    # G: T1, 2T1, 4T1, then capped at T2.
    assert times[:6] == [1.5, 2.5, 4.5, 8.5, 12.5, 16.5]
    assert all(transmits(a) == [busy] for _, a in fired)
    # INVITE retransmission in Completed: the final response again.
    assert transmits(tx.receive_request(INVITE, 30.0)) == [busy]
    actions = tx.handle_timer(33.0)
    assert kinds(actions) == [TransactionTimeout, Terminated]
    assert isinstance(actions[0], TransactionTimeout)
    assert actions[0].timer == "H" and actions[0].response is None


def test_invite_server_ack_confirms_then_timer_i() -> None:
    tx = InviteServerTransaction(INVITE, reliable=False)
    tx.start(0.0)
    busy = build_response(INVITE, 486, to_tag="t1")
    tx.send_response(busy, 0.1)
    ack = build_non_2xx_ack(INVITE, busy)
    assert tx.receive_request(ack, 0.3) == []
    assert tx.state is State.CONFIRMED
    assert tx.timers() == {Input.TIMER_I: 5.3}
    assert tx.receive_request(ack, 0.4) == []  # absorbed
    assert tx.receive_request(INVITE, 0.5) == []  # absorbed
    assert tx.send_response(busy, 0.6) == []  # discarded
    assert tx.handle_timer(5.3) == [Terminated()]


def test_invite_server_reliable() -> None:
    tx = InviteServerTransaction(INVITE, reliable=True)
    tx.start(0.0)
    busy = build_response(INVITE, 486, to_tag="t1")
    tx.send_response(busy, 0.1)
    assert tx.timers() == {Input.TIMER_H: pytest.approx(32.1)}
    ack = build_non_2xx_ack(INVITE, busy)
    assert tx.receive_request(ack, 0.2) == [Terminated()]  # I = 0


def test_invite_server_transport_error() -> None:
    tx = InviteServerTransaction(INVITE, reliable=True)
    tx.start(0.0)
    assert tx.transport_error(0.1) == [TransportFailed(), Terminated()]
    tx = InviteServerTransaction(INVITE, reliable=True)
    tx.start(0.0)
    tx.send_response(build_response(INVITE, 500, to_tag="x"), 0.1)
    assert tx.transport_error(0.2) == [TransportFailed(), Terminated()]


def test_invite_server_ack_in_proceeding_is_discarded() -> None:
    tx = InviteServerTransaction(INVITE, reliable=False)
    tx.start(0.0)
    busy = build_response(INVITE, 486, to_tag="t1")
    assert tx.receive_request(build_non_2xx_ack(INVITE, busy), 0.1) == []
    assert tx.state is State.PROCEEDING


# --------------------------------------------------------------------------- non-INVITE server


def test_non_invite_server_unreliable() -> None:
    tx = NonInviteServerTransaction(INFO, reliable=False)
    assert tx.start(0.0) == []
    assert tx.state is State.TRYING
    assert tx.receive_request(INFO, 0.1) == []  # absorbed, nothing to re-send
    trying = build_response(INFO, 100)
    assert transmits(tx.send_response(trying, 0.2)) == [trying]
    assert tx.state is State.PROCEEDING
    assert transmits(tx.receive_request(INFO, 0.3)) == [trying]
    ok = build_response(INFO, 200, body=b"<x/>", content_type="application/csta+xml")
    assert transmits(tx.send_response(ok, 0.4)) == [ok]
    assert tx.state is State.COMPLETED
    assert tx.timers() == {Input.TIMER_J: 32.4}
    assert transmits(tx.receive_request(INFO, 1.0)) == [ok]
    assert tx.send_response(build_response(INFO, 500), 1.1) == []  # discarded (§17.2.2)
    assert tx.handle_timer(32.4) == [Terminated()]
    assert tx.receive_request(INFO, 33.0) == []


def test_non_invite_server_reliable_and_final_from_trying() -> None:
    tx = NonInviteServerTransaction(INFO, reliable=True)
    tx.start(0.0)
    ok = build_response(INFO, 200)
    assert tx.send_response(ok, 0.1) == [Transmit.of(ok), Terminated()]


def test_non_invite_server_transport_error() -> None:
    tx = NonInviteServerTransaction(INFO, reliable=False)
    tx.start(0.0)
    tx.send_response(build_response(INFO, 200), 0.1)
    assert tx.transport_error(0.2) == [TransportFailed(), Terminated()]


# --------------------------------------------------------------------------- tables


def test_transition_tables_are_readable() -> None:
    assert INVITE_CLIENT_TRANSITIONS[(State.CALLING, Input.RECV_FAILURE)] is State.COMPLETED
    assert (State.PROCEEDING, Input.TIMER_B) not in INVITE_CLIENT_TRANSITIONS
    assert NON_INVITE_CLIENT_TRANSITIONS[(State.PROCEEDING, Input.TIMER_F)] is State.TERMINATED
    assert INVITE_SERVER_TRANSITIONS[(State.COMPLETED, Input.RECV_ACK)] is State.CONFIRMED
    assert NON_INVITE_SERVER_TRANSITIONS[(State.COMPLETED, Input.TIMER_J)] is State.TERMINATED
    for table in (
        INVITE_CLIENT_TRANSITIONS,
        NON_INVITE_CLIENT_TRANSITIONS,
        INVITE_SERVER_TRANSITIONS,
        NON_INVITE_SERVER_TRANSITIONS,
    ):
        assert all(state is not State.TERMINATED for state, _ in table)


def test_synthesized_responses() -> None:
    r408 = timeout_response(INFO)
    assert r408.status_code == 408 and r408.reason == "Request Timeout"
    assert r408.call_id == INFO.call_id and r408.cseq == INFO.cseq
    assert r408.top_via.branch == "z9hG4bKinfo1"
    assert transport_error_response(INFO).status_code == 503


def test_build_cancel() -> None:
    cancel = build_cancel(INVITE)
    assert cancel.method == "CANCEL" and cancel.uri == INVITE.uri
    assert str(cancel.cseq) == "314159 CANCEL"
    assert cancel.top_via == INVITE.top_via
    assert cancel.to == INVITE.to and cancel.from_ == INVITE.from_
    assert cancel.header_values("Route") == INVITE.header_values("Route")
    assert client_key(cancel) != client_key(INVITE)
    assert client_key(cancel)[0] == client_key(INVITE)[0]


# --------------------------------------------------------------------------- layer


def with_branch(request: Request, branch: str, sent_by: str = "192.0.2.1:5060") -> Request:
    return request.with_header_set("Via", f"SIP/2.0/UDP {sent_by};branch={branch}")


def test_layer_client_matching_and_removal() -> None:
    layer = TransactionLayer()
    key, actions = layer.new_client(INVITE, reliable=False, now=0.0)
    assert key == transaction_key(branch=BRANCH, method="INVITE")
    assert actions == [(key, Transmit.of(INVITE))]
    assert key in layer and len(layer) == 1
    assert layer.get_timer() == 0.5
    # A response with an unknown branch is ignored.
    stray = resp(with_branch(INVITE, "z9hG4bKother"), 180)
    assert layer.receive_response(stray, 0.1) == []
    ringing = resp(INVITE, 180)
    assert layer.receive_response(ringing, 0.1) == [(key, DeliverResponse(response=ringing))]
    assert layer.get_timer() is None
    ok = resp(INVITE, 200)
    assert layer.receive_response(ok, 0.2) == [
        (key, DeliverResponse(response=ok)),
        (key, Terminated()),
    ]
    assert key not in layer and len(layer) == 0
    # A 2xx retransmission after the transaction ended goes to the TU (the dialog re-ACKs).
    assert layer.receive_response(ok, 0.3) == [(None, DeliverResponse(response=ok))]
    # Other unmatched responses are dropped.
    assert layer.receive_response(resp(INFO, 200), 0.3) == []


def test_layer_response_must_match_method_too() -> None:
    layer = TransactionLayer()
    key, _ = layer.new_client(INVITE, reliable=True, now=0.0)
    cancel = build_cancel(INVITE)
    ckey, _ = layer.new_client(cancel, reliable=True, now=0.1)
    assert ckey[1] == "CANCEL" and ckey != key
    cancel_ok = resp(cancel, 200)
    assert layer.receive_response(cancel_ok, 0.2) == [
        (ckey, DeliverResponse(response=cancel_ok)),
        (ckey, Terminated()),
    ]
    assert key in layer
    terminated = resp(INVITE, 487)
    actions = layer.receive_response(terminated, 0.3)
    assert [type(a) for _, a in actions] == [Transmit, DeliverResponse, Terminated]


def test_layer_new_client_errors() -> None:
    layer = TransactionLayer()
    layer.new_client(INVITE, reliable=False, now=0.0)
    with pytest.raises(TransactionStateError):
        layer.new_client(INVITE, reliable=False, now=0.0)
    with pytest.raises(TransactionStateError):
        layer.new_client(build_non_2xx_ack(INVITE, resp(INVITE, 486)), reliable=False, now=0.0)
    with pytest.raises(TransactionStateError):
        layer.new_client(with_branch(INFO, "old-2543-branch"), reliable=False, now=0.0)


def test_layer_server_retransmission_ack_and_cancel() -> None:
    layer = TransactionLayer()
    actions = layer.receive_request(INVITE, reliable=False, now=0.0)
    key = server_key(INVITE)
    assert key == transaction_key(
        branch=BRANCH, method="INVITE", sent_by="192.0.2.1:5060", server=True
    )
    assert actions == [(key, DeliverRequest(request=INVITE))]
    assert layer.get_timer() == 0.2
    # Retransmission: absorbed, not delivered again.
    assert layer.receive_request(INVITE, reliable=False, now=0.1) == []
    ringing = build_response(INVITE, 180, to_tag="t1")
    assert layer.send_response(key, ringing, 0.15) == [(key, Transmit.of(ringing))]
    assert layer.receive_request(INVITE, reliable=False, now=0.3) == [(key, Transmit.of(ringing))]
    # Same branch from another sent-by is another transaction.
    other = with_branch(INVITE, BRANCH, sent_by="198.51.100.7:5060")
    other_actions = layer.receive_request(other, reliable=False, now=0.3)
    assert [type(a) for _, a in other_actions] == [DeliverRequest]
    # CANCEL: its own transaction, pointing at the INVITE's.
    cancel = build_cancel(INVITE)
    cancel_actions = layer.receive_request(cancel, reliable=False, now=0.4)
    ((ckey, action),) = cancel_actions
    assert ckey is not None and ckey[1] == "CANCEL" and action == DeliverRequest(request=cancel)
    assert layer.cancel_target(cancel) == key
    assert layer.cancel_target(build_cancel(with_branch(INVITE, "z9hG4bKnone"))) is None
    layer.send_response(ckey, build_response(cancel, 200, to_tag="t1"), 0.5)
    terminated = build_response(INVITE, 487, to_tag="t1")
    layer.send_response(key, terminated, 0.5)
    # The ACK for the 487 matches the INVITE server transaction.
    ack = build_non_2xx_ack(INVITE, terminated)
    assert layer.receive_request(ack, reliable=False, now=0.6) == []
    tx = layer.get(key)
    assert tx is not None and tx.state is State.CONFIRMED
    # An ACK matching nothing (ACK for a 2xx, new branch) goes to the TU.
    ack2xx = with_branch(ack, "z9hG4bKack2xx")
    assert layer.receive_request(ack2xx, reliable=False, now=0.7) == [
        (None, DeliverRequest(request=ack2xx))
    ]
    # Responses for an unknown or ended key are ignored.
    assert layer.send_response(transaction_key(branch="x", method="INFO"), ringing, 1.0) == []
    assert layer.transport_error(transaction_key(branch="x", method="INFO"), 1.0) == []


def test_layer_rfc2543_requests_without_magic_cookie() -> None:
    old = with_branch(INFO, "1234")
    key = server_key(old)
    assert key[0].startswith("rfc2543:")
    layer = TransactionLayer()
    assert len(layer.receive_request(old, reliable=True, now=0.0)) == 1
    assert layer.receive_request(old, reliable=True, now=0.1) == []


def test_layer_transport_error() -> None:
    layer = TransactionLayer()
    key, _ = layer.new_client(INFO, reliable=True, now=0.0)
    actions = layer.transport_error(key, 0.1)
    assert [type(a) for _, a in actions] == [TransportFailed, Terminated]
    assert key not in layer


def test_layer_timer_heap_order_across_transactions() -> None:
    layer = TransactionLayer()
    info_key, _ = layer.new_client(INFO, reliable=False, now=0.0)  # E at 0.5, F at 32
    inv_key, _ = layer.new_client(INVITE, reliable=True, now=0.2)  # B at 32.2
    server = with_branch(INFO, "z9hG4bKsrv", sent_by="198.51.100.7")
    layer.receive_request(server, reliable=False, now=0.1)
    skey = server_key(server)
    layer.send_response(skey, build_response(server, 200), 0.3)  # J at 32.3
    seen: list[tuple[float, TransactionKey | None, type[Action]]] = []
    while (deadline := layer.get_timer()) is not None:
        for key, action in layer.handle_timer(deadline):
            seen.append((deadline, key, type(action)))
    ends = [(t, k) for t, k, a in seen if a is Terminated]
    assert ends == [(32.0, info_key), (32.2, inv_key), (32.3, skey)]
    retransmit_times = [t for t, k, a in seen if a is Transmit]
    assert retransmit_times == sorted(retransmit_times)
    assert all(k == info_key for t, k, a in seen if a is Transmit)
    assert len(layer) == 0
    assert layer.get_timer() is None


def test_layer_handle_timer_before_deadline_does_nothing() -> None:
    layer = TransactionLayer()
    layer.new_client(INFO, reliable=False, now=0.0)
    assert layer.handle_timer(0.49) == []
    assert layer.get_timer() == 0.5
    assert len(layer.handle_timer(0.5)) == 1
    assert layer.get_timer() == 1.5


def test_layer_heap_stays_bounded_with_lazy_deletion() -> None:
    layer = TransactionLayer(timers=TimerSettings(trying_delay=None))
    for i in range(300):
        request = with_branch(INFO, f"z9hG4bK{i}")
        layer.receive_request(request, reliable=False, now=float(i))
        layer.send_response(server_key(request), build_response(request, 200), float(i))
    assert len(layer) == 300
    assert len(layer._heap) <= 2 * 300 + 64
    # A retransmitting client whose deadline moves many times.
    layer.new_client(INVITE, reliable=False, now=0.0)
    for i in range(200):
        layer.receive_response(resp(INVITE, 180), 0.01 * i)
    assert len(layer._heap) <= 2 * len(layer) + 64
    assert layer.get_timer() == 32.0  # the first J


def test_layer_pending_bound() -> None:
    layer = TransactionLayer(max_transactions=2)
    layer.new_client(INVITE, reliable=False, now=0.0)
    layer.receive_request(INFO, reliable=False, now=0.0)
    extra = with_branch(INFO, "z9hG4bKextra")
    key, actions = layer.new_client(extra, reliable=False, now=0.0)
    assert [type(a) for _, a in actions] == [DeliverResponse, Terminated]
    response = actions[0][1]
    assert isinstance(response, DeliverResponse) and response.response.status_code == 503
    assert key not in layer and len(layer) == 2
    incoming = with_branch(INFO, "z9hG4bKin", sent_by="198.51.100.7")
    ((skey, refused),) = layer.receive_request(incoming, reliable=False, now=0.0)
    assert skey is None and isinstance(refused, Transmit)
    assert isinstance(refused.message, Response) and refused.message.status_code == 503
    assert refused.message.header("Retry-After") == "5"
    assert len(layer) == 2
    # Once a transaction ends there is room again.
    layer.transport_error(client_key(INVITE), 1.0)
    assert [type(a) for _, a in layer.receive_request(incoming, reliable=False, now=1.0)] == [
        DeliverRequest
    ]


# --------------------------------------------------------------------------- hypothesis

OPS = st.one_of(
    st.tuples(st.just("resp"), st.sampled_from([100, 180, 183, 200, 202, 302, 404, 486, 503])),
    st.tuples(st.just("send"), st.sampled_from([100, 180, 200, 404, 486, 500])),
    st.tuples(st.just("req"), st.sampled_from(["again", "ack"])),
    st.tuples(st.just("wait"), st.floats(min_value=0.0, max_value=20.0)),
    st.tuples(st.just("terr"), st.just(0)),
)

MACHINES = {
    "invite-client": (InviteClientTransaction, INVITE),
    "non-invite-client": (NonInviteClientTransaction, INFO),
    "invite-server": (InviteServerTransaction, INVITE),
    "non-invite-server": (NonInviteServerTransaction, INFO),
}


class Checker:
    """Feeds inputs and checks the invariants after each one."""

    def __init__(self, tx: Transaction) -> None:
        self.tx = tx
        self.terminated = False

    def feed(self, actions: list[Action], now: float) -> None:
        if self.terminated:
            assert actions == [], "action after Terminated"
        for i, action in enumerate(actions):
            if isinstance(action, Terminated):
                assert i == len(actions) - 1, "Terminated must be the last action"
                self.terminated = True
        assert (self.tx.state is State.TERMINATED) == self.terminated
        deadline = self.tx.get_timer()
        if self.terminated:
            assert deadline is None

    def after_timer(self, now: float) -> None:
        deadline = self.tx.get_timer()
        assert deadline is None or deadline > now


@settings(max_examples=150, deadline=None)
@given(
    machine=st.sampled_from(sorted(MACHINES)),
    reliable=st.booleans(),
    ops=st.lists(OPS, max_size=25),
)
def test_random_inputs_keep_invariants(machine: str, reliable: bool, ops: list) -> None:  # type: ignore[type-arg]
    cls, request = MACHINES[machine]
    tx = cls(request, reliable=reliable)
    check = Checker(tx)
    now = 0.0
    check.feed(tx.start(now), now)
    is_client = isinstance(tx, InviteClientTransaction | NonInviteClientTransaction)
    for op, arg in ops:
        match op:
            case "resp" if is_client:
                assert isinstance(tx, InviteClientTransaction | NonInviteClientTransaction)
                check.feed(tx.receive_response(resp(request, int(arg)), now), now)
            case "send" if not is_client:
                assert isinstance(tx, InviteServerTransaction | NonInviteServerTransaction)
                check.feed(
                    tx.send_response(build_response(request, int(arg), to_tag="t"), now), now
                )
            case "req" if not is_client:
                assert isinstance(tx, InviteServerTransaction | NonInviteServerTransaction)
                if arg == "ack":
                    incoming = build_non_2xx_ack(request, build_response(request, 486, to_tag="t"))
                else:
                    incoming = request
                check.feed(tx.receive_request(incoming, now), now)
            case "wait":
                now += float(arg)
                check.feed(tx.handle_timer(now), now)
                check.after_timer(now)
            case "terr":
                check.feed(tx.transport_error(now), now)
            case _:
                pass
    # Always terminates once the peer/TU gives a final answer and the timers run out.
    if isinstance(tx, InviteClientTransaction) and tx.state is State.PROCEEDING:
        check.feed(tx.receive_response(resp(request, 486), now), now)  # TU would CANCEL
    if isinstance(tx, InviteServerTransaction | NonInviteServerTransaction) and tx.state in (
        State.TRYING,
        State.PROCEEDING,
    ):
        check.feed(tx.send_response(build_response(request, 500, to_tag="t"), now), now)
    for _ in range(200):
        deadline = tx.get_timer()
        if deadline is None:
            break
        assert deadline >= now
        now = deadline
        check.feed(tx.handle_timer(now), now)
        check.after_timer(now)
    assert tx.state is State.TERMINATED
    assert check.terminated


@settings(max_examples=60, deadline=None)
@given(
    ops=st.lists(
        st.tuples(
            st.sampled_from(["client", "server", "resp", "final", "wait"]),
            st.integers(min_value=0, max_value=5),
            st.floats(min_value=0.0, max_value=10.0),
        ),
        max_size=40,
    )
)
def test_layer_random_drive_keeps_heap_consistent(ops: list[tuple[str, int, float]]) -> None:
    layer = TransactionLayer()
    now = 0.0
    for op, n, dt in ops:
        client = with_branch(INFO, f"z9hG4bKc{n}")
        server = with_branch(INFO, f"z9hG4bKs{n}", sent_by="198.51.100.7")
        match op:
            case "client":
                if client_key(client) not in layer:
                    layer.new_client(client, reliable=n % 2 == 0, now=now)
            case "server":
                layer.receive_request(server, reliable=n % 2 == 0, now=now)
            case "resp":
                layer.receive_response(resp(client, 200 if n % 2 else 180), now)
            case "final":
                layer.send_response(server_key(server), build_response(server, 200), now)
            case _:
                now += dt
                for key, action in layer.handle_timer(now):
                    assert key is not None
                    if isinstance(action, Terminated):
                        assert key not in layer
        deadline = layer.get_timer()
        live = [
            layer._deadlines[key] if isinstance(tx, Lingering) else tx.get_timer()
            for key in list(layer._transactions)
            if (tx := layer.get(key))
        ]
        expected = min((d for d in live if d is not None), default=None)
        assert deadline == expected


def test_layer_invite_retransmission_after_2xx_is_not_a_new_request() -> None:
    layer = TransactionLayer()
    ((key, _),) = layer.receive_request(INVITE, reliable=False, now=0.0)
    assert key is not None
    ok = build_response(INVITE, 200, to_tag="t1")
    assert layer.send_response(key, ok, 0.1) == [(key, Transmit.of(ok))]
    assert layer.receive_request(INVITE, reliable=False, now=0.6) == []
    assert layer.get_timer() == pytest.approx(32.1)
    assert layer.handle_timer(32.1) == [(key, Terminated())]
    assert key not in layer


def test_a_lingering_transaction_keeps_bytes_not_parsed_values() -> None:
    request = parse_message(INFO.to_bytes())
    assert isinstance(request, Request)
    tx = NonInviteServerTransaction(request, reliable=False)
    tx.start(0.0)
    request.cseq  # noqa: B018 - parsed while the TU handled it
    ok = build_response(request, 200)
    ok.cseq  # noqa: B018
    tx.send_response(ok, 0.1)
    assert tx.state is State.COMPLETED
    assert request._parsed == {} and ok._parsed == {}
    assert [a.data for a in tx.receive_request(request, 1.0) if isinstance(a, Transmit)] == [
        ok.to_bytes()
    ]
    assert request.cseq.seq == INFO.cseq.seq  # parsed again on demand


def test_layer_keeps_completed_non_invite_transactions_as_lingering_records() -> None:
    layer = TransactionLayer()
    # Client: the final response moves it to Completed; then only timer K matters.
    key, _ = layer.new_client(INFO, reliable=False, now=0.0)
    ok = resp(INFO, 200)
    assert [a for _, a in layer.receive_response(ok, 0.1)] == [DeliverResponse(response=ok)]
    assert isinstance(layer.get(key), Lingering)
    assert layer.receive_response(ok, 0.2) == []  # retransmission absorbed
    assert layer.get_timer() == pytest.approx(0.1 + TimerSettings().t4)
    assert layer.handle_timer(5.2) == [(key, Terminated())]
    assert key not in layer
    # Server: the request's retransmission gets the same final bytes; later answers drop.
    request = with_branch(INFO, "z9hG4bKlinger")
    ((skey, _),) = layer.receive_request(request, reliable=False, now=0.0)
    assert skey is not None
    final = build_response(request, 200)
    layer.send_response(skey, final, 0.1)
    assert isinstance(layer.get(skey), Lingering)
    ((again_key, again),) = layer.receive_request(request, reliable=False, now=1.0)
    assert again_key == skey and isinstance(again, Transmit) and again.data == final.to_bytes()
    assert layer.send_response(skey, build_response(request, 500), 1.1) == []
    assert layer.handle_timer(32.0) == []
    assert layer.handle_timer(32.1) == [(skey, Terminated())]
    assert len(layer) == 0


def test_keys_timer_entries_and_lingering_records_leave_the_garbage_collector() -> None:
    # Tens of thousands of these are alive at a time; every one the collector keeps
    # tracking lengthens each of its pauses.
    layer = TransactionLayer()
    key, _ = layer.new_client(INFO, reliable=False, now=0.0)
    layer.receive_response(resp(INFO, 200), 0.1)
    request = with_branch(INFO, "z9hG4bKgc")
    ((skey, _),) = layer.receive_request(request, reliable=False, now=0.0)
    assert skey is not None
    layer.send_response(skey, build_response(request, 200), 0.1)
    client, server = layer.get(key), layer.get(skey)
    assert isinstance(client, Lingering) and isinstance(server, Lingering)
    gc.collect()  # untracks the keys; a heap entry seen before its key stays for one more
    gc.collect()
    assert not gc.is_tracked(key) and not gc.is_tracked(skey)
    assert not any(gc.is_tracked(entry) for entry in layer._heap)
    assert not gc.is_tracked(server._replay)
    # Records without a replay are shared, not one per transaction.
    other, _ = layer.new_client(with_branch(INFO, "z9hG4bKgc2"), reliable=False, now=0.0)
    layer.receive_response(resp(with_branch(INFO, "z9hG4bKgc2"), 200), 0.1)
    assert layer.get(other) is client
