"""RFC 4475 torture tests: each message whole, byte by byte through the framer, and trailing data.

The fixtures in ``fixtures/rfc4475`` are the RFC's messages (CRLF line ends, ``<repeat>`` and
``<hex>`` notation expanded). Each one has exactly one expectation below:

* ``parse``: the message parses; the test asserts the values the RFC says it carries.
* ``reject(status)``: :func:`parse_message` raises :class:`SipParseError` with that status
  (400 unless noted), never another exception.
* ``app(status)``: the syntax is valid, so the parser accepts it; the named status is what the
  application layer answers, and the test asserts the value it decides on.
"""

from __future__ import annotations

import pathlib
from dataclasses import dataclass

import pytest

from uacsta.sip.errors import SipParseError
from uacsta.sip.framing import StreamFramer
from uacsta.sip.message import Message, Request, Response, parse_message
from uacsta.sip.uri import AbsoluteUri, SipUri

FIXTURES = pathlib.Path(__file__).parent / "fixtures" / "rfc4475"


@dataclass(frozen=True)
class Expect:
    section: str
    outcome: str  # "parse", "reject" or "app"
    status: int | None = None
    note: str = ""


EXPECT: dict[str, Expect] = {
    # 3.1.1 valid messages
    "wsinv": Expect("3.1.1.1", "parse"),
    "intmeth": Expect("3.1.1.2", "parse"),
    "esc01": Expect("3.1.1.3", "parse"),
    "escnull": Expect("3.1.1.4", "parse"),
    "esc02": Expect("3.1.1.5", "parse"),
    "lwsdisp": Expect("3.1.1.6", "parse"),
    "longreq": Expect("3.1.1.7", "parse"),
    "dblreq": Expect("3.1.1.8", "parse"),
    "semiuri": Expect("3.1.1.9", "parse"),
    "transports": Expect("3.1.1.10", "parse"),
    "mpart01": Expect("3.1.1.11", "parse"),
    "unreason": Expect("3.1.1.12", "parse"),
    "noreason": Expect("3.1.1.13", "parse"),
    # 3.1.2 invalid messages
    "badinv01": Expect("3.1.2.1", "reject", 400, "empty Via/Contact parameters"),
    "clerr": Expect("3.1.2.2", "reject", 400, "Content-Length beyond the datagram"),
    "ncl": Expect("3.1.2.3", "reject", 400, "negative Content-Length"),
    "scalar02": Expect("3.1.2.4", "reject", 400, "CSeq over 2**31-1"),
    # Judgment: a response cannot be answered; the parse error makes the transport drop it,
    # which is what the RFC asks ("an element receiving this response will simply discard it").
    "scalarlg": Expect("3.1.2.5", "reject", 400, "response with out-of-range CSeq: dropped"),
    "quotbal": Expect("3.1.2.6", "reject", 400, "unterminated quoted display name"),
    "ltgtruri": Expect("3.1.2.7", "reject", 400, "<> around the Request-URI"),
    "lwsruri": Expect("3.1.2.8", "reject", 400, "LWS inside the Request-URI"),
    # RFC allows either; we are strict on the Request-Line (exactly two single SPs).
    "lwsstart": Expect("3.1.2.9", "reject", 400, "several SPs in the Request-Line"),
    "trws": Expect("3.1.2.10", "reject", 400, "SP after SIP-Version"),
    # Judgment: the URI is well formed; the application must refuse escaped headers in a
    # Request-URI rather than act on them (RFC 3261 §19.1.5), so it answers 400.
    "escruri": Expect("3.1.2.11", "app", 400, "headers in the Request-URI"),
    # Judgment: the RFC says not to reject unless Date matters; uacsta never reads Date.
    "baddate": Expect("3.1.2.12", "parse", None, "non-GMT Date kept, unused"),
    "regbadct": Expect("3.1.2.13", "reject", 400, "addr-spec Contact with URI headers"),
    "badaspec": Expect("3.1.2.14", "reject", 400, "spaces inside <>"),
    "baddn": Expect("3.1.2.15", "reject", 400, "unquoted non-token display names"),
    "badvers": Expect("3.1.2.16", "reject", 505, "SIP/7.0"),
    "mismatch01": Expect("3.1.2.17", "reject", 400, "OPTIONS with CSeq INVITE"),
    "mismatch02": Expect("3.1.2.18", "reject", 501, "unknown method with CSeq INVITE"),
    "bigcode": Expect("3.1.2.19", "reject", 400, "status code 4294967301: dropped"),
    # 3.2 transaction layer. Judgment: the bare cookie is a legal token; the parser accepts it
    # and Via.has_rfc3261_branch is False, so transactions match the RFC 2543 way (§17.2.3).
    "badbranch": Expect("3.2.1", "parse", None, "branch=z9hG4bK only"),
    # 3.3 application layer
    "insuf": Expect("3.3.1", "reject", 400, "missing Call-ID, From, To"),
    "unkscm": Expect("3.3.2", "app", 416, "unknown Request-URI scheme"),
    "novelsc": Expect("3.3.3", "app", 416, "soap.beep Request-URI"),
    "unksm2": Expect("3.3.4", "app", 400, "registrar: To is not a SIP AOR"),
    "bext01": Expect("3.3.5", "app", 420, "unsupported Require"),
    "invut": Expect("3.3.6", "app", 415, "unknown Content-Type"),
    "regaut01": Expect("3.3.7", "app", 401, "unknown Authorization scheme: challenge"),
    "multi01": Expect("3.3.8", "reject", 400, "several CSeq, Call-ID, To, From"),
    "mcl01": Expect("3.3.9", "reject", 400, "conflicting Content-Length"),
    "bcast": Expect("3.3.10", "parse", None, "response: broadcast Via is not forwarded to"),
    "zeromf": Expect("3.3.11", "app", 483, "Max-Forwards 0 (when forwarding)"),
    "cparam01": Expect("3.3.12", "parse", None, "header parameter on addr-spec Contact"),
    "cparam02": Expect("3.3.13", "parse", None, "URI parameter inside <>"),
    "regescrt": Expect("3.3.14", "parse", None, "escaped header in a <> Contact"),
    "sdp01": Expect("3.3.15", "app", 406, "Accept excludes SDP"),
    # 3.4 backward compatibility
    "inv2543": Expect("3.4.1", "parse", None, "RFC 2543 syntax, no Content-Length"),
}


