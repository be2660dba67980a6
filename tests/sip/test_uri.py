"""URIs, name-addr and Via (RFC 3261 §19.1, §20.10, §20.42, §25.1; RFC 3581)."""

from __future__ import annotations

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.sip.strategies import name_addrs, sip_uris, uris, vias
from uacsta.sip.errors import SipParseError
from uacsta.sip.uri import (
    AbsoluteUri,
    NameAddr,
    SipUri,
    Via,
    clamp_delta_seconds,
    parse_name_addr,
    parse_uint,
    parse_uri,
    parse_via,
    split_header_values,
)

FUZZ = settings(max_examples=150, deadline=None, suppress_health_check=list(HealthCheck))


# --- parse_uri ---------------------------------------------------------------------------
def test_full_sip_uri() -> None:
    uri = parse_uri("SIPS:alice:secret@Example.COM:5061;transport=tls;lr?subject=hi&x=")
    assert uri == SipUri(
        scheme="sips",
        user="alice",
        password="secret",
        host="Example.COM",
        port=5061,
        params=(("transport", "tls"), ("lr", None)),
        headers=(("subject", "hi"), ("x", "")),
    )
    assert uri.transport == "TLS"
    assert uri.has_param("LR")
    assert uri.aor == "sips:alice@example.com"
    assert str(uri) == "sips:alice:secret@Example.COM:5061;transport=tls;lr?subject=hi&x="


def test_userinfo_ends_at_last_at_sign() -> None:
    # RFC 4475 §3.1.1.2 and §3.1.1.9: '?', ';', ',' and ':' belong to userinfo here.
    uri = parse_uri("sip:1_unusual.URI~(to-be!sure)&isn't+it$/crazy?,/;;*:&it+has=1@example.com")
    assert isinstance(uri, SipUri)
    assert uri.user == "1_unusual.URI~(to-be!sure)&isn't+it$/crazy?,/;;*"
    assert uri.password == "&it+has=1"
    assert uri.host == "example.com"
    assert uri.params == ()
    semi = parse_uri("sip:user;par=u%40example.net@example.com")
    assert isinstance(semi, SipUri)
    assert semi.user == "user;par=u%40example.net"


def test_ipv6_host() -> None:
    uri = parse_uri("sip:[2001:db8::1]:5060;transport=udp")
    assert isinstance(uri, SipUri)
    assert (uri.host, uri.port) == ("[2001:db8::1]", 5060)
    assert uri.hostport == "[2001:db8::1]:5060"


def test_escapes_are_kept_as_received() -> None:
    uri = parse_uri("sip:null-%00-null@example.com")
    assert isinstance(uri, SipUri)
    assert uri.user == "null-%00-null"


@pytest.mark.parametrize(
    "text",
    ["tel:+4930123", "urn:service:sos", "soap.beep://192.0.2.103:3002", "name:John_Smith"],
)
def test_other_schemes_are_kept_verbatim(text: str) -> None:
    uri = parse_uri(text)
    assert uri == AbsoluteUri(text)
    assert str(uri) == text


@pytest.mark.parametrize(
    "text",
    [
        "",
        "example.com",
        ":x",
        "1sip:x",
        "s p:x",
        "tel:",
        "sip:",
        "sip:@host",
        "sip:user@",
        "sip:host:",
        "sip:host:0",
        "sip:host:65536",
        "sip:host:5x",
        "sip:host:²",
        "sip:ho st",
        "sip:<host>",
        'sip:"host"',
        "sip:host;;lr",
        "sip:host;lr;",
        "sip:host;=x",
        "sip:host;a=",
        "sip:host?",
        "sip:host?=v",
        "sip:[::1",
        "sip:[::1]x",
        "sip:a[b",
        "sip:a:b:c",
        "sip:host\x00",
    ],
)
def test_bad_uris(text: str) -> None:
    with pytest.raises(SipParseError):
        parse_uri(text)


@FUZZ
@given(sip_uris())
def test_sip_uri_round_trip(uri: SipUri) -> None:
    assert parse_uri(str(uri)) == uri


@FUZZ
@given(uris)
def test_any_uri_round_trip(uri: SipUri | AbsoluteUri) -> None:
    assert parse_uri(str(uri)) == uri


