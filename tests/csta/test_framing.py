"""ECMA-323 Annex J framing: byte-exact examples, chunking, rejection of bad streams."""

from __future__ import annotations

import contextlib
import itertools

import pytest
from hypothesis import given
from hypothesis import strategies as st

from uacsta.csta.errors import CstaError, CstaFramingError
from uacsta.csta.framing import (
    EVENT_INVOKE_ID,
    MAX_FRAME_BYTES,
    Frame,
    FrameDecoder,
    FrameTooLargeError,
    InvokeIdAllocator,
    InvokeIdsExhaustedError,
    encode_echo_frame,
    encode_frame,
    format_invoke_id,
)

MONITOR_START = (
    b'<MonitorStart xmlns="http://www.ecma-international.org/standards/ecma-323/csta/ed3">'
    b"<monitorObject><deviceObject>201</deviceObject></monitorObject></MonitorStart>"
)


def decode_all(data: bytes) -> list[Frame]:
    decoder = FrameDecoder()
    decoder.receive_data(data)
    return list(decoder.frames())


# --- encoding ------------------------------------------------------------------------------


def test_encode_small_frame_byte_exact() -> None:
    assert encode_frame(1, b"<a/>") == b"\x00\x00\x00\x0c0001<a/>"
    assert encode_frame("0001", b"<a/>") == b"\x00\x00\x00\x0c0001<a/>"


def test_encode_event_frame_byte_exact() -> None:
    frame = encode_frame(EVENT_INVOKE_ID, MONITOR_START)
    length = 8 + len(MONITOR_START)
    assert length == 0xAA
    assert frame == b"\x00\x00\x00\xaa" + b"9999" + MONITOR_START


def test_encode_length_uses_two_big_endian_bytes() -> None:
    frame = encode_frame(42, b"x" * 300)
    assert frame[:8] == b"\x00\x00\x01\x34" + b"0042"  # 308 = 0x0134


def test_encode_largest_frame_and_one_byte_more() -> None:
    largest = encode_frame(0, b"x" * (MAX_FRAME_BYTES - 8))
    assert largest[:4] == b"\x00\x00\xff\xff"
    with pytest.raises(FrameTooLargeError):
        encode_frame(0, b"x" * (MAX_FRAME_BYTES - 7))
    with pytest.raises(ValueError):  # also catchable as a local ValueError
        encode_frame(0, b"x" * MAX_FRAME_BYTES)


@pytest.mark.parametrize("bad", [-1, 10000, "1", "00001", "12a4", "١٢٣٤", True, "    "])
def test_encode_rejects_bad_invoke_ids(bad: str | int) -> None:
    with pytest.raises(ValueError):
        encode_frame(bad, b"<a/>")


def test_format_invoke_id_pads() -> None:
    assert format_invoke_id(7) == "0007"
    assert format_invoke_id(9999) == "9999"
    assert format_invoke_id("0123") == "0123"


# --- decoding ------------------------------------------------------------------------------


def test_decode_example_frames() -> None:
    stream = encode_frame(1, b"<a/>") + encode_frame(EVENT_INVOKE_ID, MONITOR_START)
    frames = decode_all(stream)
    assert frames == [
        Frame(invoke_id="0001", xml=b"<a/>"),
        Frame(invoke_id="9999", xml=MONITOR_START),
    ]
    assert not frames[0].is_event
    assert frames[1].is_event


def test_decode_byte_by_byte_and_need_data() -> None:
    stream = encode_frame(17, MONITOR_START)
    decoder = FrameDecoder()
    for byte in stream[:-1]:
        decoder.receive_data(bytes([byte]))
        assert decoder.next_frame() is None
    decoder.receive_data(stream[-1:])
    assert decoder.next_frame() == Frame(invoke_id="0017", xml=MONITOR_START)
    assert decoder.next_frame() is None
    assert decoder.buffered_bytes == 0