def load(name: str) -> bytes:
    return (FIXTURES / f"{name}.dat").read_bytes()


def parse(name: str) -> Message:
    return parse_message(load(name))


def req(name: str) -> Request:
    msg = parse(name)
    assert isinstance(msg, Request)
    return msg


def test_every_fixture_has_an_expectation() -> None:
    assert sorted(p.stem for p in FIXTURES.glob("*.dat")) == sorted(EXPECT)


# --- the generic checks: whole, byte by byte, trailing data ----------------------------
def _stream(data: bytes, chunk: int) -> list[bytes]:
    framer = StreamFramer()
    out: list[bytes] = []
    for i in range(0, len(data), chunk):
        framer.receive_data(data[i : i + chunk])
        while (msg := framer.next_message()) is not None:
            out.append(msg)
    return out


@pytest.mark.parametrize("name", sorted(EXPECT))
def test_whole(name: str) -> None:
    expect = EXPECT[name]
    data = load(name)
    if expect.outcome == "reject":
        with pytest.raises(SipParseError) as info:
            parse_message(data)
        assert info.value.status_code == expect.status, str(info.value)
        return
    msg = parse_message(data)
    # Strict in what we produce: what we accept serializes canonically and reparses equal.
    assert parse_message(msg.to_bytes()) == msg
    assert parse_message(msg.to_bytes(), datagram=False) == msg


# inv2543 has no Content-Length, which a stream cannot frame (§18.3 makes it mandatory there);
# clerr announces 9999 bytes, so a stream waits for them.
_STREAM_SKIP = {"inv2543", "clerr"}


@pytest.mark.parametrize("name", sorted(set(EXPECT) - _STREAM_SKIP))
def test_byte_by_byte_through_the_framer(name: str) -> None:
    expect = EXPECT[name]
    data = load(name)
    try:
        framed = _stream(data, 1)
    except SipParseError as exc:
        # Only a broken Content-Length stops the framer itself.
        assert name == "ncl", exc
        return
    if name == "multi01":  # l: 154 over a 152-byte body: a stream waits for 2 more bytes
        assert framed == []
        return
    assert framed, "the message was not framed"
    if expect.outcome == "reject":
        with pytest.raises(SipParseError) as info:
            parse_message(framed[0], datagram=False)
        assert info.value.status_code == expect.status
        return
    assert parse_message(framed[0], datagram=False) == parse_message(data)
    if name != "dblreq":  # dblreq is two messages on a stream: see test_dblreq
        assert framed == [data]


