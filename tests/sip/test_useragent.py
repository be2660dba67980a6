"""The sans-IO user-agent core: messages and a fake clock in, events out."""

from __future__ import annotations

from dataclasses import dataclass

import pytest

from uacsta.sip.dialog import Dialog
from uacsta.sip.helpers import build_response, generate_branch
from uacsta.sip.message import Request, Response
from uacsta.sip.registrar import Registrar, RegistrarPolicy
from uacsta.sip.transaction import TimerSettings, client_key
from uacsta.sip.useragent import (
    BindingsExpired,
    Busy,
    DeliverRequest,
    Event,
    FinalResponse,
    Timeout,
    Transmit,
    UserAgentCore,
    flow_peer,
)

T = TimerSettings(trying_delay=None)  # T1 0.5, T2 4, no automatic 100 Trying


@dataclass(frozen=True)
class FakeFlow:
    transport: str
    remote: tuple[str, int]
    connection_id: int | None = None


UDP = FakeFlow("udp", ("10.0.0.2", 5060))
OTHER_UDP = FakeFlow("udp", ("10.0.0.2", 5070))
TCP = FakeFlow("tcp", ("10.0.0.3", 40000), connection_id=7)

Core = UserAgentCore[FakeFlow, str]


def core(**kwargs: object) -> Core:
    return UserAgentCore(timers=T, **kwargs)  # type: ignore[arg-type]


def request(
    method: str = "OPTIONS",
    *,
    to_tag: str | None = None,
    cseq: int = 1,
    call_id: str = "call-1",
    from_tag: str = "peer",
    branch: str | None = None,
) -> Request:
    to = "<sip:uacsta@10.0.0.1>" + (f";tag={to_tag}" if to_tag else "")
    return Request(
        method=method,
        uri="sip:uacsta@10.0.0.1",
        headers=(
            ("Via", f"SIP/2.0/UDP 10.0.0.2:5060;branch={branch or generate_branch()}"),
            ("Max-Forwards", "70"),
            ("From", f"<sip:phone@10.0.0.2>;tag={from_tag}"),
            ("To", to),
            ("Call-ID", call_id),
            ("CSeq", f"{cseq} {method}"),
            ("Contact", "<sip:phone@10.0.0.2:5060>"),
        ),
    )


def of(events: list[Event], kind: type) -> list:  # type: ignore[type-arg]
    return [e for e in events if isinstance(e, kind)]


def sent(events: list[Event]) -> list[Request | Response]:
    return [e.message for e in of(events, Transmit)]


def established(ua: Core, flow: FakeFlow = UDP) -> Dialog:
    """A dialog the peer set up with us (we are the UAS), owned by "link"."""
    invite = request("INVITE")
    dialog = Dialog.from_uas(invite, "us", "<sip:uacsta@10.0.0.1>")
    ua.add_dialog(dialog, "link", flow)
    return dialog


# --- out-of-dialog and in-dialog dispatch -----------------------------------------------------
def test_a_request_outside_a_dialog_goes_to_the_handler_and_its_answer_out() -> None:
    ua = core()
    events = ua.receive(request(), UDP, now=0.0)
    [deliver] = of(events, DeliverRequest)
    assert deliver.owner is None and deliver.flow == UDP and deliver.key is not None
    answer = ua.respond(deliver.key, build_response(deliver.request, 200, to_tag="x"), now=0.0)
    [transmit] = of(answer, Transmit)
    assert transmit.flow == UDP and transmit.message.status_code == 200
    assert transmit.message.header("Server") == "uacsta"


def test_a_request_in_a_known_dialog_goes_to_its_owner() -> None:
    ua = core()
    established(ua)
    events = ua.receive(request("INFO", to_tag="us", cseq=2), UDP, now=0.0)
    [deliver] = of(events, DeliverRequest)
    assert deliver.owner == "link"
    assert ua.usages == {next(iter(ua.dialogs)).id: "link"}


def test_an_unknown_dialog_gets_481() -> None:
    ua = core()
    events = ua.receive(request("INFO", to_tag="nosuchdialog"), UDP, now=0.0)
    assert not of(events, DeliverRequest)
    assert [m.status_code for m in sent(events)] == [481]  # type: ignore[union-attr]


