"""SIP message parse and serialize (RFC 3261 §7, §18.3, §20, §25)."""

from __future__ import annotations

import contextlib

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.sip.strategies import messages
from uacsta.sip.errors import MessageTooLarge, SipParseError
from uacsta.sip.helpers import build_response, generate_branch
from uacsta.sip.message import (
    CSeq,
    Message,
    Request,
    Response,
    canonical_name,
    parse_cseq,
    parse_message,
)
from uacsta.sip.uri import SipUri

FUZZ = settings(max_examples=150, deadline=None, suppress_health_check=list(HealthCheck))


def crlf(text: str) -> bytes:
    return text.replace("\n", "\r\n").encode()


REGISTER = crlf(
    """REGISTER sip:pbx.example.com SIP/2.0
Via: SIP/2.0/UDP 192.0.2.10:5060;branch=z9hG4bK776asdhds;rport
Max-Forwards: 70
To: "Alice" <sip:alice@pbx.example.com>
From: "Alice" <sip:alice@pbx.example.com>;tag=1928301774
Call-ID: a84b4c76e66710@192.0.2.10
CSeq: 314159 REGISTER
Contact: <sip:alice@192.0.2.10:5060;transport=udp>;expires=3600
Content-Length: 0

"""
)


def test_request_fields() -> None:
    msg = parse_message(REGISTER)
    assert isinstance(msg, Request)
    assert msg.method == "REGISTER"
    assert msg.uri == "sip:pbx.example.com"
    assert msg.request_uri == SipUri(host="pbx.example.com")
    assert msg.call_id == "a84b4c76e66710@192.0.2.10"
    assert msg.cseq == CSeq(314159, "REGISTER")
    assert msg.from_.tag == "1928301774"
    assert msg.to.display_name == '"Alice"'
    assert msg.top_via.branch == "z9hG4bK776asdhds"
    assert msg.top_via.wants_rport
    assert msg.contact[0].expires == 3600
    assert msg.max_forwards == 70
    assert msg.body == b""
    assert not msg.has_header("Content-Length")  # derived from the body on output


def test_serialization_is_canonical() -> None:
    raw = crlf(
        """INVITE sip:bob@example.com SIP/2.0
v: SIP/2.0/UDP h1;branch=z9hG4bKa, SIP/2.0/TCP h2;branch=z9hG4bKb
f: <sip:a@example.com>;tag=1
t: sip:bob@example.com
i: abc
CSeq:   7
 INVITE
m: <sip:a@h1>
c: application/sdp
l: 4
k: timer, 100rel
SUBJECT:   hello   world
e: gzip
s:

body"""
    )
    msg = parse_message(raw)
    assert msg.to_bytes() == crlf(
        """INVITE sip:bob@example.com SIP/2.0
Via: SIP/2.0/UDP h1;branch=z9hG4bKa
Via: SIP/2.0/TCP h2;branch=z9hG4bKb
From: <sip:a@example.com>;tag=1
To: sip:bob@example.com
Call-ID: abc
CSeq: 7 INVITE
Contact: <sip:a@h1>
Content-Type: application/sdp
Supported: timer
Supported: 100rel
Subject: hello   world
Content-Encoding: gzip
Subject:<SP>
Content-Length: 4

body"""
    ).replace(b"<SP>", b" ")
    assert parse_message(msg.to_bytes()) == msg
    assert msg.option_tags("k") == {"timer", "100rel"}
    assert msg.content_type == "application/sdp"


def test_header_names_are_case_insensitive() -> None:
    msg = parse_message(REGISTER.replace(b"Call-ID", b"cALL-iD").replace(b"CSeq", b"cseq"))
    assert msg.header("call-id") == msg.header("I") == "a84b4c76e66710@192.0.2.10"
    assert [k for k, _ in msg.headers][4:6] == ["Call-ID", "CSeq"]


@pytest.mark.parametrize(
    ("compact", "full"),
    [
        ("v", "Via"),
        ("f", "From"),
        ("t", "To"),
        ("i", "Call-ID"),
        ("m", "Contact"),
        ("l", "Content-Length"),
        ("c", "Content-Type"),
        ("k", "Supported"),
        ("s", "Subject"),
        ("e", "Content-Encoding"),
        ("V", "Via"),
        ("www-authenticate", "WWW-Authenticate"),
        ("x-yealink-foo", "X-Yealink-Foo"),
    ],
)
def test_canonical_names(compact: str, full: str) -> None:
    assert canonical_name(compact) == full


