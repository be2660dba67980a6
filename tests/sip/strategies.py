"""Hypothesis strategies for SIP values and messages (RFC 3261 §25.1 grammar, simplified).

Everything generated here is valid and canonical: ``parse(serialize(x)) == x`` must hold for
it. Reusable by other test modules: ``from tests.sip.strategies import requests, messages``.
"""

from __future__ import annotations

import string

from hypothesis import strategies as st

from uacsta.sip.message import MULTI_VALUE, Request, Response, canonical_name
from uacsta.sip.uri import AbsoluteUri, NameAddr, SipUri, Via

TOKEN_CHARS = string.ascii_letters + string.digits + "-.!%*_+`'~"
ALNUM = string.ascii_letters + string.digits
UNRESERVED = ALNUM + "-_.!~*'()"

tokens = st.text(TOKEN_CHARS, min_size=1, max_size=12)
methods = st.sampled_from(["INVITE", "REGISTER", "INFO", "OPTIONS", "BYE", "NOTIFY"]) | tokens

_label = st.text(string.ascii_lowercase + string.digits, min_size=1, max_size=10)
domains = st.lists(_label, min_size=1, max_size=4).map(".".join)
ipv4s = st.tuples(*[st.integers(0, 255)] * 4).map(lambda t: ".".join(map(str, t)))
ipv6s = st.sampled_from(["[::1]", "[2001:db8::10]", "[fe80::1:2:3]"])
hosts = st.one_of(domains, ipv4s, ipv6s)
ports = st.none() | st.integers(1, 65535)

_escaped = st.sampled_from(["%20", "%00", "%41", "%3A", "%40"])
users = st.lists(
    st.text(UNRESERVED + "&=+$,;?/", min_size=1, max_size=6) | _escaped, min_size=1, max_size=4
).map("".join)
passwords = st.text(UNRESERVED + "&=+$,", max_size=8)

_param_value = st.none() | tokens
uri_params = st.lists(st.tuples(tokens, _param_value), max_size=3).map(tuple)
uri_headers = st.lists(
    st.tuples(st.text(ALNUM + "-", min_size=1, max_size=8), st.text(ALNUM + "-_.%", max_size=8)),
    max_size=2,
).map(tuple)


@st.composite
def sip_uris(draw: st.DrawFn) -> SipUri:
    user = draw(st.none() | users)
    return SipUri(
        scheme=draw(st.sampled_from(["sip", "sips"])),
        user=user,
        password=draw(st.none() | passwords) if user is not None else None,
        host=draw(hosts),
        port=draw(ports),
        params=draw(uri_params),
        headers=draw(uri_headers),
    )


absolute_uris = st.builds(
    lambda scheme, opaque: AbsoluteUri(f"{scheme}:{opaque}"),
    st.sampled_from(["tel", "urn", "http", "isbn", "mailto"]),
    st.text(ALNUM + "+-.;=/_", min_size=1, max_size=20),
)
uris = st.one_of(sip_uris(), sip_uris(), absolute_uris)

_qtext = st.text(
    st.characters(blacklist_categories=("Cs", "Cc"), blacklist_characters='"\\'), max_size=12
)
_quoted_pair = st.sampled_from(['\\"', "\\\\", "\\a"])
quoted_strings = st.lists(_qtext | _quoted_pair, max_size=4).map(lambda p: '"' + "".join(p) + '"')
display_names = st.one_of(
    st.none(),
    quoted_strings,
    st.lists(tokens, min_size=1, max_size=3).map(" ".join),
)
header_params = st.lists(st.tuples(tokens, st.none() | tokens | quoted_strings), max_size=3).map(
    tuple
)


@st.composite
def name_addrs(draw: st.DrawFn, *, tag: bool | None = None) -> NameAddr:
    params = draw(header_params)
    if tag is not None:
        params = tuple(p for p in params if p[0].lower() != "tag")
        if tag:
            params = (*params, ("tag", draw(tokens)))
    return NameAddr(uri=draw(uris), display_name=draw(display_names), params=params)


@st.composite
def vias(draw: st.DrawFn) -> Via:
    params: list[tuple[str, str | None]] = [("branch", "z9hG4bK" + draw(tokens))]
    if draw(st.booleans()):
        params.append(("rport", draw(st.none() | st.integers(1, 65535).map(str))))
    if draw(st.booleans()):
        params.append(("received", draw(ipv4s)))
    extra = draw(st.lists(st.tuples(tokens, _param_value), max_size=2))
    params.extend(p for p in extra if p[0].lower() not in ("branch", "rport"))
    return Via(
        transport=draw(st.sampled_from(["UDP", "TCP", "TLS", "SCTP", "WS", "WSS"])),
        host=draw(hosts),
        port=draw(ports),
        params=tuple(params),
    )


_RESERVED = {*MULTI_VALUE, "From", "To", "Call-ID", "CSeq", "Content-Length"}
extension_names = tokens.map(canonical_name).filter(lambda n: n not in _RESERVED)
# Free text: no control characters (so no CR/LF/NUL), no edge whitespace (it is not kept).
header_texts = st.text(
    st.characters(blacklist_categories=("Cs", "Cc")), min_size=0, max_size=30
).map(lambda s: s.strip(" \t"))
call_ids = st.text(ALNUM + "-.!%*_+`'~()<>:\\\"/[]?{}@", min_size=1, max_size=30)
bodies = st.binary(max_size=300)


@st.composite
def _headers(draw: st.DrawFn, method: str) -> tuple[tuple[str, str], ...]:
    headers: list[tuple[str, str]] = [
        ("Via", str(v)) for v in draw(st.lists(vias(), min_size=1, max_size=3))
    ]
    headers.append(("From", str(draw(name_addrs(tag=True)))))
    headers.append(("To", str(draw(name_addrs(tag=None)))))
    headers.append(("Call-ID", draw(call_ids)))
    headers.append(("CSeq", f"{draw(st.integers(0, 2**31 - 1))} {method}"))
    headers.append(("Max-Forwards", str(draw(st.integers(0, 255)))))
    headers.extend(("Contact", str(c)) for c in draw(st.lists(name_addrs(), max_size=2)))
    headers.extend(("Supported", t) for t in draw(st.lists(tokens, max_size=2)))
    headers.extend(draw(st.lists(st.tuples(extension_names, header_texts), max_size=4)))
    order = draw(st.permutations(range(len(headers))))
    # Keep the relative order of same-name headers (it is significant: Via, Contact...).
    by_name: dict[str, list[str]] = {}
    for name, value in headers:
        by_name.setdefault(name, []).append(value)
    out = []
    for i in order:
        name = headers[i][0]
        out.append((name, by_name[name].pop(0)))
    return tuple(out)


@st.composite
def requests(draw: st.DrawFn) -> Request:
    method = draw(methods)
    return Request(
        method=method,
        uri=str(draw(uris)),
        headers=draw(_headers(method)),
        body=draw(bodies),
    )


@st.composite
def responses(draw: st.DrawFn) -> Response:
    reason = draw(st.text(st.characters(blacklist_categories=("Cs", "Cc")), max_size=20))
    return Response(
        status_code=draw(st.integers(100, 699)),
        reason=reason,
        headers=draw(_headers(draw(methods))),
        body=draw(bodies),
    )


messages = st.one_of(requests(), responses())
