"""uaCSTA over SIP for CTI clients (ECMA TR/87): uacsta is the UAS, the CTI application the UAC.

One INVITE dialog is one client of the switching function. The uaCSTA rules (content types
and 415, Allow, the CSTA request answered in the 2xx of its INVITE/INFO, UPDATE and re-INVITE
refreshes and 491, BYE, OPTIONS, RFC 4028 negotiation and 422, our refreshing re-INVITE for a
client without ``Supported: timer``, an overdue refresh ending the session, requests waiting
for the switching function: at most ``max_pending_requests``, answered ``timeout`` after
``request_timeout``) are :class:`~uacsta.tr87.CstaDialog`'s (``Role.CLIENT_GATEWAY``). This
driver keeps what is the gateway's:

- Digest authentication (RFC 3261 §22) against :class:`~uacsta.accounts.ClientAccounts`
  and the login throttle, by the rule the phones' REGISTER follows too
  (:mod:`uacsta.sipauth`): no credentials → 401, wrong → 403. Requests inside an established
  dialog are not challenged again. The account's device restriction applies to the dialog.
- Sessions by Call-ID and their limits: sessions, events queued for the client (events go
  as INFO one at a time, in order; a 408/481 answer or a closed connection ends the session
  and releases its monitors).
- The line of a session: the INVITE's To URI or the ``lcs:line`` the client names; requests
  naming no device mean it. CANCEL of an unanswered INVITE.
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
from uacsta.hub import SwitchHub
from uacsta.net.dialogdriver import DialogDriver
from uacsta.net.flow import Flow
from uacsta.net.useragent import DialogUsage, ServerRequest, UserAgent
from uacsta.ratelog import RateLimitedLog
from uacsta.sip.dialog import MIN_SE_FLOOR, Dialog, DialogState
from uacsta.sip.digest import Algorithm, DigestServer, NonceManager
from uacsta.sip.errors import SipError
from uacsta.sip.helpers import generate_tag
from uacsta.sip.message import Request
from uacsta.sip.uri import AbsoluteUri, SipUri
from uacsta.sipauth import Authenticated, Blocked, DigestGuard, Failed
from uacsta.switch.callrecord import CallNotice
from uacsta.switch.function import ToClient, event_to_client
from uacsta.switch.router import SUBJECT_FIELDS
from uacsta.throttle import AuthThrottle
from uacsta.tr87 import (
    ALLOW as ALLOW_BY_ROLE,
)
from uacsta.tr87 import (
    CSTA_TYPE,
    CstaDialog,
    DialogEvent,
    Established,
    LinesChanged,
    Lost,
    PeerRequest,
    Role,
    State,
)

log = logging.getLogger("uacsta.gateways.tr87")

#: For the lines a stranger can trigger (refused INVITEs, blocks).
auth_log = RateLimitedLog(log)

CSTA_CONTENT_TYPE = CSTA_TYPE
ALLOW = ALLOW_BY_ROLE[Role.CLIENT_GATEWAY]
#: Default bound on waiting for the switching function's answer to one client request.
REQUEST_TIMEOUT = 10.0
MAX_SESSIONS = 1000
#: Client requests in flight per session; more get a resourceBusy CSTAErrorCode at once.
MAX_PENDING_REQUESTS = 64
#: Events waiting for the client per session; a client this far behind is disconnected.
MAX_EVENT_QUEUE = 2000
#: How long close() waits for the clients' answers to our BYE.
BYE_TIMEOUT = 2.0


def warning_header(text: str) -> str:
    """A ``Warning`` value (RFC 3261 §20.43, code 399: miscellaneous) for a refusal reason:
    printable ASCII only, no quote or backslash, at most 200 characters (the reason may hold
    what a client sent; nothing of it may end the header)."""
    clean = "".join(ch for ch in text if " " <= ch <= "~" and ch not in '"\\')
    return f'399 uacsta "{clean[:200]}"'


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


@dataclass(frozen=True, eq=False, slots=True)
class _Invoke:
    """A client request as the hub hands it back with its answer (the dialog keeps its
    deadline and the limit of requests waiting)."""

    request: Request
    service: str


@dataclass(eq=False)
class Tr87Session:
    """One TR/87 dialog: the client the switching function sees (the hub's ``ClientSink``)."""

    gateway: Tr87Gateway
    flow: Flow
    call_id: str
    user: str | None
    local_tag: str
    contact: str
    local_host: str | None
    dialog: CstaDialog
    #: The line the session is about: the INVITE's To URI, or the ``lcs:line`` a
    #: Microsoft-style client names; the device of its requests that name none.
    line: str | None = None
    attached: bool = False
    closed: bool = False
    #: The dialog-creating INVITE (CANCEL target while the driver has it unanswered).
    invite: ServerRequest | None = None
    driver: DialogDriver = field(init=False)
    _queue: asyncio.Queue[m.CstaMessage] = field(default_factory=asyncio.Queue)
    _sender: asyncio.Task[None] | None = None

    def __post_init__(self) -> None:
        self.driver = DialogDriver(
            self.dialog, self.gateway.ua, self._act, contact=self.contact, local_tag=self.local_tag
        )

    def __repr__(self) -> str:
        return (
            f"<TR/87 client {self.user or '-'}@{self.flow.remote[0]}:{self.flow.remote[1]}"
            f" {self.call_id}>"
        )

    @property
    def usage(self) -> DialogUsage | None:
        """The SIP dialog, from the 200 to the INVITE on."""
        return self.driver.usage

    @property
    def confirmed(self) -> bool:
        return self.usage is not None

    @property
    def edition(self) -> codec.Edition:
        """The client's edition (ED3 until it sent a document): ours toward it."""
        return self.dialog.edition

    # --- from the switching function ----------------------------------------------------
    def deliver(self, action: ToClient) -> None:
        if self.closed:
            return
        invoke = action.invoke
        if isinstance(invoke, _Invoke):
            self._answer(invoke, action.message, action.detail)
            return
        if self._queue.qsize() >= self.gateway.max_event_queue:
            log.warning("%r: %d events not taken by the client, closing", self, self._queue.qsize())
            self.gateway.end_session(self, send_bye=True, reason="event queue overflow")
            return
        self._queue.put_nowait(action.message)

    def deliver_notice(self, notice: CallNotice) -> None:
        """TR/87 clients get the phone's own events; normalized notices are the JSON API's."""

    def deliver_event(self, event: m.CstaEvent, xref: str) -> None:
        self.deliver(event_to_client(self, event, xref))

    def _answer(self, invoke: _Invoke, message: m.CstaMessage, detail: str | None) -> None:
        """The switching function's answer to a client request. CSTAErrorCode has no text,
        so why a request was refused goes in the INFO answer's ``Warning: 399`` header
        (RFC 3261 §20.43)."""
        warned: tuple[tuple[str, str], ...] = ()
        if detail and isinstance(message, m.CSTAErrorCode):
            log.info("%r: %s refused: %s", self, invoke.service, detail)
            if invoke.request.method == "INFO":
                warned = (("Warning", warning_header(detail)),)
        self.dialog.answer_peer(invoke.request, message, headers=warned)
        self.driver.pump()

    # --- the dialog's events -------------------------------------------------------------
    def _act(self, event: DialogEvent) -> None:
        match event:
            case PeerRequest():
                self._to_switch(event.request, event.message)
            case Established(request=Request() as invite):
                self._confirm(invite)
            case LinesChanged(lines=[line, *_]) if line != self.line:
                log.info("%r: controls line %r (lcs:line)", self, line[:80])
                self.line = line
            case Lost():
                self.gateway.end_session(self, send_bye=event.send_bye, reason=event.reason)

    def _to_switch(self, request: Request, message: m.CstaMessage) -> None:
        if not self.driver.unanswered(request):
            return
        if self.line is not None and isinstance(message, m.CstaRequest):
            message = with_default_device(message, self.line)
        invoke = _Invoke(request, type(message).__name__)
        log.info("%r: %s %s", self, request.method, invoke.service)
        self.gateway.hub.client_request(self, invoke, message)

    def _confirm(self, invite: Request) -> None:
        """The 200 to the INVITE went out: the SIP dialog exists from now on."""
        dialog = Dialog.from_uas(
            invite,
            self.local_tag,
            self.contact,
            local_via=self.gateway.ua.via(self.flow.transport, self.local_host),
            logger=log,
        )
        usage = DialogUsage(
            dialog, self.flow, on_request=self._on_request, local_host=self.local_host
        )
        self.driver.usage = usage
        self.gateway.ua.add_usage(usage)
        self._sender = asyncio.get_running_loop().create_task(self._send_events())
        log.info("%r: session established (%s)", self, self.edition.name)

    async def _send_events(self) -> None:
        """Events and switch requests to the client, one INFO at a time (keeps their order)."""
        while not self.closed and self.usage is not None:
            message = await self._queue.get()
            body = codec.encode(message, self.edition)
            try:
                pending = self.gateway.ua.request(
                    "INFO", self.usage, body=body, content_type=CSTA_CONTENT_TYPE
                )
                assert pending is not None
                response = await pending
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

    def _on_request(self, server: ServerRequest) -> None:
        """Requests in the dialog: the uaCSTA dialog answers them."""
        if self.closed:
            server.reply(481)
            return
        self.driver.receive(server)

    # --- the end -----------------------------------------------------------------------------
    def shutdown(self) -> None:
        """Stop everything of this session (idempotent): timers, waiting requests, monitors."""
        if self.closed:
            return
        self.closed = True
        self.driver.close()
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
        #: INVITE authentication: one rule with the phones' REGISTER (uacsta.sipauth).
        self.guard = DigestGuard(self.digest, self.throttle)
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
        flow = server.flow
        local_host = flow.local[0] if flow.local[0] not in ("0.0.0.0", "::", "") else None
        dialog = CstaDialog(
            role=Role.CLIENT_GATEWAY,
            min_se=self.min_se,
            csta_timeout=self.request_timeout,
            max_peer_requests=self.max_pending_requests,
            logger=_Prefixed(log, {"prefix": f"<TR/87 client {_peer(flow)} {request.call_id}>"}),
        )
        session = Tr87Session(
            gateway=self,
            dialog=dialog,
            flow=flow,
            call_id=request.call_id,
            user=user,
            local_tag=generate_tag(),
            contact=self.ua.contact(flow.transport, "uacsta", local_host),
            local_host=local_host,
        )
        session.line = line_of(request.to.uri)
        session.invite = server
        session.driver.feed(server)
        if dialog.state is not State.READY:  # refused (415, 422, 400): no session
            session.driver.pump()
            return
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
        session.driver.pump()

    def _authenticate(self, server: ServerRequest) -> str | None:
        now = asyncio.get_running_loop().time()
        source = server.flow.remote[0]
        # The digest ``uri`` is not compared with the Request-URI: clients (sipp among them)
        # put the bare host:port there; nonce integrity and nc replay checks still apply.
        verdict = self.guard.check(
            server.request.header("Authorization"),
            "INVITE",
            source,
            now,
            self.accounts.password_for,
        )
        if isinstance(verdict, Authenticated):
            return verdict.user
        if isinstance(verdict, Blocked):
            auth_log.warning(
                ("blocked", source),
                "TR/87 client %s user %r refused: blocked for %.0f s after repeated failures",
                source,
                verdict.account,
                verdict.wait,
            )
        elif isinstance(verdict, Failed):
            auth_log.warning(
                ("refused", source),
                "TR/87 client %s user %s refused: %s (%s)",
                _peer(server.flow),
                verdict.user or "-",
                verdict.reason,
                verdict.detail,
            )
            if verdict.block:
                auth_log.warning(
                    ("blocking", source),
                    "blocking %s for %.0f s after repeated TR/87 login failures",
                    verdict.block_holds,
                    verdict.block,
                )
        server.reply(verdict.status, verdict.phrase, to_tag=generate_tag(), headers=verdict.headers)
        return None

    def _cancel(self, server: ServerRequest) -> None:
        request = server.request
        session = self.sessions.get(request.call_id)
        invite = session.invite if session is not None else None
        if (
            session is None
            or invite is None
            or not session.driver.unanswered(invite.request)
            or invite.request.top_via.branch != request.top_via.branch
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
            pending = self.ua.request("BYE", usage)
            assert pending is not None
            response = await asyncio.wait_for(pending, BYE_TIMEOUT)
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


class _Prefixed(logging.LoggerAdapter[logging.Logger]):
    """The dialog's log lines name the session they are about."""

    def process(self, msg: Any, kwargs: Any) -> tuple[Any, Any]:
        return f"{self.extra['prefix'] if self.extra else ''}: {msg}", kwargs


def _peer(flow: Flow) -> str:
    return f"{flow.transport}:{flow.remote[0]}:{flow.remote[1]}"


__all__ = ["CSTA_CONTENT_TYPE", "Tr87Gateway", "Tr87Session"]