def test_decode_empty_document_frame() -> None:
    assert decode_all(b"\x00\x00\x00\x080005") == [Frame(invoke_id="0005", xml=b"")]


def test_decode_keeps_trailing_partial_frame() -> None:
    stream = encode_frame(1, b"<a/>") + encode_frame(2, b"<b/>")[:6]
    decoder = FrameDecoder()
    decoder.receive_data(stream)
    assert [f.invoke_id for f in decoder.frames()] == ["0001"]
    assert decoder.buffered_bytes == 6


frame_specs = st.lists(
    st.tuples(st.integers(0, 9999), st.binary(max_size=300)), min_size=1, max_size=12
)


@given(specs=frame_specs, data=st.data())
def test_random_chunkings_yield_the_same_frames(
    specs: list[tuple[int, bytes]], data: st.DataObject
) -> None:
    stream = b"".join(encode_frame(invoke_id, xml) for invoke_id, xml in specs)
    cuts = sorted(data.draw(st.lists(st.integers(0, len(stream)), max_size=20)))
    bounds = [0, *cuts, len(stream)]
    decoder = FrameDecoder()
    got: list[Frame] = []
    for start, end in itertools.pairwise(bounds):
        if start == end:
            continue  # an empty chunk would mean end of stream
        decoder.receive_data(stream[start:end])
        got.extend(decoder.frames())
    decoder.receive_data(b"")  # clean end of stream: no error
    assert decoder.next_frame() is None
    assert got == [Frame(invoke_id=f"{i:04d}", xml=xml) for i, xml in specs]


@given(junk=st.binary(min_size=1, max_size=64))
def test_decoder_either_decodes_or_raises_framing_error(junk: bytes) -> None:
    decoder = FrameDecoder()
    decoder.receive_data(junk)
    decoder.receive_data(b"")
    with contextlib.suppress(CstaFramingError):
        list(decoder.frames())


# --- rejection -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("raw", "reason"),
    [
        (b"\x01\x00\x00\x0c0001<a/>", "not 0000"),
        (b"\x00\x01\x00\x0c0001<a/>", "not 0000"),
        (b"<?xml version='1.0'?>", "not 0000"),
        (b"\x00\x00\x00\x07000", "shorter"),
        (b"\x00\x00\x00\x00", "shorter"),
    ],
)
def test_bad_frames_rejected(raw: bytes, reason: str) -> None:
    decoder = FrameDecoder()
    decoder.receive_data(raw)
    with pytest.raises(CstaFramingError, match=reason):
        decoder.next_frame()


@pytest.mark.parametrize("raw_id", [b"00a1", b"-001", b" 001", b"12<?", b"\xff\x00\x01\x02"])
def test_malformed_invoke_id_keeps_the_stream_in_step(raw_id: bytes) -> None:
    """Annex J: the length says where the next frame starts, whatever the invoke ID holds."""
    decoder = FrameDecoder()
    decoder.receive_data(b"\x00\x00\x00\x0c" + raw_id + b"<a/>" + b"\x00\x00\x00\x0c0002<b/>")
    bad = decoder.next_frame()
    assert bad is not None and bad.xml == b"<a/>" and not bad.has_valid_invoke_id
    assert bad.invoke_id.encode("latin-1") == raw_id
    good = decoder.next_frame()
    assert good == Frame(invoke_id="0002", xml=b"<b/>") and good.has_valid_invoke_id
    # The answer goes back under the same four bytes.
    assert encode_echo_frame(bad.invoke_id, b"<e/>") == b"\x00\x00\x00\x0c" + raw_id + b"<e/>"


@pytest.mark.parametrize("bad", ["123", "12345", "\u20ac123"])
def test_echo_frame_needs_four_bytes(bad: str) -> None:
    with pytest.raises(ValueError):
        encode_echo_frame(bad, b"<e/>")


