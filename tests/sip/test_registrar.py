"""Registrar bindings (RFC 3261 §10.3) with a fake clock."""

from __future__ import annotations

import pytest

from uacsta.sip.message import Request
from uacsta.sip.registrar import Registrar, RegistrarPolicy, contact_key
from uacsta.sip.uri import parse_name_addr

AOR = "sip:alice@example.com"


def reg(
    *contacts: str,
    cseq: int = 1,
    call_id: str = "call-1@phone",
    expires: str | None = None,
    to: str = "<sip:alice@Example.COM>",
    uri: str = "sip:example.com",
    extra: tuple[tuple[str, str], ...] = (),
) -> Request:
    headers: list[tuple[str, str]] = [
        ("Via", "SIP/2.0/UDP 10.0.0.1:5060;branch=z9hG4bK-1"),
        ("From", "<sip:alice@example.com>;tag=f1"),
        ("To", to),
        ("Call-ID", call_id),
        ("CSeq", f"{cseq} REGISTER"),
        ("User-Agent", "Phone/1.0"),
    ]
    headers += [("Contact", c) for c in contacts]
    if expires is not None:
        headers.append(("Expires", expires))
    headers += extra
    return Request(method="REGISTER", uri=uri, headers=tuple(headers))


@pytest.fixture
def r() -> Registrar:
    return Registrar(RegistrarPolicy(default_expires=3600, min_expires=60, max_expires=7200))


def test_register_creates_binding_with_flow_and_response_headers(r: Registrar) -> None:
    request = reg("<sip:alice@10.0.0.1:5060;transport=tcp>", expires="600")
    result = r.process_register(request, 100.0, flow_token="flow-1")
    assert result.ok and result.status_code == 200
    assert result.aor == AOR
    (binding,) = result.added
    assert binding.flow == "flow-1" and binding.expires_at == 700.0
    assert binding.user_agent == "Phone/1.0" and binding.cseq == 1
    assert result.headers == (
        ("Contact", "<sip:alice@10.0.0.1:5060;transport=tcp>;expires=600"),
        ("Expires", "600"),
    )
    resp = result.response(request, to_tag="t1")
    assert resp.status_code == 200
    assert resp.to.tag == "t1"
    assert resp.contact[0].expires == 600
    assert r.lookup(AOR, 100.0) == [binding]
    assert r.bindings_for_flow("flow-1") == [binding]
    assert len(r) == 1


def test_contact_expires_param_wins_over_header_and_default_applies(r: Registrar) -> None:
    result = r.process_register(
        reg("<sip:a@h1>;expires=120", "<sip:a@h2>", expires="300"), 0.0, None
    )
    by_host = {str(b.contact.uri): b.expires_at for b in result.added}
    assert by_host == {"sip:a@h1": 120.0, "sip:a@h2": 300.0}
    result = r.process_register(reg("<sip:a@h3>", call_id="other"), 0.0, None)
    assert result.added[0].expires_at == 3600.0
    assert result.headers[-1] == ("Expires", "3600")


def test_too_brief_is_423_with_min_expires_and_changes_nothing(r: Registrar) -> None:
    result = r.process_register(reg("<sip:a@h1>", "<sip:a@h2>;expires=30"), 0.0, None)
    assert result.status_code == 423 and result.reason == "Interval Too Brief"
    assert result.headers == (("Min-Expires", "60"),)
    assert len(r) == 0
    assert r.process_register(reg("<sip:a@h1>;expires=59"), 0.0, None).status_code == 423


def test_long_expiry_is_clamped_to_max(r: Registrar) -> None:
    result = r.process_register(reg("<sip:a@h>", expires="99999999999999"), 0.0, None)
    assert result.added[0].expires_at == 7200.0
    assert ("Expires", "7200") in result.headers


def test_refresh_updates_flow_and_expiry_in_place(r: Registrar) -> None:
    r.process_register(reg("<sip:a@h;transport=tcp>"), 0.0, "old-flow")
    result = r.process_register(reg("<sip:A@H;Transport=TCP>", cseq=2), 10.0, "new-flow")
    # Host and parameter names compare case-insensitively but user does not (§19.1.4).
    assert len(r) == 2
    result = r.process_register(reg("<sip:a@H;transport=tcp>", cseq=3), 20.0, "new-flow")
    assert [b.flow for b in result.refreshed] == ["new-flow"]
    assert result.refreshed[0].expires_at == 3620.0
    assert r.bindings_for_flow("old-flow") == []


def test_out_of_order_cseq_on_same_call_id_fails(r: Registrar) -> None:
    r.process_register(reg("<sip:a@h>", cseq=5), 0.0, None)
    for cseq in (5, 4):
        result = r.process_register(reg("<sip:a@h>", cseq=cseq, expires="0"), 1.0, None)
        assert result.status_code == 500
    assert len(r) == 1
    # Another Call-ID (a rebooted phone) may update with any CSeq.
    result = r.process_register(reg("<sip:a@h>", cseq=1, call_id="new", expires="0"), 1.0, None)
    assert result.ok and len(result.removed) == 1
    assert len(r) == 0


def test_expires_zero_removes_one_contact(r: Registrar) -> None:
    r.process_register(reg("<sip:a@h1>", "<sip:a@h2>"), 0.0, None)
    result = r.process_register(reg("<sip:a@h1>;expires=0", cseq=2), 1.0, None)
    assert [str(b.contact.uri) for b in result.removed] == ["sip:a@h1"]
    assert [h for h, _ in result.headers] == ["Contact", "Expires"]
    assert result.headers[1] == ("Expires", "0")
    assert len(r) == 1


