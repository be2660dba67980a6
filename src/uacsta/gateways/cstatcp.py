"""CSTA XML over TCP/TLS (ECMA-323 Annex J framing) with ECMA-354 application sessions.

One connection is one client of the switching function. A client starts with
StartApplicationSession (credentials in the Avaya or plain shape, see
:mod:`uacsta.csta.appsession`); with ``require_authentication`` off, a client may also send CSTA
requests straight away. Every request gets its answer under the same invoke ID; events use
invoke ID 9999; requests from the switching function (SwitchingFunctionDevices,
SwFunctionDevicesChanged) get invoke IDs of their own. The client's edition (its
actualProtocolVersion, else the namespace of its last document) is the edition we answer in.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import ssl
import time
from dataclasses import replace

from uacsta.accounts import ClientAccounts
from uacsta.csta import appsession as ecma354
from uacsta.csta import codec
from uacsta.csta import messages as m
from uacsta.csta.errors import CstaDecodeError, CstaFramingError, error_code
from uacsta.csta.framing import (
    EVENT_INVOKE_ID,
    Frame,
    FrameDecoder,
    InvokeIdAllocator,
    encode_echo_frame,
    encode_frame,
)
from uacsta.hub import SwitchHub
from uacsta.net.guard import AcceptLoop, ConnectionGate, GateLimits, listening_socket
from uacsta.ratelog import RateLimitedLog, RateLimitFilter
from uacsta.switch.callrecord import CallNotice
from uacsta.switch.function import ToClient
from uacsta.throttle import AuthThrottle

log = logging.getLogger("uacsta.gateways.cstatcp")
#: For the lines a stranger can trigger (refused logins, blocks).
auth_log = RateLimitedLog(log)
# The ECMA-354 session logs each refused start too; _authenticate already says why.
logging.getLogger("uacsta.csta.appsession").addFilter(
    RateLimitFilter(only=frozenset({"application session refused: authentication failed"}))
)

#: A connection that has not started its application session by then is closed.
LOGIN_TIMEOUT = 30.0
#: The longest a queued frame waits for the end of the loop iteration: after a burst of
#: datagrams (libuv reads up to 32 per wake-up) the iteration may run for milliseconds; a
#: frame older than this goes out with the next one queued instead (seconds).
FLUSH_BUDGET = 0.0005
MAX_CONNECTIONS = 1000
#: How long closing a connection waits for the peer to take what is queued (seconds).
CLOSE_TIMEOUT = 2.0


_APPSESSION_REQUESTS = (
    ecma354.StartApplicationSession,
    ecma354.StopApplicationSession,
    ecma354.ResetApplicationSessionTimer,
)


class CstaTcpClient:
    """One CSTA-over-TCP connection (the client ID the switching function sees)."""

    def __init__(
        self,
        gateway: CstaTcpGateway,
        reader: asyncio.StreamReader,
        writer: asyncio.StreamWriter,
    ) -> None:
        self.gateway = gateway
        self.reader = reader
        self.writer = writer
        #: What StreamWriter.write calls (its ``transport`` is a Python property: read once).
        self._transport = writer.transport
        peer = writer.get_extra_info("peername") or ("?", 0)
        self.peer = f"{peer[0]}:{peer[1]}"
        self.edition = codec.Edition.ED3
        self.peer_host = str(peer[0])
        self.in_flight: set[str] = set()
        self.session = ecma354.ApplicationSession(
            authenticator=self._authenticate,
            require_authentication=gateway.require_authentication,
            default_duration=gateway.session_duration,
            max_duration=max(gateway.session_duration, gateway.max_session_duration),
            min_duration=min(10, gateway.session_duration),
        )
        self.user: str | None = None
        self.attached = False
        self.invoke_ids = InvokeIdAllocator()
        self._timer: asyncio.TimerHandle | None = None
        self._closing = False
        #: Frames not yet handed to the transport (see send_frame).
        self._out: list[bytes] = []

    def __repr__(self) -> str:
        return f"<CSTA-TCP client {self.user or '-'}@{self.peer}>"

    def _authenticate(self, user: str, password: str) -> bool:
        """The password check, throttled per address and account (uacsta.throttle)."""
        throttle = self.gateway.throttle
        now = asyncio.get_running_loop().time()
        source = self.peer_host
        wait = throttle.blocked_for(source, user, now)
        if wait > 0:
            auth_log.warning(
                ("blocked", source),
                "%r: login as %r refused: blocked for %.0f s after repeated failures",
                self,
                user,
                wait,
            )
            return False
        if self.gateway.accounts.authenticate(user, password):
            throttle.success(source, user, now)
            return True
        blocked = throttle.failure(source, user, now)
        auth_log.warning(
            ("refused", source), "%r: login as %r refused: wrong user name or password", self, user
        )
        if blocked:
            auth_log.warning(
                ("blocking", source),
                "blocking %s for %.0f s after repeated CSTA login failures",
                throttle.describe_block(source, user),
                blocked,
            )
        return False

    # --- from the switching function ---------------------------------------------------
    def deliver(self, action: ToClient) -> None:
        message = action.message
        if action.invoke is not None:
            invoke = str(action.invoke)
            self.in_flight.discard(invoke)
            if action.detail and isinstance(message, m.CSTAErrorCode):
                log.info("%r: %s refused: %s", self, invoke, action.detail)
        elif isinstance(message, m.CstaRequest | m.MonitorEndedEvent):
            # a request of the switching function (MonitorEndedEvent goes out as MonitorStop)
            invoke = self.invoke_ids.allocate()
        else:
            invoke = EVENT_INVOKE_ID
        self.send_frame(invoke, codec.encode(message, self.edition))

    def deliver_notice(self, notice: CallNotice) -> None:
        """CSTA clients get the phone's own events; normalized notices are the JSON API's."""

    def deliver_event(self, event: m.CstaEvent, xref: str) -> None:
        """A fanned-out phone event: the gateway encodes it once per edition and each client
        gets the bytes with its own monitorCrossRefID put in (cross-refs needing no XML
        escaping; anything else is encoded in full)."""
        if self._closing:
            return
        if xref.isascii() and xref.isalnum():
            parts = self.gateway.event_parts(event, self.edition)
            if parts:
                self.send_frame(EVENT_INVOKE_ID, parts[0] + xref.encode() + parts[1])
                return
        message = replace(event, monitor_cross_ref_id=xref)
        self.send_frame(EVENT_INVOKE_ID, codec.encode(message, self.edition))

    def send_frame(self, invoke: str, xml: bytes) -> None:
        """Queue a frame; the gateway writes every client's queue once per loop iteration
        (one send for the answers that a burst of requests produced together), or sooner
        when the oldest queued frame has waited :data:`FLUSH_BUDGET`."""
        if self._closing:
            return
        if not self._out:
            self.gateway.want_flush(self)
        self._out.append(encode_frame(invoke, xml))
        self.gateway.flush_if_overdue()

    def flush(self) -> None:
        out = self._out
        if not out:
            return
        data = out[0] if len(out) == 1 else b"".join(out)
        out.clear()
        transport = self._transport
        if not transport.is_closing():
            transport.write(data)
            queued = transport.get_write_buffer_size()
            if queued > self.gateway.max_output_buffer:
                self._overflow(queued)

    def _overflow(self, queued: int) -> None:
        """The client does not read what we send: drop it before its queue costs more.

        No last notice: it would only wait behind the queue the client does not read. The
        transport is aborted (its queue freed at once); the read loop then detaches the
        client from the switching function, which releases its monitors."""
        auth_log.warning(
            ("output-overflow", self.peer_host),
            "%r: %d bytes waiting to be sent, more than clients.max_output_buffer (%d): "
            "the client does not read; closing its session",
            self,
            queued,
            self.gateway.max_output_buffer,
        )
        self._closing = True
        self._out.clear()
        self._transport.abort()

    # --- connection loop ---------------------------------------------------------------
    async def run(self) -> None:
        decoder = FrameDecoder()
        loop = asyncio.get_running_loop()
        login_deadline = loop.time() + LOGIN_TIMEOUT
        try:
            while not self._closing:
                timeout = None
                if not self.session.is_active and self.gateway.require_authentication:
                    timeout = max(0.0, login_deadline - loop.time())
                try:
                    data = await asyncio.wait_for(self.reader.read(65536), timeout)
                except TimeoutError:
                    log.warning(
                        "%r: no application session within %ss, closing", self, LOGIN_TIMEOUT
                    )
                    break
                if not data:
                    break
                decoder.receive_data(data)
                for frame in decoder.frames():
                    if frame.has_valid_invoke_id:
                        self._handle_frame(frame.invoke_id, frame.xml)
                    else:
                        self._refuse_invoke_id(frame)
                await self.writer.drain()
        except CstaFramingError as exc:
            log.warning("%r: broken Annex J framing (%s), closing", self, exc)
        except (ConnectionError, ssl.SSLError) as exc:
            log.info("%r: connection lost: %s", self, exc)
        finally:
            await self.close()

    def _refuse_invoke_id(self, frame: Frame) -> None:
        """Annex J wants four digits; the length is intact, so the session goes on: the
        frame is not acted on and gets a CSTA error under the same four bytes."""
        auth_log.warning(
            ("bad-invoke-id", self.peer_host),
            "%r: invoke ID %r is not 4 ASCII digits; answered with an error",
            self,
            frame.invoke_id,
        )
        if self._closing:
            return
        error = m.CSTAErrorCode.operation("invalidParameterValue")
        if not self._out:
            self.gateway.want_flush(self)
        self._out.append(encode_echo_frame(frame.invoke_id, codec.encode(error, self.edition)))

    def _handle_frame(self, invoke: str, xml: bytes) -> None:
        try:
            # Parsed once: the root tells ECMA-354 from ECMA-323, then that element is decoded.
            root = codec.parse(xml)
            session_message = ecma354.decode_appsession_element(root)
            if session_message is None:
                message, edition = codec.decode_element(root, xml)
        except CstaDecodeError as exc:
            log.warning("%r: bad document under invoke %s: %s", self, invoke, exc)
            self._answer_error(invoke, error_code(exc))
            return
        if session_message is not None:
            self._handle_appsession(invoke, session_message)
            return
        if self.session.protocol_version is None and edition is not codec.Edition.NONE:
            self.edition = edition
        if isinstance(message, m.CstaResponse):
            self.invoke_ids.release(invoke)  # the client answering our request
            return
        if invoke == EVENT_INVOKE_ID and not isinstance(message, m.CstaEvent):
            self._refuse_under_event_invoke_id(message)
            return
        if not self.session.is_active and self.gateway.require_authentication:
            log.warning("%r: %s before StartApplicationSession", self, type(message).__name__)
            self._answer_error(invoke, m.CSTAErrorCode.operation("securityViolation"))
            return
        self._ensure_attached()
        if len(self.in_flight) >= self.gateway.max_pending_requests:
            log.warning("%r: more than %d requests in flight", self, len(self.in_flight))
            self._answer_error(
                invoke, m.CSTAErrorCode.performance_management("performanceLimitExceeded")
            )
            return
        self.in_flight.add(invoke)
        self.gateway.hub.client_request(self, invoke, message)

    def _refuse_under_event_invoke_id(self, message: object) -> None:
        """Annex J reserves 9999 for unsolicited events: an answer under it would read as an
        event, so a request under it is refused rather than served."""
        auth_log.warning(
            ("request-under-9999", self.peer_host),
            "%r: %s under the event invoke ID 9999 refused",
            self,
            type(message).__name__,
        )
        self._answer_error(EVENT_INVOKE_ID, m.CSTAErrorCode.operation("invalidParameterValue"))

    def _handle_appsession(self, invoke: str, message: ecma354.AppSessionMessage) -> None:
        if invoke == EVENT_INVOKE_ID and isinstance(message, _APPSESSION_REQUESTS):
            self._refuse_under_event_invoke_id(message)
            return
        loop = asyncio.get_running_loop()
        out = self.session.handle(message, loop.time())
        if isinstance(message, ecma354.StartApplicationSession):
            self._after_start(message)
        for reply in out:
            self.send_frame(invoke, ecma354.encode_appsession(reply))
        self._arm_timer()
        if self.session.state is ecma354.SessionState.TERMINATED:
            self._closing = True  # after Stop, expiry or too many failed logins

    def _after_start(self, message: ecma354.StartApplicationSession) -> None:
        if self.session.is_active:
            self.user = self.session.authenticated_user
            version = self.session.protocol_version
            if version:
                self.edition = codec.edition_for_namespace(version)
            log.info(
                "%r: application session %s started (%s, %s, %ss)",
                self,
                self.session.session_id,
                message.application_id,
                self.edition.name,
                self.session.session_duration,
            )
            self._ensure_attached()
        else:
            auth_log.warning(
                ("start-refused", self.peer_host), "%r: StartApplicationSession refused", self
            )

    def _ensure_attached(self) -> None:
        if not self.attached:
            self.attached = True
            self.gateway.hub.client_attach(
                self, allowed_devices=self.gateway.accounts.allowed_devices(self.user)
            )

    def _answer_error(self, invoke: str, error: m.CSTAErrorCode) -> None:
        self.send_frame(invoke, codec.encode(error, self.edition))

    def _arm_timer(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        deadline = self.session.get_timer()
        if deadline is not None:
            self._timer = asyncio.get_running_loop().call_at(deadline, self._on_timer)

    def _on_timer(self) -> None:
        self._timer = None
        out = self.session.handle_timer(asyncio.get_running_loop().time())
        for reply in out:
            self.send_frame(EVENT_INVOKE_ID, ecma354.encode_appsession(reply))
        if out:
            log.info("%r: application session expired", self)
            self._closing = True
            self.flush()
            self.writer.close()
        else:
            self._arm_timer()

    def terminate(self) -> None:
        """Server shutdown: ApplicationSessionTerminated, then close."""
        for reply in self.session.terminate():
            self.send_frame(EVENT_INVOKE_ID, ecma354.encode_appsession(reply))
        self._closing = True
        self.flush()
        self.writer.close()

    async def close(self) -> None:
        self._closing = True
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        if self.attached:
            self.attached = False
            self.gateway.hub.client_detach(self)
        self.gateway.clients.discard(self)
        self.flush()
        if not self.writer.is_closing():
            self.writer.close()
        with contextlib.suppress(ConnectionError, ssl.SSLError):
            try:
                await asyncio.wait_for(self.writer.wait_closed(), CLOSE_TIMEOUT)
            except TimeoutError:
                # A peer that does not read would hold the close (and a server stop) forever.
                self._transport.abort()


class CstaTcpGateway:
    def __init__(
        self,
        hub: SwitchHub,
        accounts: ClientAccounts,
        *,
        require_authentication: bool = True,
        session_duration: int = 180,
        max_session_duration: int = 3600,
        throttle: AuthThrottle | None = None,
        max_connections: int = MAX_CONNECTIONS,
        max_connections_per_address: int = 64,
        max_pending_requests: int = 64,
        max_output_buffer: int = 4 * 1024 * 1024,
        handshake_timeout: float = 10.0,
        idle_timeout: float | None = None,
    ) -> None:
        self.throttle = throttle if throttle is not None else AuthThrottle()
        #: Connections counted at accept, before TLS (uacsta.net.guard).
        self.gate = ConnectionGate(
            "csta",
            GateLimits(
                max_connections=max_connections,
                max_connections_per_address=max_connections_per_address,
                handshake_timeout=handshake_timeout,
                idle_timeout=idle_timeout,
            ),
        )
        self.max_pending_requests = max_pending_requests
        #: Bytes queued for one client (not yet taken by the kernel) before it is dropped.
        self.max_output_buffer = max_output_buffer
        self.hub = hub
        self.accounts = accounts
        self.require_authentication = require_authentication
        self.session_duration = session_duration
        self.max_session_duration = max_session_duration
        self.clients: set[CstaTcpClient] = set()
        self.servers: list[AcceptLoop] = []
        self._tasks: set[asyncio.Task[None]] = set()
        #: Clients with queued frames, written by one callback per loop iteration.
        self._to_flush: list[CstaTcpClient] = []
        self._batch_started = 0.0
        self._flush_scheduled = False
        #: The event being fanned out and its encodings split at the cross-ref, by edition.
        self._parts_of: m.CstaEvent | None = None
        self._parts: dict[str, tuple[bytes, bytes] | tuple[()]] = {}

    def event_parts(
        self, event: m.CstaEvent, edition: codec.Edition
    ) -> tuple[bytes, bytes] | tuple[()]:
        """``event`` encoded for ``edition`` and split where the monitorCrossRefID goes, kept
        for the event being fanned out now; ``()`` when the split is not clean."""
        if self._parts_of is not event:
            self._parts_of, self._parts = event, {}
        # Keyed by the edition's value: hashing the enum member runs Python code.
        parts = self._parts.get(edition.value)
        if parts is None:
            marker = "uacstaXrefMarker7f3a9c"
            xml = codec.encode(replace(event, monitor_cross_ref_id=marker), edition)
            split = xml.split(marker.encode())
            parts = (split[0], split[1]) if len(split) == 2 else ()
            self._parts[edition.value] = parts
        return parts

    def want_flush(self, client: CstaTcpClient) -> None:
        if not self._to_flush:
            self._batch_started = time.perf_counter()
            if not self._flush_scheduled:
                self._flush_scheduled = True
                asyncio.get_running_loop().call_soon(self._flush_soon)
        self._to_flush.append(client)

    def flush_if_overdue(self) -> None:
        if self._to_flush and time.perf_counter() - self._batch_started > FLUSH_BUDGET:
            self._flush()

    def _flush_soon(self) -> None:
        self._flush_scheduled = False
        self._flush()

    def _flush(self) -> None:
        clients, self._to_flush = self._to_flush, []
        for client in clients:
            client.flush()

    @property
    def max_connections(self) -> int:
        return self.gate.limits.max_connections

    @max_connections.setter
    def max_connections(self, value: int) -> None:
        self.gate.limits.max_connections = value

    @property
    def max_connections_per_address(self) -> int:
        return self.gate.limits.max_connections_per_address

    @max_connections_per_address.setter
    def max_connections_per_address(self, value: int) -> None:
        self.gate.limits.max_connections_per_address = value

    async def listen(
        self, host: str, port: int, ssl_context: ssl.SSLContext | None = None
    ) -> AcceptLoop:
        """Listen; connections are admitted by :attr:`gate` at accept, before TLS."""
        loop = asyncio.get_running_loop()

        def protocol() -> asyncio.StreamReaderProtocol:
            reader = asyncio.StreamReader(limit=2**16, loop=loop)
            return asyncio.StreamReaderProtocol(reader, self._accept, loop=loop)

        server = AcceptLoop(
            listening_socket(host, port, 1024), protocol, self.gate, ssl_context=ssl_context
        )
        self.servers.append(server)
        return server

    async def _accept(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        client = CstaTcpClient(self, reader, writer)
        self.clients.add(client)
        log.info("%r connected", client)
        await client.run()

    async def stop_listening(self) -> None:
        """Close the listeners only; open sessions go on (listener settings changed)."""
        servers, self.servers = self.servers, []
        for server in servers:
            server.close()
        for server in servers:
            await server.wait_closed()

    async def close(self) -> None:
        for server in self.servers:
            server.close()
        for client in list(self.clients):
            client.terminate()
        for server in self.servers:
            await server.wait_closed()
        await asyncio.gather(*(client.close() for client in list(self.clients)))
