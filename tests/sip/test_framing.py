"""Stream framing for TCP/TLS (RFC 3261 §18.3; RFC 5626 §3.5.1 keep-alives)."""

from __future__ import annotations

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.sip.strategies import messages
from uacsta.sip.errors import MessageTooLarge, SipParseError
from uacsta.sip.framing import PING, StreamFramer
from uacsta.sip.message import Message, parse_message

FUZZ = settings(max_examples=100, deadline=None, suppress_health_check=list(HealthCheck))

OPTIONS = (
    b"OPTIONS sip:pbx.example.com SIP/2.0\r\n"
    b"Via: SIP/2.0/TCP 192.0.2.10;branch=z9hG4bKopt\r\n"
    b"From: <sip:a@h>;tag=1\r\nTo: <sip:b@h>\r\nCall-ID: c1\r\nCSeq: 1 OPTIONS\r\n"
    b"Content-Length: 5\r\n\r\nhello"
)


def drain(framer: StreamFramer) -> list[bytes]:
    out = []
    while (msg := framer.next_message()) is not None:
        out.append(msg)
    return out


def test_whole_and_byte_by_byte() -> None:
    whole = StreamFramer()
    whole.receive_data(OPTIONS + OPTIONS)
    assert drain(whole) == [OPTIONS, OPTIONS]
    slow = StreamFramer()
    got = []
    for i in range(len(OPTIONS)):
        slow.receive_data(OPTIONS[i : i + 1])
        got.extend(drain(slow))
        assert len(got) == (1 if i == len(OPTIONS) - 1 else 0)
    assert got == [OPTIONS]
    assert slow.buffered == 0


def test_trailing_partial_message_waits() -> None:
    framer = StreamFramer()
    framer.receive_data(OPTIONS + OPTIONS[:30])
    assert drain(framer) == [OPTIONS]
    assert framer.buffered == 30
    framer.receive_data(OPTIONS[30:])
    assert drain(framer) == [OPTIONS]


def test_keepalives_are_skipped_and_counted() -> None:
    framer = StreamFramer()
    framer.receive_data(PING + PING + b"\r\n" + OPTIONS + b"\r\n\r")
    assert drain(framer) == [OPTIONS]
    assert framer.take_pings() == 2
    framer.receive_data(b"\n")  # the rest of a ping split across reads
    assert framer.take_pings() == 1
    assert framer.take_pings() == 0
    framer.receive_data(b"\r\n" + OPTIONS)  # single-CRLF keep-alive (pong) before a message
    assert drain(framer) == [OPTIONS]


def test_missing_content_length_means_empty_body() -> None:
    msg = OPTIONS.replace(b"Content-Length: 5\r\n", b"")[: -len(b"hello")]
    framer = StreamFramer()
    framer.receive_data(msg + OPTIONS)
    assert drain(framer) == [msg, OPTIONS]


def test_folded_and_compact_content_length() -> None:
    folded = OPTIONS.replace(b"Content-Length: 5", b"l:\r\n 5")
    framer = StreamFramer()
    framer.receive_data(folded + OPTIONS)
    assert drain(framer) == [folded, OPTIONS]
    assert parse_message(folded, datagram=False).body == b"hello"


def test_bad_content_length_is_a_parse_error() -> None:
    framer = StreamFramer()
    framer.receive_data(OPTIONS + OPTIONS.replace(b"Content-Length: 5", b"Content-Length: -5"))
    assert framer.next_message() == OPTIONS  # what came before the error is delivered
    with pytest.raises(SipParseError) as info:
        framer.next_message()
    assert not isinstance(info.value, MessageTooLarge)
    with pytest.raises(SipParseError):
        framer.receive_data(OPTIONS)  # the stream is dead


def test_header_bound_without_end_of_head() -> None:
    framer = StreamFramer(max_header_bytes=100, max_body_bytes=100)
    framer.receive_data(b"OPTIONS sip:x SIP/2.0\r\nX: " + b"a" * 10_000_000)
    assert framer.buffered == 0  # dropped, never grown past the bound
    with pytest.raises(MessageTooLarge) as info:
        framer.next_message()
    assert info.value.status_code == 513


def test_body_bound_is_checked_from_the_head() -> None:
    framer = StreamFramer(max_header_bytes=1000, max_body_bytes=4)
    framer.receive_data(OPTIONS[: OPTIONS.index(b"\r\n\r\n") + 4])  # head only, body to come
    with pytest.raises(MessageTooLarge):
        framer.next_message()


def test_bound_exact_fit() -> None:
    head_len = OPTIONS.index(b"\r\n\r\n")
    framer = StreamFramer(max_header_bytes=head_len, max_body_bytes=5)
    framer.receive_data(OPTIONS * 3)
    assert drain(framer) == [OPTIONS] * 3


# --- properties ---------------------------------------------------------------------------
_keepalives = st.sampled_from([b"", b"", b"\r\n", PING, PING + PING, b"\r\n" + PING])


@FUZZ
@given(
    st.lists(st.tuples(_keepalives, messages), min_size=1, max_size=4),
    st.lists(st.integers(1, 200), min_size=1, max_size=50),
)
def test_random_chunkings_yield_exactly_the_messages(
    items: list[tuple[bytes, Message]], sizes: list[int]
) -> None:
    stream = b"".join(ka + msg.to_bytes() for ka, msg in items)
    framer = StreamFramer()
    got: list[bytes] = []
    pos = 0
    i = 0
    while pos < len(stream):
        size = sizes[i % len(sizes)]
        framer.receive_data(stream[pos : pos + size])
        got.extend(drain(framer))
        pos += size
        i += 1
    assert got == [msg.to_bytes() for _, msg in items]
    assert [parse_message(g, datagram=False) for g in got] == [msg for _, msg in items]
    assert framer.buffered == 0


@FUZZ
@given(
    st.integers(10, 300),
    st.integers(0, 300),
    st.lists(st.binary(max_size=400) | st.sampled_from([OPTIONS, PING]), max_size=10),
)
def test_bounds_hold_for_any_input(max_header: int, max_body: int, chunks: list[bytes]) -> None:
    framer = StreamFramer(max_header_bytes=max_header, max_body_bytes=max_body)
    bound = max_header + 4 + max_body
    for chunk in chunks:
        try:
            framer.receive_data(chunk)
        except SipParseError:
            break
        assert framer.buffered <= bound
        try:
            for msg in drain(framer):
                assert len(msg) <= bound
                head = msg.index(b"\r\n\r\n")
                assert head <= max_header
        except SipParseError:
            break