# --- name-addr ----------------------------------------------------------------------------
def test_name_addr_with_quoted_display_name() -> None:
    addr = parse_name_addr('"J Rosenberg \\\\\\""  <sip:jdrosen@example.com> ; tag = 98asjd8')
    assert addr.display_name == '"J Rosenberg \\\\\\""'
    assert addr.tag == "98asjd8"
    assert addr.uri == SipUri(host="example.com", user="jdrosen")
    assert str(addr) == '"J Rosenberg \\\\\\"" <sip:jdrosen@example.com>;tag=98asjd8'


def test_name_addr_token_display_name_without_space() -> None:
    addr = parse_name_addr("caller<sip:caller@example.com>;tag=323")
    assert addr.display_name == "caller"
    multi = parse_name_addr("token1~`   token2'+_ <sip:mundane@example.com>")
    assert multi.display_name == "token1~` token2'+_"


def test_addr_spec_params_belong_to_the_header() -> None:
    addr = parse_name_addr("sip:+19725552222@gw1.example.net;unknownparam;expires=60")
    assert addr.display_name is None
    assert addr.params == (("unknownparam", None), ("expires", "60"))
    assert isinstance(addr.uri, SipUri) and addr.uri.params == ()
    assert addr.expires == 60
    inside = parse_name_addr("<sip:+19725552222@gw1.example.net;unknownparam>")
    assert isinstance(inside.uri, SipUri) and inside.uri.params == (("unknownparam", None),)
    assert inside.params == ()


def test_expires_param_is_clamped_and_junk_is_none() -> None:
    assert parse_name_addr("<sip:a@b>;expires=" + "9" * 5000).expires == 2**32 - 1
    assert parse_name_addr("<sip:a@b>;expires=soon").expires is None


@pytest.mark.parametrize(
    "text",
    [
        "",
        "   ",
        '"unterminated <sip:a@b>',
        '"Joe" sip:a@b',
        "Bell, Alexander <sip:a.g.bell@example.com>",  # RFC 4475 §3.1.2.15
        '"Watson" < sip:t.watson@example.org >',  # RFC 4475 §3.1.2.14
        "<sip:a@b",
        "<>",
        "<sip:a@b> junk",
        "<sip:a@b>;;;;",  # RFC 4475 §3.1.2.1
        "<sip:a@b>;tag=",
        '<sip:a@b>;x="unbalanced',
        "sip:user@example.com?Route=%3Csip:x%3E",  # RFC 4475 §3.1.2.13
        "sip:a,b@c",
        "x <tel:>",
    ],
)
def test_bad_name_addrs(text: str) -> None:
    with pytest.raises(SipParseError):
        parse_name_addr(text)


def test_tag_helpers() -> None:
    addr = NameAddr(uri=SipUri(host="h", user="u"))
    assert addr.tag is None
    tagged = addr.with_tag("abc")
    assert tagged.tag == "abc"
    assert tagged.with_tag("def").params == (("tag", "def"),)
    assert str(tagged) == "<sip:u@h>;tag=abc"


@FUZZ
@given(name_addrs())
def test_name_addr_round_trip(addr: NameAddr) -> None:
    assert parse_name_addr(str(addr)) == addr


# --- Via ----------------------------------------------------------------------------------
def test_via_with_lws_and_rport() -> None:
    via = parse_via("SIP  / 2.0  / tcp     spindle.example.com : 5061  ;  branch  =   z9hG4bK9i")
    assert via == Via(
        transport="TCP", host="spindle.example.com", port=5061, params=(("branch", "z9hG4bK9i"),)
    )
    assert via.sent_by == "spindle.example.com:5061"
    assert str(via) == "SIP/2.0/TCP spindle.example.com:5061;branch=z9hG4bK9i"


def test_via_rfc3581() -> None:
    via = parse_via("SIP/2.0/UDP 10.0.0.1:5060;rport;branch=z9hG4bKx")
    assert via.wants_rport and via.rport is None and via.received is None
    answered = via.with_param("received", "192.0.2.9").with_param("rport", "40000")
    assert answered.received == "192.0.2.9"
    assert answered.rport == 40000
    assert str(answered) == (
        "SIP/2.0/UDP 10.0.0.1:5060;branch=z9hG4bKx;received=192.0.2.9;rport=40000"
    )
    assert parse_via(str(answered)) == answered


