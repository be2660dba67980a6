"""A SIP endpoint on asyncio: the thin driver of :class:`uacsta.sip.useragent.UserAgentCore`.

It reads, feeds, writes and schedules: :class:`uacsta.net.transport.SipTransport` carries bytes,
the sans-IO core decides (transactions, in-dialog dispatch and 481, per-peer limits, 2xx
re-sends until ACK, callers' deadlines, registration expiry), and one ``loop.call_at`` follows
the core's earliest timer. Requests go out with :meth:`UserAgent.request`: outside a dialog or
in one, awaited or handed to ``then=`` while the response is read. Incoming requests outside a
dialog go to ``on_request``; requests in a dialog to the handler of its :class:`DialogUsage`.
"""

from __future__ import annotations

import asyncio
import contextvars
import functools
import logging
import math
import ssl
from collections.abc import Callable, Coroutine, Generator
from dataclasses import dataclass, field
from typing import Any, overload

from uacsta.net.errors import TransportError
from uacsta.net.flow import Flow, TransportLimits
from uacsta.net.transport import SipTransport
from uacsta.ratelog import RateLimitedLog
from uacsta.sip.dialog import Dialog, DialogSet
from uacsta.sip.helpers import build_response
from uacsta.sip.message import Message, Request, Response
from uacsta.sip.registrar import Binding, Registrar
from uacsta.sip.transaction import TimerSettings, TransactionKey, TransactionLayer
from uacsta.sip.uri import Via
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

__all__ = ["DialogUsage", "PendingRequest", "ServerRequest", "UserAgent", "flow_peer"]

log = logging.getLogger("uacsta.net.useragent")
#: One line per request over a peer's limit would let that peer flood the log.
busy_log = RateLimitedLog(log)

#: The one loop timer fires on this grid (seconds): SIP timers and callers' time limits
#: due within one slot are handled in one wake-up. At thousands of requests a second most
#: deadlines (timer E of an answered request, timer K) need nothing done; a wake-up each
#: would cost more than the requests. Retransmissions are at most this much late.
TIMER_GRANULARITY = 0.05

Destination = Flow | tuple[str, str, int]


class PendingRequest(Coroutine[Any, Any, Response]):
    """:meth:`UserAgent.request` awaited: the final response; ``flow`` is the flow the
    request went out on (set once sent; None when it could not be sent), so a dialog can
    keep using that connection. A coroutine: await it, or hand it to ``create_task``."""

    __slots__ = ("_coro", "flow")

    def __init__(self, run: Callable[[PendingRequest], Coroutine[Any, Any, Response]]) -> None:
        self.flow: Flow | None = None
        self._coro = run(self)

    def __await__(self) -> Generator[Any, None, Response]:
        return self._coro.__await__()

    def send(self, value: Any) -> Any:
        return self._coro.send(value)

    def throw(self, *args: Any) -> Any:
        return self._coro.throw(*args)

    def close(self) -> None:
        self._coro.close()


@dataclass(eq=False)
class ServerRequest:
    """An incoming request and the way to answer it (once, finally; 1xx any number)."""

    request: Request
    flow: Flow
    _ua: UserAgent
    _key: TransactionKey | None
    answered: bool = False

    def respond(self, response: Response) -> None:
        if self._key is None:
            return  # ACK: nothing to answer
        if response.status_code >= 200:
            if self.answered:
                return
            self.answered = True
        ua = self._ua
        ua._handle(ua.core.respond(self._key, response, ua._now()))

    def reply(self, status_code: int, reason: str | None = None, **kwargs: object) -> Response:
        response = build_response(self.request, status_code, reason, **kwargs)  # type: ignore[arg-type]
        self.respond(response)
        return response


RequestHandler = Callable[[ServerRequest], None]
ClosedHandler = Callable[[Flow], None]
#: ``tracer("in" | "out", message, flow)``: sees every message, for diagnostics.
Tracer = Callable[[str, Message, Flow], None]
#: Called with a request's final response, or the exception that stands for it
#: (:class:`TimeoutError` past the caller's limit, :class:`asyncio.CancelledError` at close).
ResponseCallback = Callable[[Response | BaseException], None]
#: Called with registrations that ran out (already removed from the registrar).
ExpiredHandler = Callable[[tuple[Binding, ...]], None]


@dataclass(eq=False)
class DialogUsage:
    """A dialog plus where its requests go and who handles requests that arrive in it."""

    dialog: Dialog
    flow: Flow
    on_request: RequestHandler | None = None
    #: Our address as this peer knows it (Via/Contact host); None: the listener's.
    local_host: str | None = None
    via: Via | None = None
    extra: dict[str, object] = field(default_factory=dict)


