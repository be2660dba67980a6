"""A DOCTYPE in a UTF-16/UTF-32 document slipped past the hardened XML parser.

Found while writing ``tests/e2e/test_bad_input.py``: ``parse_document`` refused DTDs by
looking for ``b"<!DOCTYPE"`` in the raw bytes, which a UTF-16 or UTF-32 document does not
contain. libxml2 then parsed the DTD and, despite ``load_dtd=False``, read the external subset
and external parameter entities from ``file://`` URLs (a local file read any CSTA-over-TCP
peer could trigger before logging in). Entities were still never expanded, but the documents
decoded as ordinary requests. Now every external load resolves to nothing and a DTD is refused
in any encoding.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from uacsta.csta import codec
from uacsta.csta.appsession import decode_appsession
from uacsta.csta.errors import CstaDecodeError
from uacsta.csta.xmlparse import parse_document

ENCODINGS = ("utf-16", "utf-16-le", "utf-16-be", "utf-32")
BODY = (
    "<MonitorStart><monitorObject><deviceObject>{ref}</deviceObject></monitorObject></MonitorStart>"
)


def _doc(encoding: str, doctype: str, ref: str = "") -> bytes:
    label = encoding.upper().replace("-LE", "LE").replace("-BE", "BE")
    text = f'<?xml version="1.0" encoding="{label}"?>{doctype}{BODY.format(ref=ref)}'
    return text.encode(encoding)


def _tripwire(tmp_path: Path) -> str:
    """A file that is not a valid DTD: reading it would surface as a syntax error."""
    path = tmp_path / "tripwire.dtd"
    path.write_text("<!ENTITY broken ")
    return path.as_uri()


@pytest.mark.parametrize("encoding", ENCODINGS)
def test_dtd_refused_in_any_encoding(encoding: str, tmp_path: Path) -> None:
    url = _tripwire(tmp_path)
    cases = [
        (f'<!DOCTYPE r [<!ENTITY x SYSTEM "{url}">]>', "&x;"),  # XXE
        (f'<!DOCTYPE r SYSTEM "{url}">', ""),  # external subset
        (f'<!DOCTYPE r [<!ENTITY % p SYSTEM "{url}"> %p;]>', ""),  # external parameter entity
        ('<!DOCTYPE r [<!ENTITY a "aaaaaaaaaa"><!ENTITY b "&a;&a;&a;&a;&a;">]>', "&b;"),
    ]
    for doctype, ref in cases:
        data = _doc(encoding, doctype, ref)
        assert b"<!DOCTYPE" not in data  # the case the byte check could not see
        for decode in (parse_document, codec.decode, decode_appsession):
            with pytest.raises(CstaDecodeError, match="DTDs and entity declarations"):
                decode(data)


@pytest.mark.parametrize("encoding", ENCODINGS)
def test_utf16_documents_without_dtd_still_decode(encoding: str) -> None:
    message = codec.decode(_doc(encoding, "", "sip:100@example.com"))
    assert message == codec.decode(_doc("utf-8", "", "sip:100@example.com"))
