"""The nesting limit holds whether or not the tree walk is skipped for small documents."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from uacsta.csta.errors import CstaDecodeError
from uacsta.csta.xmlparse import MAX_DEPTH, parse_document


def nested(depth: int, siblings: int, prolog: bytes) -> bytes:
    """``depth`` levels of elements (the root is level 1), ``siblings`` empty ones beside."""
    return prolog + b"<a>" * depth + b"<b/>" * siblings + b"</a>" * depth


@given(
    depth=st.integers(1, MAX_DEPTH + 3),
    siblings=st.integers(0, 40),
    prolog=st.sampled_from([b"", b'<?xml version="1.0"?>', b" ", b"\xef\xbb\xbf"]),
)
def test_documents_deeper_than_the_limit_are_refused(
    depth: int, siblings: int, prolog: bytes
) -> None:
    data = nested(depth, siblings, prolog)
    deepest = depth + (1 if siblings else 0)
    if deepest > MAX_DEPTH:
        with pytest.raises(CstaDecodeError, match="nested deeper"):
            parse_document(data)
    else:
        assert parse_document(data).tag == "a"


def test_the_limit_is_exact() -> None:
    assert parse_document(nested(MAX_DEPTH, 0, b"")) is not None
    with pytest.raises(CstaDecodeError):
        parse_document(nested(MAX_DEPTH + 1, 0, b""))