def test_echo_frame_respects_the_size_limit() -> None:
    with pytest.raises(FrameTooLargeError):
        encode_echo_frame("abcd", b"x" * 65530)


def test_error_is_sticky() -> None:
    decoder = FrameDecoder()
    decoder.receive_data(b"\xff\xff\x00\x0c0001<a/>")
    with pytest.raises(CstaFramingError):
        decoder.next_frame()
    with pytest.raises(CstaFramingError, match="unusable"):
        decoder.next_frame()
    with pytest.raises(CstaFramingError, match="unusable"):
        decoder.receive_data(encode_frame(1, b"<a/>"))
    assert decoder.buffered_bytes == 0


def test_oversize_rejected_from_the_header_alone() -> None:
    decoder = FrameDecoder(max_frame_bytes=1024)
    decoder.receive_data(b"\x00\x00\x04\x01")  # 1025: body never sent
    with pytest.raises(CstaFramingError, match="exceeds"):
        decoder.next_frame()


def test_max_frame_size_boundary() -> None:
    decoder = FrameDecoder(max_frame_bytes=1024)
    decoder.receive_data(encode_frame(3, b"x" * (1024 - 8)))
    frame = decoder.next_frame()
    assert frame is not None
    assert len(frame.xml) == 1016


def test_buffer_is_bounded_when_caller_does_not_drain() -> None:
    decoder = FrameDecoder(max_frame_bytes=64, max_buffer_bytes=128)
    decoder.receive_data(encode_frame(1, b"x" * 56) * 2)  # exactly 128 bytes
    with pytest.raises(CstaFramingError, match="buffered"):
        decoder.receive_data(b"\x00")


def test_eof_inside_a_frame_is_an_error() -> None:
    decoder = FrameDecoder()
    decoder.receive_data(encode_frame(1, b"<a/>") + b"\x00\x00\x00")
    decoder.receive_data(b"")
    assert decoder.eof
    assert decoder.next_frame() == Frame(invoke_id="0001", xml=b"<a/>")
    with pytest.raises(CstaFramingError, match="closed inside a frame"):
        decoder.next_frame()


def test_data_after_eof_is_a_local_error() -> None:
    decoder = FrameDecoder()
    decoder.receive_data(b"")
    with pytest.raises(RuntimeError):
        decoder.receive_data(b"\x00")


@pytest.mark.parametrize(("max_frame", "max_buffer"), [(7, 100), (65536, 70000), (100, 99)])
def test_decoder_limits_validated(max_frame: int, max_buffer: int) -> None:
    with pytest.raises(ValueError):
        FrameDecoder(max_frame, max_buffer_bytes=max_buffer)


# --- invoke IDs ----------------------------------------------------------------------------


def test_allocator_cycles_and_wraps_before_9999() -> None:
    ids = InvokeIdAllocator(start=9997)
    assert [ids.allocate() for _ in range(3)] == ["9997", "9998", "0000"]
    assert "9998" in ids
    assert len(ids) == 3


def test_allocator_skips_ids_in_use_and_reuses_released() -> None:
    ids = InvokeIdAllocator()
    first, second = ids.allocate(), ids.allocate()
    assert (first, second) == ("0000", "0001")
    ids.release(first)
    ids.release("4242")  # unknown or already released: ignored
    assert first not in ids
    allocator = InvokeIdAllocator(start=9998)
    held = allocator.allocate()  # 9998
    assert allocator.allocate() == "0000"
    for _ in range(9997):
        allocator.allocate()
    assert len(allocator) == 9999
    with pytest.raises(InvokeIdsExhaustedError):
        allocator.allocate()
    allocator.release("0500")
    assert allocator.allocate() == "0500"
    assert held == "9998"


def test_allocator_exhaustion_is_a_csta_error() -> None:
    assert issubclass(InvokeIdsExhaustedError, CstaError)
    with pytest.raises(ValueError):
        InvokeIdAllocator(start=9999)
