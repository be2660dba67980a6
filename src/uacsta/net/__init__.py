"""asyncio network adapters: SIP over UDP, TCP and TLS (RFC 3261 §18, RFC 3581, RFC 5626 §3.5.1).

Thin by design: bytes in and out, parsing by :mod:`uacsta.sip`, no protocol state. See
:mod:`uacsta.net.transport` for the rules this layer owns.
"""

from uacsta.net.errors import ConnectionLimitReached, FlowClosed, NoListener, TransportError
from uacsta.net.flow import Flow, TransportLimits, parse_address
from uacsta.net.tls import client_context, ensure_self_signed_cert, server_context
from uacsta.net.transport import (
    ClosedHandler,
    Listener,
    MessageHandler,
    SipTransport,
    error_response_bytes,
    response_address,
    stamp_via,
)

__all__ = [
    "ClosedHandler",
    "ConnectionLimitReached",
    "Flow",
    "FlowClosed",
    "Listener",
    "MessageHandler",
    "NoListener",
    "SipTransport",
    "TransportError",
    "TransportLimits",
    "client_context",
    "ensure_self_signed_cert",
    "error_response_bytes",
    "parse_address",
    "response_address",
    "server_context",
    "stamp_via",
]
