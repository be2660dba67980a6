"""SIP requests and responses: parse and serialize (RFC 3261 §7, §20, §25).

Messages are immutable. Header names are stored in canonical form (compact forms expanded,
case normalised), comma-separated multi-value headers are split one value per entry, folded
lines are unfolded, and Content-Length is derived from the body when serializing. So
serialization is canonical and ``parse_message(m.to_bytes()) == m``.
Values stay strings and are parsed on demand (``msg.via``, ``msg.from_``...), which keeps the
relay path cheap: most headers are never looked at.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, replace
from typing import Self, TypeVar

from uacsta.sip.errors import MessageTooLarge, SipParseError
from uacsta.sip.uri import (
    NameAddr,
    Uri,
    Via,
    clamp_delta_seconds,
    is_digits,
    parse_name_addr,
    parse_uint,
    parse_uri,
    parse_via,
    split_list,
)

T = TypeVar("T")
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
        "Path",
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

# Multi-value headers whose grammar allows an empty value (``Supported:``, ``Allow:``...).
_MAY_BE_EMPTY = frozenset(
    {"Allow", "Supported", "Accept", "Accept-Encoding", "Accept-Language", "Allow-Events"}
)

# Address-valued headers are parsed while reading, so a malformed one is a 400 at once rather
# than an exception deep in the dialog layer (RFC 4475 §3.1.2.1, §3.1.2.6, §3.1.2.13-15).
_ADDRESS_HEADERS = frozenset({"From", "To", "Contact", "Route", "Record-Route"})
# Headers that must appear exactly once (§8.1.1; RFC 4475 §3.3.8).
_SINGLETONS = frozenset({"From", "To", "Call-ID", "CSeq"})
_MANDATORY = ("Via", "From", "To", "Call-ID", "CSeq")

# Methods this stack knows. A CSeq mismatch on one of them is a 400; on an unknown method it is
# a 501, which RFC 4475 §3.1.2.18 prefers as the more future-proof answer.
KNOWN_METHODS = frozenset(
    {
        "INVITE",
        "ACK",
        "BYE",
        "CANCEL",
        "OPTIONS",
        "REGISTER",
        "INFO",
        "PRACK",
        "UPDATE",
        "SUBSCRIBE",
        "NOTIFY",
        "REFER",
        "MESSAGE",
        "PUBLISH",
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


_NAME_CACHE: dict[str, str] = {}
_NAME_CACHE_MAX = 512


def canonical_name(name: str) -> str:
    """Canonical spelling of a header name (compact form expanded, case normalised)."""
    cached = _NAME_CACHE.get(name)
    if cached is not None:
        return cached
    lname = name.lower()
    if len(lname) == 1 and lname in COMPACT_FORMS:
        result = COMPACT_FORMS[lname]
    else:
        special = _SPECIAL_CASE.get(lname)
        if special is not None:
            result = special
        else:
            result = "-".join(part.capitalize() for part in lname.split("-"))
    # Bounded: a peer inventing header names must not grow this without limit.
    if len(_NAME_CACHE) < _NAME_CACHE_MAX and len(name) <= 64:
        _NAME_CACHE[name] = result
    return result


@dataclass(frozen=True, slots=True)
class CSeq:
    seq: int
    method: str

    def __str__(self) -> str:
        return f"{self.seq} {self.method}"


def parse_cseq(value: str) -> CSeq:
    """CSeq (§20.16); the number must be below 2**31 (§8.1.1.5; RFC 4475 §3.1.2.4)."""
    parts = value.split()
    if len(parts) != 2:
        raise SipParseError(f"bad CSeq: {value!r}")
    seq = parse_uint(parts[0])
    if seq is None or seq >= 2**31:
        raise SipParseError(f"bad CSeq number: {value!r}")
    if not _TOKEN.issuperset(parts[1]):
        raise SipParseError(f"bad CSeq method: {value!r}")
    return CSeq(seq, parts[1])


@dataclass(frozen=True, slots=True, kw_only=True)
class SipMessage:
    """Common part of requests and responses."""

    headers: Headers = ()
    body: bytes = b""
    #: Parsed header values, computed once per message (messages are immutable; a changed
    #: copy from ``replace`` starts with an empty cache).
    _parsed: dict[str, object] = field(
        default_factory=dict, init=False, repr=False, compare=False, hash=False
    )

    def seed_parsed(self, values: Mapping[str, object], source: SipMessage | None = None) -> None:
        """Reuse parsed header values: those of ``source`` (an otherwise equal message) and
        ``values`` for the headers that differ. Only for freshly built messages."""
        if source is not None:
            self._parsed.update(source._parsed)
        self._parsed.update(values)

    def drop_parsed(self) -> None:
        """Forget the parsed header values (they are parsed again if asked for): for a
        message kept only to be re-sent."""
        self._parsed.clear()

    def _once(self, key: str, parse: Callable[[str], T]) -> T:
        cached = self._parsed.get(key)
        if cached is None:
            value = self.header(key)
            if value is None:
                raise SipParseError(f"missing {key}")
            cached = self._parsed[key] = parse(value)
        return cached  # type: ignore[return-value]

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
        return self._once("CSeq", parse_cseq)

    @property
    def from_(self) -> NameAddr:
        return self._once("From", parse_name_addr)

    @property
    def to(self) -> NameAddr:
        return self._once("To", parse_name_addr)

    @property
    def via(self) -> list[Via]:
        return [parse_via(v) for v in self.header_values("Via")]

    @property
    def top_via(self) -> Via:
        return self._once("Via", parse_via)

    @property
    def contact(self) -> list[NameAddr]:
        return [parse_name_addr(v) for v in self.header_values("Contact") if v != "*"]

    @property
    def content_type(self) -> str | None:
        value = self.header("Content-Type")
        return value.split(";")[0].strip().lower() if value else None

    @property
    def expires(self) -> int | None:
        """Expires in seconds (huge values clamp to 2**32-1, junk is None: §20.19)."""
        value = self.header("Expires")
        return clamp_delta_seconds(value) if value is not None else None

    @property
    def max_forwards(self) -> int | None:
        """Max-Forwards (§20.22), None when absent or not a number (RFC 4475 §3.4.1)."""
        value = self.header("Max-Forwards")
        return parse_uint(value) if value is not None else None

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

    @property
    def request_uri(self) -> Uri:
        """The Request-URI, parsed (``uri`` keeps the text as received)."""
        return parse_uri(self.uri)


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
    crlf = data.find(b"\r\n\r\n")
    lf = data.find(b"\n\n", 0, crlf if crlf >= 0 else len(data))
    if lf >= 0:  # bare-LF line ends (tolerated), and their blank line comes first
        return data[:lf], data[lf + 2 :]
    if crlf >= 0:
        return data[:crlf], data[crlf + 4 :]
    # Headers only, no empty line: accept only when the message ends with a line break.
    if data.endswith(b"\n"):
        return data.rstrip(b"\r\n"), b""
    raise SipParseError("message has no end of headers")


def _unfold(head: str) -> list[str]:
    """Split into lines; a line starting with SP/HTAB continues the previous one (§7.3.1)."""
    if "\r" in head:
        head = head.replace("\r\n", "\n")
        if "\r" in head:
            raise SipParseError("bare CR in header section")
    lines = head.split("\n")
    if "\n " not in head and "\n\t" not in head:
        return lines
    out: list[str] = []
    for raw in lines:
        if raw[:1] in (" ", "\t"):
            if not out:
                raise SipParseError("message starts with a continuation line")
            # The line break and the leading whitespace count as one SP (§7.3.1).
            out[-1] = out[-1].rstrip(" \t") + " " + raw.lstrip(" \t")
        else:
            out.append(raw)
    return out


def _check_nul(head: str) -> None:
    """NUL is allowed only as a quoted-pair (RFC 4475 §3.1.1.2); a bare one is refused."""
    i = head.find("\x00")
    while i >= 0:
        if i == 0 or head[i - 1] != "\\":
            raise SipParseError("NUL byte in header section")
        i = head.find("\x00", i + 1)


def _bad_version(version: str) -> SipParseError:
    # SIP-Version syntax with another number is a 505 (§8.2.2; RFC 4475 §3.1.2.16);
    # anything else is plain garbage, a 400.
    name, slash, number = version.partition("/")
    major, dot, minor = number.partition(".")
    if name.upper() == "SIP" and slash and dot and is_digits(major) and is_digits(minor):
        return SipParseError(f"unsupported SIP version {version!r}", status_code=505)
    return SipParseError(f"bad SIP version {version!r}")


def _parse_start_line(line: str) -> tuple[str, str] | tuple[int, str]:
    if line.startswith("SIP/"):
        version, _, rest = line.partition(" ")
        code, _, reason = rest.partition(" ")
        if version != "SIP/2.0":
            raise _bad_version(version)
        if len(code) != 3 or not is_digits(code) or not 100 <= int(code) <= 699:
            raise SipParseError(f"bad status code {code[:20]!r}")
        return int(code), reason
    # Request-Line = Method SP Request-URI SP SIP-Version: exactly two single spaces
    # (RFC 4475 §3.1.2.8-10 are rejected).
    parts = line.split(" ")
    if len(parts) != 3 or not all(parts):
        raise SipParseError(f"bad request line {line[:80]!r}")
    method, uri, version = parts
    if not _TOKEN.issuperset(method):
        raise SipParseError(f"bad method {method[:40]!r}")
    if version != "SIP/2.0":
        raise _bad_version(version)
    parse_uri(uri)  # validates: no <>, no LWS, a scheme (RFC 4475 §3.1.2.7)
    return method, uri


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
    if data[:1] in (b"\r", b"\n"):
        data = data.lstrip(b"\r\n")
    head_bytes, body = _split_head(data)
    if len(head_bytes) > max_header_bytes:
        raise MessageTooLarge(f"header section of {len(head_bytes)} bytes is over the limit")
    try:
        head = head_bytes.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise SipParseError(f"header section is not UTF-8: {exc}") from exc
    if "\x00" in head:
        _check_nul(head)
    lines = _unfold(head)
    first = _parse_start_line(lines[0])
    headers: list[tuple[str, str]] = []
    append = headers.append
    seen: set[str] = set()
    parsed: dict[str, object] = {}  # values checked while reading, kept for the message
    content_length: int | None = None
    for line in lines[1:]:
        name, colon, value = line.partition(":")
        name = name.rstrip(" \t")
        if not colon or not name or not _TOKEN.issuperset(name):
            raise SipParseError(f"bad header line {line[:80]!r}")
        cname = canonical_name(name)
        value = value.strip(" \t")
        if cname == "Content-Length":
            length = parse_uint(value, max_digits=9)
            if length is None:
                raise SipParseError(f"bad Content-Length {value[:20]!r}")
            if content_length is not None and content_length != length:
                raise SipParseError("conflicting Content-Length headers")  # RFC 4475 §3.3.9
            content_length = length
            continue
        if cname in _SINGLETONS:
            if cname in seen:
                raise SipParseError(f"{cname} must appear exactly once")  # RFC 4475 §3.3.8
            if cname == "CSeq":
                parsed["CSeq"] = parse_cseq(value)
            elif cname != "Call-ID":
                parsed[cname] = parse_name_addr(value)
            elif not value:
                raise SipParseError("empty Call-ID")
            seen.add(cname)
            append((cname, value))
        elif cname in MULTI_VALUE:
            values = split_list(value)
            if cname == "Via":
                for v in values:
                    via = parse_via(v)
                    parsed.setdefault("Via", via)
            elif cname in _ADDRESS_HEADERS:
                for v in values:
                    if v != "*" or cname != "Contact":
                        parse_name_addr(v)
            elif not value:
                if cname not in _MAY_BE_EMPTY:
                    raise SipParseError(f"empty {cname} header")
                append((cname, ""))
                continue
            else:
                # Option tags, codings and the like: tolerate empty list elements.
                values = [v for v in values if v]
            seen.add(cname)
            headers.extend((cname, v) for v in values)
        else:
            append((cname, value))
        if len(headers) > max_headers:
            raise MessageTooLarge(f"more than {max_headers} headers")
    for mandatory in _MANDATORY:
        if mandatory not in seen:
            raise SipParseError(f"missing mandatory header {mandatory}")  # RFC 4475 §3.3.1
    if content_length is not None:
        if content_length > max_body_bytes:
            raise MessageTooLarge(f"body of {content_length} bytes is over the limit")
        if content_length > len(body):
            raise SipParseError(
                f"Content-Length {content_length} exceeds the {len(body)} bytes received"
            )
        if not datagram and content_length != len(body):
            raise SipParseError("body longer than Content-Length")
        if content_length != len(body):
            body = body[:content_length]
    elif len(body) > max_body_bytes:
        raise MessageTooLarge(f"body of {len(body)} bytes is over the limit")
    kind, text = first
    if isinstance(kind, int):
        response = Response(status_code=kind, reason=text, headers=tuple(headers), body=body)
        response.seed_parsed(parsed)
        return response
    request = Request(method=kind, uri=text, headers=tuple(headers), body=body)
    request.seed_parsed(parsed)
    _check_cseq_method(request)
    return request


def _check_cseq_method(msg: Request) -> None:
    """The CSeq method matches the Request-Line (§8.1.1.5; RFC 4475 §3.1.2.17-18)."""
    cseq_method = msg.cseq.method
    if msg.method != cseq_method:
        status = 400 if msg.method in KNOWN_METHODS else 501
        raise SipParseError(
            f"CSeq method {cseq_method} does not match {msg.method}", status_code=status
        )
