"""Fuzz targets for every parser that reads bytes from outside uacsta.

Each target takes one ``bytes`` input and either returns or raises the parser's documented
exception type, which the target swallows. Anything else escaping a target is a crash: an
unexpected exception type, or an ``AssertionError`` from an invariant the target checks
(re-encoding what was decoded, chunking independence, the framer's size bound).

The targets do not depend on atheris: ``fuzz/run.py`` drives them with libFuzzer (atheris),
``tests/test_fuzz_targets.py`` runs them on their seeds and on random bytes under pytest.

Targets whose input is a stream take their chunking from the first input byte (see
:func:`chunks`), so the fuzzer mutates chunk boundaries as well as content.
"""

from __future__ import annotations

import contextlib
import random
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

from uacsta.csta import appsession as ecma354
from uacsta.csta import codec
from uacsta.csta.errors import CstaDecodeError, CstaFramingError
from uacsta.csta.framing import (
    FRAME_MARKER,
    MAX_FRAME_BYTES,
    MIN_FRAME_BYTES,
    FrameDecoder,
    encode_echo_frame,
    encode_frame,
)
from uacsta.csta.messages import NOTICE_CLASSES
from uacsta.csta.xmlparse import MAX_DOCUMENT_BYTES
from uacsta.sip.digest import DigestError, DigestServer, NonceManager
from uacsta.sip.digest import parse_digest_params as _parse_digest_params
from uacsta.sip.errors import SipParseError
from uacsta.sip.framing import StreamFramer
from uacsta.sip.message import Message, parse_message
from uacsta.sip.uri import parse_name_addr, parse_uri, parse_via

REPO = Path(__file__).resolve().parent.parent
SIP_FIXTURES = REPO / "tests" / "sip" / "fixtures" / "rfc4475"
CSTA_FIXTURES = REPO / "tests" / "csta" / "fixtures"


# --- helpers -------------------------------------------------------------------------------


def chunks(data: bytes) -> Iterator[bytes]:
    """Cut ``data[1:]`` into chunks whose sizes follow from ``data[0]``.

    Byte 0 selects a base size (1..32) and a stride; sizes cycle through ``base``,
    ``base * stride + 1`` and 1, so a single input exercises tiny and larger chunks.
    """
    if not data:
        return
    control, rest = data[0], data[1:]
    base = (control & 0x1F) + 1
    stride = (control >> 5) + 1
    sizes = (base, base * stride + 1, 1)
    i = 0
    k = 0
    while i < len(rest):
        size = sizes[k % 3]
        yield rest[i : i + size]
        i += size
        k += 1


def mutate(rng: random.Random, data: bytes, pool: list[bytes]) -> bytes:
    """A few random byte-level mutations of ``data`` (splicing from ``pool``), for the plain
    random engine and the pytest smoke run."""
    buf = bytearray(data)
    for _ in range(rng.randint(1, 8)):
        op = rng.randrange(6)
        pos = rng.randint(0, len(buf))
        if op == 0 and buf:
            buf[min(pos, len(buf) - 1)] = rng.randrange(256)
        elif op == 1:
            buf[pos:pos] = rng.randbytes(rng.randint(1, 8))
        elif op == 2:
            del buf[pos : pos + rng.randint(1, 16)]
        elif op == 3:
            other = rng.choice(pool)
            start = rng.randint(0, len(other))
            buf[pos:pos] = other[start : start + rng.randint(1, 64)]
        elif op == 4:
            buf[pos:pos] = rng.choice((b"<", b">", b"&", b"\x00", b"\r\n", b"\xff", b":", b";"))
        else:
            piece = buf[pos : pos + rng.randint(1, 32)]
            buf[pos:pos] = piece * rng.randint(2, 50)
    return bytes(buf)


def _touch_sip(message: Message) -> None:
    """Read the lazily parsed headers and serialise: only SipParseError may come out."""
    for read in (
        lambda: message.call_id,
        lambda: message.cseq,
        lambda: message.from_,
        lambda: message.to,
        lambda: message.via,
        lambda: message.contact,
        lambda: message.expires,
        lambda: message.max_forwards,
        lambda: message.content_type,
        lambda: message.option_tags("Supported"),
    ):
        with contextlib.suppress(SipParseError):
            read()
    wire = message.to_bytes()
    assert isinstance(wire, bytes)


