"""Stream framing of SIP over TCP/TLS (RFC 3261 §18.3): cut a byte stream into messages.

Content-Length delimits the body; CRLF keep-alives between messages (RFC 5626 §3.5.1) are
skipped and reported so the transport can answer a double-CRLF ping with a CRLF pong. Every
bound is enforced while buffering: the buffer never holds more than
``max_header_bytes + 4 + max_body_bytes`` bytes, whatever the peer sends in one chunk, and a
head or declared body over its bound is an error as soon as it is seen.
"""

from __future__ import annotations

from collections import deque

from uacsta.sip.errors import MessageTooLarge, SipParseError
from uacsta.sip.message import MAX_BODY_BYTES, MAX_HEADER_BYTES
from uacsta.sip.uri import parse_uint

PING = b"\r\n\r\n"
PONG = b"\r\n"
_END_OF_HEAD = b"\r\n\r\n"


class StreamFramer:
    """h11-style framer: ``receive_data`` buffers, ``next_message`` returns whole messages.

    Messages completed before an error are still returned; then ``next_message`` raises the
    error (:class:`MessageTooLarge` or :class:`SipParseError`). The stream cannot be
    resynchronised after that and the connection must be closed.
    """

    def __init__(
        self, *, max_header_bytes: int = MAX_HEADER_BYTES, max_body_bytes: int = MAX_BODY_BYTES
    ) -> None:
        self._buf = bytearray()
        self._ready: deque[bytes] = deque()
        self._max_header = max_header_bytes
        self._max_body = max_body_bytes
        self._limit = max_header_bytes + len(_END_OF_HEAD) + max_body_bytes
        self._pings = 0
        self._scan = 0  # where the search for the end of the head resumes
        self._total: int | None = None  # size of the message being read, once its head is in
        self._error: SipParseError | None = None

    @property
    def buffered(self) -> int:
        """Bytes held for the message being read (never more than the configured bound)."""
        return len(self._buf)

    def receive_data(self, data: bytes) -> None:
        if self._error is not None:
            raise SipParseError("stream already failed")
        while data:
            room = self._limit - len(self._buf)
            if room <= 0:  # cannot happen: _frame raises first; kept as a hard stop
                self._fail(MessageTooLarge("message over the size limit"))
                return
            if len(data) <= room:
                self._buf += data
                data = b""
            else:
                self._buf += data[:room]
                data = data[room:]
            try:
                self._frame()
            except SipParseError as exc:
                self._fail(exc)
                return

    def _fail(self, exc: SipParseError) -> None:
        self._error = exc
        self._buf = bytearray()

    def take_pings(self) -> int:
        """Number of double-CRLF keep-alive pings seen since the last call."""
        pings, self._pings = self._pings, 0
        return pings

    def next_message(self) -> bytes | None:
        """The next whole message's bytes, or None when more data is needed."""
        if self._ready:
            return self._ready.popleft()
        if self._error is not None:
            raise self._error
        return None

    def _skip_keepalives(self) -> None:
        i = 0
        buf = self._buf
        n = len(buf)
        while i < n and buf[i] in (13, 10):
            if buf[i : i + 4] == PING:
                self._pings += 1
                i += 4
            elif n - i < 4 and PING.startswith(bytes(buf[i:])):
                break  # maybe the start of a ping: wait for more
            else:
                i += 1
        if i:
            del buf[:i]

    def _frame(self) -> None:
        """Move every complete message from the buffer to the ready queue; check the bounds."""
        buf = self._buf
        while buf:
            if self._total is None:
                if buf[0] in (13, 10):
                    self._skip_keepalives()
                    if not buf or buf[0] in (13, 10):
                        return
                end = buf.find(_END_OF_HEAD, self._scan)
                if end < 0:
                    if len(buf) - 3 > self._max_header:
                        raise MessageTooLarge("header section over the limit without an end")
                    self._scan = max(0, len(buf) - 3)
                    return
                if end > self._max_header:
                    raise MessageTooLarge("header section over the limit")
                length = self._content_length(bytes(buf[:end]))
                if length > self._max_body:
                    raise MessageTooLarge(f"body of {length} bytes is over the limit")
                self._total = end + len(_END_OF_HEAD) + length
            total = self._total
            if len(buf) < total:
                return
            self._ready.append(bytes(buf[:total]))
            del buf[:total]
            self._total = None
            self._scan = 0

    @staticmethod
    def _content_length(head: bytes) -> int:
        if b"\r\n " in head or b"\r\n\t" in head:
            head = head.replace(b"\r\n ", b" ").replace(b"\r\n\t", b" ")
        value: bytes | None = None
        for line in head.split(b"\r\n")[1:]:
            name, colon, rest = line.partition(b":")
            if colon and name.strip(b" \t").lower() in (b"content-length", b"l"):
                value = rest
        if value is None:
            return 0  # §18.3 requires it on streams; absent means no body
        length = parse_uint(value.decode("ascii", "replace"), max_digits=9)
        if length is None:
            raise SipParseError(f"bad Content-Length {value[:20]!r}")
        return length
