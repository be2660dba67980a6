"""The HTTP protocol of uacsta's web listener: uvicorn's httptools parser with bounds.

httptools accepts request heads and bodies of any size and waits forever for them; every
byte from outside must be bounded (ARCHITECTURE rule 6). This subclass

- counts the bytes of the request line and headers and refuses more than
  ``max_head_bytes`` or :data:`MAX_HEADERS` with 431 (only head bytes count: a large first
  read holding a head and the start of its body is no reason to refuse);
- closes a connection whose request head has not arrived within ``head_timeout`` seconds
  of the connection or of the previous response (an idle or slow-header connection), and
  one whose request body has not arrived within ``body_timeout`` (a slow body);
- refuses a body over ``max_body_bytes`` (the largest any route takes; routes have smaller
  limits, see :mod:`uacsta.web.bodyguard`): 413 from Content-Length before reading it, and
  a chunked body is cut off when it goes over.

:class:`GuardedServer` runs uvicorn on :class:`uacsta.net.guard.AcceptLoop`, so web
connections are counted per address and in total at accept, before TLS, like every other
listener's.
"""

from __future__ import annotations

import asyncio
import socket
from typing import Any

import uvicorn
from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

from uacsta.net.guard import AcceptLoop, ConnectionGate
from uacsta.ratelog import RateLimitedLog, RateLimitFilter

MAX_HEAD_BYTES = 16 * 1024
MAX_HEADERS = 100
HEAD_TIMEOUT = 10.0
BODY_TIMEOUT = 60.0
MAX_BODY_BYTES = 1024 * 1024
#: uvicorn logs "Invalid HTTP request received." once per malformed request (anyone can send
#: them; a refused body ends that way too): a few lines per interval (issue 15 item 11).
INVALID_REQUEST_FILTER = RateLimitFilter(only=frozenset({"Invalid HTTP request received."}))


