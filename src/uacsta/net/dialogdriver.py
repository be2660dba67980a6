"""One uaCSTA dialog on asyncio: what every driver of :class:`uacsta.tr87.CstaDialog` does.

The phone link and each TR/87 session feed their dialog the requests that arrive in it, put
what it emits on the wire through :class:`~uacsta.net.useragent.UserAgent`, and follow its
one timer. That work is the same for both, so it is written once: one rule for what a failed
send means to the dialog, one way to answer a request (Contact on a 2xx to INVITE/UPDATE, our
tag on the dialog-creating answer), one re-arming timer, events carried out in the order the
dialog emitted them even when acting on one makes it emit more. The owner gets every other
event (``Ready``, ``PeerRequest``, ``Lost``, ...) through ``act``.
"""

from __future__ import annotations

import asyncio
import functools
from collections.abc import Callable

from uacsta.net.errors import TransportError
from uacsta.net.useragent import DialogUsage, ServerRequest, UserAgent
from uacsta.sip.errors import SipError
from uacsta.sip.message import Request, Response
from uacsta.tr87 import CstaDialog, DialogEvent, SendRequest, SendResponse

__all__ = ["DialogDriver"]


class DialogDriver:
    """Drives ``dialog`` over ``ua``; ``usage`` is set by the owner once the SIP dialog exists."""

    # Slots: one of these lives for every linked phone and every TR/87 session.
    __slots__ = ("_loop", "_pumping", "_servers", "_timer", "_timer_at", "act", "closed",
                 "contact", "dialog", "local_tag", "ua", "usage")  # fmt: skip

    def __init__(
        self,
        dialog: CstaDialog,
        ua: UserAgent,
        act: Callable[[DialogEvent], None],
        *,
        contact: str = "",
        local_tag: str | None = None,
    ) -> None:
        self.dialog = dialog
        self.ua = ua
        self.act = act
        #: Our Contact in 2xx answers to INVITE and UPDATE.
        self.contact = contact
        #: Our To tag, put on the answer that creates the dialog (UAS roles).
        self.local_tag = local_tag
        self.usage: DialogUsage | None = None
        self.closed = False
        #: Requests fed to the dialog and not answered yet, by ``id`` of their Request.
        self._servers: dict[int, ServerRequest] = {}
        self._timer: asyncio.TimerHandle | None = None
        self._timer_at: float | None = None
        self._pumping = False
        self._loop = asyncio.get_running_loop()

    @property
    def timer_at(self) -> float | None:
        """When the loop timer that follows the dialog fires (None: no timer)."""
        return self._timer_at if self._timer is not None else None

    def now(self) -> float:
        """The loop's clock (the dialog's ``now``)."""
        return self._loop.time()

    def receive(self, server: ServerRequest) -> None:
        """A request for the dialog; it is answered now or once the owner has answered it."""
        self.feed(server)
        self.pump()

    def feed(self, server: ServerRequest) -> None:
        """:meth:`receive` without carrying out what the dialog emits (:meth:`pump` does)."""
        self._servers[id(server.request)] = server
        self.dialog.receive_request(server.request, self.now())

    def unanswered(self, request: Request) -> bool:
        """Whether ``request`` was fed to the dialog and has no final answer yet (the
        entry keeps its request alive, so its ``id`` names no other request meanwhile)."""
        return id(request) in self._servers

    def pump(self) -> None:
        """Carry out what the dialog emitted, in order, then follow its timer. A call made
        while events are being carried out (an owner acting on one) is folded into it."""
        if self._pumping:
            return
        self._pumping = True
        try:
            while events := self.dialog.events():
                for event in events:
                    match event:
                        case SendResponse():
                            self._respond(event)
                        case SendRequest() if event.request is None:
                            self._send(event)
                        case _:
                            self.act(event)
        finally:
            self._pumping = False
        self._rearm()

    def close(self) -> None:
        """Stop following the dialog (idempotent): no timer, and requests still unanswered
        are answered 487 (RFC 3261 §15.1.2)."""
        if self.closed:
            return
        self.closed = True
        self._cancel_timer()
        servers, self._servers = self._servers, {}
        for server in servers.values():
            server.reply(487)

    # --- out -----------------------------------------------------------------------------------
    def outcome(self, token: int, outcome: Response | BaseException) -> None:
        """The final outcome of the request the dialog sent under ``token`` (a response, a
        TimeoutError, or why it could not be sent): fed to the dialog, then carried out."""
        now = self.now()
        if isinstance(outcome, Response):
            self.dialog.receive_response(token, outcome, now)
        elif isinstance(outcome, TimeoutError):
            self.dialog.receive_timeout(token, now)
        else:
            self.dialog.receive_failure(token, str(outcome) or type(outcome).__name__, now)
        if not self.closed:
            self.pump()

    def _send(self, event: SendRequest) -> None:
        """An in-dialog request; its outcome goes back to the dialog while it is read."""
        result = functools.partial(self.outcome, event.token)
        if self.usage is None:
            result(SipError("the SIP dialog is not established"))
            return
        try:
            self.ua.request(
                event.method,
                self.usage,
                then=result,
                timeout=event.timeout,
                body=event.body,
                content_type=event.content_type,
                extra_headers=event.headers,
            )
        except (TransportError, SipError, OSError) as exc:
            result(exc)

    def _respond(self, event: SendResponse) -> None:
        server = self._servers.pop(id(event.request), None)
        if server is None:
            return
        headers = event.headers
        if event.status_code < 300 and event.request.method in ("INVITE", "UPDATE"):
            headers = (("Contact", self.contact), *headers)
        server.reply(
            event.status_code,
            headers=headers,
            body=event.body,
            content_type=event.content_type,
            to_tag=self.local_tag if event.new_to_tag else None,
        )

    # --- the timer -----------------------------------------------------------------------------
    def _rearm(self) -> None:
        """Follow the dialog's earliest deadline with one loop timer (left alone if unchanged)."""
        at = None if self.closed else self.dialog.get_timer()
        if at == self._timer_at:
            return
        self._cancel_timer()
        self._timer_at = at
        if at is not None:
            self._timer = self._loop.call_at(at, self._on_timer)

    def _cancel_timer(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
        self._timer = None
        self._timer_at = None

    def _on_timer(self) -> None:
        self._timer = None
        self._timer_at = None
        if not self.closed:
            self.dialog.handle_timer(self.now())
            self.pump()