def test_a_known_dialog_from_another_peer_gets_481_and_the_dialog_is_untouched() -> None:
    ua = core()
    dialog = established(ua)
    before = dialog.remote_cseq
    events = ua.receive(request("BYE", to_tag="us", cseq=9), OTHER_UDP, now=0.0)
    assert [m.status_code for m in sent(events)] == [481]  # type: ignore[union-attr]
    assert dialog.remote_cseq == before
    assert flow_peer(UDP) == ("udp", UDP.remote) and flow_peer(TCP) == ("tcp", 7)


def test_a_dialog_without_owner_answers_200_and_acks_are_not_delivered() -> None:
    ua = core()
    invite = request("INVITE")
    dialog = Dialog.from_uas(invite, "us", "<sip:uacsta@10.0.0.1>")
    ua.dialogs.add(dialog)  # known to the dialog set, no owner registered
    events = ua.receive(request("INFO", to_tag="us", cseq=2), UDP, now=0.0)
    assert [m.status_code for m in sent(events)] == [200]  # type: ignore[union-attr]
    assert ua.receive(request("ACK", to_tag=None), UDP, now=0.0) == []


# --- per-peer limit ---------------------------------------------------------------------------
def test_a_peer_over_its_open_transactions_gets_503_with_retry_after() -> None:
    ua = core(max_transactions_per_peer=2)
    held = [ua.receive(request(call_id=f"c{n}"), UDP, now=0.0) for n in range(2)]
    assert all(of(events, DeliverRequest) for events in held)
    events = ua.receive(request(call_id="c2"), UDP, now=0.0)
    [busy] = of(events, Busy)
    assert busy == Busy(peer="10.0.0.2", open=2)
    [refused] = sent(events)
    assert refused.status_code == 503 and refused.header("Retry-After") == "5"  # type: ignore[union-attr]
    # Another peer is not affected; an answered transaction frees the slot once it ends.
    assert of(ua.receive(request(call_id="c3"), TCP, now=0.0), DeliverRequest)
    first = of(held[0], DeliverRequest)[0]
    ua.respond(first.key, build_response(first.request, 200, to_tag="x"), now=0.0)
    ua.handle_timer(now=T.t4 * 10)  # timer J over UDP
    assert of(ua.receive(request(call_id="c4"), UDP, now=T.t4 * 10), DeliverRequest)


def test_a_retransmission_of_an_open_transaction_is_not_refused() -> None:
    ua = core(max_transactions_per_peer=1)
    req = request()
    assert of(ua.receive(req, UDP, now=0.0), DeliverRequest)
    assert not of(ua.receive(req, UDP, now=0.1), Busy)


# --- 2xx to INVITE until ACK ------------------------------------------------------------------
def _accepted_invite(ua: Core) -> tuple[Request, Response]:
    invite = request("INVITE")
    [deliver] = of(ua.receive(invite, UDP, now=0.0), DeliverRequest)
    dialog = Dialog.from_uas(invite, "us", "<sip:uacsta@10.0.0.1>")
    ua.add_dialog(dialog, "link", UDP)
    ok = build_response(invite, 200, to_tag="us")
    assert sent(ua.respond(deliver.key, ok, now=0.0))[0].status_code == 200  # type: ignore[union-attr]
    return invite, ok


def test_a_2xx_to_invite_over_udp_is_resent_t1_2t1_capped_at_t2_until_the_ack() -> None:
    ua = core()
    invite, _ = _accepted_invite(ua)
    assert ua.get_timer() == 0.5
    assert [m.status_code for m in sent(ua.handle_timer(0.5))] == [200]  # type: ignore[union-attr]
    assert ua.get_timer() == 1.5  # + 2 T1
    assert sent(ua.handle_timer(1.5))
    assert ua.get_timer() == 3.5  # + 4 T1
    assert sent(ua.handle_timer(3.5))
    assert ua.get_timer() == 7.5  # + T2 (capped)
    ack = request("ACK", to_tag="us", call_id=invite.call_id)
    assert ua.receive(ack, UDP, now=4.0) == []
    assert ua.get_timer() != 7.5 and not sent(ua.handle_timer(7.5))
    assert ua._unacked == {}


def test_a_2xx_without_ack_is_given_up_after_64_t1() -> None:
    ua = core()
    _accepted_invite(ua)
    resent = 0
    while (deadline := ua.get_timer()) is not None and deadline <= 64 * T.t1 + 10:
        resent += len(sent(ua.handle_timer(deadline)))
    assert ua._unacked == {}
    # 0.5, 1.5, 3.5, 7.5, then every T2 while under 64*T1 = 32 s: 11.5 ... 31.5
    assert resent == 10


