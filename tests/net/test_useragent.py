"""The asyncio SIP user agent: transactions and dialogs over real loopback sockets."""

from __future__ import annotations

import asyncio
import socket

import pytest

from tests.e2e.conftest import wait_until
from uacsta.net.useragent import DialogUsage, ServerRequest, UserAgent
from uacsta.sip.dialog import Dialog
from uacsta.sip.helpers import generate_branch, generate_call_id, generate_tag
from uacsta.sip.message import Request, Response, parse_message
from uacsta.sip.transaction import TimerSettings

FAST = TimerSettings(t1=0.05, t2=0.2, t4=0.2, timer_d=0.2)


def invite(ua: UserAgent, transport: str, port: int, **extra: str) -> Request:
    via = ua.via(transport).with_param("branch", generate_branch())
    return Request(
        method="INVITE",
        uri=f"sip:phone@127.0.0.1:{port};transport={transport}",
        headers=(
            ("Via", str(via)),
            ("Max-Forwards", "70"),
            ("From", f"<sip:uacsta@127.0.0.1>;tag={generate_tag()}"),
            ("To", "<sip:phone@127.0.0.1>"),
            ("Call-ID", generate_call_id()),
            ("CSeq", "1 INVITE"),
            ("Contact", ua.contact(transport)),
            *extra.items(),
        ),
    )


class Phone:
    """A UAS that accepts INVITE and answers INFO in the dialog with a body."""

    def __init__(self, **kwargs) -> None:
        self.ua = UserAgent(on_request=self.on_request, **kwargs)
        self.infos: list[Request] = []

    def on_request(self, sr: ServerRequest) -> None:
        if sr.request.method != "INVITE":
            sr.reply(405, to_tag=generate_tag())
            return
        tag = generate_tag()
        contact = self.ua.contact(sr.flow.transport, "phone")
        dialog = Dialog.from_uas(sr.request, tag, contact)
        self.ua.add_usage(DialogUsage(dialog, sr.flow, on_request=self.in_dialog))
        sr.reply(200, to_tag=tag, headers=(("Contact", contact),))

    def in_dialog(self, sr: ServerRequest) -> None:
        if sr.request.method == "INFO":
            self.infos.append(sr.request)
            if sr.request.body == b"crash":
                raise RuntimeError("handler bug")
        sr.reply(200, body=b"<ok/>", content_type="application/csta+xml")


@pytest.mark.parametrize("transport", ["udp", "tcp"])
async def test_invite_info_bye_in_a_dialog(transport: str) -> None:
    phone, server = Phone(), UserAgent(on_request=lambda sr: sr.reply(405))
    await phone.ua.listen(f"{transport}:127.0.0.1:0")
    await server.listen(f"{transport}:127.0.0.1:0")
    port = phone.ua.transport.listener(transport).port
    try:
        req = invite(server, transport, port)
        sent = server.request(req, (transport, "127.0.0.1", port))
        response = await sent
        flow = sent.flow
        assert response.status_code == 200 and flow is not None
        usage = DialogUsage(Dialog.from_uac(req, response), flow)
        server.add_usage(usage)
        server.ack_2xx(usage, response)
        info = await server.request(
            "INFO", usage, body=b"<x/>", content_type="application/csta+xml"
        )
        assert (info.status_code, info.body) == (200, b"<ok/>")
        crash = await server.request("INFO", usage, body=b"crash", content_type="text/plain")
        assert crash.status_code == 500  # a handler bug answers 500, the UA lives on
        reinvite = await server.request("INVITE", usage)  # a re-INVITE: its 2xx is ACKed
        assert reinvite.status_code == 200
        ack = server.core.last_ack(usage.dialog)
        assert ack is not None and ack.cseq.seq == reinvite.cseq.seq
        done: list[Response | BaseException] = []
        server.request("INVITE", usage, then=done.append)
        await wait_until(lambda: bool(done), 5, "re-INVITE answer")
        assert isinstance(done[0], Response) and done[0].status_code == 200
        ack = server.core.last_ack(usage.dialog)
        assert ack is not None and ack.cseq.seq == done[0].cseq.seq
        bye = await server.request("BYE", usage)
        assert bye.status_code == 200
        server.remove_usage(usage)
        assert usage.dialog.id not in server.dialogs
    finally:
        await phone.ua.close()
        await server.close()


async def test_unknown_dialog_gets_481() -> None:
    phone, server = Phone(), UserAgent(on_request=lambda sr: sr.reply(405))
    await phone.ua.listen("udp:127.0.0.1:0")
    await server.listen("udp:127.0.0.1:0")
    port = phone.ua.transport.listener("udp").port
    try:
        req = invite(server, "udp", port)
        req = req.with_header_set("To", "<sip:phone@127.0.0.1>;tag=nosuchdialog")
        req = Request(
            method="INFO",
            uri=req.uri,
            headers=tuple(
                (k, v.replace("INVITE", "INFO") if k == "CSeq" else v) for k, v in req.headers
            ),
        )
        response = await server.request(req, ("udp", "127.0.0.1", port))
        assert response.status_code == 481
    finally:
        await phone.ua.close()
        await server.close()