# --- targets -------------------------------------------------------------------------------


def sip_message(data: bytes) -> None:
    """parse_message in datagram mode raises only SipParseError; what parses, serialises."""
    try:
        message = parse_message(data, datagram=True)
    except SipParseError:
        return
    _touch_sip(message)


def _drain_framer(framer: StreamFramer, out: list[bytes]) -> bool:
    """Move ready messages to ``out``; True once the framer has failed."""
    while True:
        try:
            raw = framer.next_message()
        except SipParseError:
            return True
        if raw is None:
            return False
        out.append(raw)


def _frame_sip(pieces: Iterator[bytes] | list[bytes]) -> tuple[list[bytes], bool, int]:
    framer = StreamFramer()
    limit = framer._limit
    messages: list[bytes] = []
    pings = 0
    failed = False
    for piece in pieces:
        framer.receive_data(piece)
        pings += framer.take_pings()
        assert framer.buffered <= limit, (framer.buffered, limit)
        if _drain_framer(framer, messages):
            failed = True
            break
    return messages, failed, pings


def sip_stream(data: bytes) -> None:
    """StreamFramer: the same messages whatever the chunking, bounded buffer, and each framed
    message parses (stream mode) or raises SipParseError."""
    chunked, chunked_failed, chunked_pings = _frame_sip(chunks(data))
    whole, whole_failed, whole_pings = _frame_sip([data[1:]] if data else [])
    assert chunked == whole, "framing depends on how the stream was chunked"
    assert chunked_failed == whole_failed, "failure depends on how the stream was chunked"
    assert chunked_pings == whole_pings, "keep-alive count depends on chunking"
    for raw in whole:
        try:
            message = parse_message(raw, datagram=False)
        except SipParseError:
            continue
        _touch_sip(message)


def sip_uri(data: bytes) -> None:
    """parse_uri, parse_name_addr and parse_via raise only SipParseError; str() round-trips."""
    text = data.decode("utf-8", "replace")
    for parse in (parse_uri, parse_name_addr, parse_via):
        try:
            value = parse(text)
        except SipParseError:
            continue
        again = parse(str(value))  # what we print, we must read back
        assert str(again) == str(value), (text, str(value), str(again))


_DIGEST = DigestServer("uacsta", NonceManager(b"fuzz-secret" * 3), qop=("auth", "auth-int"))


def sip_digest(data: bytes) -> None:
    """parse_digest_params raises only DigestError; DigestServer.verify never raises."""
    text = data.decode("utf-8", "replace")
    with contextlib.suppress(DigestError):
        _parse_digest_params(text)
    result = _DIGEST.verify(
        text, "INVITE", lambda user: "secret" if user else None, 1000.0, body=data
    )
    assert result is not None


def csta_codec(data: bytes) -> None:
    """decode raises only CstaDecodeError; every decoded message re-encodes in every edition,
    and what we encode we decode again."""
    try:
        message = codec.decode(data)
    except CstaDecodeError:
        return
    for edition in codec.Edition:
        wire = codec.encode(message, edition)
        if len(wire) > MAX_DOCUMENT_BYTES:  # escaping can grow a document past the bound
            continue
        again = codec.decode(wire)
        # A notice class is written under a standard root (MonitorEndedEvent as MonitorStop):
        # what comes back is the class of the root that was written.
        expected: type = type(message)
        if expected in NOTICE_CLASSES.values():
            expected = type(codec.decode(codec.encode(type(message)(), edition)))
        assert type(again) is expected, (type(message), type(again))


def ecma354_appsession(data: bytes) -> None:
    """decode_appsession raises only CstaDecodeError; decoded messages re-encode and decode."""
    try:
        message = ecma354.decode_appsession(data)
    except CstaDecodeError:
        return
    if message is None:
        return
    wire = ecma354.encode_appsession(message)
    if len(wire) <= MAX_DOCUMENT_BYTES:
        again = ecma354.decode_appsession(wire)
        assert type(again) is type(message), (type(message), type(again))


