"""uaCSTA over SIP for CTI clients (ECMA TR/87): uacsta is the UAS, the CTI application the UAC.

One INVITE dialog is one client of the switching function (ECMA TR/87 §6-§7):

- The client's INVITE carries ``Content-Type: application/csta+xml`` and usually a
  RequestSystemStatus; whatever CSTA request it carries (Cisco CME clients have sent
  GetCSTAFeatures) is answered in the **200 OK body**. No body: 200 without one.
- Digest authentication (RFC 3261 §22) against :class:`~uacsta.accounts.ClientAccounts`:
  no credentials → 401, wrong → 403. The account's device restriction applies to the dialog.
  Requests inside an established dialog are not challenged again (the dialog identifiers and,
  over TCP/TLS, the connection are what was authenticated).
- CSTA requests travel in INFO; each CSTA response goes in the 2xx body of that INFO, so the
  INFO's server transaction stays open until the switching function answers, bounded by
  ``request_timeout`` (then 200 with a ``systemResourceAvailability/timeout`` CSTAErrorCode).
- CSTA errors travel as CSTA documents (TR/87 keeps SIP for transport): an undecodable body in
  an INFO or INVITE is answered 200 with ``<CSTAErrorCode><operation><generic/>``, the dialog
  stays up. Only a body that is not ``application/csta+xml`` is refused at the SIP level (415).
- Events and switch-originated requests go to the client as INFO, one at a time per client in
  order; a 408/481 answer, a closed connection, or an overdue session refresh (RFC 4028) ends
  the session (BYE where still possible) and releases its monitors.
- The client's edition (the namespace of its documents, ED3 until it sent one) is ours.

Limits of this version: no Session-Expires in the INVITE means no session timer (TCP/TLS
clients are still watched through their connection); when the client cannot refresh
(no ``Supported: timer``) uacsta refreshes by re-INVITE. Over UDP the 2xx to an INVITE is
not retransmitted until the ACK (RFC 3261 §13.3.1.4): the UserAgent does not hand the ACK to
dialog usages, so TCP/TLS are the transports to use.
"""

from __future__ import annotations

import asyncio
import logging
import secrets
import ssl
from collections.abc import Coroutine, Iterable
from dataclasses import dataclass, field, replace
from typing import Any

from uacsta.accounts import ClientAccounts
from uacsta.csta import codec
from uacsta.csta import messages as m
from uacsta.csta.errors import CstaDecodeError
from uacsta.hub import SwitchHub
from uacsta.net.flow import Flow
from uacsta.net.useragent import DialogUsage, ServerRequest, UserAgent
from uacsta.ratelog import RateLimitedLog
from uacsta.sip.dialog import (
    MIN_SE_FLOOR,
    Dialog,
    DialogState,
    Refresher,
    SessionExpires,
    negotiate_session_timer_uas,
)
from uacsta.sip.digest import (
    Algorithm,
    AuthStatus,
    DigestServer,
    FailureReason,
    NonceManager,
    claimed_username,
)
from uacsta.sip.errors import SipError
from uacsta.sip.helpers import generate_tag
from uacsta.sip.message import Request, Response
from uacsta.sip.uri import AbsoluteUri, SipUri
from uacsta.switch.function import ToClient, event_to_client
from uacsta.switch.router import SUBJECT_FIELDS
from uacsta.throttle import AuthThrottle

log = logging.getLogger("uacsta.gateways.tr87")


def warning_header(text: str) -> str:
    """A ``Warning`` value (RFC 3261 §20.43, code 399: miscellaneous) for a refusal reason:
    printable ASCII only, no quote or backslash, at most 200 characters (the reason may hold
    what a client sent; nothing of it may end the header)."""
    clean = "".join(ch for ch in text if " " <= ch <= "~" and ch not in '"\\')
    return f'399 uacsta "{clean[:200]}"'


#: For the lines a stranger can trigger (refused INVITEs, blocks).
auth_log = RateLimitedLog(log)

