"""CSTA layer exceptions (decode failures) — the edge maps them to a CSTAErrorCode answer."""

from __future__ import annotations


class CstaError(Exception):
    """Base of every exception raised by :mod:`uacsta.csta`."""


class CstaDecodeError(CstaError):
    """Bytes that are not an acceptable CSTA/ECMA-354 document (bad XML, hostile XML, too big).

    Receivers answer it with ``CSTAErrorCode`` / ``operation`` / ``generic`` (or drop the frame on
    a transport without responses) and keep the connection.
    """


class CstaFramingError(CstaError):
    """A stream that violates ECMA-323 Annex J framing; the connection cannot be resynchronised."""
