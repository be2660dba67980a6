"""SIP layer exceptions. Each knows the response status it becomes at the edge."""

from __future__ import annotations


class SipError(Exception):
    """Base of every exception raised by :mod:`uacsta.sip`."""

    status_code: int = 500

    def __init__(self, message: str, *, status_code: int | None = None) -> None:
        super().__init__(message)
        if status_code is not None:
            self.status_code = status_code


class SipParseError(SipError):
    """Bytes from a peer that are not an acceptable SIP message (answered 400 when possible)."""

    status_code = 400


class MessageTooLarge(SipParseError):
    """A message over a configured bound (RFC 3261 §21.5.14: 513 Message Too Large)."""

    status_code = 513
