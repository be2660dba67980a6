"""Requests relayed by a trusted edge proxy: whose address they carry, sans-IO.

Behind an edge proxy (Kamailio in front of several nodes, ``docs/edge.md``) every phone's
request comes from the edge's address. Nonces bound to the source address and login
throttles counting failures per address would then treat all phones as one: one phone
guessing passwords would block the edge, and with it everybody. For a request from a
*trusted* proxy the client's address is read from the Via the client wrote, the one below
the proxies' own: its ``received`` parameter (the address the proxy saw the request come
from, RFC 3261 §18.2.1; ``rport`` for the port, RFC 3581), else its sent-by. A proxy that
relays for several hops adds a Via each; the first Via from the top naming an address
outside the trusted set is the client's. From any other source, the source is the address,
whatever the Vias say (a client's own Via proves nothing).

One rule in one place: the phones' registrar, its nonces and its throttle all use
:meth:`TrustedProxies.client_address`.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable

from uacsta.sip.errors import SipParseError
from uacsta.sip.message import Request

__all__ = ["TrustedProxies"]

_Network = ipaddress.IPv4Network | ipaddress.IPv6Network


class TrustedProxies:
    """The addresses and networks (``"192.0.2.10"``, ``"10.0.0.0/8"``) of edge proxies."""

    __slots__ = ("networks",)

    def __init__(self, networks: Iterable[str] = ()) -> None:
        #: Raises ValueError for a value that is no address or network (host bits set).
        self.networks: tuple[_Network, ...] = tuple(ipaddress.ip_network(n) for n in networks)

    def __bool__(self) -> bool:
        return bool(self.networks)

    def trusts(self, host: str) -> bool:
        """Whether ``host`` (an IP address, IPv6 with or without brackets) is a proxy."""
        if not self.networks:
            return False
        try:
            address = ipaddress.ip_address(host.strip("[]"))
        except ValueError:
            return False  # a host name: never trusted
        if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
            address = address.ipv4_mapped
        return any(address in network for network in self.networks)

    def client_address(self, request: Request, peer: tuple[str, int]) -> tuple[str, int]:
        """The address of the client that sent ``request``, which arrived from ``peer``.

        ``peer`` itself unless it is a trusted proxy; then the address in the first Via
        below the top one that is not a trusted proxy's (``received``/``rport`` when the
        proxy added them, else the sent-by; port 5060 when none is named). A request with no
        such Via (the proxy's own, e.g. an OPTIONS probe) is the peer's.
        """
        if not self.networks or not self.trusts(peer[0]):
            return peer
        try:
            vias = request.via
        except SipParseError:
            return peer
        for via in vias[1:]:
            host = (via.received or via.host).strip("[]")
            if self.trusts(host):
                continue
            port = via.rport or via.port or 5060
            return host, port
        return peer
