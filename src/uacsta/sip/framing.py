"""Stream framing of SIP over TCP/TLS (RFC 3261 §18.3): cut a byte stream into messages.

Content-Length delimits the body; CRLF keep-alives between messages (RFC 5626 §3.5.1) are
skipped and reported so the transport can answer a double-CRLF ping with a CRLF pong. Every
bound is enforced before buffering: a peer cannot grow our memory past
``max_header_bytes + max_body_bytes``.
"""

from __future__ import annotations

from uacsta.sip.errors import MessageTooLarge, SipParseError
from uacsta.sip.message import MAX_BODY_BYTES, MAX_HEADER_BYTES

PING = b"\r\n\r\n"
PONG = b"\r\n"


class StreamFramer:
    """h11-style framer: ``receive_data`` buffers, ``next_message`` returns whole messages.

    After an error the stream cannot be resynchronised and the connection must be closed.
    """

    def __init__(
        self, *, max_header_bytes: int = MAX_HEADER_BYTES, max_body_bytes: int = MAX_BODY_BYTES
    ) -> None:
        self._buf = bytearray()
        self._max_header = max_header_bytes
        self._max_body = max_body_bytes
        self._pings = 0
        self._broken = False

    def receive_data(self, data: bytes) -> None:
        if self._broken:
            raise SipParseError("stream already failed")
        self._buf += data

    def take_pings(self) -> int:
        """Number of double-CRLF keep-alive pings seen since the last call."""
        pings, self._pings = self._pings, 0
        return pings

    def _skip_keepalives(self) -> None:
        i = 0
        buf = self._buf
        while i < len(buf) and buf[i] in (13, 10):
            if buf[i : i + 4] == PING:
                self._pings += 1
                i += 4
            elif len(buf) - i < 4 and PING.startswith(bytes(buf[i:])):
                break  # maybe the start of a ping: wait for more
            else:
                i += 1
        if i:
            del buf[:i]

    def next_message(self) -> bytes | None:
        """The next whole message's bytes, or None when more data is needed."""
        self._skip_keepalives()
        buf = self._buf
        if not buf or buf[0] in (13, 10):
            return None
        end = buf.find(b"\r\n\r\n")
        if end < 0:
            if len(buf) > self._max_header:
                self._broken = True
                raise MessageTooLarge("header section over the limit without an end")
            return None
        if end > self._max_header:
            self._broken = True
            raise MessageTooLarge("header section over the limit")
        length = self._content_length(bytes(buf[:end]))
        if length > self._max_body:
            self._broken = True
            raise MessageTooLarge(f"body of {length} bytes is over the limit")
        total = end + 4 + length
        if len(buf) < total:
            return None
        message = bytes(buf[:total])
        del buf[:total]
        return message

    def _content_length(self, head: bytes) -> int:
        value: bytes | None = None
        for line in head.split(b"\r\n")[1:]:
            name, colon, rest = line.partition(b":")
            lname = name.strip().lower()
            if colon and lname in (b"content-length", b"l"):
                value = rest.strip()
        if value is None:
            return 0  # §18.3 requires it on streams; absent means no body
        if not value.isdigit() or len(value) > 9:
            self._broken = True
            raise SipParseError(f"bad Content-Length {value[:20]!r}")
        return int(value)