def test_folding_and_lws() -> None:
    raw = REGISTER.replace(
        b"Max-Forwards: 70\r\n", b"Max-Forwards:\r\n  70\r\nX-Note: a\r\n\t b  \r\n  c\r\n"
    )
    msg = parse_message(raw)
    assert msg.header("Max-Forwards") == "70"
    assert msg.header("X-Note") == "a b c"


def test_whitespace_inside_values_is_kept() -> None:
    raw = REGISTER.replace(b'"Alice" <sip:alice@pbx', b'"Alice   Liddell" <sip:alice@pbx', 1)
    assert parse_message(raw).to.display_name == '"Alice   Liddell"'


def test_multi_value_headers_split_outside_quotes() -> None:
    raw = REGISTER.replace(
        b"Contact: <sip:alice@192.0.2.10:5060;transport=udp>;expires=3600",
        b'Contact: "A, B" <sip:a@h>;q=0.5, <sip:b@h>\r\nRoute: <sip:p1;lr>,<sip:p2;lr>',
    )
    msg = parse_message(raw)
    assert msg.header_values("Contact") == ['"A, B" <sip:a@h>;q=0.5', "<sip:b@h>"]
    assert [str(c.uri) for c in msg.contact] == ["sip:a@h", "sip:b@h"]
    assert msg.header_values("route") == ["<sip:p1;lr>", "<sip:p2;lr>"]


def test_contact_star_and_empty_option_lists() -> None:
    raw = REGISTER.replace(
        b"Contact: <sip:alice@192.0.2.10:5060;transport=udp>;expires=3600",
        b"Contact: *\r\nExpires: 0\r\nSupported:\r\nAllow: INVITE, , ACK",
    )
    msg = parse_message(raw)
    assert msg.header_values("Contact") == ["*"]
    assert msg.contact == []
    assert msg.expires == 0
    assert msg.header_values("Supported") == [""]
    assert msg.header_values("Allow") == ["INVITE", "ACK"]
    assert parse_message(msg.to_bytes()) == msg


def test_response_fields() -> None:
    raw = crlf(
        """SIP/2.0 180 Ringing
Via: SIP/2.0/UDP 192.0.2.10;branch=z9hG4bKx;received=198.51.100.1;rport=4000
From: <sip:a@h>;tag=1
To: <sip:b@h>;tag=2
Call-ID: c
CSeq: 1 INVITE
Content-Length: 0

"""
    )
    msg = parse_message(raw)
    assert isinstance(msg, Response)
    assert (msg.status_code, msg.reason) == (180, "Ringing")
    assert msg.is_provisional and not msg.is_success
    assert msg.top_via.received == "198.51.100.1"
    assert msg.top_via.rport == 4000
    assert msg.to_bytes() == raw


def test_content_length_datagram_and_stream() -> None:
    base = REGISTER.replace(b"Content-Length: 0", b"Content-Length: 3")
    assert parse_message(base + b"abcdef").body == b"abc"  # §18.3: extra octets discarded
    with pytest.raises(SipParseError):
        parse_message(base + b"ab")  # shorter than Content-Length
    with pytest.raises(SipParseError):
        parse_message(base + b"abcdef", datagram=False)
    assert parse_message(base + b"abc", datagram=False).body == b"abc"
    no_length = REGISTER.replace(b"Content-Length: 0\r\n", b"")
    assert parse_message(no_length + b"xyz").body == b"xyz"
    assert parse_message(REGISTER.replace(b"Content-Length: 0", b"l: 0000")).body == b""


