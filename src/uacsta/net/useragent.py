"""A SIP endpoint on asyncio: the transport, the transaction layer and dialogs, driven together.

Thin glue (read, feed, write, schedule): :class:`uacsta.net.transport.SipTransport` carries
bytes, :class:`uacsta.sip.transaction.TransactionLayer` decides, and one ``loop.call_at``
follows the layer's earliest timer. Requests go out with :meth:`UserAgent.request` (awaits
the final response: a 408/503 is synthesized on timeout or transport failure, never an
exception). Incoming requests outside a dialog go to ``on_request``; requests inside a
dialog to the handler registered for that dialog; unknown dialogs get 481 (RFC 3261 §12.2.2),
and so do requests for a known dialog from another flow than the usage's (:func:`flow_peer`:
the UDP source address and port, or the TCP/TLS connection), before they touch the dialog.
"""

from __future__ import annotations

import asyncio
import contextlib
import contextvars
import functools
import heapq
import itertools
import logging
import math
import ssl
from collections import Counter
from collections.abc import Callable, Coroutine, Generator
from dataclasses import dataclass, field
from typing import Any, overload

from uacsta.net.errors import TransportError
from uacsta.net.flow import Flow, TransportLimits
from uacsta.net.transport import SipTransport
from uacsta.ratelog import RateLimitedLog
from uacsta.sip.dialog import Dialog, DialogCheck, DialogId, DialogSet
from uacsta.sip.helpers import build_response, generate_branch
from uacsta.sip.message import Message, Request, Response
from uacsta.sip.transaction import (
    DeliverRequest,
    DeliverResponse,
    LayerAction,
    Terminated,
    TimerSettings,
    TransactionKey,
    TransactionLayer,
    TransactionTimeout,
    Transmit,
    TransportFailed,
    server_key,
)
from uacsta.sip.uri import Via

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

    def __init__(self) -> None:
        self.flow: Flow | None = None
        self._coro: Coroutine[Any, Any, Response] | None = None

    def __await__(self) -> Generator[Any, None, Response]:
        assert self._coro is not None
        return self._coro.__await__()

    def send(self, value: Any) -> Any:
        assert self._coro is not None
        return self._coro.send(value)

    def throw(self, *args: Any) -> Any:
        assert self._coro is not None
        return self._coro.throw(*args)

    def close(self) -> None:
        if self._coro is not None:
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
        self._ua._send_response(self._key, response)
        if self.request.method == "INVITE" and response.is_success and not self.flow.is_stream:
            self._ua._retransmit_2xx(response, self.flow)

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


