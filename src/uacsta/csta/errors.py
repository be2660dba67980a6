"""CSTA layer exceptions, each knowing the ``CSTAErrorCode`` it becomes at an edge.

An edge that answers a request (a gateway, a phone link, a simulated phone) maps whatever it
caught with :func:`error_code`, so the category and value for a kind of failure are decided
here once instead of hard-coded at every ``except``.
"""

from __future__ import annotations

from typing import ClassVar

from uacsta.csta.errorcodes import ErrorCategory, OperationError
from uacsta.csta.messages import CSTAErrorCode
from uacsta.csta.types import PassThroughEnum


class CstaError(Exception):
    """Base of every exception raised by :mod:`uacsta.csta`."""

    #: The negative answer this failure becomes (ECMA-269 §9.3).
    category: ClassVar[ErrorCategory] = ErrorCategory.OPERATION
    value: ClassVar[PassThroughEnum | str] = OperationError.GENERIC

    def error_code(self) -> CSTAErrorCode:
        return CSTAErrorCode.of(self.category, self.value)


class CstaDecodeError(CstaError):
    """Bytes that are not an acceptable CSTA/ECMA-354 document (bad XML, hostile XML, too big).

    Receivers answer it with ``CSTAErrorCode`` / ``operation`` / ``generic`` (or drop the frame on
    a transport without responses) and keep the connection.
    """


class CstaFramingError(CstaError):
    """A stream that violates ECMA-323 Annex J framing; the connection cannot be resynchronised."""


def error_code(exc: BaseException) -> CSTAErrorCode:
    """The ``CSTAErrorCode`` that answers a request which failed with ``exc``.

    A :class:`CstaError` knows its own; anything else (a bug) is ``operation``/``generic``.
    """
    if isinstance(exc, CstaError):
        return exc.error_code()
    return CSTAErrorCode.of(CstaError.category, CstaError.value)
