"""One SIP TCP or TLS connection as an asyncio protocol (RFC 3261 §18.3, RFC 5626 §3.5.1).

It owns the connection's :class:`~uacsta.sip.framing.StreamFramer`, answers double-CRLF
pings with a CRLF pong, closes the connection on a framing error or after the idle
timeout, cuts off a peer that stops reading (write buffer bound), and stops reading a peer
that sends more messages than its token bucket allows (back-pressure: TCP slows the peer
down, the event loop stays free for everyone else). Parsing, Via
stamping and dispatch belong to :class:`~uacsta.net.transport.SipTransport`.
"""

from __future__ import annotations

import asyncio
import logging
from typing import TYPE_CHECKING, cast

from uacsta.net.errors import FlowClosed
from uacsta.net.flow import Flow, TokenBucket, TransportLimits
from uacsta.ratelog import RateLimitedLog
from uacsta.sip.errors import SipParseError
from uacsta.sip.framing import PONG, StreamFramer

if TYPE_CHECKING:
    from uacsta.net.transport import SipTransport

log = logging.getLogger("uacsta.net.stream")
#: A flooding peer is paused many times a second: a few lines per address.
flood_log = RateLimitedLog(log)


class StreamConnection(asyncio.Protocol):
    """A TCP/TLS connection; ``flow`` is set once the connection (and handshake) is made."""

    def __init__(
        self,
        owner: SipTransport,
        transport_name: str,
        connection_id: int,
        limits: TransportLimits,
        *,
        outbound: bool,
    ) -> None:
        self._owner = owner
        self._name = transport_name
        self.connection_id = connection_id
        self._limits = limits
        self.outbound = outbound
        self._loop = asyncio.get_running_loop()
        self._transport: asyncio.Transport | None = None
        self._framer = StreamFramer(
            max_header_bytes=limits.max_header_bytes, max_body_bytes=limits.max_body_bytes
        )
        self._idle: asyncio.TimerHandle | None = None
        self._last_activity = self._loop.time()
        self.flow: Flow | None = None
        self.admitted = False
        self._bucket: TokenBucket | None = None
        self._held: bytes | None = None  # a framed message waiting for a token
        self._paused = False
        self._resume: asyncio.TimerHandle | None = None
        self.closed: asyncio.Future[None] = self._loop.create_future()

    # --- asyncio callbacks ---------------------------------------------------------------
    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # A stream transport; not isinstance-checked: uvloop's (used by `uacsta serve`)
        # implement asyncio.Transport without subclassing it.
        self._transport = transport = cast(asyncio.Transport, transport)
        peer = transport.get_extra_info("peername")
        sock = transport.get_extra_info("sockname")
        self.flow = Flow(
            transport=self._name,
            local=(str(sock[0]), int(sock[1])),
            remote=(str(peer[0]), int(peer[1])),
            connection_id=self.connection_id,
        )
        if not self._owner._admit(self):
            transport.abort()
            return
        self.admitted = True
        rate = self._limits.message_rate
        if rate is not None and not self.outbound and not self._owner.is_unmetered(peer[0]):
            self._bucket = TokenBucket(rate, self._limits.message_burst, self._loop.time())
        self._arm_idle()

    def data_received(self, data: bytes) -> None:
        self._last_activity = self._loop.time()
        try:
            self._framer.receive_data(data)
        except SipParseError as exc:
            log.warning("closing %s: framing error: %s", self.flow, exc)
            self.abort()
            return
        if not self._paused:
            self._drain()

    def _drain(self) -> None:
        """Hand framed messages on while the peer's bucket has tokens; else pause reading."""
        self._resume = None
        bucket = self._bucket
        try:
            while True:
                raw, self._held = self._held, None
                if raw is None:
                    raw = self._framer.next_message()
                    pings = self._framer.take_pings()
                    if pings:
                        self._write(PONG * pings)
                    if raw is None:
                        break
                if bucket is not None and not bucket.take(self._loop.time()):
                    self._held = raw
                    self._pause(bucket.wait())
                    return
                self._owner._on_stream_message(self, raw)
                if self.is_closing():
                    return
        except SipParseError as exc:
            log.warning("closing %s: framing error: %s", self.flow, exc)
            self.abort()
            return
        if self._paused and self._transport is not None and not self._transport.is_closing():
            self._paused = False
            self._transport.resume_reading()

    def _pause(self, delay: float) -> None:
        assert self._transport is not None and self.flow is not None
        if not self._paused:
            self._paused = True
            self._transport.pause_reading()
            self._owner.flood_pauses += 1
            flood_log.warning(
                ("flood", self.flow.remote[0]),
                "%s sends more than %s messages/s: not reading it for a while",
                self.flow,
                self._limits.message_rate,
            )
        self._resume = self._loop.call_later(max(delay, 0.001), self._drain)

    def eof_received(self) -> bool | None:
        return None  # half-closed by the peer: close our side too

    def connection_lost(self, exc: Exception | None) -> None:
        if self._resume is not None:
            self._resume.cancel()
            self._resume = None
        if self._idle is not None:
            self._idle.cancel()
            self._idle = None
        if self.admitted:
            self._owner._forget(self, exc)
        if not self.closed.done():
            self.closed.set_result(None)

    # --- sending and closing -------------------------------------------------------------
    def is_closing(self) -> bool:
        return self._transport is None or self._transport.is_closing()

    def send(self, data: bytes) -> None:
        if self.is_closing():
            raise FlowClosed(f"connection {self.flow} is closed")
        self._write(data)

    def _write(self, data: bytes) -> None:
        assert self._transport is not None
        if self._transport.is_closing():
            return
        self._last_activity = self._loop.time()
        self._transport.write(data)
        if self._transport.get_write_buffer_size() > self._limits.max_write_buffer:
            log.warning("aborting %s: peer does not read (write buffer full)", self.flow)
            self._transport.abort()

    def close(self) -> None:
        if self._transport is not None:
            self._transport.close()

    def abort(self) -> None:
        if self._transport is not None:
            self._transport.abort()

    # --- idle timeout --------------------------------------------------------------------
    def _arm_idle(self, delay: float | None = None) -> None:
        timeout = self._limits.idle_timeout
        if timeout is None:
            return
        self._idle = self._loop.call_later(timeout if delay is None else delay, self._check_idle)

    def _check_idle(self) -> None:
        timeout = self._limits.idle_timeout
        assert timeout is not None
        quiet = self._loop.time() - self._last_activity
        if quiet >= timeout:
            log.info("closing idle connection %s after %.0f s", self.flow, quiet)
            self._idle = None
            self.close()
        else:
            self._arm_idle(timeout - quiet)
