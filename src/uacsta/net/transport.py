"""SIP over UDP, TCP and TLS on asyncio: listeners, connections, sending (RFC 3261 §18).

This module owns the transport layer's rules, and only those:

- listeners from address strings (``"udp:127.0.0.1:0"``), with ephemeral ports;
- parsing incoming bytes with the sans-IO core (``parse_message`` per datagram, a
  ``StreamFramer`` per connection) and handing ``(message, Flow)`` to one callback;
- §18.2.1 / RFC 3581: ``received`` and ``rport`` on the top Via of incoming requests;
- §18.2.2: responses go back over the connection the request came on, over UDP to the
  ``received``/``rport`` address; when the connection is gone, a new one to the Via address;
- client connections for requests (``send_to``), reused afterwards (§18.1.1);
- malformed input: a UDP request good enough to answer gets 400 (or 513/505), anything
  else is dropped; a framing error on TCP/TLS closes that connection only;
- bounds (connections in total and per remote address counted at accept, before TLS, by
  the shared :mod:`uacsta.net.guard`; handshake and idle timeouts; message size; write
  buffer; messages per second per flow) and a graceful :meth:`SipTransport.close`.

Transactions, dialogs and authentication live in :mod:`uacsta.sip`, not here.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import logging
import socket
import ssl
from collections import Counter, OrderedDict
from collections.abc import Callable
from dataclasses import dataclass, replace

from uacsta.net.errors import ConnectionLimitReached, FlowClosed, NoListener
from uacsta.net.flow import (
    DEFAULT_PORTS,
    TRANSPORTS,
    Flow,
    TokenBucket,
    TransportLimits,
    format_hostport,
    parse_address,
)
from uacsta.net.guard import AcceptLoop, ConnectionGate, GateLimits, listening_socket
from uacsta.net.stream import StreamConnection, flood_log
from uacsta.net.udp import UdpProtocol
from uacsta.ratelog import RateLimitedLog
from uacsta.sip.errors import SipParseError
from uacsta.sip.helpers import reason_phrase
from uacsta.sip.message import Message, Request, Response, canonical_name, parse_message
from uacsta.sip.uri import parse_via

__all__ = [
    "ClosedHandler",
    "Listener",
    "MessageHandler",
    "SipTransport",
    "error_response_bytes",
    "response_address",
    "stamp_via",
]

log = logging.getLogger("uacsta.net.transport")
#: Unparsable SIP from anyone (no login needed): a few lines per source address, not one
#: per datagram (issue 15 item 11).
bad_input_log = RateLimitedLog(log)

#: UDP sources whose message rate is remembered (least recently seen forgotten first).
MAX_UDP_BUCKETS = 65536

MessageHandler = Callable[[Message, Flow], None]
ClosedHandler = Callable[[Flow], None]


@dataclass(eq=False, slots=True)
class Listener:
    """A bound listener. ``port`` is the real port (also when 0 was asked for)."""

    transport: str
    host: str
    port: int
    _server: AcceptLoop | None = None
    _udp: UdpProtocol | None = None

    @property
    def local(self) -> tuple[str, int]:
        return (self.host, self.port)

    @property
    def address(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"{self.transport}:{host}:{self.port}"

    def __str__(self) -> str:
        return self.address


class SipTransport:
    """All SIP listeners and connections of one process.

    ``on_message(message, flow)`` is called for every parsed message (requests with their
    top Via stamped); ``on_closed(flow)`` when a TCP/TLS connection closes for any reason.
    Both are plain callables run on the event loop; start a task for slow work.
    """

    def __init__(
        self,
        on_message: MessageHandler,
        *,
        on_closed: ClosedHandler | None = None,
        limits: TransportLimits | None = None,
        tls_client_context: ssl.SSLContext | None = None,
    ) -> None:
        self._on_message = on_message
        self._on_closed = on_closed
        self.limits = limits or TransportLimits()
        self._tls_client_context = tls_client_context
        self._listeners: list[Listener] = []
        self._udp_by_local: dict[tuple[str, int], UdpProtocol] = {}
        self._connections: dict[int, StreamConnection] = {}
        # (transport, host, port) -> connection id, for reuse by send_to.
        self._by_remote: dict[tuple[str, str, int], int] = {}
        self._per_host: Counter[str] = Counter()
        self._dialing: dict[tuple[str, str, int], asyncio.Future[StreamConnection]] = {}
        self._ids = itertools.count(1)
        self._closing = False
        #: Inbound TCP/TLS connections of every listener, counted at accept (before TLS).
        self.gate = ConnectionGate("sip", self._gate_limits())
        #: UDP token buckets by source address (bounded, least recently used forgotten).
        self._udp_buckets: OrderedDict[tuple[str, int], TokenBucket] = OrderedDict()
        #: Flood control since start: UDP datagrams dropped, connections paused.
        self.flood_dropped = 0
        self.flood_pauses = 0

    def _gate_limits(self) -> GateLimits:
        return GateLimits(
            max_connections=self.limits.max_connections,
            max_connections_per_address=self.limits.max_connections_per_address,
            handshake_timeout=self.limits.handshake_timeout,
            idle_timeout=None,  # StreamConnection's own idle timer (traffic both ways)
        )

    # --- listeners -----------------------------------------------------------------------
    @property
    def listeners(self) -> list[Listener]:
        return list(self._listeners)

    def listener(self, transport: str) -> Listener:
        """The first listener of a transport."""
        for lst in self._listeners:
            if lst.transport == transport:
                return lst
        raise NoListener(f"no {transport} listener")

    async def listen(self, address: str, *, ssl_context: ssl.SSLContext | None = None) -> Listener:
        """Bind ``transport:host:port`` (port 0: ephemeral). TLS needs ``ssl_context``."""
        if self._closing:
            raise RuntimeError("transport is closed")
        transport, host, port = parse_address(address)
        loop = asyncio.get_running_loop()
        if transport == "udp":
            listener = Listener("udp", host, port)
            _, proto = await loop.create_datagram_endpoint(
                lambda: UdpProtocol(self, listener), local_addr=(host, port)
            )
            assert proto.transport is not None
            self._grow_receive_buffer(proto.transport.get_extra_info("socket"))
            sock = proto.transport.get_extra_info("sockname")
            listener.host, listener.port = str(sock[0]), int(sock[1])
            listener._udp = proto
            self._udp_by_local[listener.local] = proto
        else:
            if transport == "tls" and ssl_context is None:
                raise ValueError("a tls listener needs ssl_context (see uacsta.net.tls)")
            self.gate.limits = self._gate_limits()  # settings may have changed
            server = AcceptLoop(
                listening_socket(host, port, self.limits.listen_backlog),
                lambda: self._new_connection(transport, outbound=False),
                self.gate,
                ssl_context=ssl_context if transport == "tls" else None,
            )
            sock = server.sockets[0].getsockname()
            listener = Listener(transport, str(sock[0]), int(sock[1]), _server=server)
        self._listeners.append(listener)
        log.info("listening on %s", listener)
        return listener

    def _grow_receive_buffer(self, sock: socket.socket | None) -> None:
        """A registration storm arrives faster than one read loop drains the kernel default
        buffer (about 200 KB); dropped datagrams then cost seconds of retransmission."""
        wanted = self.limits.udp_receive_buffer
        if sock is None or wanted <= 0:
            return
        try:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, wanted)
            granted = sock.getsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF)
        except OSError as exc:
            log.warning("cannot set the UDP receive buffer to %d bytes: %s", wanted, exc)
            return
        if granted < wanted:
            log.info(
                "UDP receive buffer %d bytes (asked %d; raise net.core.rmem_max for more)",
                granted,
                wanted,
            )

    # --- sending -------------------------------------------------------------------------
    def send(self, message: Message, flow: Flow, data: bytes | None = None) -> None:
        """Send over ``flow``: its connection (TCP/TLS) or its listener socket (UDP).

        UDP responses go to the top Via's ``received``/``rport`` address (§18.2.2, RFC 3581),
        UDP requests to ``flow.remote``. Raises :class:`FlowClosed` when the connection or
        socket is gone (see :meth:`send_response` for the §18.2.2 fallback).
        """
        if data is None:  # a transaction's Transmit carries the bytes already
            data = message.to_bytes()
        if flow.connection_id is None:
            proto = self._udp_by_local.get(flow.local)
            if proto is None:
                raise FlowClosed(f"no udp listener on {flow.local}")
            dest = flow.remote
            if isinstance(message, Response):
                dest = response_address(message, "udp") or dest
            proto.sendto(data, dest)
            return
        conn = self._connections.get(flow.connection_id)
        if conn is None:
            raise FlowClosed(f"connection {flow} is closed")
        conn.send(data)

    async def send_response(self, response: Response, flow: Flow) -> Flow:
        """§18.2.2: over the request's flow; if that connection closed, to the Via address."""
        try:
            self.send(response, flow)
            return flow
        except FlowClosed:
            if not flow.is_stream:
                raise
        dest = response_address(response, flow.transport)
        if dest is None:
            raise FlowClosed(f"connection {flow} is closed and the Via has no address")
        return await self.send_to(response, flow.transport, *dest)

    async def send_to(
        self,
        message: Message,
        transport: str,
        host: str,
        port: int,
        *,
        server_hostname: str | None = None,
    ) -> Flow:
        """Send to an address: UDP from our first UDP listener; TCP/TLS over an existing
        connection to that address, else a new client connection (kept for reuse)."""
        transport = transport.lower()
        if transport not in TRANSPORTS:
            raise ValueError(f"unknown transport {transport!r}")
        if transport == "udp":
            listener = self.listener("udp")
            flow = Flow("udp", listener.local, (host, port))
            self.send(message, flow)
            return flow
        conn = await self._connection_to(transport, host, port, server_hostname)
        assert conn.flow is not None
        conn.send(message.to_bytes())
        return conn.flow

    async def connect(
        self, transport: str, host: str, port: int, *, server_hostname: str | None = None
    ) -> Flow:
        """A flow to an address for requests to come: UDP from our first UDP listener;
        TCP/TLS over an existing connection to it, else a new one (kept for reuse)."""
        transport = transport.lower()
        if transport not in TRANSPORTS:
            raise ValueError(f"unknown transport {transport!r}")
        if transport == "udp":
            return Flow("udp", self.listener("udp").local, (host, port))
        conn = await self._connection_to(transport, host, port, server_hostname)
        assert conn.flow is not None
        return conn.flow

    @property
    def connections(self) -> list[Flow]:
        return [c.flow for c in self._connections.values() if c.flow is not None]

    def close_flow(self, flow: Flow) -> None:
        """Close one TCP/TLS connection (no-op for UDP or an already closed flow)."""
        if flow.connection_id is not None:
            conn = self._connections.get(flow.connection_id)
            if conn is not None:
                conn.close()

    async def unlisten(self, listener: Listener) -> None:
        """Stop one listener; connections it accepted stay open (settings changed)."""
        if listener._server is not None:
            listener._server.close()
            await listener._server.wait_closed()
        if listener._udp is not None and listener._udp.transport is not None:
            listener._udp.transport.close()
            await listener._udp.closed
            self._udp_by_local.pop(listener.local, None)
        if listener in self._listeners:
            self._listeners.remove(listener)
        log.info("stopped listening on %s", listener)

    # --- closing -------------------------------------------------------------------------
    async def close(self) -> None:
        """Stop listening, close every connection and wait until all are closed."""
        self._closing = True
        for lst in self._listeners:
            if lst._server is not None:
                lst._server.close()
            if lst._udp is not None and lst._udp.transport is not None:
                lst._udp.transport.close()
        conns = list(self._connections.values())
        for conn in conns:
            conn.close()
        if conns:
            _, pending = await asyncio.wait(
                [c.closed for c in conns], timeout=self.limits.close_timeout
            )
            for conn in conns:
                if not conn.closed.done():
                    conn.abort()
            if pending:
                await asyncio.wait(pending, timeout=self.limits.close_timeout)
        for lst in self._listeners:
            if lst._server is not None:
                await lst._server.wait_closed()
            if lst._udp is not None:
                await lst._udp.closed
        self._listeners.clear()
        self._udp_by_local.clear()

    async def __aenter__(self) -> SipTransport:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    # --- connections (called by StreamConnection) ----------------------------------------
    def _new_connection(self, transport: str, *, outbound: bool) -> StreamConnection:
        return StreamConnection(self, transport, next(self._ids), self.limits, outbound=outbound)

    def _admit(self, conn: StreamConnection) -> bool:
        assert conn.flow is not None
        if self._closing:
            return False
        # Inbound connections were counted and admitted at accept (self.gate).
        self._connections[conn.connection_id] = conn
        self._per_host[conn.flow.remote[0]] += 1
        key = (conn.flow.transport, *conn.flow.remote)
        self._by_remote[key] = conn.connection_id
        log.debug("connection %s open", conn.flow)
        return True

    def _forget(self, conn: StreamConnection, exc: Exception | None) -> None:
        assert conn.flow is not None
        if self._connections.pop(conn.connection_id, None) is not None:
            host = conn.flow.remote[0]
            self._per_host[host] -= 1
            if self._per_host[host] <= 0:
                del self._per_host[host]
        key = (conn.flow.transport, *conn.flow.remote)
        if self._by_remote.get(key) == conn.connection_id:
            del self._by_remote[key]
        log.debug("connection %s closed (%s)", conn.flow, exc or "normal")
        if self._on_closed is not None:
            try:
                self._on_closed(conn.flow)
            except Exception:
                log.exception("on_closed handler failed for %s", conn.flow)

    async def _connection_to(
        self, transport: str, host: str, port: int, server_hostname: str | None
    ) -> StreamConnection:
        key = (transport, host, port)
        conn_id = self._by_remote.get(key)
        if conn_id is not None:
            conn = self._connections.get(conn_id)
            if conn is not None and not conn.is_closing():
                return conn
        pending = self._dialing.get(key)
        if pending is not None:
            return await asyncio.shield(pending)
        if self._closing:
            raise FlowClosed("transport is closed")
        if len(self._connections) >= self.limits.max_connections:
            raise ConnectionLimitReached(f"{len(self._connections)} connections open")
        loop = asyncio.get_running_loop()
        fut: asyncio.Future[StreamConnection] = loop.create_future()
        self._dialing[key] = fut
        try:
            conn = await self._dial(transport, host, port, server_hostname)
            self._by_remote[key] = conn.connection_id  # alias: the name we were asked for
            fut.set_result(conn)
            return conn
        except BaseException as exc:
            if not fut.done():
                fut.set_exception(exc if isinstance(exc, Exception) else FlowClosed("cancelled"))
                fut.exception()  # retrieved: waiters re-raise it, nobody else must
            raise
        finally:
            self._dialing.pop(key, None)

    async def _dial(
        self, transport: str, host: str, port: int, server_hostname: str | None
    ) -> StreamConnection:
        loop = asyncio.get_running_loop()
        ctx: ssl.SSLContext | None = None
        if transport == "tls":
            ctx = self._tls_client_context or ssl.create_default_context()
        try:
            _, proto = await asyncio.wait_for(
                loop.create_connection(
                    lambda: self._new_connection(transport, outbound=True),
                    host,
                    port,
                    ssl=ctx,
                    server_hostname=(server_hostname or host) if ctx else None,
                ),
                self.limits.connect_timeout,
            )
        except (OSError, TimeoutError, ssl.SSLError) as exc:
            raise FlowClosed(f"cannot connect to {transport}:{host}:{port}: {exc}") from exc
        if not proto.admitted:
            raise FlowClosed("transport is closing")
        return proto

    # --- receiving -----------------------------------------------------------------------
    def _on_datagram(self, listener: Listener, data: bytes, source: tuple[str, int]) -> None:
        if not data.strip(b"\r\n"):
            return  # keep-alive datagram: nothing to answer on UDP
        flow = Flow("udp", listener.local, source)
        if self.limits.message_rate is not None and not self._udp_take(source):
            return
        try:
            message = parse_message(
                data,
                max_header_bytes=self.limits.max_header_bytes,
                max_body_bytes=self.limits.max_body_bytes,
                datagram=True,
            )
        except SipParseError as exc:
            bad_input_log.info(("bad-sip", source[0]), "bad datagram from %s: %s", flow, exc)
            answer = error_response_bytes(data, exc)
            proto = self._udp_by_local.get(listener.local)
            if answer is not None and proto is not None:
                with contextlib.suppress(FlowClosed):
                    proto.sendto(answer, source)
            return
        self._deliver(message, flow)

    def _udp_take(self, source: tuple[str, int]) -> bool:
        """A token from the source's bucket; over the rate the datagram is dropped."""
        assert self.limits.message_rate is not None
        now = asyncio.get_running_loop().time()
        buckets = self._udp_buckets
        bucket = buckets.get(source)
        if bucket is None:
            bucket = buckets[source] = TokenBucket(
                self.limits.message_rate, self.limits.message_burst, now
            )
            if len(buckets) > MAX_UDP_BUCKETS:
                buckets.popitem(last=False)
        else:
            buckets.move_to_end(source)
        if bucket.take(now):
            return True
        self.flood_dropped += 1
        flood_log.warning(
            ("flood", source[0]),
            "udp:%s sends more than %s messages/s: dropping datagrams",
            format_hostport(*source),
            self.limits.message_rate,
        )
        return False

    def _on_stream_message(self, conn: StreamConnection, raw: bytes) -> None:
        assert conn.flow is not None
        try:
            message = parse_message(
                raw,
                max_header_bytes=self.limits.max_header_bytes,
                max_body_bytes=self.limits.max_body_bytes,
                datagram=False,
            )
        except SipParseError as exc:
            # Framed correctly, so the stream is still in sync: answer and carry on.
            bad_input_log.info(
                ("bad-sip", conn.flow.remote[0]), "bad message on %s: %s", conn.flow, exc
            )
            answer = error_response_bytes(raw, exc)
            if answer is not None:
                with contextlib.suppress(FlowClosed):
                    conn.send(answer)
            return
        self._deliver(message, conn.flow)

    def _deliver(self, message: Message, flow: Flow) -> None:
        if isinstance(message, Request):
            try:
                message = stamp_via(message, *flow.remote)
            except SipParseError as exc:  # pragma: no cover - parse_message checked Via
                log.info("bad Via from %s: %s", flow, exc)
                return
        try:
            self._on_message(message, flow)
        except Exception:
            log.exception("message handler failed on %s", flow)