class UserAgent:
    def __init__(
        self,
        *,
        on_request: RequestHandler,
        on_closed: ClosedHandler | None = None,
        limits: TransportLimits | None = None,
        timers: TimerSettings | None = None,
        tls_client_context: ssl.SSLContext | None = None,
        user_agent: str = "uacsta",
        max_transactions: int = 50_000,
        tracer: Tracer | None = None,
        max_transactions_per_peer: int = 1000,
        registrar: Registrar | None = None,
        on_expired: ExpiredHandler | None = None,
    ) -> None:
        self.tracer = tracer
        self.user_agent = user_agent
        self.core: UserAgentCore[Flow, DialogUsage] = UserAgentCore(
            timers=timers,
            max_transactions=max_transactions,
            max_transactions_per_peer=max_transactions_per_peer,
            user_agent=user_agent,
            registrar=registrar,
            logger=log,
        )
        self.transport = SipTransport(
            self._on_message,
            on_closed=on_closed,
            limits=limits,
            tls_client_context=tls_client_context,
        )
        self._on_request = on_request
        self._on_expired = on_expired
        self._waiters: dict[TransactionKey, asyncio.Future[Response]] = {}
        #: ``then=`` callers, each with the context it was called in.
        self._callbacks: dict[TransactionKey, tuple[ResponseCallback, contextvars.Context]] = {}
        self._timer: asyncio.TimerHandle | None = None
        self._timer_at: float | None = None
        #: How many :meth:`_handle` calls are running (a handler answering inside one nests a
        #: second): the timer is re-armed once, when the outermost returns.
        self._handling = 0
        self._loop: asyncio.AbstractEventLoop | None = None

    @property
    def layer(self) -> TransactionLayer:
        return self.core.layer

    @property
    def dialogs(self) -> DialogSet:
        return self.core.dialogs

    @property
    def usages(self) -> dict[Any, DialogUsage]:
        return self.core.usages

    # ------------------------------------------------------------------ setup
    async def listen(self, address: str, *, ssl_context: ssl.SSLContext | None = None) -> Flow:
        self._loop = asyncio.get_running_loop()
        listener = await self.transport.listen(address, ssl_context=ssl_context)
        self._rearm()  # an attached registrar may already hold bindings
        return Flow(listener.transport, listener.local, ("", 0))

    def via(self, transport: str, host: str | None = None) -> Via:
        """Our Via (without branch) for requests over ``transport``.

        ``host``: the address the peer knows us by (a phone: the host it registered to);
        needed when the listener is bound to a wildcard address.
        """
        listener = self.transport.listener(transport.lower())
        return Via(
            transport=transport.upper(),
            host=host or _advertised(listener.host),
            port=listener.port,
            params=(("rport", None),),
        )

    def contact(self, transport: str, user: str = "uacsta", host: str | None = None) -> str:
        listener = self.transport.listener(transport.lower())
        param = "" if transport.lower() == "udp" else f";transport={transport.lower()}"
        hostpart = _host_for_uri(host or _advertised(listener.host))
        return f"<sip:{user}@{hostpart}:{listener.port}{param}>"

    async def flow_to(self, transport: str, host: str, port: int) -> Flow:
        """A flow to an address for requests sent with ``then=`` (see
        :meth:`SipTransport.flow_to`); raises :class:`FlowClosed` when it cannot be made."""
        self._loop = asyncio.get_running_loop()
        return await self.transport.flow_to(transport, host, port)

    async def close(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
        self.core.abandon()
        self.core.registrar = None  # a successor user agent serves its expiry
        for waiter in self._waiters.values():
            if not waiter.done():
                waiter.cancel()
        for key in list(self._callbacks):
            self._call_back(key, asyncio.CancelledError())
        await self.transport.close()

    # ------------------------------------------------------------------ client side
    @overload
    def request(
        self,
        request: Request | str,
        dest: Destination | DialogUsage,
        *,
        then: None = None,
        timeout: float | None = None,
        body: bytes = b"",
        content_type: str | None = None,
        extra_headers: tuple[tuple[str, str], ...] = (),
    ) -> PendingRequest: ...

    @overload
    def request(
        self,
        request: Request | str,
        dest: Flow | DialogUsage,
        *,
        then: ResponseCallback,
        timeout: float | None = None,
        body: bytes = b"",
        content_type: str | None = None,
        extra_headers: tuple[tuple[str, str], ...] = (),
    ) -> None: ...

    def request(
        self,
        request: Request | str,
        dest: Destination | DialogUsage,
        *,
        then: ResponseCallback | None = None,
        timeout: float | None = None,
        body: bytes = b"",
        content_type: str | None = None,
        extra_headers: tuple[tuple[str, str], ...] = (),
    ) -> PendingRequest | None:
        """Send a request; its final response is awaited, or handed to ``then``.

        ``dest``: a :class:`Flow` or ``(transport, host, port)`` with a ready ``request``
        (its Via needs a branch), or a :class:`DialogUsage` with a method name: the request
        is built in the dialog (``body``, ``content_type``, ``extra_headers``), goes over the
        usage's flow, the dialog sees the response before the caller, and a 2xx to a
        re-INVITE is ACKed here.

        Without ``then``: an awaitable of the final response (a 408/503 is synthesized on
        time-out or transport failure; :class:`TimeoutError` past ``timeout``); its
        ``flow`` is the flow the request went out on once awaited (None: could not send).
        With ``then`` (``dest`` an existing flow or a usage): ``then`` gets the final
        response, or :class:`TimeoutError` / :class:`asyncio.CancelledError` (close), at
        once while the message carrying it is handled, in the caller's context: no task or
        future per request, and the answer is acted on before what the peer sent after it.
        ``then`` may run before this returns (the flow failed)."""
        if then is not None and isinstance(dest, DialogUsage) and isinstance(request, str):
            # The relay path (a CSTA request in INFO): no partial, no awaitable.
            key, events = self.core.send_in_dialog(
                dest.dialog,
                request,
                now=self._now(),
                via=self._usage_via(dest),
                body=body,
                content_type=content_type,
                extra_headers=extra_headers,
                timeout=timeout,
            )
            self._callbacks[key] = (then, contextvars.copy_context())
            self._handle(events)
            return None
        start: Callable[..., tuple[TransactionKey, list[Event]]]
        if isinstance(dest, DialogUsage):
            if not isinstance(request, str):
                raise TypeError("in a dialog, pass the method name: the dialog builds the request")
            start = functools.partial(
                self.core.send_in_dialog,
                dest.dialog,
                request,
                via=self._usage_via(dest),
                body=body,
                content_type=content_type,
                extra_headers=extra_headers,
                timeout=timeout,
            )
            flow: Destination = dest.flow
        else:
            if isinstance(request, str) or body or content_type is not None or extra_headers:
                raise TypeError("outside a dialog, pass a ready Request")
            flow = dest
            transport = dest.transport if isinstance(dest, Flow) else dest[0]
            start = functools.partial(
                self.core.send_request,
                request,
                dest if isinstance(dest, Flow) else None,
                reliable=transport != "udp",
                timeout=timeout,
            )
        if then is None:
            return PendingRequest(functools.partial(self._awaited, start, flow))
        if not isinstance(flow, Flow):
            raise TypeError("then= needs an existing flow or a dialog usage")
        key, events = start(now=self._now())
        self._callbacks[key] = (then, contextvars.copy_context())
        self._handle(events)
        return None

    async def _awaited(
        self,
        start: Callable[..., tuple[TransactionKey, list[Event]]],
        dest: Destination,
        pending: PendingRequest,
    ) -> Response:
        """Start the request; a new connection is awaited and a failed first send known
        here, so ``pending.flow`` says where it went."""
        loop = asyncio.get_running_loop()
        self._loop = loop
        key, events = start(now=loop.time())
        waiter: asyncio.Future[Response] = loop.create_future()
        self._waiters[key] = waiter
        first = next((e for e in events if isinstance(e, Transmit) and e.key == key), None)
        if first is not None:
            events = [e for e in events if e is not first]
            try:
                if isinstance(dest, Flow):
                    self.transport.send(first.message, dest, first.data)
                    flow = dest
                else:
                    flow = await self.transport.send_to(first.message, *dest)
                    self.core.connected(key, flow)
                pending.flow = flow
                if self.tracer is not None:
                    self.tracer("out", first.message, flow)
            except (TransportError, OSError, ssl.SSLError) as exc:
                log.info("sending %s to %s failed: %s", first.message.start_line(), dest, exc)
                events = [*self.core.send_failed(first, loop.time()), *events]
        self._handle(events)
        try:
            return await waiter
        finally:
            self._waiters.pop(key, None)

    # ------------------------------------------------------------------ dialogs
    def add_usage(self, usage: DialogUsage) -> None:
        """Register a dialog; from now on only ``usage.flow`` may send requests in it."""
        self.core.add_dialog(usage.dialog, usage, usage.flow)

    def remove_usage(self, usage: DialogUsage) -> None:
        self.core.remove_dialog(usage.dialog)

    def _usage_via(self, usage: DialogUsage) -> Via:
        """The usage's Via template, built once (same transport and address every time)."""
        via = usage.via
        if via is None:
            via = usage.via = self.via(usage.flow.transport, usage.local_host)
        return via

    def ack_2xx(self, usage: DialogUsage, response: Response) -> None:
        """ACK a 2xx to our INVITE in ``usage`` (the core re-sends it if the 2xx comes again)."""
        self._handle([self.core.ack_2xx(usage.dialog, response, via=self._usage_via(usage))])

    # ------------------------------------------------------------------ driving the core
    def _now(self) -> float:
        loop = self._loop
        if loop is None:
            loop = self._loop = asyncio.get_running_loop()
        return loop.time()

    def _on_message(self, message: Message, flow: Flow) -> None:
        if self.tracer is not None:
            self.tracer("in", message, flow)
        self._handle(self.core.receive(message, flow, self._now()))

    def _handle(self, events: list[Event]) -> None:
        self._handling += 1
        try:
            self._handle_events(events)
        finally:
            self._handling -= 1
        if not self._handling:
            self._rearm()

    def _handle_events(self, events: list[Event]) -> None:
        for event in events:
            match event:
                case Transmit():
                    self._transmit(event)
                case DeliverRequest():
                    self._deliver(event)
                case FinalResponse():
                    self._resolve(event.key, event.response)
                case Timeout():
                    self._resolve(event.key, TimeoutError())
                case Busy():
                    busy_log.warning(
                        ("busy", event.peer),
                        "%s has %d open transactions: 503",
                        event.peer,
                        event.open,
                    )
                case BindingsExpired():
                    if self._on_expired is not None:
                        self._on_expired(event.bindings)

    def _transmit(self, event: Transmit[Flow]) -> None:
        flow = event.flow
        if flow is None:
            log.debug("no flow to transmit %s", event.message.start_line())
            return
        try:
            self.transport.send(event.message, flow, event.data)
            if self.tracer is not None:
                self.tracer("out", event.message, flow)
        except TransportError as exc:
            log.info("transmit on %s failed: %s", flow, exc)
            self._handle(self.core.send_failed(event, self._now()))

    def _deliver(self, event: DeliverRequest[Flow, DialogUsage]) -> None:
        server = ServerRequest(event.request, event.flow, self, event.key)
        handler = self._on_request if event.owner is None else event.owner.on_request
        if handler is None:
            server.reply(200)
            return
        try:
            handler(server)
        except Exception:
            log.exception("handler failed for %s", server.request.method)
            if not server.answered:
                server.reply(500)

    def _resolve(self, key: TransactionKey, result: Response | BaseException) -> None:
        waiter = self._waiters.get(key)
        if waiter is not None:
            if not waiter.done():
                if isinstance(result, Response):
                    waiter.set_result(result)
                else:
                    waiter.set_exception(result)
        elif key in self._callbacks:
            self._call_back(key, result)

    def _call_back(self, key: TransactionKey, result: Response | BaseException) -> None:
        """Hand a ``then=`` caller its result, once; its failure is its own."""
        done, context = self._callbacks.pop(key)
        try:
            context.run(done, result)
        except Exception:
            log.exception("response handler failed for %s", type(result).__name__)

    def _rearm(self) -> None:
        """Keep the one loop timer at or before the core's earliest deadline. A timer armed
        for an earlier moment is left alone (it fires, finds nothing due, re-arms): moving it
        on every answered request would cost a timer cancel and create per message."""
        deadline = self.core.get_timer()
        if deadline is None:
            return
        slot = math.ceil(deadline / TIMER_GRANULARITY) * TIMER_GRANULARITY
        deadline = slot if slot >= deadline else slot + TIMER_GRANULARITY
        if self._timer is not None and self._timer_at is not None:
            if self._timer_at <= deadline:
                return
            self._timer.cancel()
        loop = self._loop or asyncio.get_running_loop()
        self._timer_at = deadline
        self._timer = loop.call_at(deadline, self._fire)

    def _fire(self) -> None:
        self._timer = None
        self._timer_at = None
        self._handle(self.core.handle_timer(self._now()))


def _advertised(host: str) -> str:
    """The address to put in Via/Contact: a wildcard listener advertises loopback only when
    nothing better is known; the server assembly passes a public address via settings."""
    return "127.0.0.1" if host in ("0.0.0.0", "") else ("::1" if host == "::" else host)


def _host_for_uri(host: str) -> str:
    return f"[{host}]" if ":" in host else host
