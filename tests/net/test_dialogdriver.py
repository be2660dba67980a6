"""The asyncio driver shared by the phone link and TR/87 sessions, with a real uaCSTA dialog
(client-gateway role), hand-written SIP and CSTA, and fake answer handles."""

from __future__ import annotations

from typing import Any

from uacsta.csta import codec
from uacsta.csta import messages as m
from uacsta.net.dialogdriver import DialogDriver
from uacsta.net.errors import TransportError
from uacsta.sip.message import Request
from uacsta.tr87 import CstaDialog, DialogEvent, Established, PeerRequest, Role, SendRequest

MAKE_CALL = (
    b"<MakeCall xmlns='http://www.ecma-international.org/standards/ecma-323/csta/ed3'>"
    b"<callingDevice>101</callingDevice><calledDirectoryNumber>200</calledDirectoryNumber>"
    b"</MakeCall>"
)


class Answered:
    """Stands for the user agent's handle on one incoming request."""

    def __init__(self, request: Request) -> None:
        self.request = request
        self.replies: list[tuple[int, dict[str, Any]]] = []

    def reply(self, status_code: int, **kw: Any) -> None:
        self.replies.append((status_code, kw))


def invite(body: bytes) -> Request:
    return Request(
        method="INVITE",
        uri="sip:uacsta@server",
        headers=(("Content-Type", "application/csta+xml"), ("Supported", "timer")),
        body=body,
    )


def info(body: bytes) -> Request:
    return Request(
        method="INFO",
        uri="sip:uacsta@server",
        headers=(("Content-Type", "application/csta+xml"),),
        body=body,
    )


async def test_an_answer_given_while_acting_keeps_the_order_and_dialog_headers() -> None:
    dialog = CstaDialog(role=Role.CLIENT_GATEWAY)
    acted: list[DialogEvent] = []

    def act(event: DialogEvent) -> None:
        acted.append(event)
        if isinstance(event, PeerRequest):  # the owner answers at once and pumps again
            dialog.answer_peer(event.request, m.MakeCallResponse())
            driver.pump()

    driver = DialogDriver(dialog, None, act, contact="<sip:uacsta@h>", local_tag="t1")  # type: ignore[arg-type]
    server = Answered(invite(MAKE_CALL))
    driver.receive(server)  # type: ignore[arg-type]
    assert [type(e) for e in acted] == [PeerRequest, Established]
    ((status, kw),) = server.replies
    assert status == 200 and kw["to_tag"] == "t1"
    assert kw["headers"][0] == ("Contact", "<sip:uacsta@h>")
    assert isinstance(codec.decode(kw["body"]), m.MakeCallResponse)
    assert not driver.unanswered(server.request)


async def test_close_answers_what_is_still_waiting_with_487_once() -> None:
    dialog = CstaDialog(role=Role.CLIENT_GATEWAY)
    driver = DialogDriver(dialog, None, lambda event: None, local_tag="t1")  # type: ignore[arg-type]
    driver.receive(Answered(invite(b"")))  # type: ignore[arg-type]
    waiting = Answered(info(MAKE_CALL))
    driver.receive(waiting)  # type: ignore[arg-type]
    assert driver.unanswered(waiting.request) and waiting.replies == []
    driver.close()
    driver.close()
    assert [status for status, _ in waiting.replies] == [487]
    assert driver.timer_at is None


class RefusingAgent:
    def request(self, *args: Any, **kw: Any) -> None:
        raise TransportError("connection closed")


class ScriptedDialog:
    """Emits one in-dialog request, then records what the driver reports about it."""

    def __init__(self) -> None:
        self.pending: list[DialogEvent] = [
            SendRequest(token=7, method="INFO", body=b"", content_type=None, headers=(), timeout=4)
        ]
        self.failures: list[tuple[int, str]] = []

    def events(self) -> list[DialogEvent]:
        out, self.pending = self.pending, []
        return out

    def get_timer(self) -> float | None:
        return None

    def receive_failure(self, token: int, reason: str, now: float) -> None:
        self.failures.append((token, reason))


async def test_a_request_that_cannot_be_sent_is_a_failure_for_the_dialog() -> None:
    dialog = ScriptedDialog()
    driver = DialogDriver(dialog, RefusingAgent(), lambda event: None)  # type: ignore[arg-type]
    driver.pump()
    assert dialog.failures == [(7, "the SIP dialog is not established")]
    dialog.pending = [
        SendRequest(token=8, method="INFO", body=b"", content_type=None, headers=(), timeout=4)
    ]
    driver.usage = object()  # type: ignore[assignment]
    driver.pump()
    assert dialog.failures[-1] == (8, "connection closed")