CSTA_CONTENT_TYPE = "application/csta+xml"
ALLOW = "INVITE, ACK, BYE, CANCEL, INFO, OPTIONS, UPDATE"
#: Default bound on waiting for the switching function's answer to one client request.
REQUEST_TIMEOUT = 10.0
MAX_SESSIONS = 1000
#: Client requests in flight per session; more get a resourceBusy CSTAErrorCode at once.
MAX_PENDING_REQUESTS = 64
#: Events waiting for the client per session; a client this far behind is disconnected.
MAX_EVENT_QUEUE = 2000
#: How long close() waits for the clients' answers to our BYE.
BYE_TIMEOUT = 2.0


def line_of(uri: SipUri | AbsoluteUri) -> str | None:
    """The line a client's INVITE is addressed to (Cisco CME: "the PBX phone line is described
    in the SIP To header"): ``sip:user@host`` or a ``tel:`` URI; None without a user part."""
    if isinstance(uri, SipUri):
        return f"{uri.scheme}:{uri.user}@{uri.host}" if uri.user else None
    return str(uri) if uri.scheme.lower() == "tel" else None


def with_default_device(request: m.CstaRequest, line: str) -> m.CstaRequest:
    """``request`` addressed to ``line`` when it names no device of its own.

    Microsoft-style remote call control clients name their line once, in the INVITE's
    RequestSystemStatus (``lcs:line``); a MonitorStart or a device service without its device
    then means that line. A request naming a device (or a call) is left as it is."""
    if isinstance(request, m.MonitorStart):
        if request.monitor_object is None and request.monitor_call_object is None:
            return replace(request, monitor_object=line)
        return request
    match SUBJECT_FIELDS.get(type(request), ()):
        case ((name, "device"),) if getattr(request, name) is None:
            return replace(request, **{name: line})  # type: ignore[arg-type]
    return request


@dataclass(eq=False)
class _Pending:
    """One client request waiting for its CSTA answer: the invoke the hub hands back.

    ``kind`` is ``INFO``, ``INVITE`` (dialog-creating) or ``reINVITE``.
    """

    session: Tr87Session
    server: ServerRequest
    kind: str
    service: str = ""
    timer: asyncio.TimerHandle | None = None
    done: bool = False


