"""ECMA-323 Annex J framing of CSTA XML over TCP/TLS, sans-IO, and invoke-ID allocation.

Every message on the stream is one frame::

    00 00 | length (2 bytes, big-endian, whole frame incl. this header) | invoke ID (4 ASCII
    digits) | XML document

A request and its response share an invoke ID (``0000``-``9998``); unsolicited events carry
``9999``. The decoder works like h11: :meth:`FrameDecoder.receive_data` only buffers,
:meth:`FrameDecoder.next_frame` returns a :class:`Frame` or ``None`` (need more data). A frame
whose header breaks these rules raises :class:`CstaFramingError`; Annex J has no
resynchronisation marker, so the decoder and the stream are unusable afterwards and the
connection must close. An invoke ID that is not four digits is different: the length still
says where the next frame starts, so the frame is returned (``has_valid_invoke_id`` False)
and the stream stays in step; the peer answers it with an error (:func:`encode_echo_frame`).
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Final

from uacsta.csta.errorcodes import ErrorCategory, PerformanceManagementError
from uacsta.csta.errors import CstaError, CstaFramingError

FRAME_MARKER: Final = b"\x00\x00"
HEADER_BYTES: Final = 4
INVOKE_ID_BYTES: Final = 4
MIN_FRAME_BYTES: Final = HEADER_BYTES + INVOKE_ID_BYTES
MAX_FRAME_BYTES: Final = 0xFFFF
EVENT_INVOKE_ID: Final = "9999"
MAX_REQUEST_INVOKE_ID: Final = 9998
# Room for several full frames: a caller that drains after every read never comes close, so
# hitting it means the caller stopped draining or the peer floods faster than we consume.
DEFAULT_MAX_BUFFER_BYTES: Final = 16 * MAX_FRAME_BYTES


class FrameTooLargeError(CstaError, ValueError):
    """A document too big for one Annex J frame; the stream stays usable, the message is lost."""


@dataclass(frozen=True, kw_only=True, slots=True)
class Frame:
    """One Annex J frame: the invoke ID that correlates it and the raw XML document."""

    #: The four bytes as received (latin-1, so every byte value maps back to itself).
    invoke_id: str
    xml: bytes

    @property
    def is_event(self) -> bool:
        """Unsolicited events use the reserved invoke ID 9999; nothing answers them."""
        return self.invoke_id == EVENT_INVOKE_ID

    @property
    def has_valid_invoke_id(self) -> bool:
        """Four ASCII digits, as Annex J requires."""
        return self.invoke_id.isascii() and self.invoke_id.isdigit()


def format_invoke_id(invoke_id: str | int) -> str:
    """Normalise an invoke ID to its 4-digit wire form; ValueError if it has no such form."""
    if isinstance(invoke_id, bool):
        raise ValueError(f"invalid invoke ID {invoke_id!r}")
    if isinstance(invoke_id, int):
        if not 0 <= invoke_id <= int(EVENT_INVOKE_ID):
            raise ValueError(f"invoke ID {invoke_id} outside 0000-9999")
        return f"{invoke_id:04d}"
    if len(invoke_id) != INVOKE_ID_BYTES or not (invoke_id.isascii() and invoke_id.isdigit()):
        raise ValueError(f"invoke ID {invoke_id!r} is not 4 ASCII digits")
    return invoke_id


def encode_frame(invoke_id: str | int, xml: bytes) -> bytes:
    """Frame one XML document; :class:`FrameTooLargeError` if it exceeds 65535 bytes in all."""
    wire_id = format_invoke_id(invoke_id)
    length = MIN_FRAME_BYTES + len(xml)
    if length > MAX_FRAME_BYTES:
        raise FrameTooLargeError(
            f"frame of {length} bytes exceeds the Annex J limit of {MAX_FRAME_BYTES}"
        )
    return b"".join((FRAME_MARKER, length.to_bytes(2, "big"), wire_id.encode("ascii"), xml))


def encode_echo_frame(invoke_id: str, xml: bytes) -> bytes:
    """Frame an answer under the peer's own malformed invoke ID (the four bytes it sent, as
    :attr:`Frame.invoke_id` holds them), so the peer can still match the error to its
    request; ValueError if ``invoke_id`` is not four such bytes."""
    raw = invoke_id.encode("latin-1")
    if len(raw) != INVOKE_ID_BYTES:
        raise ValueError(f"invoke ID {invoke_id!r} is not 4 bytes")
    length = MIN_FRAME_BYTES + len(xml)
    if length > MAX_FRAME_BYTES:
        raise FrameTooLargeError(
            f"frame of {length} bytes exceeds the Annex J limit of {MAX_FRAME_BYTES}"
        )
    return b"".join((FRAME_MARKER, length.to_bytes(2, "big"), raw, xml))


class FrameDecoder:
    """Splits a byte stream into Annex J frames; bytes in, :class:`Frame` objects out.

    A frame's length is checked as soon as its 4 header bytes are buffered, so an oversize
    frame is refused before its body is read. ``receive_data(b"")`` signals end of stream.
    """

    __slots__ = ("_buffer", "_eof", "_error", "_max_buffer_bytes", "_max_frame_bytes")

    def __init__(
        self,
        max_frame_bytes: int = MAX_FRAME_BYTES,
        *,
        max_buffer_bytes: int = DEFAULT_MAX_BUFFER_BYTES,
    ) -> None:
        if not MIN_FRAME_BYTES <= max_frame_bytes <= MAX_FRAME_BYTES:
            raise ValueError(f"max_frame_bytes must be within {MIN_FRAME_BYTES}..{MAX_FRAME_BYTES}")
        if max_buffer_bytes < max_frame_bytes:
            raise ValueError("max_buffer_bytes must hold at least one full frame")
        self._max_frame_bytes = max_frame_bytes
        self._max_buffer_bytes = max_buffer_bytes
        self._buffer = bytearray()
        self._eof = False
        self._error: CstaFramingError | None = None

    @property
    def buffered_bytes(self) -> int:
        """Bytes received but not yet returned as a frame."""
        return len(self._buffer)

    @property
    def eof(self) -> bool:
        return self._eof

    def receive_data(self, data: bytes) -> None:
        """Buffer bytes from the transport; an empty ``data`` means the peer closed the stream."""
        self._raise_if_failed()
        if not data:
            self._eof = True
            return
        if self._eof:
            raise RuntimeError("receive_data() called after end of stream")
        if len(self._buffer) + len(data) > self._max_buffer_bytes:
            self._fail(f"more than {self._max_buffer_bytes} bytes buffered without being consumed")
        self._buffer += data

    def next_frame(self) -> Frame | None:
        """The next complete frame, or ``None`` until more data arrives."""
        self._raise_if_failed()
        buffer = self._buffer
        if len(buffer) >= HEADER_BYTES:
            if buffer[:2] != FRAME_MARKER:
                self._fail(f"frame header starts with {bytes(buffer[:2]).hex()}, not 0000")
            length = int.from_bytes(buffer[2:4], "big")
            if length < MIN_FRAME_BYTES:
                self._fail(f"frame length {length} is shorter than header and invoke ID")
            if length > self._max_frame_bytes:
                self._fail(f"frame length {length} exceeds the limit of {self._max_frame_bytes}")
            if len(buffer) >= length:
                # A malformed invoke ID does not break the stream: the length is intact.
                raw_id = bytes(buffer[HEADER_BYTES:MIN_FRAME_BYTES])
                xml = bytes(buffer[MIN_FRAME_BYTES:length])
                del buffer[:length]
                return Frame(invoke_id=raw_id.decode("latin-1"), xml=xml)
        if self._eof and buffer:
            self._fail(f"stream closed inside a frame ({len(buffer)} bytes pending)")
        return None

    def frames(self) -> Iterator[Frame]:
        """Every complete frame buffered so far."""
        while (frame := self.next_frame()) is not None:
            yield frame

    def _fail(self, reason: str) -> None:
        self._error = CstaFramingError(reason)
        self._buffer.clear()
        raise self._error

    def _raise_if_failed(self) -> None:
        if self._error is not None:
            raise CstaFramingError(f"stream unusable after an earlier error: {self._error}")


class InvokeIdsExhaustedError(CstaError):
    """All 9999 request invoke IDs are awaiting responses; the peer is not answering."""

    category = ErrorCategory.PERFORMANCE_MANAGEMENT
    value = PerformanceManagementError.PERFORMANCE_LIMIT_EXCEEDED


class InvokeIdAllocator:
    """Hands out request invoke IDs ``0000``-``9998`` in turn, skipping those still pending.

    IDs are reused cyclically rather than from the lowest free one, so a late response to a
    timed-out request is unlikely to match a newer request.
    """

    __slots__ = ("_in_use", "_next")

    def __init__(self, start: int = 0) -> None:
        if not 0 <= start <= MAX_REQUEST_INVOKE_ID:
            raise ValueError(f"start must be within 0..{MAX_REQUEST_INVOKE_ID}")
        self._next = start
        self._in_use: set[str] = set()

    def allocate(self) -> str:
        """Reserve and return the next free invoke ID."""
        span = MAX_REQUEST_INVOKE_ID + 1
        if len(self._in_use) >= span:
            raise InvokeIdsExhaustedError(f"all {span} invoke IDs are in use")
        while True:
            candidate = f"{self._next:04d}"
            self._next = (self._next + 1) % span
            if candidate not in self._in_use:
                self._in_use.add(candidate)
                return candidate

    def release(self, invoke_id: str) -> None:
        """Free an ID once its response or timeout arrived; unknown IDs are ignored."""
        self._in_use.discard(invoke_id)

    def __contains__(self, invoke_id: object) -> bool:
        return invoke_id in self._in_use

    def __len__(self) -> int:
        return len(self._in_use)