def test_clerr_over_a_stream_waits_for_the_body() -> None:
    framer = StreamFramer()
    framer.receive_data(load("clerr"))
    assert framer.next_message() is None
    assert framer.buffered == len(load("clerr"))


@pytest.mark.parametrize("name", sorted(n for n, e in EXPECT.items() if e.outcome != "reject"))
def test_with_trailing_data(name: str) -> None:
    data = load(name)
    msg = parse_message(data)
    trailer = b"INVITE sip:trailing@example.com SIP/2.0\r\n\r\n"
    if name == "inv2543":  # no Content-Length: in a datagram the body runs to the end
        assert parse_message(data + trailer).body == msg.body + trailer
        return
    assert parse_message(data + trailer) == msg  # §18.3: octets after the body are ignored
    if name == "dblreq":
        return  # on a stream the trailing INVITE is a message of its own: see test_dblreq
    framer = StreamFramer()
    other = parse_message(load("lwsdisp")).to_bytes()
    framer.receive_data(data + other)
    framed = []
    while (m := framer.next_message()) is not None:
        framed.append(m)
    assert parse_message(framed[0], datagram=False) == msg
    assert framed[-1] == other


# --- what the valid messages carry ---------------------------------------------------------
def test_wsinv() -> None:
    msg = req("wsinv")
    assert msg.method == "INVITE"
    assert msg.uri == "sip:vivekg@chair-dnrc.example.com;unknownparam"
    assert msg.request_uri == SipUri(
        host="chair-dnrc.example.com", user="vivekg", params=(("unknownparam", None),)
    )
    assert msg.to.tag == "1918181833n"
    assert msg.to.display_name is None
    assert msg.from_.tag == "98asjd8"
    assert msg.from_.display_name == '"J Rosenberg \\\\\\""'
    assert msg.max_forwards == 68
    assert msg.call_id == "wsinv.ndaksdj@192.0.2.1"
    assert (msg.cseq.seq, msg.cseq.method) == (9, "INVITE")
    vias = msg.via
    assert [(v.transport, v.host, v.branch) for v in vias] == [
        ("UDP", "192.0.2.2", "390skdjuw"),
        ("TCP", "spindle.example.com", "z9hG4bK9ikj8"),
        ("UDP", "192.168.255.111", "z9hG4bK30239"),
    ]
    assert msg.header("Subject") == ""
    assert msg.header("NewFangledHeader") == "newfangled value continued newfangled value"
    assert msg.header("UnknownHeaderWithUnusualValue") == ";;,,;;,;"
    assert msg.header_values("Route") == [
        "<sip:services.example.com;lr;unknownwith=value;unknown-no-value>"
    ]
    [contact] = msg.contact
    assert contact.display_name == '"Quoted string \\"\\""'
    assert contact.params == (("newparam", "newvalue"), ("secondparam", None), ("q", "0.33"))
    assert msg.content_type == "application/sdp"
    assert len(msg.body) == 150
    assert len(msg.headers) == 14  # 3 Via values counted separately; Content-Length derived


def test_intmeth() -> None:
    msg = req("intmeth")
    method = "!interesting-Method0123456789_*+`.%indeed'~"
    assert msg.method == method
    assert msg.cseq.method == method and msg.cseq.seq == 139122385
    uri = msg.request_uri
    assert isinstance(uri, SipUri)
    assert uri.user == "1_unusual.URI~(to-be!sure)&isn't+it$/crazy?,/;;*"
    assert uri.password == "&it+has=1,weird!*pas$wo~d_too.(doesn't-it)"
    assert uri.host == "example.com"
    assert msg.top_via.branch == "z9hG4bK-.!%66*_+`'~"
    assert msg.to.display_name == '"BEL:\\\x07 NUL:\\\x00 DEL:\\\x7f"'
    from_ = msg.from_
    assert from_.display_name == "token1~` token2'+_ token3*%!.-"
    assert from_.param("fromParam''~+*_!.-%") == '"работающий"'
    assert from_.tag == "_token~1'+`*%!-."
    assert msg.call_id == "intmeth.word%ZK-!.*_+'@word`~)(><:\\/\"][?}{"
    assert msg.max_forwards == 255
    assert msg.header("extensionHeader-!.%*+_`'~") == "\ufeff大停電"
    assert len(msg.headers) == 7  # Content-Length is derived, not stored


