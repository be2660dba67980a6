"""Exceptions of the network adapters (:mod:`uacsta.net`)."""

from __future__ import annotations


class TransportError(Exception):
    """Base of the errors raised by :mod:`uacsta.net`."""


class FlowClosed(TransportError):
    """The flow (connection or listener socket) a message was to be sent on is gone."""


class ConnectionLimitReached(TransportError):
    """A new connection would exceed the total or per-address connection limit."""


class NoListener(TransportError):
    """No listener of the transport needed to send (UDP needs a socket to send from)."""