class BoundedHttpToolsProtocol(HttpToolsProtocol):
    max_head_bytes = MAX_HEAD_BYTES
    head_timeout = HEAD_TIMEOUT
    body_timeout = BODY_TIMEOUT
    max_body_bytes = MAX_BODY_BYTES
    #: Shared by every connection: refusals are triggered by strangers.
    refusals: RateLimitedLog | None = None

    @classmethod
    def configured(
        cls,
        *,
        head_timeout: float,
        body_timeout: float,
        max_body_bytes: int,
        max_head_bytes: int = MAX_HEAD_BYTES,
    ) -> type[BoundedHttpToolsProtocol]:
        """A subclass with these bounds (uvicorn builds protocols from a class)."""
        attrs = {
            "head_timeout": head_timeout,
            "body_timeout": body_timeout,
            "max_body_bytes": max_body_bytes,
            "max_head_bytes": max_head_bytes,
        }
        return type("BoundedHttpToolsProtocol", (cls,), attrs)

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        if BoundedHttpToolsProtocol.refusals is None:
            BoundedHttpToolsProtocol.refusals = RateLimitedLog(self.logger)
        self.logger.addFilter(INVALID_REQUEST_FILTER)  # a no-op once the logger has it
        self._head_bytes = 0
        self._head_counted = 0
        self._body_bytes = 0
        self._too_large = False
        self._refused = False
        self._in_head = True
        self._in_body = False
        self._message_open = False
        self._upgraded = False
        self._timer: asyncio.TimerHandle | None = None

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        self._arm(self.head_timeout)

    def connection_lost(self, exc: Exception | None) -> None:
        self._cancel_timer()
        super().connection_lost(exc)

    # --- time limits -----------------------------------------------------------------
    def _arm(self, delay: float) -> None:
        self._cancel_timer()
        self._timer = self.loop.call_later(delay, self._timeout)

    def _cancel_timer(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None

    def _timeout(self) -> None:
        self._timer = None
        transport = self.transport
        # After a WebSocket upgrade the connection belongs to another protocol.
        if transport.is_closing() or self._upgraded:
            return
        if self._in_head or self._in_body:
            what = "request head" if self._in_head else "request body"
            self._log("timeout", "closing a connection from %s: %s not received in time", what)
            transport.abort()

    def _log(self, kind: str, msg: str, *args: object) -> None:
        host = self.client[0] if self.client else "?"
        assert self.refusals is not None
        self.refusals.warning((kind, host), msg, host, *args)

    def handle_websocket_upgrade(self) -> None:
        self._upgraded = True
        self._cancel_timer()
        super().handle_websocket_upgrade()

    # --- parser callbacks ------------------------------------------------------------
    def data_received(self, data: bytes) -> None:
        if self._refused:
            return
        if self._in_head:
            # Only what belongs to the head counts (a first read may carry body bytes).
            end = data.find(b"\r\n\r\n")
            self._head_bytes += len(data) if end < 0 else end + 4
            if self._head_bytes > self.max_head_bytes + 4096:  # past the limit, still no end
                self._refuse_head()
                return
        super().data_received(data)

    def on_message_begin(self) -> None:
        self._in_head = True
        self._message_open = True
        self._head_counted = 0
        self._body_bytes = 0
        super().on_message_begin()

    def on_url(self, url: bytes) -> None:
        self._count(len(url))
        super().on_url(url)

    def on_header(self, name: bytes, value: bytes) -> None:
        self._count(len(name) + len(value) + 4)
        if len(self.headers) >= MAX_HEADERS:
            self._too_large = True
            raise _HeadTooLarge
        super().on_header(name, value)

    def on_headers_complete(self) -> None:
        self._in_head = False
        self._head_bytes = 0
        self._cancel_timer()
        length = self._content_length()
        if length is not None and length > self.max_body_bytes:
            self._refuse_body(length, answered=False)
            raise _Refused  # stops the parser: the body is never read
        super().on_headers_complete()
        chunked = any(n == b"transfer-encoding" for n, _ in self.headers)
        if (length or chunked) and not self.transport.is_closing():
            self._in_body = True
            self._arm(self.body_timeout)

    def on_body(self, body: bytes) -> None:
        self._body_bytes += len(body)
        if self._body_bytes > self.max_body_bytes:
            self._refuse_body(self._body_bytes, answered=self.cycle.response_started)
            raise _Refused
        super().on_body(body)

    def on_message_complete(self) -> None:
        self._message_open = False
        if self._in_body:
            self._in_body = False
            self._cancel_timer()
        super().on_message_complete()

    def on_response_complete(self) -> None:
        pipelined = bool(self.pipeline)  # a whole request waits: its head is in
        super().on_response_complete()
        if self.transport.is_closing() or pipelined:
            return
        if not self._message_open:  # idle between requests: the next head must come
            self._in_head = True
        if self._in_head:
            self._arm(self.head_timeout)

    # --- refusals --------------------------------------------------------------------
    def _content_length(self) -> int | None:
        for name, value in self.headers:
            if name == b"content-length":
                try:
                    return int(value)
                except ValueError:
                    return None
        return None

    def _count(self, size: int) -> None:
        self._head_counted += size
        if self._head_counted > self.max_head_bytes:
            self._too_large = True
            raise _HeadTooLarge

    def send_400_response(self, msg: str) -> None:
        # A parser callback raising _HeadTooLarge surfaces as a parser error: answer 431.
        if self._refused:
            return  # answered already (413)
        if self._too_large:
            self._refuse_head()
        else:
            super().send_400_response(msg)

    def _refuse_head(self) -> None:
        self._log("head", "refusing a request head from %s over %d bytes", self.max_head_bytes)
        self._answer_and_close(431, b"Request Header Fields Too Large", b"request head too large")

    def _refuse_body(self, size: int, *, answered: bool) -> None:
        self._in_body = False
        self._cancel_timer()
        if answered:
            self._refused = True
            self.transport.abort()  # the application answered already: just cut it off
            return
        self._log("body", "refusing a request body from %s of %d bytes", size)
        self._answer_and_close(413, b"Content Too Large", b"request body too large")

    def _answer_and_close(self, status: int, reason: bytes, body: bytes) -> None:
        self._refused = True
        if self.cycle is not None:
            self.cycle.disconnected = True  # the application sees a disconnect
            self.cycle.message_event.set()
        if self.transport.is_closing():
            return
        self.transport.write(
            b"HTTP/1.1 %d %s\r\ncontent-type: text/plain\r\nconnection: close\r\n"
            b"content-length: %d\r\n\r\n%s" % (status, reason, len(body), body)
        )
        self.transport.close()


class _HeadTooLarge(Exception):
    pass


class _Refused(Exception):
    """Raised from a parser callback after answering: httptools stops parsing."""


class GuardedServer(uvicorn.Server):
    """uvicorn on :class:`AcceptLoop`s: connections admitted by ``gate`` before TLS."""

    def __init__(self, config: uvicorn.Config, gate: ConnectionGate) -> None:
        super().__init__(config)
        self.gate = gate

    async def startup(self, sockets: list[socket.socket] | None = None) -> None:
        assert sockets, "GuardedServer serves given listening sockets"
        await self.lifespan.startup()
        config = self.config
        state = self.server_state

        def create_protocol() -> asyncio.Protocol:
            return config.http_protocol_class(  # type: ignore[call-arg]
                config=config, server_state=state, app_state=self.lifespan.state
            )

        self.servers = [
            AcceptLoop(sock, create_protocol, self.gate, ssl_context=config.ssl)  # type: ignore[misc]
            for sock in sockets
        ]
        self.started = True
