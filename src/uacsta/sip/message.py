"""SIP requests and responses: parse and serialize (RFC 3261 §7, §20, §25).

Messages are immutable. Header names are stored in canonical form (compact forms expanded,
case normalised), comma-separated multi-value headers are split one value per entry, folded
lines are unfolded, and Content-Length is derived from the body when serializing. So
serialization is canonical and ``parse_message(m.to_bytes()) == m``.
Values stay strings and are parsed on demand (``msg.via``, ``msg.from_``...), which keeps the
relay path cheap: most headers are never looked at.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Self

from uacsta.sip.errors import MessageTooLarge, SipParseError
from uacsta.sip.uri import NameAddr, Via, parse_name_addr, parse_via, split_header_values

Headers = tuple[tuple[str, str], ...]

MAX_HEADERS = 100
MAX_HEADER_BYTES = 16 * 1024
MAX_BODY_BYTES = 256 * 1024

COMPACT_FORMS = {
    "a": "Accept-Contact",
    "b": "Referred-By",
    "c": "Content-Type",
    "d": "Request-Disposition",
    "e": "Content-Encoding",
    "f": "From",
    "i": "Call-ID",
    "j": "Reject-Contact",
    "k": "Supported",
    "l": "Content-Length",
    "m": "Contact",
    "o": "Event",
    "r": "Refer-To",
    "s": "Subject",
    "t": "To",
    "u": "Allow-Events",
    "v": "Via",
    "x": "Session-Expires",
    "y": "Identity",
}

_SPECIAL_CASE = {
    name.lower(): name
    for name in (
        "Call-ID",
        "CSeq",
        "WWW-Authenticate",
        "MIME-Version",
        "RAck",
        "RSeq",
        "SIP-ETag",
        "SIP-If-Match",
        "Min-SE",
        "Session-Expires",
    )
}

# Headers whose grammar is a comma-separated list (§7.3.1); one value per stored entry.
MULTI_VALUE = frozenset(
    {
        "Via",
        "Contact",
        "Route",
        "Record-Route",
        "Allow",
        "Supported",
        "Require",
        "Proxy-Require",
        "Unsupported",
        "Accept",
        "Accept-Encoding",
        "Accept-Language",
        "Content-Encoding",
        "Allow-Events",
        "In-Reply-To",
        "Alert-Info",
        "Call-Info",
        "Error-Info",
        "Content-Language",
    }
)

_TOKEN = frozenset("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-.!%*_+`'~")

REASON_PHRASES = {
    100: "Trying",
    180: "Ringing",
    181: "Call Is Being Forwarded",
    182: "Queued",
    183: "Session Progress",
    200: "OK",
    202: "Accepted",
    301: "Moved Permanently",
    302: "Moved Temporarily",
    400: "Bad Request",
    401: "Unauthorized",
    403: "Forbidden",
    404: "Not Found",
    405: "Method Not Allowed",
    406: "Not Acceptable",
    407: "Proxy Authentication Required",
    408: "Request Timeout",
    413: "Request Entity Too Large",
    415: "Unsupported Media Type",
    416: "Unsupported URI Scheme",
    420: "Bad Extension",
    421: "Extension Required",
    422: "Session Interval Too Small",
    423: "Interval Too Brief",
    429: "Too Many Requests",
    480: "Temporarily Unavailable",
    481: "Call/Transaction Does Not Exist",
    482: "Loop Detected",
    483: "Too Many Hops",
    484: "Address Incomplete",
    486: "Busy Here",
    487: "Request Terminated",
    488: "Not Acceptable Here",
    491: "Request Pending",
    500: "Server Internal Error",
    501: "Not Implemented",
    503: "Service Unavailable",
    504: "Server Time-out",
    505: "Version Not Supported",
    513: "Message Too Large",
    600: "Busy Everywhere",
    603: "Decline",
}


def canonical_name(name: str) -> str:
    """Canonical spelling of a header name (compact form expanded, case normalised)."""
    lname = name.lower()
    if len(lname) == 1 and lname in COMPACT_FORMS:
        return COMPACT_FORMS[lname]
    special = _SPECIAL_CASE.get(lname)
    if special is not None:
        return special
    return "-".join(part.capitalize() for part in lname.split("-"))


@dataclass(frozen=True, slots=True)
class CSeq:
    seq: int
    method: str

    def __str__(self) -> str:
        return f"{self.seq} {self.method}"


def parse_cseq(value: str) -> CSeq:
    parts = value.split()
    if len(parts) != 2 or not parts[0].isdigit() or len(parts[0]) > 10:
        raise SipParseError(f"bad CSeq: {value!r}")
    seq = int(parts[0])
    if seq >= 2**31:
        raise SipParseError(f"CSeq number out of range: {value!r}")
    if not all(c in _TOKEN for c in parts[1]):
        raise SipParseError(f"bad CSeq method: {value!r}")
    return CSeq(seq, parts[1])


@dataclass(frozen=True, slots=True, kw_only=True)
class SipMessage:
    """Common part of requests and responses."""

    headers: Headers = ()
    body: bytes = b""

    # --- header access -------------------------------------------------------------------
    def header(self, name: str) -> str | None:
        """First value of a header, or None."""
        cname = canonical_name(name)
        for key, value in self.headers:
            if key == cname:
                return value
        return None

    def header_values(self, name: str) -> list[str]:
        cname = canonical_name(name)
        return [value for key, value in self.headers if key == cname]

    def has_header(self, name: str) -> bool:
        return self.header(name) is not None

    def with_header(self, name: str, value: str) -> Self:
        """Append a header (after existing ones of the same name)."""
        return replace(self, headers=(*self.headers, (canonical_name(name), value)))

    def with_header_first(self, name: str, value: str) -> Self:
        """Prepend a header value (Via on forwarding, §16.6)."""
        return replace(self, headers=((canonical_name(name), value), *self.headers))

    def with_header_set(self, name: str, *values: str) -> Self:
        """Replace every value of a header, keeping the position of its first occurrence."""
        cname = canonical_name(name)
        out: list[tuple[str, str]] = []
        placed = False
        for key, value in self.headers:
            if key == cname:
                if not placed:
                    out.extend((cname, v) for v in values)
                    placed = True
                continue
            out.append((key, value))
        if not placed:
            out.extend((cname, v) for v in values)
        return replace(self, headers=tuple(out))

    def without_header(self, name: str) -> Self:
        cname = canonical_name(name)
        return replace(self, headers=tuple((k, v) for k, v in self.headers if k != cname))

    def with_body(self, body: bytes, content_type: str | None = None) -> Self:
        msg = replace(self, body=body)
        if content_type is not None:
            msg = msg.with_header_set("Content-Type", content_type)
        return msg

    # --- typed views ---------------------------------------------------------------------
    @property
    def call_id(self) -> str:
        value = self.header("Call-ID")
        if value is None:
            raise SipParseError("missing Call-ID")
        return value

    @property
    def cseq(self) -> CSeq:
        value = self.header("CSeq")
        if value is None:
            raise SipParseError("missing CSeq")
        return parse_cseq(value)

    @property
    def from_(self) -> NameAddr:
        value = self.header("From")
        if value is None:
            raise SipParseError("missing From")
        return parse_name_addr(value)

    @property
    def to(self) -> NameAddr:
        value = self.header("To")
        if value is None:
            raise SipParseError("missing To")
        return parse_name_addr(value)

    @property
    def via(self) -> list[Via]:
        return [parse_via(v) for v in self.header_values("Via")]

    @property
    def top_via(self) -> Via:
        value = self.header("Via")
        if value is None:
            raise SipParseError("missing Via")
        return parse_via(value)

    @property
    def contact(self) -> list[NameAddr]:
        return [parse_name_addr(v) for v in self.header_values("Contact") if v != "*"]

    @property
    def content_type(self) -> str | None:
        value = self.header("Content-Type")
        return value.split(";")[0].strip().lower() if value else None

    @property
    def expires(self) -> int | None:
        value = self.header("Expires")
        if value is None or not value.strip().isdigit():
            return None
        return int(value)

    def option_tags(self, name: str) -> set[str]:
        """Lower-cased option tags of Supported/Require/Unsupported/Proxy-Require."""
        return {v.lower() for v in self.header_values(name)}

    # --- serialization -------------------------------------------------------------------
    def start_line(self) -> str:
        raise NotImplementedError

    def to_bytes(self) -> bytes:
        lines = [self.start_line()]
        lines.extend(f"{k}: {v}" for k, v in self.headers if k != "Content-Length")
        lines.append(f"Content-Length: {len(self.body)}")
        return ("\r\n".join(lines) + "\r\n\r\n").encode("utf-8") + self.body


@dataclass(frozen=True, slots=True, kw_only=True)
class Request(SipMessage):
    method: str
    uri: str
    version: str = "SIP/2.0"

    def start_line(self) -> str:
        return f"{self.method} {self.uri} {self.version}"


@dataclass(frozen=True, slots=True, kw_only=True)
class Response(SipMessage):
    status_code: int
    reason: str = ""
    version: str = "SIP/2.0"

    def start_line(self) -> str:
        return f"{self.version} {self.status_code} {self.reason}"

    @property
    def is_provisional(self) -> bool:
        return self.status_code < 200

    @property
    def is_success(self) -> bool:
        return 200 <= self.status_code < 300


Message = Request | Response


def _split_head(data: bytes) -> tuple[bytes, bytes]:
    end = data.find(b"\r\n\r\n")
    if end >= 0:
        return data[:end], data[end + 4 :]
    end = data.find(b"\n\n")
    if end >= 0:
        return data[:end], data[end + 2 :]
    # Headers only, no empty line: accept only when the message ends with a line break.
    if data.endswith(b"\r\n") or data.endswith(b"\n"):
        return data.rstrip(b"\r\n"), b""
    raise SipParseError("message has no end of headers")


def _unfold(head: str) -> list[str]:
    lines: list[str] = []
    for raw in head.replace("\r\n", "\n").split("\n"):
        if raw[:1] in (" ", "\t"):
            if not lines:
                raise SipParseError("message starts with a continuation line")
            lines[-1] = lines[-1].rstrip() + " " + raw.strip()
        else:
            lines.append(raw)
    return lines


def _parse_start_line(line: str) -> tuple[str, str, str] | tuple[int, str, str]:
    if line.startswith("SIP/"):
        version, _, rest = line.partition(" ")
        code, _, reason = rest.partition(" ")
        if version != "SIP/2.0":
            raise SipParseError(f"unsupported SIP version {version!r}", status_code=505)
        if len(code) != 3 or not code.isdigit() or not 100 <= int(code) <= 699:
            raise SipParseError(f"bad status code {code!r}")
        return int(code), reason, version
    parts = line.split(" ")
    if len(parts) != 3 or not all(parts):
        raise SipParseError(f"bad request line {line!r}")
    method, uri, version = parts
    if not all(c in _TOKEN for c in method):
        raise SipParseError(f"bad method {method!r}")
    if version.upper() != "SIP/2.0":
        raise SipParseError(f"unsupported SIP version {version!r}", status_code=505)
    if ":" not in uri:
        raise SipParseError(f"bad Request-URI {uri!r}")
    return method, uri, version


def parse_message(
    data: bytes,
    *,
    max_headers: int = MAX_HEADERS,
    max_header_bytes: int = MAX_HEADER_BYTES,
    max_body_bytes: int = MAX_BODY_BYTES,
    datagram: bool = True,
) -> Message:
    """Parse one whole SIP message.

    With ``datagram=True`` (UDP) a Content-Length shorter than the rest truncates the body and
    a longer one is an error (§18.3); with ``datagram=False`` the caller (stream framing) has
    already cut the message and the body must match Content-Length exactly.
    Raises only :class:`SipParseError` (or its subclass :class:`MessageTooLarge`).
    """
    data = data.lstrip(b"\r\n")
    head_bytes, body = _split_head(data)
    if len(head_bytes) > max_header_bytes:
        raise MessageTooLarge(f"header section of {len(head_bytes)} bytes is over the limit")
    try:
        head = head_bytes.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise SipParseError(f"header section is not UTF-8: {exc}") from exc
    if "\x00" in head:
        raise SipParseError("NUL byte in header section")
    lines = _unfold(head)
    first = _parse_start_line(lines[0])
    headers: list[tuple[str, str]] = []
    content_length: int | None = None
    for line in lines[1:]:
        name, colon, value = line.partition(":")
        name = name.rstrip(" \t")
        if not colon or not name or not all(c in _TOKEN for c in name):
            raise SipParseError(f"bad header line {line[:80]!r}")
        cname = canonical_name(name)
        value = " ".join(value.split())
        if cname == "Content-Length":
            if not value.isdigit() or len(value) > 9:
                raise SipParseError(f"bad Content-Length {value!r}")
            if content_length is not None and content_length != int(value):
                raise SipParseError("conflicting Content-Length headers")
            content_length = int(value)
            continue
        if cname in MULTI_VALUE:
            values = split_header_values(value)
            if not values:
                raise SipParseError(f"empty {cname} header")
            headers.extend((cname, v) for v in values)
        else:
            headers.append((cname, value))
        if len(headers) > max_headers:
            raise MessageTooLarge(f"more than {max_headers} headers")
    if content_length is not None:
        if content_length > max_body_bytes:
            raise MessageTooLarge(f"body of {content_length} bytes is over the limit")
        if content_length > len(body):
            raise SipParseError(
                f"Content-Length {content_length} exceeds the {len(body)} bytes received"
            )
        if not datagram and content_length != len(body):
            raise SipParseError("body longer than Content-Length")
        body = body[:content_length]
    elif len(body) > max_body_bytes:
        raise MessageTooLarge(f"body of {len(body)} bytes is over the limit")
    msg: Message
    if isinstance(first[0], int):
        msg = Response(status_code=first[0], reason=first[1], headers=tuple(headers), body=body)
    else:
        method, uri, _ = first
        msg = Request(method=method, uri=uri, headers=tuple(headers), body=body)
    _check_mandatory(msg)
    return msg


_MANDATORY = ("Via", "From", "To", "Call-ID", "CSeq")


def _check_mandatory(msg: Message) -> None:
    """§8.1.1: the headers every transaction and dialog needs, and their syntax."""
    for name in _MANDATORY:
        if not msg.has_header(name):
            raise SipParseError(f"missing mandatory header {name}")
    if len(msg.header_values("Call-ID")) != 1 or len(msg.header_values("CSeq")) != 1:
        raise SipParseError("Call-ID and CSeq must appear exactly once")
    if len(msg.header_values("From")) != 1 or len(msg.header_values("To")) != 1:
        raise SipParseError("From and To must appear exactly once")
    cseq = msg.cseq
    msg.from_  # noqa: B018 - parsed for validation
    msg.to  # noqa: B018
    msg.top_via  # noqa: B018
    if isinstance(msg, Request) and cseq.method != msg.method and msg.method != "ACK":
        raise SipParseError(f"CSeq method {cseq.method} does not match {msg.method}")
    if isinstance(msg, Request) and msg.method == "ACK" and cseq.method != "ACK":
        raise SipParseError("CSeq method of an ACK must be ACK")
