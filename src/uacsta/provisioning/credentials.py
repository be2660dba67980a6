"""Who may fetch which provisioning file: per-phone logins and approved MACs.

A provisioning file carries the phone's SIP password, so the login that fetches it must belong
to that phone alone: one phone's login never opens another phone's file. Each phone's login is
its MAC as HTTP user name and a password derived from the provisioning secret
(``provisioning.password``) with HMAC-SHA256 (RFC 2104), so nothing per phone is stored and a
new secret replaces every phone's login at once. The admin page hands each phone its login as
a URL with user and password (``http://MAC:password@host/provisioning/``), the form Yealink,
snom and Fanvil auto-provisioning accept.

Pure functions: no clock, no I/O.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
from collections.abc import Iterable, Mapping
from dataclasses import dataclass

from uacsta.phones.mac import normalize_mac

#: Characters of the derived password: 100 bits of base32, no padding, lower case (phones'
#: provisioning fields and URLs take it unquoted).
PASSWORD_LENGTH = 20
_CONTEXT = b"uacsta provisioning login\x00"


def provisioning_password(secret: str, mac: str) -> str:
    """Phone ``mac``'s own provisioning password: HMAC-SHA256(secret, MAC), base32."""
    normal = normalize_mac(mac)
    if normal is None:
        raise ValueError(f"{mac!r} is not a MAC address (12 hex digits)")
    digest = hmac.new(secret.encode(), _CONTEXT + normal.encode(), hashlib.sha256).digest()
    return base64.b32encode(digest).decode()[:PASSWORD_LENGTH].lower()


@dataclass(frozen=True, slots=True)
class Login:
    """Whom a provisioning login proves: one phone (``mac``) or the shared account."""

    mac: str | None
    shared: bool = False


def check_login(
    user: str,
    password: str,
    *,
    secret: str,
    shared_user: str,
    allow_shared: bool,
) -> Login | None:
    """The login ``user``/``password`` proves, or None.

    The user name is a MAC (any notation) with that phone's own password, or, only with
    ``allow_shared``, the shared ``shared_user`` with the secret itself.
    """
    if not secret:
        return None
    mac = normalize_mac(user)
    if mac is not None:
        expected = provisioning_password(secret, mac)
        if hmac.compare_digest(password.encode(), expected.encode()):
            return Login(mac)
        return None
    if allow_shared:
        user_ok = hmac.compare_digest(user.encode(), shared_user.encode())
        password_ok = hmac.compare_digest(password.encode(), secret.encode())
        if user_ok and password_ok:
            return Login(None, shared=True)
    return None


def uses_common_password(mac: str, overrides: Mapping[str, str]) -> bool:
    """Whether phone ``mac`` registers with ``phones.password`` (no per-phone override)."""
    return all(normalize_mac(key) != mac for key in overrides)


def is_approved(
    mac: str, *, known: bool, approved: Iterable[str], auto_approve_unknown: bool
) -> bool:
    """Files only for phones of the inventory, MACs the admin approved, or (opt-in) anyone."""
    return known or auto_approve_unknown or any(normalize_mac(a) == mac for a in approved)


def may_fetch(login: Login, mac: str | None, overrides: Mapping[str, str]) -> bool:
    """Whether ``login`` may fetch the file of ``mac`` (None: the common ``startup.cfg``).

    A phone gets its own file; the common file holds the common password, so it goes only to
    a phone that registers with that password anyway. The shared login (when allowed) gets
    files that hold the common password only, never a per-phone password.
    """
    if login.shared:
        return mac is None or uses_common_password(mac, overrides)
    if mac is None:
        return login.mac is not None and uses_common_password(login.mac, overrides)
    return login.mac == mac
