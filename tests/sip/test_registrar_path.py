"""Path in the registrar (RFC 3327 §5.3) and where a request to a binding goes (route_to)."""

from __future__ import annotations

import pytest

from tests.sip.test_registrar import AOR, reg
from uacsta.sip.errors import SipParseError
from uacsta.sip.message import Request, parse_message
from uacsta.sip.registrar import Registrar, route_to

EDGE = "<sip:192.0.2.10;lr;received=sip:198.51.100.7:41000>"
INNER = "<sip:10.0.0.5:5070;transport=tcp;lr>"


def test_path_is_kept_with_the_binding_in_order() -> None:
    r = Registrar()
    result = r.process_register(
        reg("<sip:alice@10.1.1.1>", extra=(("Path", INNER), ("Path", EDGE))), 0.0
    )
    assert result.ok
    (binding,) = result.added
    assert binding.path == (INNER, EDGE)
    # A UA that did not say it supports Path does not see it (§5.3).
    assert not any(name == "Path" for name, _ in result.headers)
    # A refresh without Path (registered directly now) forgets it.
    again = r.process_register(reg("<sip:alice@10.1.1.1>", cseq=2), 1.0)
    assert again.refreshed[0].path == ()


@pytest.mark.parametrize(
    "tag", [("Supported", "path"), ("Require", "path"), ("Supported", "timer, Path")]
)
def test_path_is_echoed_to_a_ua_that_supports_it(tag: tuple[str, str]) -> None:
    request = reg("<sip:alice@10.1.1.1>", extra=(("Path", INNER), ("Path", EDGE), tag))
    result = Registrar().process_register(request, 0.0)
    assert result.ok
    assert [v for n, v in result.headers if n == "Path"] == [INNER, EDGE]
    response = result.response(request, to_tag="t")
    # Parsed back, the values are the same, in the same order.
    parsed = parse_message(response.to_bytes())
    assert parsed.header_values("Path") == [INNER, EDGE]


def test_path_values_of_one_header_line_are_split_by_the_parser() -> None:
    raw = (
        "REGISTER sip:example.com SIP/2.0\r\n"
        "Via: SIP/2.0/UDP 192.0.2.10;branch=z9hG4bK-e\r\n"
        "Via: SIP/2.0/UDP 10.1.1.1:5062;branch=z9hG4bK-p\r\n"
        "From: <sip:alice@example.com>;tag=f\r\nTo: <sip:alice@example.com>\r\n"
        "Call-ID: c\r\nCSeq: 1 REGISTER\r\nContact: <sip:alice@10.1.1.1:5062>\r\n"
        f"Path: {INNER}, {EDGE}\r\nContent-Length: 0\r\n\r\n"
    ).encode()
    request = parse_message(raw)
    assert isinstance(request, Request)
    (binding,) = Registrar().process_register(request, 0.0).added
    assert binding.path == (INNER, EDGE)


def test_removing_every_binding_echoes_the_path_too() -> None:
    r = Registrar()
    r.process_register(reg("<sip:alice@10.1.1.1>", extra=(("Path", EDGE),)), 0.0)
    request = reg("*", cseq=2, expires="0", extra=(("Path", EDGE), ("Supported", "path")))
    result = r.process_register(request, 1.0)
    assert result.ok and result.removed and r.lookup(AOR, 1.0) == []
    assert ("Path", EDGE) in result.headers


def test_require_path_is_supported_other_extensions_are_not() -> None:
    result = Registrar().process_register(reg("<sip:a@h>", extra=(("Require", "path, gruu"),)), 0.0)
    assert result.status_code == 420
    assert result.headers == (("Unsupported", "gruu"),)


def test_a_path_that_is_no_address_is_refused() -> None:
    result = Registrar().process_register(reg("<sip:a@h>", extra=(("Path", "<>"),)), 0.0)
    assert (result.status_code, result.reason) == (400, "Bad Path")


def test_route_to_a_contact_registered_through_an_edge() -> None:
    hop = route_to("sip:alice@10.1.1.1:5062", (EDGE,))
    assert hop.uri == "sip:alice@10.1.1.1:5062"  # loose routing: the Request-URI stays
    assert hop.route == (EDGE,)
    assert (hop.transport, hop.host, hop.port) == ("udp", "192.0.2.10", 5060)
    hop = route_to("sip:alice@10.1.1.1", (INNER, EDGE))
    assert (hop.transport, hop.host, hop.port) == ("tcp", "10.0.0.5", 5070)


@pytest.mark.parametrize(
    ("contact", "path", "expected"),
    [
        ("sip:alice@10.1.1.1", (), ("udp", "10.1.1.1", 5060)),
        ("sip:alice@10.1.1.1:5099;transport=TCP", (), ("tcp", "10.1.1.1", 5099)),
        ("sips:alice@phone.example", (), ("tls", "phone.example", 5061)),
        ("sip:alice@h", ("<sips:[2001:db8::1];lr>",), ("tls", "2001:db8::1", 5061)),
        ("sip:alice@h", ("<sip:edge.example;transport=tls;lr>",), ("tls", "edge.example", 5061)),
    ],
)
def test_route_to_next_hop(
    contact: str, path: tuple[str, ...], expected: tuple[str, str, int]
) -> None:
    hop = route_to(contact, path)
    assert (hop.transport, hop.host, hop.port) == expected
    assert hop.route == path


def test_route_to_needs_a_sip_uri() -> None:
    with pytest.raises(SipParseError):
        route_to("tel:+4930123")
