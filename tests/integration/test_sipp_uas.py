"""The core's client transactions and dialog over the UDP transport, sipp as the phone.

INVITE (RequestSystemStatus) → 200 → ACK, INFO (MonitorStart) → 200 with the CSTA
response, BYE → 200: the uaCSTA link set-up of ECMA TR/87, against ``uas_csta.xml``.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable
from typing import Any

import pytest

from tests.integration.conftest import SippResult, SippRunner, free_port
from uacsta.net import Flow, SipTransport
from uacsta.sip.dialog import Dialog
from uacsta.sip.helpers import generate_branch, generate_call_id, generate_tag
from uacsta.sip.message import Message, Request, Response
from uacsta.sip.transaction import (
    DeliverResponse,
    LayerAction,
    TimerSettings,
    TransactionKey,
    TransactionLayer,
    TransactionTimeout,
    Transmit,
    TransportFailed,
)

CSTA = "application/csta+xml"
NS = "http://www.ecma-international.org/standards/ecma-323/csta/ed3"
RSS = f'<?xml version="1.0" encoding="UTF-8"?><RequestSystemStatus xmlns="{NS}"/>'.encode()
MONITOR_START = (
    f'<?xml version="1.0" encoding="UTF-8"?><MonitorStart xmlns="{NS}"><monitorObject>'
    "<deviceObject>sip:100@127.0.0.1</deviceObject></monitorObject></MonitorStart>"
).encode()


class UacDriver:
    """Thin asyncio glue: transport → TransactionLayer → futures, one re-armed timer."""

    def __init__(self) -> None:
        self.layer = TransactionLayer(timers=TimerSettings(trying_delay=None))
        self.transport = SipTransport(self._on_message)
        self.peer: tuple[str, int] = ("127.0.0.1", 0)
        self.local: tuple[str, int] = ("127.0.0.1", 0)
        self._loop = asyncio.get_running_loop()
        self._pending: dict[TransactionKey, asyncio.Future[Response]] = {}
        self._timer: asyncio.TimerHandle | None = None
        self.last_ack: Request | None = None

    async def start(self) -> None:
        listener = await self.transport.listen("udp:127.0.0.1:0")
        self.local = listener.local

    async def close(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
        await self.transport.close()

    def send_raw(self, message: Message) -> None:
        self.transport.send(message, Flow("udp", self.local, self.peer))

    async def request(self, request: Request, timeout: float = 10.0) -> Response:
        key, actions = self.layer.new_client(request, reliable=False, now=self._loop.time())
        fut: asyncio.Future[Response] = self._loop.create_future()
        self._pending[key] = fut
        self._run(actions)
        return await asyncio.wait_for(fut, timeout)

    def _on_message(self, message: Message, flow: Flow) -> None:
        if isinstance(message, Response):
            self._run(self.layer.receive_response(message, self._loop.time()))

    def _run(self, actions: list[LayerAction]) -> None:
        for key, action in actions:
            match action:
                case Transmit(message=message):
                    self.send_raw(message)
                case DeliverResponse(response=response) if key is None:
                    if self.last_ack is not None:  # retransmitted 2xx: ACK again
                        self.send_raw(self.last_ack)
                case DeliverResponse(response=response) if response.status_code >= 200:
                    self._resolve(key, response)
                case TransactionTimeout(response=response) | TransportFailed(response=response):
                    if response is not None:
                        self._resolve(key, response)
                case _:
                    pass
        self._rearm()

    def _resolve(self, key: TransactionKey | None, response: Response) -> None:
        fut = self._pending.pop(key, None) if key is not None else None
        if fut is not None and not fut.done():
            fut.set_result(response)

    def _rearm(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        deadline = self.layer.get_timer()
        if deadline is not None:
            self._timer = self._loop.call_at(deadline, self._fire)

    def _fire(self) -> None:
        self._timer = None
        self._run(self.layer.handle_timer(self._loop.time()))


async def before_sipp_ends(aw: Awaitable[Response], sipp: asyncio.Future[SippResult]) -> Response:
    """``aw``'s result, or a clear failure when sipp exits first (a scenario error)."""
    task = asyncio.ensure_future(aw)
    both: list[asyncio.Future[Any]] = [task, sipp]
    done, _ = await asyncio.wait(both, return_when=asyncio.FIRST_COMPLETED)
    if task not in done:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
        pytest.fail(f"sipp ended early: {sipp.result().explain()}")
    return task.result()


@pytest.mark.sipp
async def test_csta_dialog_against_sipp_uas(run_sipp: SippRunner) -> None:
    uac = UacDriver()
    await uac.start()
    sipp_port = free_port()
    uac.peer = ("127.0.0.1", sipp_port)
    sipp: asyncio.Future[SippResult] = asyncio.ensure_future(
        run_sipp("uas_csta.xml", port=sipp_port, transport="u1")
    )
    try:
        local = f"127.0.0.1:{uac.local[1]}"
        invite = Request(
            method="INVITE",
            uri=f"sip:phone@127.0.0.1:{sipp_port}",
            headers=(
                ("Via", f"SIP/2.0/UDP {local};branch={generate_branch()};rport"),
                ("Max-Forwards", "70"),
                ("From", f"<sip:uacsta@127.0.0.1>;tag={generate_tag()}"),
                ("To", "<sip:phone@127.0.0.1>"),
                ("Call-ID", generate_call_id()),
                ("CSeq", "1 INVITE"),
                ("Contact", f"<sip:uacsta@{local}>"),
                ("Content-Disposition", "signal;handling=required"),
            ),
        ).with_body(RSS, CSTA)
        # Sent until sipp is up: Timer A retransmissions cover its start-up.
        ok = await before_sipp_ends(uac.request(invite, timeout=30), sipp)
        assert ok.status_code == 200, ok
        assert ok.content_type == CSTA
        assert b"<systemStatus>normal</systemStatus>" in ok.body
        assert ok.header("X-Seen") == "RequestSystemStatus"
        dialog = Dialog.from_uac(invite, ok)
        assert dialog.remote_target == f"sip:phone@127.0.0.1:{sipp_port};transport=UDP"
        uac.last_ack = dialog.create_ack(ok, branch=generate_branch())
        uac.send_raw(uac.last_ack)

        info = dialog.create_request(
            "INFO", branch=generate_branch(), body=MONITOR_START, content_type=CSTA
        )
        info_ok = await before_sipp_ends(uac.request(info), sipp)
        assert info_ok.status_code == 200
        assert b"<monitorCrossRefID>43</monitorCrossRefID>" in info_ok.body
        assert info_ok.cseq.seq == 2
        assert info_ok.header("X-Seen") == "MonitorStart"

        bye = dialog.create_request("BYE", branch=generate_branch())
        bye_ok = await before_sipp_ends(uac.request(bye), sipp)
        assert bye_ok.status_code == 200
        dialog.terminate()

        result = await asyncio.wait_for(sipp, 30)
        assert result.returncode == 0, result.explain()
    finally:
        if not sipp.done():
            sipp.cancel()
            await asyncio.gather(sipp, return_exceptions=True)
        await uac.close()