@dataclass(eq=False)
class DialogUsage:
    """A dialog plus where its requests go and who handles requests that arrive in it."""

    dialog: Dialog
    flow: Flow
    on_request: RequestHandler | None = None
    #: Our address as this peer knows it (Via/Contact host); None: the listener's.
    local_host: str | None = None
    last_ack: Request | None = None
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
    ) -> None:
        self.tracer = tracer
        self.max_transactions_per_peer = max_transactions_per_peer
        self._per_peer: Counter[str] = Counter()
        self._peer_of: dict[TransactionKey, str] = {}
        self.transport = SipTransport(
            self._on_message,
            on_closed=self._on_closed,
            limits=limits,
            tls_client_context=tls_client_context,
        )
        self.layer = TransactionLayer(timers=timers, max_transactions=max_transactions)
        self.dialogs = DialogSet()
        self.usages: dict[DialogId, DialogUsage] = {}
        self.user_agent = user_agent
        self._on_request = on_request
        self._on_closed_cb = on_closed
        self._flows: dict[TransactionKey, Flow] = {}
        self._waiters: dict[TransactionKey, asyncio.Future[Response]] = {}
        #: :meth:`request_then` callers, each with the context it was called in.
        self._callbacks: dict[TransactionKey, tuple[ResponseCallback, contextvars.Context]] = {}
        self._timer: asyncio.TimerHandle | None = None
        self._timer_at: float | None = None
        #: Callers' own time limits (a CSTA answer in 5 s, shorter than Timer F): a heap of
        #: (deadline, seq, key) served by the one loop timer, not a timer per request.
        self._deadlines: list[tuple[float, int, TransactionKey]] = []
        self._seq = itertools.count()
        self._loop: asyncio.AbstractEventLoop | None = None
        #: 2xx to INVITE over UDP, re-sent until the ACK arrives (RFC 3261 §13.3.1.4).
        self._unacked: dict[tuple[str, int], asyncio.TimerHandle] = {}

    # ------------------------------------------------------------------ setup
    async def listen(self, address: str, *, ssl_context: ssl.SSLContext | None = None) -> Flow:
        self._loop = asyncio.get_running_loop()
        listener = await self.transport.listen(address, ssl_context=ssl_context)
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

    async def close(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
        for handle in self._unacked.values():
            handle.cancel()
        self._unacked.clear()
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
        if isinstance(dest, DialogUsage):
            if not isinstance(request, str):
                raise TypeError("in a dialog, pass the method name: the dialog builds the request")
            usage = dest
            message = usage.dialog.create_request(
                request,
                branch=generate_branch(),
                body=body,
                content_type=content_type,
                extra_headers=(*extra_headers, ("User-Agent", self.user_agent)),
                via=self._usage_via(usage),
            )
            if then is not None:
                self._send_then(message, usage.flow, self._seen_in(usage, then), timeout)
                return None
            pending = PendingRequest()
            pending._coro = self._in_dialog(usage, message, pending, timeout)
            return pending
        if isinstance(request, str) or body or content_type is not None or extra_headers:
            raise TypeError("outside a dialog, pass a ready Request")
        if then is not None:
            if not isinstance(dest, Flow):
                raise TypeError("then= needs an existing flow or a dialog usage")
            self._send_then(request, dest, then, timeout)
            return None
        pending = PendingRequest()
        pending._coro = self._send_awaited(request, dest, pending, timeout)
        return pending

    async def _in_dialog(
        self, usage: DialogUsage, request: Request, pending: PendingRequest, timeout: float | None
    ) -> Response:
        response = await self._send_awaited(request, usage.flow, pending, timeout)
        usage.dialog.receive_response(response)
        if request.method == "INVITE" and response.is_success:
            self.ack_2xx(usage, response)
        return response

    def _seen_in(self, usage: DialogUsage, done: ResponseCallback) -> ResponseCallback:
        """``done`` behind the dialog: the dialog sees the response first (and ACKs a 2xx
        to a re-INVITE)."""

        def seen(result: Response | BaseException) -> None:
            if isinstance(result, Response):
                usage.dialog.receive_response(result)
                if result.cseq.method == "INVITE" and result.is_success:
                    self.ack_2xx(usage, result)
            done(result)

        return seen

    async def _send_awaited(
        self,
        request: Request,
        dest: Destination,
        pending: PendingRequest,
        timeout: float | None,
    ) -> Response:
        loop = asyncio.get_running_loop()
        self._loop = loop
        transport = dest.transport if isinstance(dest, Flow) else dest[0]
        if not request.has_header("User-Agent"):
            request = request.with_header("User-Agent", self.user_agent)
        reliable = transport != "udp"
        key, actions = self.layer.new_client(request, reliable=reliable, now=loop.time())
        waiter: asyncio.Future[Response] = loop.create_future()
        self._waiters[key] = waiter
        if timeout is not None:
            self._add_deadline(loop.time() + timeout, key)
        first: list[LayerAction] = []
        rest: list[LayerAction] = []
        for item in actions:
            (first if isinstance(item[1], Transmit) and not first else rest).append(item)
        if first:
            _, transmit = first[0]
            assert isinstance(transmit, Transmit)
            try:
                if isinstance(dest, Flow):
                    self.transport.send(transmit.message, dest, transmit.data)
                    self._flows[key] = dest
                else:
                    self._flows[key] = await self.transport.send_to(transmit.message, *dest)
                if self.tracer is not None:
                    self.tracer("out", transmit.message, self._flows[key])
            except (TransportError, OSError, ssl.SSLError) as exc:
                log.info("sending %s to %s failed: %s", request.method, dest, exc)
                self._dispatch(self.layer.transport_error(key, loop.time()))
        pending.flow = self._flows.get(key)
        self._dispatch(rest)
        try:
            return await waiter
        finally:
            self._waiters.pop(key, None)

    async def request_flow(
        self, request: Request, dest: Destination, *, timeout: float | None = None
    ) -> tuple[Response, Flow | None]:
        """Deprecated: ``pending = ua.request(request, dest)``, then ``pending.flow``."""
        pending = self.request(request, dest, timeout=timeout)
        response = await pending
        return response, pending.flow

    def request_nowait(
        self, request: Request, flow: Flow, *, timeout: float | None = None
    ) -> asyncio.Future[Response]:
        """:meth:`request` over an existing flow, without a coroutine: the future of the final
        response (or :class:`TimeoutError`). Its callbacks run on a later loop iteration,
        after whatever else the peer sent in the meantime: where order matters, use
        ``ua.request(request, flow, then=...)``."""
        waiter: asyncio.Future[Response] = asyncio.get_running_loop().create_future()
        self.request(request, flow, then=functools.partial(_settle, waiter), timeout=timeout)
        return waiter

    def request_then(
        self,
        request: Request,
        flow: Flow,
        done: ResponseCallback,
        *,
        timeout: float | None = None,
    ) -> None:
        """Deprecated: ``ua.request(request, flow, then=done)``."""
        self.request(request, flow, then=done, timeout=timeout)

    def _send_then(
        self, request: Request, flow: Flow, done: ResponseCallback, timeout: float | None
    ) -> None:
        loop = asyncio.get_running_loop()
        self._loop = loop
        if not request.has_header("User-Agent"):
            request = request.with_header("User-Agent", self.user_agent)
        key, actions = self.layer.new_client(
            request, reliable=flow.transport != "udp", now=loop.time()
        )
        self._callbacks[key] = (done, contextvars.copy_context())
        if timeout is not None:
            self._add_deadline(loop.time() + timeout, key)
        self._flows[key] = flow
        self._dispatch(actions)  # the first Transmit goes out over ``flow`` (_transmit)

    def send_ack(self, ack: Request, flow: Flow) -> None:
        """ACK for a 2xx goes outside any transaction (§13.2.2.4)."""
        try:
            self.transport.send(ack, flow)
            if self.tracer is not None:
                self.tracer("out", ack, flow)
        except TransportError as exc:
            log.info("ACK to %s failed: %s", flow, exc)

    # ------------------------------------------------------------------ dialogs
    def add_usage(self, usage: DialogUsage) -> None:
        """Register a dialog; from now on only ``usage.flow`` may send requests in it."""
        usage.dialog.peer = flow_peer(usage.flow)
        self.dialogs.add(usage.dialog)
        self.usages[usage.dialog.id] = usage

    def remove_usage(self, usage: DialogUsage) -> None:
        usage.dialog.terminate()
        self.dialogs.remove(usage.dialog.id)
        self.usages.pop(usage.dialog.id, None)

    async def dialog_request(
        self,
        usage: DialogUsage,
        method: str,
        *,
        body: bytes = b"",
        content_type: str | None = None,
        extra_headers: tuple[tuple[str, str], ...] = (),
        timeout: float | None = None,
    ) -> Response:
        """Deprecated: ``await ua.request(method, usage, ...)``."""
        return await self.request(
            method,
            usage,
            body=body,
            content_type=content_type,
            extra_headers=extra_headers,
            timeout=timeout,
        )

    def dialog_request_nowait(
        self,
        usage: DialogUsage,
        method: str,
        *,
        body: bytes = b"",
        content_type: str | None = None,
        timeout: float | None = None,
    ) -> asyncio.Future[Response]:
        """Deprecated: ``ua.request(method, usage, then=...)`` (or await it)."""
        waiter: asyncio.Future[Response] = asyncio.get_running_loop().create_future()
        self.request(
            method,
            usage,
            then=functools.partial(_settle, waiter),
            body=body,
            content_type=content_type,
            timeout=timeout,
        )
        return waiter

    def dialog_request_then(
        self,
        usage: DialogUsage,
        method: str,
        done: ResponseCallback,
        *,
        body: bytes = b"",
        content_type: str | None = None,
        timeout: float | None = None,
    ) -> None:
        """Deprecated: ``ua.request(method, usage, then=done, ...)``."""
        self.request(
            method, usage, then=done, body=body, content_type=content_type, timeout=timeout
        )

    def _usage_via(self, usage: DialogUsage) -> Via:
        """The usage's Via template, built once (same transport and address every time)."""
        via = usage.via
        if via is None:
            via = usage.via = self.via(usage.flow.transport, usage.local_host)
        return via

    def ack_2xx(self, usage: DialogUsage, response: Response) -> None:
        ack = usage.dialog.create_ack(
            response, branch=generate_branch(), via=self._usage_via(usage)
        )
        usage.last_ack = ack
        self.send_ack(ack, usage.flow)

    # ------------------------------------------------------------------ plumbing
    def _send_response(self, key: TransactionKey, response: Response) -> None:
        if not response.has_header("Server"):
            response = response.with_header("Server", self.user_agent)
        loop = asyncio.get_running_loop()
        self._dispatch(self.layer.send_response(key, response, loop.time()))

    def _on_message(self, message: Message, flow: Flow) -> None:
        loop = asyncio.get_running_loop()
        self._loop = loop
        now = loop.time()
        if self.tracer is not None:
            self.tracer("in", message, flow)
        if isinstance(message, Response):
            self._dispatch(self.layer.receive_response(message, now), flow)
            return
        peer = flow.remote[0]
        if (
            message.method != "ACK"
            and self._per_peer[peer] >= self.max_transactions_per_peer
            and server_key(message) not in self.layer
        ):
            # One peer may not use up the transaction table of everyone (a request storm).
            busy_log.warning(
                ("busy", peer), "%s has %d open transactions: 503", peer, self._per_peer[peer]
            )
            busy = build_response(message, 503, headers=(("Retry-After", "5"),))
            with contextlib.suppress(TransportError):
                self.transport.send(busy, flow)
            return
        self._dispatch(self.layer.receive_request(message, reliable=flow.is_stream, now=now), flow)

    def _on_closed(self, flow: Flow) -> None:
        if self._on_closed_cb is not None:
            self._on_closed_cb(flow)

    def _dispatch(self, actions: list[LayerAction], source: Flow | None = None) -> None:
        for key, action in actions:
            match action:
                case Transmit():
                    self._transmit(key, action, source)
                case DeliverRequest():
                    if key is not None and source is not None:
                        self._flows[key] = source
                        if key[3] and key not in self._peer_of:  # a server transaction
                            self._peer_of[key] = source.remote[0]
                            self._per_peer[source.remote[0]] += 1
                    self._deliver_request(key, action.request, source)
                case DeliverResponse():
                    self._deliver_response(key, action.response, source)
                case TransactionTimeout() | TransportFailed():
                    if action.response is not None and key is not None:
                        self._resolve(key, action.response)
                case Terminated():
                    if key is not None:
                        self._flows.pop(key, None)
                        peer = self._peer_of.pop(key, None)
                        if peer is not None:
                            self._per_peer[peer] -= 1
                            if self._per_peer[peer] <= 0:
                                del self._per_peer[peer]
        self._rearm()

    def _transmit(self, key: TransactionKey | None, action: Transmit, source: Flow | None) -> None:
        flow = self._flows.get(key) if key is not None else source
        if flow is None:
            flow = source
        if flow is None:
            log.debug("no flow to transmit %s", action.message.start_line())
            return
        try:
            self.transport.send(action.message, flow, action.data)
            if self.tracer is not None:
                self.tracer("out", action.message, flow)
        except TransportError as exc:
            log.info("transmit on %s failed: %s", flow, exc)
            if key is not None and self._loop is not None:
                self._dispatch(self.layer.transport_error(key, self._loop.time()))

    def _resolve(self, key: TransactionKey, response: Response) -> None:
        waiter = self._waiters.get(key)
        if waiter is not None and not waiter.done():
            waiter.set_result(response)
        elif key in self._callbacks:
            self._call_back(key, response)

    def _call_back(self, key: TransactionKey, result: Response | BaseException) -> None:
        """Hand a :meth:`request_then` caller its result, once; its failure is its own."""
        done, context = self._callbacks.pop(key)
        try:
            context.run(done, result)
        except Exception:
            log.exception("response handler failed for %s", type(result).__name__)

    def _deliver_response(
        self, key: TransactionKey | None, response: Response, source: Flow | None
    ) -> None:
        if key is None:
            # A retransmitted 2xx to an INVITE whose transaction is gone: re-send our ACK.
            dialog = self.dialogs.find_for_response(response)
            usage = self.usages.get(dialog.id) if dialog is not None else None
            if usage is not None and usage.last_ack is not None:
                self.send_ack(usage.last_ack, usage.flow)
            return
        if response.status_code >= 200:
            self._resolve(key, response)

    def _retransmit_2xx(
        self, response: Response, flow: Flow, interval: float = 0.0, elapsed: float = 0.0
    ) -> None:
        """Re-send a 2xx at T1, 2T1... (capped at T2) until ACK, for at most 64*T1."""
        timers = self.layer.timers
        key = (response.call_id, response.cseq.seq)
        if interval:
            if elapsed >= 64 * timers.t1:
                self._unacked.pop(key, None)
                log.info("no ACK for the 2xx to INVITE %s", response.call_id)
                return
            try:
                self.transport.send(response, flow)
            except TransportError:
                self._unacked.pop(key, None)
                return
        delay = min(interval * 2, timers.t2) if interval else timers.t1
        loop = self._loop or asyncio.get_running_loop()
        self._unacked[key] = loop.call_later(
            delay, self._retransmit_2xx, response, flow, delay, elapsed + delay
        )

    def _deliver_request(
        self, key: TransactionKey | None, request: Request, source: Flow | None
    ) -> None:
        assert source is not None
        server = ServerRequest(request, source, self, key)
        if request.to.tag is None:
            if request.method == "ACK":
                return
            self._call(self._on_request, server)
            return
        dialog, check = self.dialogs.check_request(request, peer=flow_peer(source))
        if check is not DialogCheck.ACCEPT or dialog is None:
            if request.method != "ACK":
                server.reply(check.status_code or 481)
            return
        if request.method == "ACK":  # only the peer's ACK ends the 2xx retransmissions
            pending = self._unacked.pop((request.call_id, request.cseq.seq), None)
            if pending is not None:
                pending.cancel()
        usage = self.usages.get(dialog.id)
        if request.method == "ACK" or usage is None or usage.on_request is None:
            if request.method != "ACK":
                server.reply(200)
            return
        self._call(usage.on_request, server)

    def _call(self, handler: RequestHandler, server: ServerRequest) -> None:
        try:
            handler(server)
        except Exception:
            log.exception("handler failed for %s", server.request.method)
            if not server.answered:
                server.reply(500)

    def _add_deadline(self, deadline: float, key: TransactionKey) -> None:
        heap = self._deadlines
        if len(heap) > 1024 and len(heap) > 4 * (len(self._waiters) + len(self._callbacks)):
            # Most entries belong to requests answered long ago: keep the heap small.
            heap[:] = [
                entry for entry in heap if entry[2] in self._waiters or entry[2] in self._callbacks
            ]
            heapq.heapify(heap)
        heapq.heappush(heap, (deadline, next(self._seq), key))

    def _expire_deadlines(self, now: float) -> None:
        heap = self._deadlines
        while heap and heap[0][0] <= now:
            _, _, key = heapq.heappop(heap)
            waiter = self._waiters.get(key)
            if waiter is not None and not waiter.done():
                waiter.set_exception(TimeoutError())
            elif key in self._callbacks:
                self._call_back(key, TimeoutError())

    def _rearm(self) -> None:
        """Keep the one loop timer at or before the earliest deadline. A timer armed for an
        earlier moment is left alone (it fires, finds nothing due, re-arms): moving it on
        every answered request would cost a timer cancel and create per message."""
        deadline = self.layer.get_timer()
        if self._deadlines and (deadline is None or self._deadlines[0][0] < deadline):
            deadline = self._deadlines[0][0]
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
        loop = self._loop or asyncio.get_running_loop()
        now = loop.time()
        self._expire_deadlines(now)
        self._dispatch(self.layer.handle_timer(now))


def _settle(waiter: asyncio.Future[Response], result: Response | BaseException) -> None:
    """Resolve a :meth:`UserAgent.request_nowait` future with a :data:`ResponseCallback` result."""
    if waiter.done():
        return
    if isinstance(result, asyncio.CancelledError):
        waiter.cancel()
    elif isinstance(result, BaseException):
        waiter.set_exception(result)
    else:
        waiter.set_result(result)


def flow_peer(flow: Flow) -> tuple[str, object]:
    """Who is at the other end of ``flow``, for tying a dialog to it: the TCP/TLS connection,
    or for UDP the source address and port (a phone behind NAT whose mapping changes is a new
    peer: its dialog answers 481 and the link is set up again)."""
    if flow.connection_id is not None:
        return (flow.transport, flow.connection_id)
    return (flow.transport, flow.remote)


def _advertised(host: str) -> str:
    """The address to put in Via/Contact: a wildcard listener advertises loopback only when
    nothing better is known; the server assembly passes a public address via settings."""
    return "127.0.0.1" if host in ("0.0.0.0", "") else ("::1" if host == "::" else host)


def _host_for_uri(host: str) -> str:
    return f"[{host}]" if ":" in host else host
