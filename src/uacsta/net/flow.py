"""Flows and transport settings shared by the UDP, TCP and TLS adapters.

A :class:`Flow` names the path a message came on, so that answers and later requests go
back the same way (RFC 3261 §18.2.2 connection reuse; the idea of RFC 5626 flows). It is
hashable and immutable, so the registrar can keep it as a binding's flow token.
"""

from __future__ import annotations

from dataclasses import dataclass

from uacsta.sip.message import MAX_BODY_BYTES, MAX_HEADER_BYTES

__all__ = [
    "TRANSPORTS",
    "Flow",
    "TokenBucket",
    "TransportLimits",
    "format_hostport",
    "parse_address",
]

TRANSPORTS = ("udp", "tcp", "tls")
DEFAULT_PORTS = {"udp": 5060, "tcp": 5060, "tls": 5061}


@dataclass(frozen=True, slots=True)
class Flow:
    """Transport, local listener/socket address, remote address and the connection.

    ``connection_id`` is None for UDP (the flow is the 5-tuple) and the id of the TCP/TLS
    connection otherwise; a new connection to the same address is a different flow.
    """

    transport: str
    local: tuple[str, int]
    remote: tuple[str, int]
    connection_id: int | None = None

    @property
    def is_stream(self) -> bool:
        return self.connection_id is not None

    @property
    def via_transport(self) -> str:
        """The transport token for a Via header (``UDP``, ``TCP``, ``TLS``)."""
        return self.transport.upper()

    def __str__(self) -> str:
        conn = f"#{self.connection_id}" if self.connection_id is not None else ""
        return (
            f"{self.transport}:{format_hostport(*self.local)}"
            f"<->{format_hostport(*self.remote)}{conn}"
        )


@dataclass(frozen=True, slots=True, kw_only=True)
class TransportLimits:
    """Bounds on what peers can make us hold. ``None`` idle timeout disables it."""

    max_connections: int = 1024
    max_connections_per_address: int = 16  # per remote IP address
    idle_timeout: float | None = 900.0  # seconds without traffic on a TCP/TLS connection
    connect_timeout: float = 5.0  # TCP connect plus TLS handshake
    close_timeout: float = 2.0  # graceful close (TLS close_notify) before aborting
    max_header_bytes: int = MAX_HEADER_BYTES
    max_body_bytes: int = MAX_BODY_BYTES
    max_write_buffer: int = 1024 * 1024  # a peer that does not read is cut off
    udp_receive_buffer: int = 4 * 1024 * 1024  # SO_RCVBUF asked for UDP listeners
    listen_backlog: int = 1024  # pending TCP/TLS connections the kernel queues
    handshake_timeout: float = 10.0  # accept to TLS handshake done and first bytes received
    #: Messages per second one flow (a connection; a UDP source address and port) may send,
    #: and the burst it may send at once; ``None`` rate: unlimited. Over it, UDP datagrams
    #: are dropped and a connection is not read until tokens are back (back-pressure).
    message_rate: float | None = None
    message_burst: int = 100


class TokenBucket:
    """A token bucket (rate per second, burst); time comes in as ``now`` (sans-IO)."""

    __slots__ = ("burst", "rate", "tokens", "updated")

    def __init__(self, rate: float, burst: int, now: float) -> None:
        self.rate = rate
        self.burst = float(max(1, burst))
        self.tokens = self.burst
        self.updated = now

    def take(self, now: float) -> bool:
        """Take one token; False when the bucket is empty."""
        tokens = min(self.burst, self.tokens + (now - self.updated) * self.rate)
        self.updated = now
        if tokens >= 1.0:
            self.tokens = tokens - 1.0
            return True
        self.tokens = tokens
        return False

    def wait(self) -> float:
        """Seconds until the next token (after a refused :meth:`take`)."""
        return max(0.0, (1.0 - self.tokens) / self.rate)

    def full(self, now: float) -> bool:
        return self.tokens + (now - self.updated) * self.rate >= self.burst


def format_hostport(host: str, port: int) -> str:
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


def parse_address(text: str) -> tuple[str, str, int]:
    """``"udp:127.0.0.1:5060"`` / ``"tls:[::1]:0"`` / ``"tcp:0.0.0.0"`` → (transport, host, port).

    Port 0 asks for an ephemeral port; an omitted port is the transport's default.
    """
    transport, sep, rest = text.partition(":")
    transport = transport.lower()
    if not sep or transport not in TRANSPORTS:
        raise ValueError(f"address must be transport:host:port with transport in {TRANSPORTS}")
    if rest.startswith("["):
        end = rest.find("]")
        if end < 0:
            raise ValueError(f"bad IPv6 address in {text!r}")
        host, tail = rest[1:end], rest[end + 1 :]
        if tail and not tail.startswith(":"):
            raise ValueError(f"bad address {text!r}")
        port_text = tail[1:]
    else:
        host, _, port_text = rest.partition(":")
        if ":" in port_text:
            raise ValueError(f"IPv6 addresses need brackets: {text!r}")
    if not host:
        raise ValueError(f"missing host in {text!r}")
    if not port_text:
        return transport, host, DEFAULT_PORTS[transport]
    if not port_text.isdigit() or int(port_text) > 65535:
        raise ValueError(f"bad port in {text!r}")
    return transport, host, int(port_text)