def test_esc01() -> None:
    msg = req("esc01")
    uri = msg.request_uri
    assert isinstance(uri, SipUri)
    assert (uri.user, uri.host) == ("sips%3Auser%40example.com", "example.net")
    to_uri = msg.to.uri
    assert isinstance(to_uri, SipUri) and to_uri.user == "%75se%72"
    from_uri = msg.from_.uri
    assert isinstance(from_uri, SipUri) and from_uri.user == "I%20have%20spaces"
    assert msg.call_id == "esc01.239409asdfakjkn23onasd0-3234"
    contact_uri = msg.contact[0].uri
    assert isinstance(contact_uri, SipUri)
    assert contact_uri.user == "cal%6Cer"
    assert contact_uri.params == (("%6C%72", None), ("n%61me", "v%61lue%25%34%31"))


def test_escnull() -> None:
    msg = req("escnull")
    assert str(msg.to.uri) == "sip:null-%00-null@example.com"
    assert [str(c.uri) for c in msg.contact] == [
        "sip:%00@host5.example.com",
        "sip:%00%00@host5.example.com",
    ]
    assert b"\x00" not in msg.to_bytes()  # the escape stays an escape


def test_esc02() -> None:
    msg = req("esc02")
    assert msg.method == "RE%47IST%45R"  # an extension method, not REGISTER
    assert msg.to.display_name == '"%Z%45"'
    assert msg.top_via.branch == "z9hG4bK209%fzsnel234"
    # C%6Fntact is an unknown header, not Contact.
    assert [str(c.uri) for c in msg.contact] == [
        "sip:alias1@host1.example.com",
        "sip:alias3@host3.example.com",
    ]
    assert msg.header("C%6Fntact") == "<sip:alias2@host2.example.com>"


def test_lwsdisp() -> None:
    assert req("lwsdisp").from_.display_name == "caller"


def test_longreq() -> None:
    msg = req("longreq")
    assert len(msg.via) == 34
    assert msg.via[0].host == "sip33.example.com"
    assert msg.via[-1].received == "192.0.2.5"
    assert msg.via[-1].branch == "very" + "long" * 50 + "branchvalue"
    to_uri = msg.to.uri
    assert isinstance(to_uri, SipUri) and to_uri.port == 6000
    assert to_uri.param("unknownparam1") == "very" + "long" * 20 + "value"
    assert msg.to.display_name == '"I have a user name of ' + "extreme " * 10 + 'proportion"'
    assert msg.from_.tag == "12" + "982" * 50 + "424"
    assert msg.call_id == "longreq.one" + "really" * 20 + "longcallid"
    assert msg.header("Unknown-" + "Long" * 20 + "-Name") is not None
    assert len(msg.body) == 150


def test_dblreq() -> None:
    data = load("dblreq")
    msg = req("dblreq")
    assert msg.method == "REGISTER"
    assert msg.body == b""  # §18.3: the INVITE after Content-Length is ignored in a datagram
    assert b"INVITE" not in msg.to_bytes()
    # Over a stream the same bytes are two messages (the INVITE's body is cut at its
    # Content-Length; the octets after it wait for a next message that never comes).
    framed = _stream(data, 7)
    assert [parse_message(m, datagram=False).cseq.method for m in framed] == [
        "REGISTER",
        "INVITE",
    ]


def test_semiuri() -> None:
    msg = req("semiuri")
    uri = msg.request_uri
    assert isinstance(uri, SipUri)
    assert (uri.user, uri.host, uri.params) == ("user;par=u%40example.net", "example.com", ())
    assert msg.header_values("Accept") == [
        "application/sdp",
        "application/pkcs7-mime",
        "multipart/mixed",
        "multipart/signed",
        "message/sip",
        "message/sipfrag",
    ]


def test_transports() -> None:
    assert [v.transport for v in req("transports").via] == ["UDP", "SCTP", "TLS", "UNKNOWN", "TCP"]


