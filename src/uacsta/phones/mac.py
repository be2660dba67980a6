"""Phone MAC addresses: the digest username of every phone (estos manual §3.2)."""

from __future__ import annotations

_HEX = frozenset("0123456789abcdefABCDEF")
_SEPARATORS = ":-. "


def normalize_mac(text: str) -> str | None:
    """``00:15:65:aa:bb:cc``, ``001565-AABBCC``... → ``001565AABBCC``; None if not a MAC."""
    compact = "".join(ch for ch in text.strip() if ch not in _SEPARATORS)
    if len(compact) != 12 or not all(ch in _HEX for ch in compact):
        return None
    return compact.upper()


def format_mac(mac: str) -> str:
    """Display form ``00:15:65:AA:BB:CC``."""
    return ":".join(mac[i : i + 2] for i in range(0, 12, 2))
