"""Per-phone provisioning logins and who may fetch which file (pure rules)."""

from __future__ import annotations

import base64
import hashlib
import hmac

import pytest

from uacsta.provisioning.credentials import (
    Login,
    check_login,
    is_approved,
    may_fetch,
    provisioning_password,
    uses_common_password,
)

A, B = "001565AABBCC", "000413000001"


def expected(secret: str, mac: str) -> str:
    """The derivation written out: HMAC-SHA256(secret, context NUL MAC), base32, 20, lower."""
    digest = hmac.new(
        secret.encode(), b"uacsta provisioning login\x00" + mac.encode(), hashlib.sha256
    ).digest()
    return base64.b32encode(digest).decode()[:20].lower()


def test_password_is_per_phone_and_per_secret_in_any_mac_notation() -> None:
    assert provisioning_password("s", A) == expected("s", A)
    assert provisioning_password("s", "00-15-65-aa-bb-cc") == expected("s", A)
    assert provisioning_password("s", A) != provisioning_password("s", B)
    assert provisioning_password("s", A) != provisioning_password("t", A)
    with pytest.raises(ValueError, match="not a MAC"):
        provisioning_password("s", "nope")


def test_check_login() -> None:
    kw = {"secret": "s", "shared_user": "provision", "allow_shared": False}
    assert check_login(A, expected("s", A), **kw) == Login(A)
    assert check_login("00-15-65-aa-bb-cc", expected("s", A), **kw) == Login(A)
    assert check_login(B, expected("s", A), **kw) is None  # A's password, B's name
    assert check_login("provision", "s", **kw) is None  # the shared login is off
    assert check_login("provision", "s", **{**kw, "allow_shared": True}) == Login(None, True)
    assert check_login("provision", "x", **{**kw, "allow_shared": True}) is None
    assert check_login(A, expected("", A), **{**kw, "secret": ""}) is None  # endpoint off


def test_may_fetch_and_approval() -> None:
    own = {B: "b-own"}
    assert may_fetch(Login(A), A, own) and not may_fetch(Login(A), B, own)
    assert may_fetch(Login(A), None, own)  # startup.cfg: A uses the common password
    assert not may_fetch(Login(B), None, own)  # B has its own: the common one is not B's
    shared = Login(None, shared=True)
    assert may_fetch(shared, A, own) and may_fetch(shared, None, own)
    assert not may_fetch(shared, B, own)
    assert uses_common_password(A, {"00:04:13:00:00:01": "x"})
    assert not uses_common_password(B, {"00:04:13:00:00:01": "x"})
    assert is_approved(A, known=True, approved=[], auto_approve_unknown=False)
    assert is_approved(A, known=False, approved=["00:15:65:aa:bb:cc"], auto_approve_unknown=False)
    assert not is_approved(A, known=False, approved=[B, "junk"], auto_approve_unknown=False)
    assert is_approved(A, known=False, approved=[], auto_approve_unknown=True)