def test_mpart01() -> None:
    data = load("mpart01")
    msg = req("mpart01")
    assert len(msg.body) == 553
    assert data.endswith(msg.body)  # binary body untouched
    assert msg.content_type == "multipart/mixed"
    assert msg.top_via.wants_rport and msg.top_via.port == 5070


def test_unreason() -> None:
    msg = parse("unreason")
    assert isinstance(msg, Response)
    assert msg.status_code == 200
    assert msg.reason == "= 2**3 * 5**2 но сто девяносто девять - простое"
    assert len(msg.body) == 154


def test_noreason() -> None:
    msg = parse("noreason")
    assert isinstance(msg, Response)
    assert (msg.status_code, msg.reason) == (100, "")
    assert msg.to_bytes().startswith(b"SIP/2.0 100 \r\n")


# --- accepted invalid/application-layer messages: the value the decision rests on ----------
def test_escruri_uri_has_headers() -> None:
    uri = req("escruri").request_uri
    assert isinstance(uri, SipUri)
    assert uri.headers == (("Route", "%3Csip:example.com%3E"),)  # → 400 by the application


def test_baddate_is_kept_unparsed() -> None:
    assert req("baddate").header("Date") == "Fri, 01 Jan 2010 16:00:00 EST"


def test_badbranch_is_not_an_rfc3261_branch() -> None:
    via = req("badbranch").top_via
    assert via.branch == "z9hG4bK"
    assert not via.has_rfc3261_branch


@pytest.mark.parametrize("name", ["unkscm", "novelsc"])
def test_unknown_request_uri_schemes(name: str) -> None:
    uri = req(name).request_uri
    assert isinstance(uri, AbsoluteUri)  # not sip/sips → 416 Unsupported URI Scheme
    assert uri.scheme in ("nobodyknowsthisscheme", "soap.beep")


def test_unksm2_to_is_not_a_sip_aor() -> None:
    msg = req("unksm2")
    assert msg.to.uri == AbsoluteUri("isbn:2983792873")  # registrar → 400
    assert msg.from_.uri == AbsoluteUri("http://www.example.com")
    assert msg.contact[0].uri == AbsoluteUri("name:John_Smith")


def test_bext01_option_tags() -> None:
    msg = req("bext01")  # → 420 with Unsupported listing the Require tags
    assert msg.option_tags("Require") == {"nothingsupportsthis", "nothingsupportsthiseither"}
    assert msg.option_tags("Proxy-Require") == {
        "noproxiessupportthis",
        "nordoanyproxiessupportthis",
    }


def test_invut_content_type() -> None:
    msg = req("invut")  # → 415 Unsupported Media Type
    assert msg.content_type == "application/unknownformat"
    assert msg.body == b'<audio>\r\n <pcmu port="443"/>\r\n</audio>\r\n'


def test_regaut01_authorization_kept() -> None:
    msg = req("regaut01")  # → 401 with a challenge
    assert msg.header("Authorization") == "NoOneKnowsThisScheme opaque-data=here"


def test_bcast_second_via() -> None:
    msg = parse("bcast")
    assert isinstance(msg, Response)
    assert [v.host for v in msg.via] == ["192.0.2.198", "255.255.255.255"]


def test_zeromf() -> None:
    assert req("zeromf").max_forwards == 0  # a proxy answers 483; a UAS may answer OPTIONS


def test_cparam01_and_02() -> None:
    one = req("cparam01").contact[0]
    assert one.params == (("unknownparam", None),)
    assert isinstance(one.uri, SipUri) and one.uri.params == ()
    two = req("cparam02").contact[0]
    assert two.params == ()
    assert isinstance(two.uri, SipUri) and two.uri.params == (("unknownparam", None),)


def test_regescrt() -> None:
    uri = req("regescrt").contact[0].uri
    assert isinstance(uri, SipUri)
    assert uri.headers == (("Route", "%3Csip:sip.example.com%3E"),)


def test_sdp01_accept() -> None:
    assert req("sdp01").header_values("Accept") == ["text/nobodyKnowsThis"]  # → 406


def test_inv2543() -> None:
    msg = req("inv2543")
    assert msg.max_forwards is None
    assert msg.top_via.branch is None and not msg.top_via.has_rfc3261_branch
    assert msg.from_.tag is None
    assert msg.body.startswith(b"v=0\r\n")