async def test_no_answer_gives_408_after_timer_f() -> None:
    silent = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    silent.bind(("127.0.0.1", 0))
    ua = UserAgent(on_request=lambda sr: None, timers=FAST)
    await ua.listen("udp:127.0.0.1:0")
    try:
        port = silent.getsockname()[1]
        req = invite(ua, "udp", port)
        options = Request(
            method="OPTIONS",
            uri=req.uri,
            headers=tuple((k, "1 OPTIONS" if k == "CSeq" else v) for k, v in req.headers),
        )
        response = await asyncio.wait_for(ua.request(options, ("udp", "127.0.0.1", port)), 10)
        assert response.status_code == 408
        # Retransmissions were sent (timer E), all to the silent socket.
        silent.setblocking(False)
        count = 0
        while True:
            try:
                silent.recv(65536)
                count += 1
            except BlockingIOError:
                break
        assert count >= 4
    finally:
        silent.close()
        await ua.close()


async def test_a_caller_time_limit_ends_the_wait_not_the_transaction() -> None:
    silent = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    silent.bind(("127.0.0.1", 0))
    ua = UserAgent(on_request=lambda sr: None)  # production timers: Timer F is 32 s
    await ua.listen("udp:127.0.0.1:0")
    loop = asyncio.get_running_loop()
    try:
        port = silent.getsockname()[1]

        def options() -> Request:
            req = invite(ua, "udp", port)  # a fresh branch: a transaction of its own
            return Request(
                method="OPTIONS",
                uri=req.uri,
                headers=tuple((k, "1 OPTIONS" if k == "CSeq" else v) for k, v in req.headers),
            )

        started = loop.time()
        dest = ("udp", "127.0.0.1", port)
        waits = [ua.request(options(), dest, timeout=t) for t in (0.3, 0.1)]
        results = await asyncio.gather(*waits, return_exceptions=True)
        assert [type(r) for r in results] == [TimeoutError, TimeoutError]
        assert 0.25 <= loop.time() - started < 5
        assert len(ua.layer) == 2  # both transactions still retransmit until Timer F
        silent.setblocking(False)
        assert silent.recv(65536).startswith(b"OPTIONS ")
    finally:
        silent.close()
        await ua.close()


async def test_2xx_to_invite_is_retransmitted_over_udp_until_ack() -> None:
    phone = Phone(timers=FAST)
    await phone.ua.listen("udp:127.0.0.1:0")
    port = phone.ua.transport.listener("udp").port
    raw = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    raw.bind(("127.0.0.1", 0))
    raw.setblocking(False)
    loop = asyncio.get_running_loop()
    try:
        host, rport = raw.getsockname()
        via = f"SIP/2.0/UDP {host}:{rport};branch={generate_branch()};rport"
        req = Request(
            method="INVITE",
            uri=f"sip:phone@127.0.0.1:{port}",
            headers=(
                ("Via", via),
                ("Max-Forwards", "70"),
                ("From", f"<sip:a@{host}>;tag=abc"),
                ("To", "<sip:phone@127.0.0.1>"),
                ("Call-ID", "retrans-test"),
                ("CSeq", "7 INVITE"),
                ("Contact", f"<sip:a@{host}:{rport}>"),
            ),
        )
        raw.sendto(req.to_bytes(), ("127.0.0.1", port))
        first = parse_message(await loop.sock_recv(raw, 65536))
        again = parse_message(await asyncio.wait_for(loop.sock_recv(raw, 65536), 2))
        assert first.status_code == again.status_code == 200
        assert first.to.tag == again.to.tag
        ack = Request(
            method="ACK",
            uri=f"sip:phone@127.0.0.1:{port}",
            headers=(
                ("Via", f"SIP/2.0/UDP {host}:{rport};branch={generate_branch()}"),
                ("Max-Forwards", "70"),
                ("From", "<sip:a@127.0.0.1>;tag=abc"),
                ("To", str(first.to)),
                ("Call-ID", "retrans-test"),
                ("CSeq", "7 ACK"),
            ),
        )
        raw.sendto(ack.to_bytes(), ("127.0.0.1", port))
        await asyncio.sleep(0)  # let the ACK in before counting
        drained = 0
        with pytest.raises(TimeoutError):
            while True:
                await asyncio.wait_for(loop.sock_recv(raw, 65536), 0.6)
                drained += 1
        assert drained <= 1  # at most one that was already on its way
        assert phone.ua.core._unacked == {}
    finally:
        raw.close()
        await phone.ua.close()


async def test_one_peer_cannot_fill_the_transaction_table() -> None:
    held: list[ServerRequest] = []
    ua = UserAgent(on_request=held.append, max_transactions_per_peer=2)
    await ua.listen("udp:127.0.0.1:0")
    port = ua.transport.listener("udp").port
    raw = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    raw.bind(("127.0.0.1", 0))
    raw.setblocking(False)
    loop = asyncio.get_running_loop()
    host, rport = raw.getsockname()
    try:
        for n in range(3):
            options = Request(
                method="OPTIONS",
                uri=f"sip:uacsta@127.0.0.1:{port}",
                headers=(
                    ("Via", f"SIP/2.0/UDP {host}:{rport};branch={generate_branch()}"),
                    ("Max-Forwards", "70"),
                    ("From", f"<sip:a@{host}>;tag=t{n}"),
                    ("To", "<sip:uacsta@127.0.0.1>"),
                    ("Call-ID", f"flood-{n}"),
                    ("CSeq", "1 OPTIONS"),
                ),
            )
            raw.sendto(options.to_bytes(), ("127.0.0.1", port))
        busy = parse_message(await asyncio.wait_for(loop.sock_recv(raw, 65536), 5))
        assert busy.status_code == 503 and busy.call_id == "flood-2"
        assert len(held) == 2  # the first two reached the handler, still unanswered
        held[0].reply(200)  # answers to held transactions still go out
        await asyncio.wait_for(loop.sock_recv(raw, 65536), 5)
    finally:
        raw.close()
        await ua.close()
