"""Each CSTA failure knows the CSTAErrorCode it becomes; a parsed root decodes as its bytes do."""

from __future__ import annotations

import pytest

from uacsta.csta import codec
from uacsta.csta import messages as m
from uacsta.csta.errors import CstaDecodeError, CstaError, CstaFramingError, error_code
from uacsta.csta.framing import FrameDecoder, InvokeIdAllocator, InvokeIdsExhaustedError


def test_decode_errors_become_operation_generic() -> None:
    with pytest.raises(CstaDecodeError) as caught:
        codec.decode(b"<MakeCall><callingDevice>")
    assert error_code(caught.value) == m.CSTAErrorCode.operation("generic")


def test_framing_errors_and_bugs_become_operation_generic() -> None:
    decoder = FrameDecoder()
    decoder.receive_data(b"\x00\x01\x00\x00garbage")
    with pytest.raises(CstaFramingError) as caught:
        list(decoder.frames())
    assert error_code(caught.value) == m.CSTAErrorCode.operation("generic")
    assert error_code(RuntimeError("a bug")) == m.CSTAErrorCode.operation("generic")


def test_exhausted_invoke_ids_are_a_performance_limit() -> None:
    ids = InvokeIdAllocator()
    with pytest.raises(InvokeIdsExhaustedError) as caught:
        for _ in range(10_000):
            ids.allocate()
    assert isinstance(caught.value, CstaError)
    assert error_code(caught.value) == m.CSTAErrorCode.performance_management(
        "performanceLimitExceeded"
    )


@pytest.mark.parametrize(
    "xml",
    [
        b'<MakeCall xmlns="http://www.ecma-international.org/standards/ecma-323/csta/ed5">'
        b"<callingDevice>100</callingDevice><calledDirectoryNumber>200</calledDirectoryNumber>"
        b"</MakeCall>",
        b"<NoSuchService><x/></NoSuchService>",
    ],
)
def test_decode_element_is_decode_of_the_parsed_root(xml: bytes) -> None:
    assert codec.decode_element(codec.parse(xml), xml) == codec.decode_with_edition(xml)
