"""Random walks through a server-to-phone dialog: whatever the phone and the clock do, the
dialog only moves along its table, reports loss once, answers every request once and keeps
no timer once lost."""

from __future__ import annotations

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from uacsta.csta import messages as m
from uacsta.sip.message import Request, Response
from uacsta.tr87 import TRANSITIONS, Answer, CstaDialog, Lost, Role, SendRequest, State

from .test_dialog import DELIVERED, GSFD_RESPONSE, RSS_RESPONSE, SNOM_SEGMENT_1, TARGET, YEALINK_SFD

RESPONSES = [
    Response(
        status_code=200, headers=(("Session-Expires", "90;refresher=uac"),), body=RSS_RESPONSE
    ),
    Response(status_code=200, headers=(("Session-Expires", "90;refresher=uas"),)),
    Response(status_code=200, body=GSFD_RESPONSE),
    Response(status_code=200, body=b"<garbage"),
    Response(status_code=401, reason="Unauthorized"),
    Response(status_code=422, headers=(("Min-SE", "120"),)),
    Response(status_code=408),
    Response(status_code=481),
    Response(status_code=500),
    Response(status_code=503, headers=(("Retry-After", "5"),)),
]


def info(body: bytes) -> Request:
    return Request(
        method="INFO", uri="sip:x", headers=(("Content-Type", "application/csta+xml"),), body=body
    )


REQUESTS = [
    info(YEALINK_SFD),
    info(SNOM_SEGMENT_1),
    info(DELIVERED),
    info(b"<garbage"),
    Request(method="INVITE", uri="sip:x", headers=(("Session-Expires", "90"),)),
    Request(method="OPTIONS", uri="sip:x", headers=()),
    Request(method="BYE", uri="sip:x", headers=()),
]


def reachable(old: State, new: State) -> bool:
    if old is new:
        return True
    step = {b for (a, _), b in TRANSITIONS.items() if a is old}
    two = {b for (a, _), b in TRANSITIONS.items() if a in step}
    return new in step or new in two


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(st.tuples(st.integers(0, 7), st.integers(0, 20)), max_size=60))
def test_random_walk_keeps_the_invariants(steps: list[tuple[int, int]]) -> None:
    d = CstaDialog(
        role=Role.SERVER_TO_PHONE,
        aor=TARGET.to,
        services=frozenset({"SystemRegister"}),
        keepalive_interval=30.0,
        session_expires=90,
        csta_timeout=4.0,
    )
    now = 0.0
    outstanding: list[int] = []
    asked: set[int] = set()
    answered: list[int] = []
    lost = 0
    for op, arg in steps:
        before = d.state
        if op == 0:
            if d.state is State.IDLE:
                d.start(TARGET, now)
        elif op == 1 and outstanding:
            d.receive_response(outstanding.pop(0), RESPONSES[arg % len(RESPONSES)], now)
        elif op == 2 and outstanding:
            d.receive_timeout(outstanding.pop(0), now)
        elif op == 3 and outstanding:
            d.receive_failure(outstanding.pop(arg % len(outstanding)), "reset", now)
        elif op == 4:
            d.receive_request(REQUESTS[arg % len(REQUESTS)], now)
        elif op == 5:
            asked.add(d.csta_request(m.RequestSystemStatus(), now))
        elif op == 6:
            now += arg * 3.0
            timer = d.get_timer()
            if timer is not None and timer <= now:
                d.handle_timer(now)
        elif op == 7 and arg == 0:
            d.stop("test")
        elif op == 1 and d.state is State.INVITING and not outstanding:
            d.answer_challenge("user", "pw", now)
        for event in d.events():
            if isinstance(event, SendRequest):
                outstanding.append(event.token)
            elif isinstance(event, Answer):
                answered.append(event.token)
            elif isinstance(event, Lost):
                lost += 1
        assert reachable(before, d.state), (before, d.state)
        assert d.in_flight >= 0
        if d.state is State.LOST:
            assert d.get_timer() is None
    assert lost == (1 if d.state is State.LOST else 0)
    assert len(answered) == len(set(answered))  # at most once each
    assert set(answered) <= asked