def test_branch_kinds() -> None:
    assert parse_via("SIP/2.0/UDP h;branch=z9hG4bKabc").has_rfc3261_branch
    # RFC 4475 §3.2.1: the bare cookie is a valid token but not an RFC 3261 branch.
    assert not parse_via("SIP/2.0/UDP h;branch=z9hG4bK").has_rfc3261_branch
    assert not parse_via("SIP/2.0/UDP h;branch=390skdjuw").has_rfc3261_branch
    assert not parse_via("SIP/2.0/UDP h").has_rfc3261_branch


@pytest.mark.parametrize(
    "text",
    [
        "",
        "SIP/2.0 UDP host",
        "SIP/2.0/UDP",
        "SIP/2.0/UDP ",
        "HTTP/2.0/UDP host",
        "SIP/7.0/UDP host",  # RFC 4475 §3.1.2.16
        "SIP/2.0/U;DP host",
        "SIP/2.0/UDP host;;,",  # RFC 4475 §3.1.2.1
        "SIP/2.0/UDP host;branch=",
        "SIP/2.0/UDP host;rport=abc",
        "SIP/2.0/UDP host;rport=123456",
        "SIP/2.0/UDP host:99999",
    ],
)
def test_bad_vias(text: str) -> None:
    with pytest.raises(SipParseError):
        parse_via(text)


@FUZZ
@given(vias())
def test_via_round_trip(via: Via) -> None:
    assert parse_via(str(via)) == via


# --- helpers ------------------------------------------------------------------------------
def test_split_header_values_respects_quotes_and_brackets() -> None:
    assert split_header_values('"a, b" <sip:x@y>, <sip:z@w;p=1,2>,,') == [
        '"a, b" <sip:x@y>',
        "<sip:z@w;p=1,2>",
    ]


def test_integer_helpers() -> None:
    assert parse_uint("0068") == 68
    assert parse_uint("1" * 11) is None
    assert parse_uint("²") is None
    assert parse_uint("-1") is None
    assert clamp_delta_seconds("1" + "0" * 100) == 2**32 - 1
    assert clamp_delta_seconds("x") is None


# --- no input makes these raise anything but SipParseError --------------------------------
_SPECIAL = st.sampled_from([*':;,<>"\\@?&=[]% \t\x00/', "sip:", "SIP/2.0/", "%00"])


def _mutate(draw: st.DrawFn, text: str) -> str:
    for _ in range(draw(st.integers(1, 4))):
        i = draw(st.integers(0, len(text)))
        kind = draw(st.integers(0, 3))
        if kind == 0:
            text = text[:i] + draw(_SPECIAL) + text[i:]
        elif kind == 1:
            text = text[:i] + text[i + 1 :]
        elif kind == 2:
            text = text[:i]
        else:
            text = text[:i] + text[i // 2 : i] + text[i:]
    return text


@st.composite
def _mutated(draw: st.DrawFn, base: st.SearchStrategy[object]) -> str:
    return _mutate(draw, str(draw(base)))


_any_text = st.text(max_size=60) | st.lists(_SPECIAL | st.text(max_size=4), max_size=15).map(
    "".join
)


def _only_parse_errors(fn: object, text: str) -> None:
    assert callable(fn)
    try:
        value = fn(text)
    except SipParseError:
        return
    str(value)  # whatever parses also serializes


@FUZZ
@given(_any_text | _mutated(uris))
def test_parse_uri_raises_only_parse_errors(text: str) -> None:
    _only_parse_errors(parse_uri, text)


@FUZZ
@given(_any_text | _mutated(name_addrs()))
def test_parse_name_addr_raises_only_parse_errors(text: str) -> None:
    try:
        addr = parse_name_addr(text)
    except SipParseError:
        return
    assert addr.expires is None or addr.expires >= 0
    assert parse_name_addr(str(addr)) == addr  # accepted input serializes canonically


@FUZZ
@given(_any_text | _mutated(vias()))
def test_parse_via_raises_only_parse_errors(text: str) -> None:
    try:
        via = parse_via(text)
    except SipParseError:
        return
    assert via.rport is None or 0 <= via.rport < 100000
    assert parse_via(str(via)) == via
