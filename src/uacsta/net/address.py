"""Listener address strings: ``transport:host:port`` (``udp:0.0.0.0:5060``, ``tls:[::1]:5061``)."""

from __future__ import annotations

from dataclasses import dataclass

TRANSPORTS = ("udp", "tcp", "tls")


@dataclass(frozen=True, slots=True)
class ListenAddress:
    transport: str
    host: str
    port: int

    def __str__(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"{self.transport}:{host}:{self.port}"


def parse_listen_address(text: str) -> ListenAddress:
    """Parse ``transport:host:port``; raise ValueError saying what is wrong."""
    transport, sep, rest = text.strip().partition(":")
    transport = transport.lower()
    if not sep or transport not in TRANSPORTS:
        raise ValueError(f"{text!r}: expected transport:host:port with transport udp, tcp or tls")
    if rest.startswith("["):
        host, bracket, port_text = rest[1:].partition("]")
        if not bracket or not port_text.startswith(":"):
            raise ValueError(f"{text!r}: bad IPv6 address, use tls:[::1]:5061")
        port_text = port_text[1:]
    else:
        host, sep, port_text = rest.rpartition(":")
        if not sep:
            raise ValueError(f"{text!r}: missing port")
    if not host:
        raise ValueError(f"{text!r}: missing host")
    if not port_text.isdigit() or not 0 <= int(port_text) <= 65535:
        raise ValueError(f"{text!r}: port must be a number from 0 to 65535")
    return ListenAddress(transport, host, int(port_text))


def connect_host(host: str) -> str:
    """Where a client on this machine reaches a listener bound to ``host`` (a wildcard
    address means loopback)."""
    return "127.0.0.1" if host in ("0.0.0.0", "::", "") else host