def annexj_frames(data: bytes) -> None:
    """FrameDecoder raises only CstaFramingError; frames re-encode to the bytes they came from;
    chunking changes nothing."""
    stream = data[1:] if data else b""

    def run(pieces: Iterator[bytes] | list[bytes]) -> tuple[list[tuple[str, bytes]], bool]:
        decoder = FrameDecoder()
        frames: list[tuple[str, bytes]] = []
        try:
            for piece in pieces:
                decoder.receive_data(piece)
                frames.extend((f.invoke_id, f.xml) for f in decoder.frames())
                assert decoder.buffered_bytes <= MAX_FRAME_BYTES * 16
            decoder.receive_data(b"")  # end of stream
            frames.extend((f.invoke_id, f.xml) for f in decoder.frames())
        except CstaFramingError:
            return frames, True
        return frames, False

    chunked, chunked_failed = run(c for c in chunks(data) if c)
    whole, whole_failed = run([stream] if stream else [])
    assert chunked == whole, "frames depend on how the stream was chunked"
    assert chunked_failed == whole_failed
    # encode_echo_frame writes the four invoke bytes as received, malformed ones included.
    rebuilt = b"".join(encode_echo_frame(invoke, xml) for invoke, xml in whole)
    assert stream.startswith(rebuilt), "a frame did not re-encode to its own bytes"
    if not whole_failed:
        assert rebuilt == stream


@dataclass(frozen=True)
class Target:
    name: str
    run: Callable[[bytes], None]
    seeds: Callable[[], list[bytes]]
    dictionary: tuple[bytes, ...] = ()


# --- seeds ---------------------------------------------------------------------------------


def _sip_fixtures() -> list[bytes]:
    return [p.read_bytes() for p in sorted(SIP_FIXTURES.glob("*.dat"))]


def _csta_fixtures() -> list[bytes]:
    return [p.read_bytes() for p in sorted(CSTA_FIXTURES.rglob("*.xml"))]


def _xml_seeds() -> list[bytes]:
    """The fixtures, plus a few in UTF-16 and with a DTD (the parser must refuse those)."""
    fixtures = _csta_fixtures()
    seeds = list(fixtures)
    for data in fixtures[:3]:
        text = data.decode("utf-8").replace('encoding="UTF-8"', 'encoding="UTF-16"')
        seeds.append(text.encode("utf-16"))
    seeds.append(
        '<?xml version="1.0" encoding="UTF-16"?><!DOCTYPE r [<!ENTITY x "y">]><r>&x;</r>'.encode(
            "utf-16"
        )
    )
    return seeds


_SMALL_SIP = (
    b"OPTIONS sip:100@example.com SIP/2.0\r\nVia: SIP/2.0/TCP h;branch=z9hG4bK1\r\n"
    b"From: <sip:a@h>;tag=1\r\nTo: <sip:100@example.com>\r\nCall-ID: c\r\n"
    b"CSeq: 1 OPTIONS\r\nContent-Length: 4\r\n\r\nbody"
)


def _sip_message_seeds() -> list[bytes]:
    return [*_sip_fixtures(), _SMALL_SIP]


def _sip_stream_seeds() -> list[bytes]:
    fixtures = _sip_fixtures()
    seeds = [bytes([i * 37 % 256]) + f for i, f in enumerate(fixtures)]
    seeds.append(b"\x00" + _SMALL_SIP * 3)
    seeds.append(b"\x41\r\n\r\n" + _SMALL_SIP + b"\r\n\r\n\r\n" + _SMALL_SIP)
    seeds.append(b"\xe3" + b"".join(fixtures[:4]))
    return seeds