def test_a_2xx_over_tcp_is_not_resent() -> None:
    ua = core()
    invite = request("INVITE")
    [deliver] = of(ua.receive(invite, TCP, now=0.0), DeliverRequest)
    ua.respond(deliver.key, build_response(invite, 200, to_tag="us"), now=0.0)
    assert ua._unacked == {}


def test_the_ack_for_our_invite_is_sent_and_sent_again_for_a_retransmitted_2xx() -> None:
    ua = core()
    invite = request("INVITE", from_tag="us")
    key, events = ua.send_request(invite, UDP, reliable=False, now=0.0)
    assert sent(events) and sent(events)[0].method == "INVITE"  # type: ignore[union-attr]
    ok = build_response(invite, 200, to_tag="phone").with_header(
        "Contact", "<sip:phone@10.0.0.2:5060>"
    )
    events = ua.receive(ok, UDP, now=0.1)
    assert of(events, FinalResponse) == [FinalResponse(key=key, response=ok)]
    dialog = Dialog.from_uac(invite, ok)
    ua.add_dialog(dialog, "link", UDP)
    ack = ua.ack_2xx(dialog, ok)
    assert ack.flow == UDP and ack.message.method == "ACK"  # type: ignore[union-attr]
    assert ua.last_ack(dialog) is ack.message
    again = ua.receive(ok, UDP, now=0.2)  # the INVITE transaction is gone: re-ACK
    assert sent(again) == [ack.message] and not of(again, FinalResponse)


# --- callers' deadlines and final responses ---------------------------------------------------
def test_a_callers_deadline_is_a_core_timer_and_the_late_answer_is_dropped() -> None:
    ua = core()
    req = request("INFO")
    key, _ = ua.send_request(req, TCP, reliable=True, now=10.0, timeout=5.0)
    assert ua.get_timer() == 15.0  # before Timer F (10 + 32)
    assert ua.handle_timer(15.0) == [Timeout(key=key)]
    assert ua.get_timer() == 10.0 + 64 * T.t1  # the transaction goes on
    assert of(ua.receive(build_response(req, 200), TCP, now=16.0), FinalResponse) == []


def test_timer_f_gives_a_408_once() -> None:
    ua = core()
    key, _ = ua.send_request(request("INFO"), TCP, reliable=True, now=0.0)
    [final] = of(ua.handle_timer(64 * T.t1), FinalResponse)
    assert final.key == key and final.response.status_code == 408
    assert of(ua.handle_timer(1000.0), FinalResponse) == []


def test_a_request_without_a_flow_waits_for_the_adapter_to_connect() -> None:
    ua = core()
    req = request("OPTIONS")
    key, events = ua.send_request(req, None, reliable=True, now=0.0)
    [first] = of(events, Transmit)
    assert first.flow is None and first.key == key
    assert first.message.header("User-Agent") == "uacsta"
    ua.connected(key, TCP)
    assert of(ua.receive(build_response(req, 200), TCP, now=0.1), FinalResponse)


def test_a_failed_send_ends_the_request_with_503() -> None:
    ua = core()
    req = request("OPTIONS")
    key, events = ua.send_request(req, TCP, reliable=True, now=0.0)
    [final] = of(ua.send_failed(of(events, Transmit)[0], now=0.0), FinalResponse)
    assert final.key == key and final.response.status_code == 503
    assert ua.abandon() == []


def test_close_abandons_what_is_pending() -> None:
    ua = core()
    key, _ = ua.send_request(request(), TCP, reliable=True, now=0.0, timeout=1.0)
    assert ua.abandon() == [key]
    assert ua.handle_timer(1.0) == []


# --- registration expiry ----------------------------------------------------------------------
def _register(registrar: Registrar, now: float, contact: str = "<sip:phone@10.0.0.2>") -> None:
    reg = Request(
        method="REGISTER",
        uri="sip:10.0.0.1",
        headers=(
            ("Via", f"SIP/2.0/UDP 10.0.0.2;branch={generate_branch()}"),
            ("From", "<sip:001565aabbcc@10.0.0.1>;tag=a"),
            ("To", "<sip:001565aabbcc@10.0.0.1>"),
            ("Call-ID", "reg-1"),
            ("CSeq", f"{int(now) + 1} REGISTER"),
            ("Contact", contact),
            ("Expires", "60"),
        ),
    )
    assert registrar.process_register(reg, now, UDP).ok