@dataclass(eq=False)
class Tr87Session:
    """One TR/87 dialog: the client ID the switching function sees (``deliver``)."""

    gateway: Tr87Gateway
    flow: Flow
    call_id: str
    user: str | None
    local_tag: str
    contact: str
    local_host: str | None
    edition: codec.Edition = codec.Edition.ED3
    #: The line the session is about: the INVITE's To URI, or the ``lcs:line`` a
    #: Microsoft-style client names in its RequestSystemStatus; the device of its requests
    #: that name none.
    line: str | None = None
    usage: DialogUsage | None = None
    pending: set[_Pending] = field(default_factory=set)
    attached: bool = False
    closed: bool = False
    #: The dialog-creating INVITE while it is unanswered (CANCEL target).
    invite: _Pending | None = None
    _queue: asyncio.Queue[m.CstaMessage] = field(default_factory=asyncio.Queue)
    _sender: asyncio.Task[None] | None = None
    _timer: asyncio.TimerHandle | None = None

    def __repr__(self) -> str:
        return (
            f"<TR/87 client {self.user or '-'}@{self.flow.remote[0]}:{self.flow.remote[1]}"
            f" {self.call_id}>"
        )

    @property
    def confirmed(self) -> bool:
        return self.usage is not None

    # --- from the switching function ----------------------------------------------------
    def deliver(self, action: ToClient) -> None:
        if self.closed:
            return
        invoke = action.invoke
        if isinstance(invoke, _Pending):
            warning = None
            if action.detail and isinstance(action.message, m.CSTAErrorCode):
                log.info("%r: %s refused: %s", self, invoke.service, action.detail)
                warning = action.detail
            self.answer(invoke, action.message, warning=warning)
            return
        if self._queue.qsize() >= self.gateway.max_event_queue:
            log.warning("%r: %d events not taken by the client, closing", self, self._queue.qsize())
            self.gateway.end_session(self, send_bye=True, reason="event queue overflow")
            return
        self._queue.put_nowait(action.message)

    def deliver_event(self, event: m.CstaEvent, xref: str) -> None:
        self.deliver(event_to_client(self, event, xref))

    # --- answering client requests ------------------------------------------------------
    def answer(
        self, pending: _Pending, message: m.CstaMessage | None, *, warning: str | None = None
    ) -> None:
        """Final answer to a waiting client request (200; the CSTA message in the body).

        ``warning``: why a request was refused; CSTAErrorCode has no text, so an INFO's answer
        carries it in a ``Warning: 399`` header (RFC 3261 §20.43)."""
        if pending.done:
            log.info("%r: late answer to %s dropped", self, pending.service or pending.kind)
            return
        pending.done = True
        self.pending.discard(pending)
        if pending.timer is not None:
            pending.timer.cancel()
            pending.timer = None
        body = codec.encode(message, self.edition) if message is not None else b""
        content_type = CSTA_CONTENT_TYPE if body else None
        request = pending.server.request
        if pending.kind == "INFO":
            warned = (("Warning", warning_header(warning)),) if warning else ()
            pending.server.reply(200, headers=warned, body=body, content_type=content_type)
            return
        headers = self.gateway.session_timer_headers(request)
        if pending.kind == "INVITE":
            self.invite = None
            self.confirm(request)
        else:
            self.refreshed(request)
        pending.server.reply(
            200,
            to_tag=self.local_tag,
            headers=(
                ("Contact", self.contact),
                *headers,
                ("Allow", ALLOW),
                ("Accept", CSTA_CONTENT_TYPE),
            ),
            body=body,
            content_type=content_type,
        )

    def wait_for_answer(self, pending: _Pending, message: m.CstaMessage) -> None:
        """Hand a client request to the switching function; the answer comes via deliver."""
        pending.service = type(message).__name__
        self.pending.add(pending)
        loop = asyncio.get_running_loop()
        pending.timer = loop.call_later(self.gateway.request_timeout, self._answer_timeout, pending)
        log.info("%r: %s %s", self, pending.kind, pending.service)
        self.gateway.hub.client_request(self, pending, message)

    def _answer_timeout(self, pending: _Pending) -> None:
        pending.timer = None
        log.warning(
            "%r: no answer to %s within %ss", self, pending.service, self.gateway.request_timeout
        )
        self.answer(pending, m.CSTAErrorCode.timeout())

    def handle_body(self, pending: _Pending) -> None:
        """The CSTA document of an INVITE/re-INVITE/INFO: answer it now or via the hub."""
        request = pending.server.request
        if not request.body:
            self.answer(pending, None)
            return
        try:
            message, edition = codec.decode_with_edition(request.body)
        except CstaDecodeError as exc:
            log.warning("%r: undecodable CSTA document in %s: %s", self, request.method, exc)
            self.answer(pending, m.CSTAErrorCode.operation("generic"))
            return
        if edition is not codec.Edition.NONE:
            self.edition = edition
        if isinstance(message, m.RequestSystemStatus):
            line = codec.rcc_line(message)
            if line is not None and line != self.line:
                log.info("%r: controls line %r (lcs:line)", self, line[:80])
                self.line = line
        if self.line is not None and isinstance(message, m.CstaRequest):
            message = with_default_device(message, self.line)
        if not isinstance(message, m.CstaRequest | m.UnknownMessage):
            # A response (to a request we sent) or an event: nothing to answer in CSTA.
            log.debug("%r: %s from the client", self, type(message).__name__)
            self.answer(pending, None)
            return
        if len(self.pending) >= self.gateway.max_pending_requests:
            log.warning("%r: %d requests in flight, refusing more", self, len(self.pending))
            self.answer(pending, m.CSTAErrorCode.system_resource_availability("resourceBusy"))
            return
        self.wait_for_answer(pending, message)

    # --- dialog life ---------------------------------------------------------------------
    def confirm(self, invite: Request) -> None:
        """The 200 to the INVITE is going out: the dialog exists from now on."""
        dialog = Dialog.from_uas(
            invite,
            self.local_tag,
            self.contact,
            local_via=self.gateway.ua.via(self.flow.transport, self.local_host),
            logger=log,
        )
        self.usage = DialogUsage(
            dialog, self.flow, on_request=self._on_request, local_host=self.local_host
        )
        self.gateway.ua.add_usage(self.usage)
        self.refreshed(invite)
        self._sender = asyncio.get_running_loop().create_task(self._send_events())
        log.info("%r: session established (%s)", self, self.edition.name)

    def refreshed(self, request: Request) -> None:
        """An INVITE/re-INVITE/UPDATE with a session timer is being accepted (RFC 4028 §9)."""
        assert self.usage is not None
        dialog = self.usage.dialog
        answer = self.gateway.negotiate(request)
        if answer is None or answer.refresher is None:
            dialog.session_timer_off()
        else:
            loop = asyncio.get_running_loop()
            dialog.session_refreshed(
                loop.time(), answer.interval, answer.refresher, local_is_uac=False
            )
        self._arm_timer()

    def _arm_timer(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        if self.usage is None or self.closed:
            return
        deadline = self.usage.dialog.get_timer()
        if deadline is not None:
            self._timer = asyncio.get_running_loop().call_at(deadline, self._on_timer)

    def _on_timer(self) -> None:
        self._timer = None
        if self.usage is None or self.closed:
            return
        dialog = self.usage.dialog
        if dialog.session_we_refresh:
            self.gateway.spawn(self._refresh())
            return
        log.warning(
            "%r: session refresh overdue (Session-Expires %s)", self, dialog.session_interval
        )
        self.gateway.end_session(self, send_bye=True, reason="session expired")

    async def _refresh(self) -> None:
        """We are the refresher (a client without ``Supported: timer``): re-INVITE."""
        assert self.usage is not None
        dialog = self.usage.dialog
        interval = dialog.session_interval or self.gateway.min_se
        dialog.session_refresh_at = None
        response = await self.gateway.ua.dialog_request(
            self.usage,
            "INVITE",
            extra_headers=(
                ("Session-Expires", str(SessionExpires(interval, Refresher.UAS))),
                ("Min-SE", str(self.gateway.min_se)),
                ("Supported", "timer"),
            ),
        )
        if self.closed:
            return
        if response.is_success:
            loop = asyncio.get_running_loop()
            dialog.session_refreshed(loop.time(), interval, Refresher.UAS, local_is_uac=False)
            self._arm_timer()
        else:
            log.warning("%r: session refresh answered %d", self, response.status_code)
            self.gateway.end_session(self, send_bye=response.status_code not in (408, 481))

    async def _send_events(self) -> None:
        """Events and switch requests to the client, one INFO at a time (keeps their order)."""
        while not self.closed and self.usage is not None:
            message = await self._queue.get()
            body = codec.encode(message, self.edition)
            try:
                response = await self.gateway.ua.dialog_request(
                    self.usage, "INFO", body=body, content_type=CSTA_CONTENT_TYPE
                )
            except SipError as exc:  # the dialog ended under us
                log.info("%r: INFO not sent: %s", self, exc)
                self.gateway.end_session(self, send_bye=False, reason="dialog gone")
                return
            if self.closed:
                return
            status = response.status_code
            if status in (408, 481) or self.usage.dialog.state is DialogState.TERMINATED:
                log.warning(
                    "%r: INFO %s answered %d, ending the session",
                    self,
                    type(message).__name__,
                    status,
                )
                self.gateway.end_session(self, send_bye=False, reason=f"INFO answered {status}")
                return
            if not response.is_success:
                log.info("%r: INFO %s answered %d", self, type(message).__name__, status)
            elif response.body and isinstance(message, m.CstaRequest):
                self._client_answer(response)

    def _client_answer(self, response: Response) -> None:
        """The client's CSTA answer to a request we sent (in the 2xx body of our INFO)."""
        try:
            answer = codec.decode(response.body)
        except CstaDecodeError as exc:
            log.info("%r: undecodable answer to our request: %s", self, exc)
            return
        log.debug("%r: client answered %s", self, type(answer).__name__)

    # --- in-dialog requests ----------------------------------------------------------------
    def _on_request(self, server: ServerRequest) -> None:
        request = server.request
        method = request.method
        if self.closed:
            server.reply(481)
            return
        if method == "BYE":
            log.info("%r: BYE from the client", self)
            server.reply(200)
            self.gateway.end_session(self, send_bye=False, reason="BYE")
            return
        if method == "OPTIONS":
            server.reply(200, headers=(("Allow", ALLOW), ("Accept", CSTA_CONTENT_TYPE)))
            return
        if method not in ("INFO", "INVITE", "UPDATE"):
            server.reply(405, headers=(("Allow", ALLOW),))
            return
        if not self.gateway.acceptable_body(server):
            return
        if method == "INFO":
            self.handle_body(_Pending(self, server, "INFO"))
            return
        if not self.gateway.acceptable_session_timer(server):
            return
        if method == "UPDATE":  # a session refresh without CSTA content
            self.refreshed(request)
            headers = self.gateway.session_timer_headers(request)
            server.reply(200, headers=(("Contact", self.contact), *headers))
            return
        if any(p.kind == "reINVITE" for p in self.pending):
            server.reply(491)  # RFC 3261 §14.2: one re-INVITE at a time
            return
        self.handle_body(_Pending(self, server, "reINVITE"))

    # --- the end -----------------------------------------------------------------------------
    def shutdown(self) -> None:
        """Stop everything of this session (idempotent): timers, waiting requests, monitors."""
        if self.closed:
            return
        self.closed = True
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        for pending in list(self.pending):
            if pending.timer is not None:
                pending.timer.cancel()
            if not pending.done:
                pending.done = True
                pending.server.reply(487)  # RFC 3261 §15.1.2: pending requests of the dialog
        self.pending.clear()
        if self.invite is not None and not self.invite.done:
            self.invite.done = True
            self.invite.server.reply(487)
        if self._sender is not None and self._sender is not asyncio.current_task():
            self._sender.cancel()
        if self.attached:
            self.attached = False
            self.gateway.hub.client_detach(self)


class Tr87Gateway:
    """The TR/87 listener side: sessions by Call-ID, authentication, limits.

    Give it a :class:`UserAgent` whose handlers call :meth:`on_request` / :meth:`on_closed`,
    or let it create one (``ua=None``) and :meth:`listen` on it.
    """

    def __init__(
        self,
        hub: SwitchHub,
        accounts: ClientAccounts,
        *,
        ua: UserAgent | None = None,
        realm: str = "uacsta",
        require_authentication: bool = True,
        throttle: AuthThrottle | None = None,
        digest_algorithms: Iterable[Algorithm] | None = None,
        nonce_secret: bytes | None = None,
        min_se: int = MIN_SE_FLOOR,
        max_sessions: int = MAX_SESSIONS,
        request_timeout: float = REQUEST_TIMEOUT,
        max_pending_requests: int = MAX_PENDING_REQUESTS,
        max_event_queue: int = MAX_EVENT_QUEUE,
        user_agent: str = "uacsta",
    ) -> None:
        self.hub = hub
        self.accounts = accounts
        self.require_authentication = require_authentication
        self.throttle = throttle if throttle is not None else AuthThrottle()
        nonces = NonceManager(nonce_secret or secrets.token_bytes(32))
        if digest_algorithms is None:
            self.digest = DigestServer(realm, nonces)
        else:
            self.digest = DigestServer(realm, nonces, tuple(digest_algorithms))
        self.min_se = min_se
        self.max_sessions = max_sessions
        self.request_timeout = request_timeout
        self.max_pending_requests = max_pending_requests
        self.max_event_queue = max_event_queue
        self._owns_ua = ua is None
        self.ua = ua or UserAgent(
            on_request=self.on_request, on_closed=self.on_closed, user_agent=user_agent
        )
        #: Sessions by Call-ID (unconfirmed ones included).
        self.sessions: dict[str, Tr87Session] = {}
        self._tasks: set[asyncio.Task[None]] = set()
        self._closing = False

    async def listen(self, address: str, ssl_context: ssl.SSLContext | None = None) -> Flow:
        """Listen on ``tcp:host:port``, ``tls:host:port`` (with ``ssl_context``) or ``udp:...``."""
        return await self.ua.listen(address, ssl_context=ssl_context)

    # --- helpers shared with sessions -----------------------------------------------------
    def spawn(self, coro: Coroutine[Any, Any, None]) -> None:
        task = asyncio.get_running_loop().create_task(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    def negotiate(self, request: Request) -> SessionExpires | None:
        try:
            answer = negotiate_session_timer_uas(request, min_se=self.min_se)
        except SipError:
            return None
        return answer.session_expires

    def session_timer_headers(self, request: Request) -> tuple[tuple[str, str], ...]:
        try:
            answer = negotiate_session_timer_uas(request, min_se=self.min_se)
        except SipError:
            return ()
        return answer.headers

    def acceptable_session_timer(self, server: ServerRequest) -> bool:
        """RFC 4028 §9: 422 (with Min-SE) when Session-Expires is too small, 400 if broken."""
        try:
            answer = negotiate_session_timer_uas(server.request, min_se=self.min_se)
        except SipError as exc:
            server.reply(400, f"Bad Session-Expires ({exc})", to_tag=generate_tag())
            return False
        if answer.status_code == 422:
            log.info("%s: Session-Expires below Min-SE %d", _peer(server.flow), self.min_se)
            server.reply(422, headers=answer.headers, to_tag=generate_tag())
            return False
        return True

    def acceptable_body(self, server: ServerRequest) -> bool:
        request = server.request
        if request.body and request.content_type != CSTA_CONTENT_TYPE:
            log.info(
                "%s: %s with %s refused", _peer(server.flow), request.method, request.content_type
            )
            server.reply(415, headers=(("Accept", CSTA_CONTENT_TYPE),), to_tag=generate_tag())
            return False
        return True

    # --- out-of-dialog requests ----------------------------------------------------------
    def on_request(self, server: ServerRequest) -> None:
        """The UserAgent's handler for requests outside any dialog."""
        method = server.request.method
        if method == "INVITE":
            self._invite(server)
        elif method == "CANCEL":
            self._cancel(server)
        elif method == "OPTIONS":
            server.reply(
                200,
                to_tag=generate_tag(),
                headers=(("Allow", ALLOW), ("Accept", CSTA_CONTENT_TYPE)),
            )
        elif method in ("INFO", "BYE", "UPDATE"):
            server.reply(481, to_tag=generate_tag())  # CSTA needs the dialog (TR/87)
        else:
            server.reply(405, to_tag=generate_tag(), headers=(("Allow", ALLOW),))

    def on_closed(self, flow: Flow) -> None:
        """The UserAgent's handler for closed TCP/TLS connections."""
        for session in list(self.sessions.values()):
            if session.flow == flow:
                log.info("%r: connection closed", session)
                self.end_session(session, send_bye=False, reason="connection closed")

    def _invite(self, server: ServerRequest) -> None:
        request = server.request
        peer = _peer(server.flow)
        if self._closing:
            server.reply(503, to_tag=generate_tag())
            return
        if request.call_id in self.sessions:
            server.reply(482, to_tag=generate_tag())  # a second INVITE for a session in set-up
            return
        if len(self.sessions) >= self.max_sessions:
            log.warning("refusing TR/87 client %s: %d sessions", peer, len(self.sessions))
            server.reply(503, to_tag=generate_tag(), headers=(("Retry-After", "60"),))
            return
        user: str | None = None
        if self.require_authentication:
            user = self._authenticate(server)
            if user is None:
                return
        if not self.acceptable_body(server) or not self.acceptable_session_timer(server):
            return
        flow = server.flow
        local_host = flow.local[0] if flow.local[0] not in ("0.0.0.0", "::", "") else None
        session = Tr87Session(
            gateway=self,
            flow=flow,
            call_id=request.call_id,
            user=user,
            local_tag=generate_tag(),
            contact=self.ua.contact(flow.transport, "uacsta", local_host),
            local_host=local_host,
        )
        session.line = line_of(request.to.uri)
        self.sessions[request.call_id] = session
        log.info(
            "TR/87 client %s user %s: INVITE %s (From %s)",
            peer,
            user or "-",
            request.call_id,
            request.from_.uri,
        )
        session.attached = True
        self.hub.client_attach(session, allowed_devices=self.accounts.allowed_devices(user))
        pending = _Pending(session, server, "INVITE")
        session.invite = pending
        session.handle_body(pending)

    def _authenticate(self, server: ServerRequest) -> str | None:
        request = server.request
        now = asyncio.get_running_loop().time()
        authorization = request.header("Authorization")
        if authorization is None:
            self._challenge(server, now, stale=False)
            return None
        # The digest ``uri`` is not compared with the Request-URI: clients (sipp among them)
        # put the bare host:port there; nonce integrity and nc replay checks still apply.
        # Blocks are checked for the claimed user before the password (uacsta.throttle).
        source = server.flow.remote[0]
        claimed = claimed_username(authorization)
        wait = self.throttle.blocked_for(source, claimed, now)
        if wait > 0:
            auth_log.warning(
                ("blocked", source),
                "TR/87 client %s user %r refused: blocked for %.0f s after repeated failures",
                source,
                claimed,
                wait,
            )
            server.reply(403, "Too Many Failed Attempts", to_tag=generate_tag())
            return None
        result = self.digest.verify(
            authorization, "INVITE", self.accounts.password_for, now, client=source
        )
        if result.status is AuthStatus.OK:
            self.throttle.success(source, result.username, now)
            return result.username
        if result.status is AuthStatus.STALE:
            self._challenge(server, now, stale=True)
        elif result.reason is FailureReason.BAD_NONCE:
            self._challenge(server, now, stale=False)
        else:
            auth_log.warning(
                ("refused", source),
                "TR/87 client %s user %s refused: %s (%s)",
                _peer(server.flow),
                result.username or "-",
                result.reason,
                result.detail,
            )
            blocked = self.throttle.failure(source, result.username, now)
            if blocked:
                auth_log.warning(
                    ("blocking", source),
                    "blocking %s for %.0f s after repeated TR/87 login failures",
                    self.throttle.describe_block(source, result.username),
                    blocked,
                )
            server.reply(403, to_tag=generate_tag())
        return None

    def _challenge(self, server: ServerRequest, now: float, *, stale: bool) -> None:
        challenges = self.digest.challenges(now, stale, client=server.flow.remote[0])
        headers = tuple(("WWW-Authenticate", v) for v in challenges)
        server.reply(401, to_tag=generate_tag(), headers=headers)

    def _cancel(self, server: ServerRequest) -> None:
        request = server.request
        session = self.sessions.get(request.call_id)
        invite = session.invite if session is not None else None
        if (
            session is None
            or invite is None
            or invite.server.request.top_via.branch != request.top_via.branch
        ):
            server.reply(481, to_tag=generate_tag())
            return
        server.reply(200)
        log.info("%r: INVITE cancelled", session)
        self.end_session(session, send_bye=False, reason="CANCEL")

    # --- ending sessions -------------------------------------------------------------------
    def end_session(self, session: Tr87Session, *, send_bye: bool, reason: str = "") -> None:
        """Clean up a session now; a BYE (when asked and possible) goes out in the background."""
        if session.closed:
            return
        log.info("%r: session ended (%s)", session, reason or "-")
        if self.sessions.get(session.call_id) is session:
            del self.sessions[session.call_id]
        usage = session.usage
        session.shutdown()
        if usage is None:
            return
        if send_bye and usage.dialog.state is not DialogState.TERMINATED:
            self.spawn(self._bye(usage))
        else:
            self.ua.remove_usage(usage)

    async def _bye(self, usage: DialogUsage) -> None:
        try:
            response = await asyncio.wait_for(self.ua.dialog_request(usage, "BYE"), BYE_TIMEOUT)
            log.debug("BYE %s answered %d", usage.dialog.call_id, response.status_code)
        except TimeoutError:
            log.info("BYE %s not answered", usage.dialog.call_id)
        finally:
            self.ua.remove_usage(usage)

    async def close(self) -> None:
        """BYE to every client, release their monitors, close our listeners (if ours)."""
        self._closing = True
        for session in list(self.sessions.values()):
            self.end_session(session, send_bye=True, reason="server shutdown")
        if self._tasks:
            await asyncio.gather(*list(self._tasks), return_exceptions=True)
        if self._owns_ua:
            await self.ua.close()


def _peer(flow: Flow) -> str:
    return f"{flow.transport}:{flow.remote[0]}:{flow.remote[1]}"


__all__ = ["CSTA_CONTENT_TYPE", "Tr87Gateway", "Tr87Session"]
