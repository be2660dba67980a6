"""SIP URIs, name-addr / addr-spec values and Via (RFC 3261 §19.1, §20.10, §20.42, §25.1).

Values are immutable and serialize canonically: ``str(parse_uri(s))`` is stable and
``parse_uri(str(u)) == u``. URI parts keep their escaping as received, since RFC 3261 §19.1.4
compares escaped and unescaped forms as equal only for comparison, not for relaying.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace

from uacsta.sip.errors import SipParseError

Params = tuple[tuple[str, str | None], ...]

_TOKEN_CHARS = frozenset("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-.!%*_+`'~")
_HOST_CHARS = frozenset("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-._:[]")
_BAD_PARAM_VALUE = frozenset(' \t"<>,\x00')
_URI_FORBIDDEN = frozenset(' \t\r\n<>"\x00')
_SCHEME_CHARS = frozenset("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789+-.")
_MAX_INT = 2**32 - 1
_IPV6_ONLY = frozenset("[]:")


def _is_token(text: str) -> bool:
    """RFC 3261 §25.1 token (non-empty)."""
    return bool(text) and _TOKEN_CHARS.issuperset(text)


def is_digits(text: str) -> bool:
    """ASCII decimal digits only (``str.isdigit`` also accepts '²', which ``int`` rejects)."""
    return text.isascii() and text.isdigit()


def parse_uint(text: str, *, max_digits: int = 10) -> int | None:
    """A bounded unsigned integer, or None when ``text`` is not one.

    Leading zeros are allowed (RFC 4475 §3.1.1.1). The digit bound keeps ``int()`` away from
    its quadratic conversion and its 4300-digit limit on hostile input.
    """
    text = text.strip(" \t")
    if not is_digits(text):
        return None
    text = text.lstrip("0") or "0"
    if len(text) > max_digits:
        return None
    return int(text)


def clamp_delta_seconds(text: str) -> int | None:
    """delta-seconds (§25.1); values over 2**32-1 are taken as 2**32-1 (§20.19), junk is None."""
    text = text.strip(" \t")
    if not is_digits(text):
        return None
    text = text.lstrip("0") or "0"
    return _MAX_INT if len(text) > 10 else min(int(text), _MAX_INT)


def _param_get(params: Params, name: str) -> str | None:
    lname = name.lower()
    for key, value in params:
        if key.lower() == lname:
            return value if value is not None else ""
    return None


def _param_has(params: Params, name: str) -> bool:
    lname = name.lower()
    return any(key.lower() == lname for key, _ in params)


def _param_set(params: Params, name: str, value: str | None) -> Params:
    lname = name.lower()
    kept = tuple((k, v) for k, v in params if k.lower() != lname)
    return (*kept, (name, value))


def _format_params(params: Params) -> str:
    return "".join(f";{k}" if v is None else f";{k}={v}" for k, v in params)


def _parse_params(text: str, where: str) -> Params:
    """Parse ``a=b;c`` (the text after the first ';'). Empty parameters (``;;``) are an error."""
    out: list[tuple[str, str | None]] = []
    for raw in _split_outside_quotes(text, ";"):
        name, eq, value = raw.partition("=")
        name = name.strip(" \t")
        if not name:
            raise SipParseError(f"empty parameter in {where!r}")
        if not _is_token(name):
            raise SipParseError(f"bad parameter name {name!r} in {where!r}")
        if eq:
            value = value.strip(" \t")
            if value.startswith('"'):
                if len(value) < 2 or not value.endswith('"'):
                    raise SipParseError(f"unbalanced quotes in parameter {name!r} of {where!r}")
            elif not value or not _BAD_PARAM_VALUE.isdisjoint(value):
                raise SipParseError(f"bad value for parameter {name!r} in {where!r}")
            out.append((name, value))
        else:
            out.append((name, None))
    return tuple(out)


def _split_outside_quotes(text: str, sep: str) -> list[str]:
    if '"' not in text and "<" not in text:
        return text.split(sep)  # the common case, at C speed
    parts: list[str] = []
    depth_quote = False
    angle = 0
    start = 0
    i = 0
    while i < len(text):
        ch = text[i]
        if depth_quote:
            if ch == "\\":
                i += 2
                continue
            if ch == '"':
                depth_quote = False
        elif ch == '"':
            depth_quote = True
        elif ch == "<":
            angle += 1
        elif ch == ">":
            angle = max(angle - 1, 0)
        elif ch == sep and angle == 0:
            parts.append(text[start:i])
            start = i + 1
        i += 1
    if depth_quote:
        raise SipParseError(f"unbalanced quotes in {text!r}")
    parts.append(text[start:])
    return parts


def split_list(text: str) -> list[str]:
    """Split a comma-separated header value outside quotes and <>; empty elements are kept."""
    if "," not in text:
        return [text.strip(" \t")]
    return [p.strip(" \t") for p in _split_outside_quotes(text, ",")]


def split_header_values(text: str) -> list[str]:
    """Split a comma-separated header value, respecting quotes and angle brackets (§7.3.1)."""
    return [p.strip() for p in _split_outside_quotes(text, ",") if p.strip()]


def _parse_hostport(text: str, where: str) -> tuple[str, int | None]:
    if not text:
        raise SipParseError(f"missing host in {where}")
    if text.startswith("["):
        end = text.find("]")
        if end < 0:
            raise SipParseError(f"bad IPv6 reference in {where}")
        host, rest = text[: end + 1], text[end + 1 :]
        if rest and not rest.startswith(":"):
            raise SipParseError(f"bad host/port in {where}")
        port_text = rest[1:] if rest else ""
    else:
        host, colon, port_text = text.partition(":")
        if colon and not port_text:
            raise SipParseError(f"empty port in {where}")
    if not host or not _HOST_CHARS.issuperset(host):
        raise SipParseError(f"bad host {host!r} in {where}")
    if host[0] == "[" and (len(host) < 3 or host[-1] != "]" or host.count("[") != 1):
        raise SipParseError(f"bad IPv6 reference {host!r} in {where}")
    if host[0] != "[" and not _IPV6_ONLY.isdisjoint(host):
        raise SipParseError(f"bad host {host!r} in {where}")
    port: int | None = None
    if port_text:
        if not is_digits(port_text) or len(port_text) > 5 or not 0 < int(port_text) < 65536:
            raise SipParseError(f"bad port {port_text!r} in {where}")
        port = int(port_text)
    return host, port


@dataclass(frozen=True, slots=True)
class SipUri:
    """A ``sip:`` or ``sips:`` URI (§19.1.1); other schemes are kept in :class:`AbsoluteUri`."""

    host: str
    scheme: str = "sip"
    user: str | None = None
    password: str | None = None
    port: int | None = None
    params: Params = ()
    headers: tuple[tuple[str, str], ...] = field(default=())

    def param(self, name: str) -> str | None:
        return _param_get(self.params, name)

    def has_param(self, name: str) -> bool:
        return _param_has(self.params, name)

    def with_param(self, name: str, value: str | None = None) -> SipUri:
        return replace(self, params=_param_set(self.params, name, value))

    @property
    def transport(self) -> str | None:
        value = self.param("transport")
        return value.upper() if value else None

    @property
    def hostport(self) -> str:
        return self.host if self.port is None else f"{self.host}:{self.port}"

    @property
    def aor(self) -> str:
        """Address of record: scheme, user and host, without port or parameters (§10.3)."""
        user = f"{self.user}@" if self.user is not None else ""
        return f"{self.scheme}:{user}{self.host.lower()}"

    def __str__(self) -> str:
        userinfo = ""
        if self.user is not None:
            userinfo = self.user
            if self.password is not None:
                userinfo += ":" + self.password
            userinfo += "@"
        headers = ""
        if self.headers:
            headers = "?" + "&".join(f"{k}={v}" for k, v in self.headers)
        return f"{self.scheme}:{userinfo}{self.hostport}{_format_params(self.params)}{headers}"


@dataclass(frozen=True, slots=True)
class AbsoluteUri:
    """A URI of another scheme (tel:, urn:, http:...), kept verbatim."""

    text: str

    @property
    def scheme(self) -> str:
        return self.text.partition(":")[0].lower()

    def __str__(self) -> str:
        return self.text


Uri = SipUri | AbsoluteUri


def parse_uri(text: str) -> Uri:
    """Parse a Request-URI or the URI of a name-addr; raise :class:`SipParseError`.

    The userinfo ends at the last '@': user and password may hold '?', ';' and ',' (RFC 4475
    §3.1.1.2, §3.1.1.9) but no '@', and neither may parameters or headers (§25.1).
    """
    text = text.strip(" \t")
    scheme, colon, rest = text.partition(":")
    if not colon or not scheme or not scheme[0].isascii() or not scheme[0].isalpha():
        raise SipParseError(f"not a URI: {text!r}")
    if not _SCHEME_CHARS.issuperset(scheme):
        raise SipParseError(f"bad URI scheme in {text!r}")
    if not _URI_FORBIDDEN.isdisjoint(text):
        raise SipParseError(f"URI contains a forbidden character: {text!r}")
    lscheme = scheme.lower()
    if lscheme not in ("sip", "sips"):
        if not rest:
            raise SipParseError(f"empty URI: {text!r}")
        return AbsoluteUri(text)
    user: str | None = None
    password: str | None = None
    if "@" in rest:
        userinfo, _, rest = rest.rpartition("@")
        user, pcolon, pw = userinfo.partition(":")
        if pcolon:
            password = pw
        if not user:
            raise SipParseError(f"empty user part in {text!r}")
    rest, qmark, header_text = rest.partition("?")
    hostport, semi, param_text = rest.partition(";")
    host, port = _parse_hostport(hostport, text)
    params = _parse_params(param_text, text) if semi else ()
    headers: tuple[tuple[str, str], ...] = ()
    if qmark:
        pairs = []
        for item in header_text.split("&"):
            k, _, v = item.partition("=")
            if not k:
                raise SipParseError(f"bad URI header in {text!r}")
            pairs.append((k, v))
        headers = tuple(pairs)
    return SipUri(
        scheme=lscheme,
        user=user,
        password=password,
        host=host,
        port=port,
        params=params,
        headers=headers,
    )


@dataclass(frozen=True, slots=True)
class NameAddr:
    """From, To, Contact, Route and Record-Route values: display name, URI, header params."""

    uri: Uri
    display_name: str | None = None
    params: Params = ()

    def param(self, name: str) -> str | None:
        return _param_get(self.params, name)

    def with_param(self, name: str, value: str | None = None) -> NameAddr:
        return replace(self, params=_param_set(self.params, name, value))

    @property
    def tag(self) -> str | None:
        return self.param("tag")

    def with_tag(self, tag: str) -> NameAddr:
        return self.with_param("tag", tag)

    @property
    def expires(self) -> int | None:
        value = self.param("expires")
        return clamp_delta_seconds(value) if value is not None else None

    def __str__(self) -> str:
        name = f"{self.display_name} " if self.display_name else ""
        return f"{name}<{self.uri}>{_format_params(self.params)}"


def parse_name_addr(text: str) -> NameAddr:
    """Parse name-addr (``"Bob" <sip:b@h>;tag=1``) or addr-spec (``sip:b@h;tag=1``) forms.

    A display name is a quoted string (kept with its quotes and escapes) or tokens separated
    by whitespace (RFC 3261 §25.1); ``Bell, Alexander <sip:...>`` is rejected (RFC 4475
    §3.1.2.15), as is whitespace inside the angle brackets (§3.1.2.14).
    """
    text = text.strip(" \t")
    if not text:
        raise SipParseError("empty address")
    display: str | None = None
    if text[0] == '"':
        i = 1
        n = len(text)
        while i < n:
            ch = text[i]
            if ch == "\\":
                i += 2
                continue
            if ch == '"':
                break
            i += 1
        if i >= n:
            raise SipParseError(f"unbalanced quotes in display name: {text!r}")
        display = text[: i + 1]
        text = text[i + 1 :].lstrip(" \t")
        if not text.startswith("<"):
            raise SipParseError(f"quoted display name without <URI>: {text!r}")
    lt = text.find("<")
    if lt >= 0:
        if display is None and lt:
            words = text[:lt].split()
            if not all(_is_token(w) for w in words):
                raise SipParseError(f"display name must be tokens or quoted: {text[:lt]!r}")
            display = " ".join(words) or None
        gt = text.find(">", lt)
        if gt < 0:
            raise SipParseError(f"missing '>' in address {text!r}")
        inner = text[lt + 1 : gt]
        if not inner or inner[0] in " \t" or inner[-1] in " \t":
            raise SipParseError(f"whitespace inside <> in address {text!r}")
        uri = parse_uri(inner)
        rest = text[gt + 1 :].lstrip(" \t")
        if not rest:
            return NameAddr(uri=uri, display_name=display)
        if rest[0] != ";":
            raise SipParseError(f"unexpected text after address: {rest!r}")
        return NameAddr(uri=uri, display_name=display, params=_parse_params(rest[1:], text))
    # addr-spec: parameters after the URI belong to the header, not the URI (§20.10).
    uri_text, semi, param_text = text.partition(";")
    if "?" in uri_text or "," in uri_text:
        raise SipParseError(f"addr-spec with reserved characters must use <>: {text!r}")
    uri = parse_uri(uri_text)
    params = _parse_params(param_text, text) if semi else ()
    return NameAddr(uri=uri, params=params)


@dataclass(frozen=True, slots=True)
class Via:
    """One Via entry (§20.42) with RFC 3581 rport/received support."""

    transport: str
    host: str
    port: int | None = None
    params: Params = ()

    def param(self, name: str) -> str | None:
        return _param_get(self.params, name)

    def with_param(self, name: str, value: str | None = None) -> Via:
        return replace(self, params=_param_set(self.params, name, value))

    @property
    def branch(self) -> str | None:
        return self.param("branch")

    @property
    def received(self) -> str | None:
        return self.param("received")

    @property
    def rport(self) -> int | None:
        value = self.param("rport")
        return parse_uint(value, max_digits=5) if value else None

    @property
    def has_rfc3261_branch(self) -> bool:
        """The branch carries the magic cookie and something after it (§8.1.1.7).

        Otherwise the transaction layer matches the RFC 2543 way (§17.2.3; RFC 4475 §3.2.1).
        """
        branch = self.branch
        return branch is not None and len(branch) > 7 and branch.startswith("z9hG4bK")

    @property
    def wants_rport(self) -> bool:
        return _param_has(self.params, "rport")

    @property
    def sent_by(self) -> str:
        return self.host if self.port is None else f"{self.host}:{self.port}"

    def __str__(self) -> str:
        return f"SIP/2.0/{self.transport} {self.sent_by}{_format_params(self.params)}"


def parse_via(text: str) -> Via:
    """Parse one Via value; LWS around the '/' of sent-protocol is allowed (§25.1)."""
    name, slash1, rest = text.strip(" \t").partition("/")
    version, slash2, rest = rest.partition("/")
    if not (slash1 and slash2) or name.strip(" \t").upper() != "SIP":
        raise SipParseError(f"bad Via sent-protocol: {text!r}")
    if version.strip(" \t") != "2.0":
        raise SipParseError(f"unsupported Via protocol version: {text!r}")
    pieces = rest.split(None, 1)
    if len(pieces) != 2:
        raise SipParseError(f"Via without sent-by: {text!r}")
    transport, rest = pieces
    if not _is_token(transport):
        raise SipParseError(f"bad Via transport: {text!r}")
    sent_by, semi, param_text = rest.partition(";")
    sent_by = "".join(sent_by.split())
    host, port = _parse_hostport(sent_by, "Via")
    params = _parse_params(param_text, "Via") if semi else ()
    for key, value in params:
        lkey = key.lower()
        if lkey == "branch" and not value:
            raise SipParseError(f"empty Via branch: {text!r}")
        if lkey == "rport" and value is not None and parse_uint(value, max_digits=5) is None:
            raise SipParseError(f"bad Via rport: {text!r}")
    return Via(transport=transport.upper(), host=host, port=port, params=params)
