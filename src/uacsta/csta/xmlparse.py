"""Hardened XML parsing for every CSTA and ECMA-354 document that enters uacsta.

Every document from a phone or client goes through :func:`parse_document`: no DTD, no entity
expansion, no network access, and hard bounds on size and depth, so XXE and billion-laughs inputs
are refused with :class:`CstaDecodeError` before they cost memory.
"""

from __future__ import annotations

import re

from lxml import etree

from uacsta.csta.errors import CstaDecodeError

MAX_DOCUMENT_BYTES = 256 * 1024
MAX_DEPTH = 32

_PARSER = etree.XMLParser(
    resolve_entities=False,
    no_network=True,
    load_dtd=False,
    dtd_validation=False,
    huge_tree=False,
    remove_comments=True,
    remove_pis=True,
    collect_ids=False,
)


class _NothingExternal(etree.Resolver):
    """Resolves every external DTD or entity to nothing: libxml2 still loads an external
    subset or parameter entity (``file://``) despite ``load_dtd=False``; this stops the read."""

    def resolve(  # type: ignore[override]  # lxml-stubs omit the context argument
        self, url: str | None, pubid: str | None, context: object
    ) -> object:
        return self.resolve_string("", context, base_url=None)


_PARSER.resolvers.add(_NothingExternal())


def local_name(element: etree._Element) -> str:
    """The element's name without namespace (CSTA editions differ only in namespace)."""
    tag = element.tag
    if not isinstance(tag, str):
        return ""
    return tag.rpartition("}")[2]


def namespace(element: etree._Element) -> str | None:
    tag = element.tag
    if isinstance(tag, str) and tag.startswith("{"):
        return tag[1:].partition("}")[0]
    return None


# An XML declaration naming a 16- or 32-bit encoding, in a document whose bytes are 8-bit (it
# starts with an ASCII "<?xml"): .NET serializers write encoding="utf-16" on UTF-8 bytes.
_WIDE_DECLARATION = re.compile(
    rb"(<\?xml[^>]{0,200}?encoding\s*=\s*[\"'])(?:utf-?16|utf-?32|ucs-?2|ucs-?4|unicode)"
    rb"(?:[bl]e)?([\"'])",
    re.IGNORECASE,
)


def _honest_declaration(data: bytes) -> bytes:
    """``data`` with a wide-encoding declaration on 8-bit bytes replaced by UTF-8."""
    start = 3 if data.startswith(b"\xef\xbb\xbf") else 0
    if data[start : start + 5] != b"<?xml":
        return data
    end = data.find(b"?>", start, start + 256)
    if end < 0:
        return data
    head = data[: end + 2]
    honest = _WIDE_DECLARATION.sub(rb"\1UTF-8\2", head, count=1)
    return data if honest == head else honest + data[end + 2 :]


def parse_document(data: bytes, *, max_bytes: int = MAX_DOCUMENT_BYTES) -> etree._Element:
    """Parse one XML document; raise :class:`CstaDecodeError` for anything unsafe or malformed.

    A declaration saying ``utf-16`` on bytes that are 8-bit (a .NET serializer's habit) is read
    as UTF-8, which is what such documents are.
    """
    if len(data) > max_bytes:
        raise CstaDecodeError(f"document of {len(data)} bytes exceeds the limit of {max_bytes}")
    if b"<!DOCTYPE" in data or b"<!ENTITY" in data:
        raise CstaDecodeError("DTDs and entity declarations are not accepted")
    try:
        root = etree.fromstring(data, _PARSER)
    except (etree.XMLSyntaxError, ValueError) as exc:
        # Only a document libxml2 refuses is looked at again: no cost for the usual ones.
        honest = _honest_declaration(data)
        if honest is data:
            raise CstaDecodeError(f"malformed XML: {exc}") from exc
        try:
            root = etree.fromstring(honest, _PARSER)
        except (etree.XMLSyntaxError, ValueError) as again:
            raise CstaDecodeError(f"malformed XML: {again}") from again
    if root is None:
        raise CstaDecodeError("empty document")
    # The byte check above only sees ASCII-compatible encodings; a UTF-16/32 document hides
    # its DOCTYPE from it, so refuse the DTD once parsed (nothing external was read: see
    # _NothingExternal, and entities are never expanded).
    docinfo = root.getroottree().docinfo
    if docinfo.internalDTD is not None:  # any DOCTYPE, with or without an internal subset
        raise CstaDecodeError("DTDs and entity declarations are not accepted")
    # A document can only nest as deep as it has start tags: most CSTA messages have fewer
    # than MAX_DEPTH "<" in all, so the tree walk is skipped (only when the document starts
    # with an ASCII "<", i.e. its "<" are bytes 0x3C).
    if not (data[:1] == b"<" and data.count(b"<") <= MAX_DEPTH):
        _check_depth(root)
    return root


# Compiled once: true when an element exists below MAX_DEPTH levels (C speed, no Python walk).
_TOO_DEEP = etree.XPath("boolean(/*" + "/*" * MAX_DEPTH + ")")


def _check_depth(root: etree._Element) -> None:
    if _TOO_DEEP(root):
        raise CstaDecodeError(f"document nested deeper than {MAX_DEPTH} levels")
