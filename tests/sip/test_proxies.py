"""The client address of a request relayed by a trusted edge proxy (sip/proxies.py)."""

from __future__ import annotations

import pytest

from uacsta.sip.message import Request
from uacsta.sip.proxies import TrustedProxies

EDGE = ("192.0.2.10", 5060)


def request(*vias: str) -> Request:
    return Request(
        method="REGISTER",
        uri="sip:uacsta.example",
        headers=(
            *(("Via", v) for v in vias),
            ("From", "<sip:a@h>;tag=1"),
            ("To", "<sip:a@h>"),
            ("Call-ID", "c"),
            ("CSeq", "1 REGISTER"),
        ),
    )


EDGE_VIA = "SIP/2.0/UDP 192.0.2.10;branch=z9hG4bK-edge"
PHONE_VIA = "SIP/2.0/UDP 10.1.1.1:5062;rport=41000;received=198.51.100.7;branch=z9hG4bK-p"


def test_untrusted_source_is_the_address_whatever_the_vias_say() -> None:
    proxies = TrustedProxies(["192.0.2.0/24"])
    forged = request("SIP/2.0/UDP 203.0.113.9;branch=z9hG4bK-x", PHONE_VIA)
    assert proxies.client_address(forged, ("203.0.113.9", 5060)) == ("203.0.113.9", 5060)
    assert not TrustedProxies()  # the default: nobody
    assert TrustedProxies().client_address(request(EDGE_VIA, PHONE_VIA), EDGE) == EDGE


def test_from_a_trusted_edge_the_phone_address_is_received_and_rport() -> None:
    proxies = TrustedProxies(["192.0.2.10"])
    assert proxies.client_address(request(EDGE_VIA, PHONE_VIA), EDGE) == ("198.51.100.7", 41000)


@pytest.mark.parametrize(
    ("via", "expected"),
    [
        ("SIP/2.0/TCP 10.1.1.1:5062;branch=z9hG4bK-p", ("10.1.1.1", 5062)),
        ("SIP/2.0/UDP 10.1.1.1;branch=z9hG4bK-p", ("10.1.1.1", 5060)),
        ("SIP/2.0/UDP [2001:db8::7]:5062;branch=z9hG4bK-p", ("2001:db8::7", 5062)),
        (
            "SIP/2.0/UDP phone.example;received=198.51.100.7;branch=z9hG4bK-p",
            ("198.51.100.7", 5060),
        ),
    ],
)
def test_without_received_the_sent_by_counts(via: str, expected: tuple[str, int]) -> None:
    assert TrustedProxies(["192.0.2.10"]).client_address(request(EDGE_VIA, via), EDGE) == expected


def test_several_trusted_hops_are_skipped() -> None:
    proxies = TrustedProxies(["192.0.2.0/24", "10.0.0.0/8"])
    inner = "SIP/2.0/TCP 10.0.0.2:5060;received=10.0.0.2;branch=z9hG4bK-sbc"
    assert proxies.client_address(request(EDGE_VIA, inner, PHONE_VIA), EDGE) == (
        "198.51.100.7",
        41000,
    )
    # Every Via trusted, or only the edge's own (its OPTIONS probe): the edge itself.
    only_proxies = request(EDGE_VIA, inner)
    assert proxies.client_address(only_proxies, EDGE) == EDGE
    assert proxies.client_address(request(EDGE_VIA), EDGE) == EDGE


def test_trusts_addresses_and_networks_only() -> None:
    proxies = TrustedProxies(["192.0.2.10", "2001:db8::/32"])
    assert proxies.trusts("192.0.2.10") and proxies.trusts("[2001:db8::1]")
    assert proxies.trusts("::ffff:192.0.2.10")  # IPv4 on a dual-stack socket
    assert not proxies.trusts("192.0.2.11")
    assert not proxies.trusts("edge.example")  # names are never trusted
    with pytest.raises(ValueError):
        TrustedProxies(["10.0.0.1/8"])  # host bits set: a typo, not a network