def _uri_seeds() -> list[bytes]:
    return [
        b"sip:alice@example.com;transport=tcp?subject=x",
        b"sips:[2001:db8::1]:5061;lr",
        b'"Alice \\"A\\"" <sip:alice@example.com>;tag=1',
        b"tel:+1-555-0100;phone-context=example.com",
        b"SIP/2.0/TLS 192.0.2.1:5061;branch=z9hG4bKx;rport;received=192.0.2.2",
        b"<sip:%61lice@h;maddr=239.255.255.1;ttl=15>;expires=60;q=0.5",
    ]


def _digest_seeds() -> list[bytes]:
    return [
        b'Digest username="crm", realm="uacsta", nonce="abc", uri="sip:100@h", '
        b'response="0123456789abcdef0123456789abcdef", algorithm=MD5, qop=auth, '
        b'nc=00000001, cnonce="xyz", opaque="o"',
        b'Digest username*=UTF-8\'\'%E2%82%AC, realm="uacsta", nonce="n", uri="u", '
        b'response="00", algorithm=SHA-256, userhash=false',
        b"Basic dXNlcjpwYXNz",
    ]


def _frame_seeds() -> list[bytes]:
    docs = _csta_fixtures()
    seeds = [bytes([i * 29 % 256]) + encode_frame(i % 10000, d) for i, d in enumerate(docs)]
    seeds.append(b"\x03" + b"".join(encode_frame(i, d) for i, d in enumerate(docs[:6])))
    seeds.append(b"\x00" + FRAME_MARKER + MIN_FRAME_BYTES.to_bytes(2, "big") + b"9999")
    seeds.append(b"\x10" + encode_frame("9999", b"<x/>")[:-2])  # truncated at end of stream
    return seeds


_SIP_DICT = (
    b"SIP/2.0",
    b"\r\n",
    b"\r\n\r\n",
    b"INVITE",
    b"REGISTER",
    b"Via: SIP/2.0/UDP ",
    b";branch=z9hG4bK",
    b"Content-Length: ",
    b"l: ",
    b"From: ",
    b"To: ",
    b"Call-ID: ",
    b"CSeq: ",
    b"Contact: ",
    b";tag=",
    b"sip:",
    b"sips:",
    b"<",
    b">",
    b'"',
    b"\\",
    b"%00",
    b"\r\n ",
)
_XML_DICT = (
    b"<?xml",
    b'version="1.0"',
    b'encoding="UTF-8"',
    b"?>",
    b"<!DOCTYPE",
    b"<!ENTITY",
    b"<![CDATA[",
    b"]]>",
    b"</",
    b"/>",
    b"xmlns=",
    b'"http://www.ecma-international.org/standards/ecma-323/csta/ed5"',
    b'"http://www.ecma-international.org/standards/ecma-354/appl_session"',
    b"&amp;",
    b"&#0;",
    b"&#x10FFFF;",
    b"<extensions>",
    b"<privateData>",
    b"<deviceID>",
    b"<callID>",
    b"<connection>",
    b"<monitorCrossRefID>",
    b"<CSTAErrorCode>",
    b"true",
    b"false",
)
_DIGEST_DICT = (
    b"Digest ",
    b"username=",
    b"username*=",
    b"realm=",
    b"nonce=",
    b"uri=",
    b"response=",
    b"algorithm=",
    b"SHA-256",
    b"MD5-sess",
    b"qop=",
    b"auth-int",
    b"nc=",
    b"cnonce=",
    b"opaque=",
    b"UTF-8''",
)

TARGETS: dict[str, Target] = {
    t.name: t
    for t in (
        Target("sip_message", sip_message, _sip_message_seeds, _SIP_DICT),
        Target("sip_stream", sip_stream, _sip_stream_seeds, _SIP_DICT),
        Target("csta_codec", csta_codec, _xml_seeds, _XML_DICT),
        Target("ecma354", ecma354_appsession, _xml_seeds, _XML_DICT),
        Target("annexj", annexj_frames, _frame_seeds, (FRAME_MARKER, b"9999", b"<x/>")),
        Target("sip_uri", sip_uri, _uri_seeds, _SIP_DICT),
        Target("sip_digest", sip_digest, _digest_seeds, _DIGEST_DICT),
    )
}

__all__ = ["TARGETS", "Target", "chunks", "mutate"]