def test_wildcard_unregisters_all(r: Registrar) -> None:
    r.process_register(reg("<sip:a@h1>", "<sip:a@h2>"), 0.0, None)
    result = r.process_register(reg("*", cseq=2, expires="0"), 1.0, None)
    assert result.ok and len(result.removed) == 2 and result.headers == ()
    assert len(r) == 0 and r.get_timer() is None


@pytest.mark.parametrize(
    ("contacts", "expires"), [(("*",), "60"), (("*",), None), (("*", "<sip:a@h>"), "0")]
)
def test_wildcard_needs_expires_zero_and_no_other_contact(
    r: Registrar, contacts: tuple[str, ...], expires: str | None
) -> None:
    assert r.process_register(reg(*contacts, expires=expires), 0.0, None).status_code == 400


def test_wildcard_respects_cseq_ordering(r: Registrar) -> None:
    r.process_register(reg("<sip:a@h>", cseq=3), 0.0, None)
    assert r.process_register(reg("*", cseq=3, expires="0"), 1.0, None).status_code == 500
    assert len(r) == 1


def test_query_without_contact_lists_bindings(r: Registrar) -> None:
    r.process_register(reg("<sip:a@h>;q=0.5", expires="100"), 0.0, None)
    r.process_register(reg("<sip:a@g>;q=0.9", expires="100", call_id="x"), 1.0, None)
    result = r.process_register(reg(cseq=9), 50.0, None)
    assert result.ok
    assert result.headers == (
        ("Contact", "<sip:a@g>;q=0.9;expires=51"),
        ("Contact", "<sip:a@h>;q=0.5;expires=50"),
    )


def test_expire_and_timer(r: Registrar) -> None:
    assert r.get_timer() is None
    r.process_register(reg("<sip:a@h1>", expires="100"), 0.0, "f")
    r.process_register(reg("<sip:b@h2>", expires="200", to="<sip:bob@example.com>"), 0.0, "f")
    assert r.get_timer() == 100.0
    assert r.expire(99.9) == []
    assert r.lookup(AOR, 100.0) == []  # expired bindings are never returned
    (gone,) = r.expire(100.0)
    assert gone.aor == AOR
    assert r.get_timer() == 200.0
    assert [b.aor for b in r.remove_flow("f")] == ["sip:bob@example.com"]
    assert len(r) == 0 and r.all_bindings() == []


def test_max_bindings_per_aor() -> None:
    r = Registrar(RegistrarPolicy(max_bindings_per_aor=2))
    assert r.process_register(reg("<sip:a@h1>", "<sip:a@h2>"), 0.0, None).ok
    result = r.process_register(reg("<sip:a@h3>", cseq=2), 0.0, None)
    assert result.status_code == 403
    # Refreshing existing ones is still fine.
    assert r.process_register(reg("<sip:a@h1>", "<sip:a@h2>", cseq=3), 0.0, None).ok


@pytest.mark.parametrize(
    ("request_", "status"),
    [
        (reg("<sip:a@h>", expires="soon"), 400),
        (reg("<sip:a@h>;expires=soon"), 400),
        (reg("<sip:a@h", cseq=1), 400),
        (reg("<sip:a@h>", to="<tel:+123>"), 404),
        (reg("<sip:a@h>", extra=(("Require", "gruu"),)), 420),
    ],
)
def test_bad_requests(r: Registrar, request_: Request, status: int) -> None:
    result = r.process_register(request_, 0.0, None)
    assert result.status_code == status and not result.ok
    assert len(r) == 0
    if status == 420:
        assert result.headers == (("Unsupported", "gruu"),)


def test_domains_policy() -> None:
    r = Registrar(RegistrarPolicy(domains=frozenset({"example.com"})))
    assert r.process_register(reg("<sip:a@h>"), 0.0, None).ok
    assert r.process_register(reg("<sip:a@h>", uri="sip:evil.org"), 0.0, None).status_code == 404
    assert r.process_register(reg("<sip:a@h>", uri="tel:+1"), 0.0, None).status_code == 404


def test_not_a_register_and_bad_policy() -> None:
    req = Request(method="OPTIONS", uri="sip:x", headers=reg().headers)
    with pytest.raises(ValueError):
        Registrar().process_register(req, 0.0)
    with pytest.raises(ValueError):
        RegistrarPolicy(min_expires=100, default_expires=50)
    with pytest.raises(ValueError):
        RegistrarPolicy(max_bindings_per_aor=0)


def test_contact_key_and_binding_helpers() -> None:
    a = parse_name_addr("<sip:u@HOST:5060;Transport=TCP;lr>;expires=5;q=0.3")
    b = parse_name_addr("<sip:u@host:5060;lr;transport=tcp>")
    assert contact_key(a) == contact_key(b)
    assert contact_key(parse_name_addr("<tel:+1>")) == "tel:+1"
    r = Registrar()
    result = r.process_register(reg("<sip:a@h>;q=bad"), 0.0, None)
    (binding,) = result.added
    assert binding.q == 1.0
    assert binding.key == contact_key(parse_name_addr("<sip:a@h>"))
    assert binding.expires_in(5000.0) == 0
