"""``UserAgent.request(..., then=)``: a final response handed over while it is read, in order.

A phone answers a CSTA request with a 200 and then sends INFOs with the events the request
caused. Whoever relays the answer must act on it before those INFOs are dispatched (issue 14):
here a peer on real loopback sockets answers an INFO and sends its own INFO right after.
"""

from __future__ import annotations

import asyncio
import contextvars

import pytest

from tests.e2e.conftest import wait_until
from tests.net.test_useragent import FAST, Phone, invite
from uacsta.net.useragent import DialogUsage, ServerRequest, UserAgent
from uacsta.sip.dialog import Dialog
from uacsta.sip.message import Response

CALLER: contextvars.ContextVar[str] = contextvars.ContextVar("caller", default="none")


def _refuse(sr: ServerRequest) -> None:
    sr.reply(405)


class EventPhone(Phone):
    """Answers each INFO, then at once sends an INFO of its own in the same dialog."""

    def in_dialog(self, sr: ServerRequest) -> None:
        sr.reply(200, body=b"<MakeCallResponse/>", content_type="application/csta+xml")
        usage = next(iter(self.ua.usages.values()))
        self.ua.request(
            "INFO",
            usage,
            then=lambda result: None,
            body=b"<ServiceInitiatedEvent/>",
            content_type="application/csta+xml",
        )


async def _linked(phone: Phone, server: UserAgent, transport: str, seen: list[str]) -> DialogUsage:
    await phone.ua.listen(f"{transport}:127.0.0.1:0")
    await server.listen(f"{transport}:127.0.0.1:0")
    port = phone.ua.transport.listener(transport).port
    req = invite(server, transport, port)
    sent = server.request(req, (transport, "127.0.0.1", port))
    response = await sent
    flow = sent.flow
    assert response.status_code == 200 and flow is not None

    def from_phone(sr: ServerRequest) -> None:
        seen.append(sr.request.body.decode())
        sr.reply(200)

    usage = DialogUsage(Dialog.from_uac(req, response), flow, on_request=from_phone)
    server.add_usage(usage)
    server.ack_2xx(usage, response)
    return usage


@pytest.mark.parametrize("transport", ["udp", "tcp"])
async def test_the_answer_is_handled_before_the_request_the_peer_sent_after_it(
    transport: str,
) -> None:
    phone, server = EventPhone(), UserAgent(on_request=_refuse)
    seen: list[str] = []
    try:
        usage = await _linked(phone, server, transport, seen)
        for _ in range(20):
            seen.clear()

            def done(result: Response | BaseException) -> None:
                assert isinstance(result, Response), result
                seen.append(f"{CALLER.get()}:{result.body.decode()}")

            token = CALLER.set("relay")
            try:
                server.request(
                    "INFO",
                    usage,
                    then=done,
                    body=b"<MakeCall/>",
                    content_type="application/csta+xml",
                )
            finally:
                CALLER.reset(token)
            await wait_until(lambda: len(seen) >= 2, 5, "answer and event")
            # In the order the peer sent them, and in the context of the one who asked.
            assert seen == ["relay:<MakeCallResponse/>", "<ServiceInitiatedEvent/>"]
    finally:
        await phone.ua.close()
        await server.close()


class SilentPhone(Phone):
    """Accepts the dialog, never answers an INFO in it."""

    def in_dialog(self, sr: ServerRequest) -> None:
        pass


async def test_a_callers_time_limit_and_close_reach_the_callback() -> None:
    phone = SilentPhone(timers=FAST)
    server = UserAgent(on_request=_refuse, timers=FAST)
    results: list[Response | BaseException] = []
    try:
        usage = await _linked(phone, server, "tcp", [])
        server.request("INFO", usage, then=results.append, timeout=0.1)
        await wait_until(lambda: bool(results), 5, "time limit")
        assert len(results) == 1 and isinstance(results[0], TimeoutError)
        server.request("INFO", usage, then=results.append)
    finally:
        await server.close()
        await phone.ua.close()
    # Closing the UA ends a pending request: the callback hears of it, once.
    assert len(results) == 2 and isinstance(results[1], asyncio.CancelledError)