def test_registration_expiry_is_served_by_the_same_timer() -> None:
    registrar = Registrar(RegistrarPolicy(default_expires=60, min_expires=30, max_expires=60))
    ua = core(registrar=registrar)
    assert ua.get_timer() is None
    _register(registrar, now=0.0)
    assert ua.get_timer() == 61.0  # the binding's expiry plus one second of grace
    _register(registrar, now=30.0)  # refreshed: the first deadline is stale
    assert ua.get_timer() == 91.0
    assert ua.handle_timer(90.5) == []
    [expired] = ua.handle_timer(91.0)
    assert isinstance(expired, BindingsExpired)
    assert [b.aor for b in expired.bindings] == ["sip:001565aabbcc@10.0.0.1"]
    assert len(registrar) == 0 and ua.get_timer() is None


@pytest.mark.parametrize("count", [1, 3])
def test_registrar_timer_skips_removed_bindings(count: int) -> None:
    registrar = Registrar(RegistrarPolicy(default_expires=60, min_expires=30, max_expires=60))
    for n in range(count):
        _register(registrar, now=float(n), contact=f"<sip:phone@10.0.0.{n + 2}>")
    assert registrar.remove_flow(UDP)
    assert registrar.get_timer() is None and registrar.handle_timer(1000.0) == []


def test_the_client_key_is_the_token() -> None:
    ua = core()
    req = request()
    key, _ = ua.send_request(req, UDP, reliable=False, now=0.0)
    assert key == client_key(req)


# --- requests in a dialog ---------------------------------------------------------------------
def _uac_dialog(ua: Core) -> Dialog:
    invite = request("INVITE", from_tag="us")
    ok = build_response(invite, 200, to_tag="phone").with_header(
        "Contact", "<sip:phone@10.0.0.2:5060>"
    )
    dialog = Dialog.from_uac(invite, ok)
    ua.add_dialog(dialog, "link", UDP)
    return dialog


def test_an_in_dialog_request_is_built_in_the_dialog_and_it_sees_the_answer_first() -> None:
    ua = core()
    dialog = _uac_dialog(ua)
    cseq = dialog.local_cseq
    key, events = ua.send_in_dialog(dialog, "INFO", now=0.0, body=b"<x/>", content_type="a/b")
    [info] = sent(events)
    assert info.method == "INFO" and info.cseq.seq == cseq + 1  # type: ignore[union-attr]
    assert info.header("User-Agent") == "uacsta" and of(events, Transmit)[0].flow == UDP
    [final] = of(ua.receive(build_response(info, 200), UDP, now=0.1), FinalResponse)  # type: ignore[arg-type]
    assert final.key == key


def test_a_2xx_to_our_re_invite_is_acked_by_the_core_before_the_caller_hears() -> None:
    ua = core()
    dialog = _uac_dialog(ua)
    _, events = ua.send_in_dialog(dialog, "INVITE", now=0.0)
    [reinvite] = sent(events)
    ok = build_response(reinvite, 200).with_header("Contact", "<sip:phone@10.0.0.9:5060>")  # type: ignore[arg-type]
    events = ua.receive(ok, UDP, now=0.1)
    assert [type(e) for e in events] == [Transmit, FinalResponse]
    ack = of(events, Transmit)[0].message
    assert ack.method == "ACK" and ack.cseq.seq == reinvite.cseq.seq
    assert ua.last_ack(dialog) is ack
    assert str(dialog.remote_target) == "sip:phone@10.0.0.9:5060"  # the dialog saw the 2xx


def test_an_in_dialog_answer_after_the_callers_deadline_is_not_applied() -> None:
    ua = core()
    dialog = _uac_dialog(ua)
    key, events = ua.send_in_dialog(dialog, "INVITE", now=0.0, timeout=1.0)
    [reinvite] = sent(events)
    assert of(ua.handle_timer(1.0), Timeout) == [Timeout(key=key)]  # timer A re-sent it too
    ok = build_response(reinvite, 200).with_header("Contact", "<sip:phone@10.0.0.9:5060>")  # type: ignore[arg-type]
    assert not of(ua.receive(ok, UDP, now=1.5), FinalResponse)
    assert ua.last_ack(dialog) is None