# --- helpers (pure) --------------------------------------------------------------------


def _bare(host: str) -> str:
    return host[1:-1] if host.startswith("[") and host.endswith("]") else host


def stamp_via(request: Request, host: str, port: int) -> Request:
    """§18.2.1 and RFC 3581 §4: add ``received`` when the source differs from the sent-by
    host or ``rport`` was asked for, and fill in ``rport`` with the source port."""
    via = request.top_via
    stamped = via
    if via.wants_rport:
        stamped = stamped.with_param("received", host)
        if via.rport is None:
            stamped = stamped.with_param("rport", str(port))
    elif _bare(via.host).lower() != host.lower():
        stamped = stamped.with_param("received", host)
    if stamped is via:
        return request
    headers = list(request.headers)
    for i, (name, _) in enumerate(headers):
        if name == "Via":
            headers[i] = ("Via", str(stamped))
            break
    new = replace(request, headers=tuple(headers))
    new.seed_parsed({"Via": stamped}, request)  # From/To/CSeq are unchanged: no second parse
    return new


def response_address(response: Response, transport: str) -> tuple[str, int] | None:
    """Where §18.2.2 / RFC 3581 §4 send a response: ``received`` (else sent-by host) and
    ``rport`` (else the sent-by port, else the transport's default port)."""
    try:
        via = response.top_via
    except SipParseError:
        return None
    host = via.received or _bare(via.host)
    port = via.rport or via.port or DEFAULT_PORTS.get(transport.lower(), 5060)
    return host, port