@pytest.mark.parametrize(
    ("raw", "status"),
    [
        (b"", 400),
        (b"\r\n\r\n", 400),
        (b"REGISTER sip:x SIP/2.0", 400),  # no end of headers
        (REGISTER.replace(b"SIP/2.0\r\n", b"SIP/3.0\r\n", 1), 505),
        (REGISTER.replace(b"SIP/2.0\r\n", b"HTTP/1.1\r\n", 1), 400),
        (REGISTER.replace(b"REGISTER sip", b"REG ISTER sip", 1), 400),
        (REGISTER.replace(b"Max-Forwards", b"Max@Forwards"), 400),
        (REGISTER.replace(b"Max-Forwards: 70", b"Max Forwards: 70"), 400),
        (REGISTER.replace(b"Max-Forwards: 70", b"NoColon"), 400),
        (REGISTER.replace(b"Content-Length: 0", b"Content-Length: x"), 400),
        (REGISTER.replace(b"Content-Length: 0", b"Content-Length: \xc2\xb2"), 400),
        (REGISTER.replace(b"CSeq: 314159", b"CSeq: 2147483648"), 400),
        (REGISTER.replace(b"CSeq: 314159 REGISTER", b"CSeq: 1 INVITE"), 400),
        (REGISTER.replace(b"Call-ID: a84b4c76e66710@192.0.2.10", b"Call-ID:"), 400),
        (REGISTER.replace(b"Max-Forwards: 70", b"X: a\x00b"), 400),  # bare NUL
        (REGISTER.replace(b"Max-Forwards: 70", b"X: a\rb"), 400),  # bare CR
        (REGISTER.replace(b"Max-Forwards: 70", b"X: \xff"), 400),  # not UTF-8
        (REGISTER.replace(b"Max-Forwards: 70", b"Route:"), 400),
        (b" REGISTER sip:x SIP/2.0\r\n\r\n", 400),  # continuation first
        (REGISTER.replace(b"SIP/2.0/UDP", b"SIP/2.0/UDP", 1).replace(b"Via", b"X-Via", 1), 400),
    ],
)
def test_rejections(raw: bytes, status: int) -> None:
    with pytest.raises(SipParseError) as info:
        parse_message(raw)
    assert info.value.status_code == status


def test_cseq_mismatch_on_unknown_method_is_501() -> None:
    raw = REGISTER.replace(b"REGISTER sip", b"FROBNICATE sip", 1)
    with pytest.raises(SipParseError) as info:
        parse_message(raw)
    assert info.value.status_code == 501


def test_escaped_nul_in_quoted_string_is_accepted() -> None:
    raw = REGISTER.replace(b'To: "Alice"', b'To: "NUL:\\\x00"')
    msg = parse_message(raw)
    assert msg.to.display_name == '"NUL:\\\x00"'
    assert parse_message(msg.to_bytes()) == msg


def test_bare_lf_line_ends_are_tolerated() -> None:
    msg = parse_message(REGISTER.replace(b"\r\n", b"\n"))
    assert msg == parse_message(REGISTER)


def test_bounds() -> None:
    many = REGISTER.replace(b"Max-Forwards: 70\r\n", b"X-A: 1\r\n" * 101)
    with pytest.raises(MessageTooLarge) as info:
        parse_message(many)
    assert info.value.status_code == 513
    assert parse_message(many, max_headers=200).header("X-A") == "1"
    with pytest.raises(MessageTooLarge):
        parse_message(REGISTER, max_header_bytes=100)
    body = REGISTER.replace(b"Content-Length: 0", b"Content-Length: 10") + b"0123456789"
    with pytest.raises(MessageTooLarge):
        parse_message(body, max_body_bytes=9)
    with pytest.raises(MessageTooLarge):
        parse_message(REGISTER.replace(b"Content-Length: 0\r\n", b"") + b"x" * 10, max_body_bytes=9)


def test_typed_values_of_odd_headers() -> None:
    raw = REGISTER.replace(b"Max-Forwards: 70", b"Max-Forwards: lots\r\nExpires: " + b"9" * 5000)
    msg = parse_message(raw)
    assert msg.max_forwards is None
    assert msg.expires == 2**32 - 1


def test_header_editing() -> None:
    msg = parse_message(REGISTER)
    via2 = f"SIP/2.0/TCP proxy.example.com;branch={generate_branch()}"
    fwd = msg.with_header_first("v", via2).with_header("X-Extra", "1")
    assert fwd.header_values("Via")[0] == via2
    assert fwd.header("x-extra") == "1"
    replaced = fwd.with_header_set("Via", "SIP/2.0/UDP a;branch=z9hG4bK1")
    assert replaced.header_values("Via") == ["SIP/2.0/UDP a;branch=z9hG4bK1"]
    assert replaced.headers[0][0] == "Via"
    assert replaced.without_header("X-Extra").header("X-Extra") is None
    with_body = msg.with_body(b"<xml/>", "application/csta+xml")
    assert with_body.content_type == "application/csta+xml"
    assert parse_message(with_body.to_bytes()) == with_body


