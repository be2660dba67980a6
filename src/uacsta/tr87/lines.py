"""A phone's lines: the device IDs clients use and the strings the phone itself writes.

A Yealink lists its accounts as ``sip:user@server:port;tel=+49...``; a CTI client monitors
``sip:user@server``. :class:`LineForms` learns both forms from a SwitchingFunctionDevices
list and maps requests to the phone's form and what the phone sends to the clients' form.
"""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Callable
from typing import Any, TypeVar

from uacsta.csta import messages as m

__all__ = ["LineForms", "account_key", "client_device_id"]

_M = TypeVar("_M", bound=m.CstaMessage)

_HOST_END = re.compile(r"[:;?>]")


def account_key(text: str) -> str | None:
    """``user@host`` of a SIP device ID, as the Yealink firmware matches accounts: scheme,
    port and parameters dropped (None: not a SIP URI with a user part)."""
    low = text[:5].lower()
    if low.startswith("sips:"):
        rest = text[5:]
    elif low.startswith("sip:"):
        rest = text[4:]
    else:
        return None
    user, at, host = rest.partition("@")
    if not at or not user:
        return None
    return f"{user}@{_HOST_END.split(host, maxsplit=1)[0].lower()}"


def client_device_id(phone_form: str) -> str:
    """The device ID clients use for a line the phone lists as ``phone_form``.

    Yealink lists ``sip:user@server:port;tel=+49...``: the port is the account's SIP server
    port and ``;tel`` its CSTA number, neither part of the line's identity; a CTI client
    monitors ``sip:user@server``. Other parameters (``;user=phone``) are kept as the phone
    wrote them."""
    text = phone_form.strip()
    low = text[:5].lower()
    if not low.startswith(("sip:", "sips:")):
        return text
    scheme, _, rest = text.partition(":")
    address, _, params = rest.partition(";")
    user, at, host = address.partition("@")
    if not at:
        return text
    if host.startswith("["):  # IPv6 reference: the port follows the bracket
        close = host.find("]")
        host = host[: close + 1] if close > 0 else host
    else:
        host = host.split(":", 1)[0]
    kept = [p for p in params.split(";") if p and not p.lower().startswith("tel=")]
    return f"{scheme}:{user}@{host}" + "".join(f";{p}" for p in kept)


#: Request fields that hold a device of the phone itself (mapped to the phone's own string).
DEVICE_FIELDS = frozenset(
    {"device_id", "calling_device", "device", "monitor_object", "snapshot_object",
     "requesting_device"}
)  # fmt: skip

_FIELDS: dict[type, tuple[str, ...]] = {}


def _init_fields(cls: type) -> tuple[str, ...]:
    found = _FIELDS.get(cls)
    if found is None:
        found = _FIELDS[cls] = tuple(f.name for f in dataclasses.fields(cls) if f.init)
    return found


def map_strings(obj: Any, fn: Callable[[str], str], names: frozenset[str] | None) -> Any:
    """``obj`` with ``fn`` applied to its strings (only fields in ``names`` when given);
    the same object when nothing changed. (Field names cached per class: this runs for
    every event of a phone whose lines are renamed.)"""
    if isinstance(obj, tuple):
        items = tuple(map_strings(x, fn, names) for x in obj)
        return obj if all(a is b for a, b in zip(items, obj, strict=True)) else items
    if isinstance(obj, (str, bytes, int, float)) or not dataclasses.is_dataclass(obj):
        return obj
    if isinstance(obj, type):
        return obj
    changes: dict[str, Any] = {}
    for name in _init_fields(type(obj)):
        value = getattr(obj, name)
        if value is None:
            continue
        if isinstance(value, str):
            if names is None or name in names:
                new = fn(value)
                if new is not value:
                    changes[name] = new
        elif isinstance(value, tuple) or dataclasses.is_dataclass(value):
            new = map_strings(value, fn, names)
            if new is not value:
                changes[name] = new
    return dataclasses.replace(obj, **changes) if changes else obj


class LineForms:
    """The lines of one phone in the clients' form, and the phone's own strings for them."""

    __slots__ = ("_client_by_key", "_phone_form", "lines")

    def __init__(self) -> None:
        #: The lines as clients name them (see :func:`client_device_id`).
        self.lines: list[str] = []
        #: client device ID → the phone's own string, where they differ.
        self._phone_form: dict[str, str] = {}
        #: account key (user@host) → client device ID, for what the phone sends.
        self._client_by_key: dict[str, str] = {}

    def learn(self, phone_forms: list[str], *, own_account: str | None = None) -> list[str]:
        """The client device IDs of ``phone_forms``, remembering the phone's own strings.

        The account the phone registers to uacsta with (user name = its MAC) is no line a
        client controls, but a Yealink lists it with the others: it is left out (unless it is
        all there is). ``own_account`` is that account's AOR (None: the phone registered
        with a real line's name, which it keeps)."""
        own_key = account_key(own_account) if own_account is not None else None
        if own_key is not None:
            lines_only = [p for p in phone_forms if account_key(p) != own_key]
            phone_forms = lines_only or phone_forms
        lines: list[str] = []
        phone_form: dict[str, str] = {}
        by_key: dict[str, str] = {}
        for own in phone_forms:
            client = client_device_id(own)
            key = account_key(own)
            if client in phone_form or (key is not None and key in by_key):
                client = own  # two accounts differ only in port or ;tel: keep them apart
                key = None
            lines.append(client)
            if key is not None:
                by_key[key] = client
            if client != own:
                phone_form[client] = own
        self._phone_form = phone_form
        self._client_by_key = by_key if phone_form else {}
        return list(dict.fromkeys(lines))

    def aliases(self) -> dict[str, list[str]]:
        """Other names of the lines: a Yealink account's ``;tel=`` CSTA number, as a tel URI,
        so a client may monitor the line by it (``sip:101@pbx:5060;tel=+4930101``)."""
        aliases: dict[str, list[str]] = {}
        for client, own in self._phone_form.items():
            for param in own.split(";")[1:]:
                name, _, value = param.partition("=")
                if name.strip().lower() == "tel" and value.strip():
                    tel = value.strip()
                    aliases.setdefault(client, []).append(
                        tel if tel[:4].lower() == "tel:" else f"tel:{tel}"
                    )
        return aliases

    def to_phone_form(self, request: m.CstaRequest) -> m.CstaRequest:
        """``request`` with the phone's own lines as the phone lists them."""
        if not self._phone_form:
            return request
        forms = self._phone_form
        by_key = self._client_by_key

        def own(text: str) -> str:
            key = account_key(text)
            client = by_key.get(key) if key is not None else None
            return forms.get(client, text) if client is not None else text

        mapped: m.CstaRequest = map_strings(request, own, DEVICE_FIELDS)
        return mapped

    def to_client_form(self, message: _M) -> _M:
        """What the phone sent, with its lines as clients name them."""
        if not self._phone_form:
            return message
        by_key = self._client_by_key

        def client(text: str) -> str:
            key = account_key(text)
            return by_key.get(key, text) if key is not None else text

        mapped: _M = map_strings(message, client, None)
        return mapped