_ERROR_COPY = {"Via", "From", "To", "Call-ID", "CSeq"}


def error_response_bytes(data: bytes, exc: SipParseError) -> bytes | None:
    """A best-effort error response to an unparseable request, or None to drop it.

    Answers only what looks like a request (not ACK) with the headers a client needs to
    match the response (§8.1.3.3: Via, From, To, Call-ID, CSeq) copied verbatim.
    """
    head = data.lstrip(b"\r\n").split(b"\r\n\r\n", 1)[0]
    try:
        text = head.decode("utf-8")
    except UnicodeDecodeError:
        return None
    lines = text.split("\r\n")
    parts = lines[0].split(" ")
    if len(parts) != 3 or not parts[2].upper().startswith("SIP/") or parts[0] == "ACK":
        return None
    copied: list[str] = []
    for line in lines[1:]:
        name, colon, value = line.partition(":")
        if not colon or "\x00" in line or len(line) > 1024:
            continue
        cname = canonical_name(name.strip()) if name.strip() else ""
        if cname in _ERROR_COPY:
            copied.append(f"{cname}: {value.strip()}")
    names = {c.partition(":")[0] for c in copied}
    if names != _ERROR_COPY:
        return None
    try:
        parse_via(next(c for c in copied if c.startswith("Via:"))[4:])
    except SipParseError:
        return None
    status = exc.status_code if 400 <= exc.status_code < 600 else 400
    warning = "".join(ch for ch in str(exc)[:100] if ch.isprintable() and ch not in '"\\')
    lines_out = [
        f"SIP/2.0 {status} {reason_phrase(status)}",
        *copied,
        f'Warning: 399 uacsta "{warning}"',
        "Content-Length: 0",
    ]
    return ("\r\n".join(lines_out) + "\r\n\r\n").encode("utf-8")