def test_missing_header_views_raise_parse_errors() -> None:
    bare = Request(method="OPTIONS", uri="sip:x")
    for view in ("call_id", "cseq", "from_", "to", "top_via"):
        with pytest.raises(SipParseError):
            getattr(bare, view)
    assert bare.via == [] and bare.contact == [] and bare.expires is None


def test_build_response() -> None:
    req = parse_message(REGISTER)
    assert isinstance(req, Request)
    resp = build_response(req, 200, to_tag="xyz", headers=(("Expires", "3600"),))
    assert resp.reason == "OK"
    assert resp.to.tag == "xyz"
    assert resp.header_values("Via") == req.header_values("Via")
    assert resp.cseq == req.cseq
    assert parse_message(resp.to_bytes()) == resp
    trying = build_response(req, 100, to_tag="xyz")
    assert trying.to.tag is None


def test_parse_cseq() -> None:
    assert parse_cseq("0009 INVITE") == CSeq(9, "INVITE")
    assert str(CSeq(1, "ACK")) == "1 ACK"
    for bad in ("", "1", "x INVITE", "1 IN VITE", "-1 INVITE", "1 INV<ITE"):
        with pytest.raises(SipParseError):
            parse_cseq(bad)


# --- properties ---------------------------------------------------------------------------
@FUZZ
@given(messages)
def test_round_trip(msg: Message) -> None:
    data = msg.to_bytes()
    assert parse_message(data) == msg
    assert parse_message(data, datagram=False) == msg
    assert parse_message(data).to_bytes() == data


def _check_views(msg: Message) -> None:
    """Typed views of an accepted message raise SipParseError at worst, nothing else."""
    for view in ("call_id", "cseq", "from_", "to", "via", "top_via", "contact"):
        with contextlib.suppress(SipParseError):
            getattr(msg, view)
    assert msg.expires is None or msg.expires >= 0
    assert msg.max_forwards is None or msg.max_forwards >= 0
    if isinstance(msg, Request):
        msg.request_uri  # noqa: B018 - validated while parsing, must not raise
    data = msg.to_bytes()
    assert parse_message(data) == msg


def _only_parse_errors(data: bytes) -> None:
    try:
        msg = parse_message(data)
    except SipParseError:
        return
    _check_views(msg)


@FUZZ
@given(st.binary(max_size=400))
def test_random_bytes_raise_only_parse_errors(data: bytes) -> None:
    _only_parse_errors(data)


_SPECIAL = st.sampled_from(
    [
        *(b"\r\n", b"\r\n ", b"\n", b"\r", b":", b";", b",", b"<", b">", b'"', b"\\", b"\x00"),
        *(b" ", b"\xff", b"\xc3", b"%", b"=", b"@", b"/", b"SIP/2.0", b"Content-Length: 99999\r\n"),
    ]
)


@st.composite
def mutated_messages(draw: st.DrawFn) -> bytes:
    data = draw(messages).to_bytes()
    for _ in range(draw(st.integers(1, 4))):
        i = draw(st.integers(0, len(data)))
        kind = draw(st.integers(0, 4))
        if kind == 0:  # byte flip
            if i < len(data):
                data = data[:i] + bytes([draw(st.integers(0, 255))]) + data[i + 1 :]
        elif kind == 1:  # truncation
            data = data[:i]
        elif kind == 2:  # duplication of a slice
            j = draw(st.integers(0, len(data)))
            lo, hi = min(i, j), max(i, j)
            data = data[:hi] + data[lo:hi] + data[hi:]
        elif kind == 3:  # insertion of a syntactically meaningful byte string
            data = data[:i] + draw(_SPECIAL) + data[i:]
        else:  # deletion
            data = data[:i] + data[i + 1 :]
    return data


@FUZZ
@given(mutated_messages())
def test_mutated_messages_raise_only_parse_errors(data: bytes) -> None:
    _only_parse_errors(data)
    with contextlib.suppress(SipParseError):
        parse_message(data, datagram=False, max_headers=5, max_body_bytes=10)


def _views(msg: Message) -> list[object]:
    seen: list[object] = []
    for view in ("call_id", "cseq", "from_", "to", "via", "top_via", "contact"):
        try:
            seen.append(getattr(msg, view))
        except SipParseError as exc:
            seen.append(type(exc))
    return seen


@given(messages)
def test_dropping_parsed_values_changes_no_view(msg: Message) -> None:
    parsed = parse_message(msg.to_bytes())
    before = _views(parsed)
    parsed.drop_parsed()
    assert parsed._parsed == {}
    assert _views(parsed) == before
