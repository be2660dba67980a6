"""Call IDs in one space: every phone numbers its calls itself, clients see one switching
function.

Each phone is its own switching sub-domain: two phones both name their first call ``1``. A
client that keys calls by callID (TAPI does) would merge them, so the switching function
puts a short per-phone prefix in front of every call ID it passes to clients
(``<prefix>.<phone's call ID>``) and takes it off again in what clients send.

Why a prefix and not a table of calls: it needs no state per call (nothing to leak when a
phone misses a ConnectionCleared, nothing to drop when a call clears), the ID is stable for
the call's whole life, also across a lost and re-established phone link, and memory is one
entry per phone, dropped when the phone is removed. Prefixes are never reused while the
server runs, so an old ID never names a new phone's call.

The phone's call ID stays opaque (snom sends ``-12``, some PBXs long hex strings). The one
structure uacsta knows is the Yealink conference form ``a|b`` (ECMA-285 has no list of call
IDs; the firmware joins the two calls' IDs): each part is mapped on its own, so ``3|4`` is
``7.3|7.4`` and maps back to ``3|4``.
"""

from __future__ import annotations

import itertools
import re
import sys
from collections.abc import Callable
from dataclasses import fields, is_dataclass, replace
from typing import Any, TypeVar

from uacsta.csta.types import ConnectionID

SEPARATOR = "."
#: How the Yealink firmware writes a conference's call (``held|active``).
CONFERENCE_SEPARATOR = "|"

T = TypeVar("T")

#: dataclass → its fields that can hold a ConnectionID (read once per class).
_FIELDS: dict[type, tuple[str, ...]] = {}


class CallIdSpace:
    """Per-phone prefixes and the mapping of call IDs both ways."""

    def __init__(self, prefix_of: Callable[[str], str] | None = None) -> None:
        self._numbers = itertools.count(1)
        #: Several nodes as one switching function: the prefix is derived from the phone (the
        #: same on every node) instead of counted here. It must be unique per phone and free
        #: of the separators.
        self._derive = prefix_of
        self._prefix_of: dict[str, str] = {}
        self._phone_of: dict[str, str] = {}

    def __len__(self) -> int:
        return len(self._prefix_of)

    def prefix(self, phone: str) -> str:
        """The phone's prefix, given on first use."""
        prefix = self._prefix_of.get(phone)
        if prefix is None:
            prefix = self._derive(phone) if self._derive else str(next(self._numbers))
            self._prefix_of[phone] = prefix
            self._phone_of[prefix] = phone
        return prefix

    def forget(self, phone: str) -> None:
        """The phone left the switching function: its prefix is not used again."""
        prefix = self._prefix_of.pop(phone, None)
        if prefix is not None:
            del self._phone_of[prefix]

    # ------------------------------------------------------------------ one ID
    def to_client(self, phone: str, call_id: str) -> str:
        """The phone's call ID as clients see it."""
        if not call_id:
            return call_id
        prefix = self.prefix(phone) + SEPARATOR
        if CONFERENCE_SEPARATOR not in call_id:
            return prefix + call_id
        return CONFERENCE_SEPARATOR.join(
            prefix + part if part else part for part in call_id.split(CONFERENCE_SEPARATOR)
        )

    def to_phone(self, call_id: str) -> tuple[str | None, str]:
        """(phone, the phone's own call ID) for an ID a client sent.

        The phone is None when no part of the ID carries a known prefix (an ID uacsta never
        gave out: passed on as it is, the phone decides); ``"*"`` when the parts name
        different phones, which no single phone can act on."""
        phones: set[str] = set()
        parts: list[str] = []
        for part in call_id.split(CONFERENCE_SEPARATOR):
            prefix, sep, local = part.partition(SEPARATOR)
            phone = self._phone_of.get(prefix) if sep else None
            if phone is None:
                parts.append(part)
            else:
                phones.add(phone)
                parts.append(local)
        if not phones:
            return None, call_id
        if len(phones) > 1:
            return "*", call_id
        return phones.pop(), CONFERENCE_SEPARATOR.join(parts)

    # ------------------------------------------------------------------ whole messages
    def message_to_client(self, phone: str, message: T) -> T:
        """``message`` (from the phone) with every call ID in the clients' space."""
        return _map_call_ids(message, lambda call_id: self.to_client(phone, call_id))

    def message_to_phone(self, message: T) -> T:
        """``message`` (from a client) with every call ID of ours back in its phone's terms."""
        return _map_call_ids(message, lambda call_id: self.to_phone(call_id)[1])


def _map_call_ids(value: T, convert: Callable[[str], str]) -> T:
    """``value`` with ``convert`` applied to every ConnectionID's callID, at any depth (the
    connection lists of Conferenced/Transferred, snapshot items...); unchanged objects are
    returned as they are, so a message without call IDs is not copied."""
    return _walk(value, convert)  # type: ignore[no-any-return]


def _walk(value: Any, convert: Callable[[str], str]) -> Any:
    if isinstance(value, ConnectionID):
        call_id = value.call_id
        if not call_id:
            return value
        mapped = convert(call_id)
        return value if mapped == call_id else ConnectionID(mapped, value.device_id)
    if isinstance(value, tuple):
        items = tuple(_walk(item, convert) for item in value)
        return value if all(a is b for a, b in zip(items, value, strict=True)) else items
    cls = type(value)
    names = _FIELDS.get(cls)
    if names is None:
        names = _FIELDS[cls] = _connection_fields(cls)
    if not names:
        return value
    changes = {}
    for name in names:
        old = getattr(value, name)
        if old is None:
            continue
        new = _walk(old, convert)
        if new is not old:
            changes[name] = new
    return replace(value, **changes) if changes else value


def _can_hold_connection(target: object) -> bool:
    if target is ConnectionID:
        return True
    if not (isinstance(target, type) and is_dataclass(target)):
        return False
    known = _FIELDS.get(target)
    return bool(known if known is not None else _connection_fields(target))


def _connection_fields(cls: type) -> tuple[str, ...]:
    """The init fields of dataclass ``cls`` whose declared type can hold a ConnectionID
    (directly, in a tuple, or in a dataclass that does); () for anything else. Read once
    per class from the annotations, so the walk per message touches only those fields."""
    if not is_dataclass(cls):
        return ()
    _FIELDS[cls] = ()  # a class that refers to itself ends here
    namespace = vars(sys.modules[cls.__module__])
    names = []
    for f in fields(cls):
        words = re.findall(r"[A-Za-z_]\w*", str(f.type)) if f.init else ()
        if any(_can_hold_connection(namespace.get(word)) for word in words):
            names.append(f.name)
    result = tuple(names)
    _FIELDS[cls] = result
    return result
