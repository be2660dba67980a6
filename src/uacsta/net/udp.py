"""The asyncio datagram protocol of a SIP UDP listener (RFC 3261 §18.1.2, §18.2.1).

It only moves bytes: every datagram goes to the owning :class:`~uacsta.net.transport.SipTransport`
together with the listener it arrived on and the source address.
"""

from __future__ import annotations

import asyncio
import logging
from typing import TYPE_CHECKING, cast

from uacsta.net.errors import FlowClosed

if TYPE_CHECKING:
    from uacsta.net.transport import Listener, SipTransport

log = logging.getLogger("uacsta.net.udp")


class UdpProtocol(asyncio.DatagramProtocol):
    def __init__(self, owner: SipTransport, listener: Listener) -> None:
        self._owner = owner
        self._listener = listener
        self.transport: asyncio.DatagramTransport | None = None
        self.closed: asyncio.Future[None] = asyncio.get_running_loop().create_future()

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # The selector loop's datagram transport is not a DatagramTransport subclass.
        self.transport = cast(asyncio.DatagramTransport, transport)

    def datagram_received(self, data: bytes, addr: tuple[str | int, ...]) -> None:
        host, port = addr[0], addr[1]
        assert isinstance(host, str) and isinstance(port, int)
        self._owner._on_datagram(self._listener, data, (host, port))

    def error_received(self, exc: Exception) -> None:
        # ICMP errors (port unreachable) for an earlier send; the transaction layer times out.
        log.info("udp %s: %s", self._listener, exc)

    def connection_lost(self, exc: Exception | None) -> None:
        if not self.closed.done():
            self.closed.set_result(None)

    def sendto(self, data: bytes, addr: tuple[str, int]) -> None:
        if self.transport is None or self.transport.is_closing():
            raise FlowClosed(f"udp listener {self._listener} is closed")
        self.transport.sendto(data, addr)
