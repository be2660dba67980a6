"""Device registry: every line of every ready phone, and the names clients may use for it.

A phone reports its lines as device IDs of its own choosing (``sip:100@pbx.example``, ``100``,
``tel:+4989123``); a Yealink lists ``sip:user@server:port;tel=+4930101``, which the link
hands over as ``sip:user@server`` with the ``tel:+4930101`` alias. The line's device ID, in
every event, response and device list, is that one string: ECMA-269 has the switching
function assign a device's identifier, whatever form a client used to name it.

How a client's device string is resolved (:meth:`DeviceRegistry.resolve_all`), in order:

1. **SIP/SIPS URI** (``sip:101@PBX.example.com:5060;user=phone``, ``<sip:…>``, with a display
   name; ``101@pbx.example.com`` without a scheme, as BroadWorks writes it): scheme ``sips``
   as ``sip``, host case-insensitive, user part case-sensitive (RFC 3261 §19.1.4), URI
   parameters and headers ignored. A port counts only when both the client and the line give
   one (a line listed with ``:5060`` is still ``sip:101@pbx``).
2. **tel: URI, global or local number** (``tel:+49-30-101``) and **OpenScape Voice form**
   (``N<302118840101>;displayNumber=…;noa=nk``): the number with its visual separators
   (space ``-.()``) dropped, against the lines' ``tel:`` IDs and aliases, then against the
   user parts of the lines' SIP URIs.
3. **Bare extension or number** (``101``, ``+4930101``): the user parts of the lines' SIP
   URIs and the lines' numbers.
4. A SIP URI whose user@host no line has falls back to its user part as in 3 (clients and
   phones often name the PBX differently: its IP address, its DNS name).

A name that fits two or more lines (an extension ``101`` on two PBX domains) is **ambiguous**:
it resolves to none of them, and the client's request is refused with ``invalidDeviceID``
saying so (use the full URI), never silently sent to one of them.

A line has one owner. A phone that reports a line another phone owns does not get it while
the owner may keep it (the switching function says: while the owner's link is up), nor when
an operator assigned the line to another phone: the claim is kept as a
:class:`LineConflict` for the operator to see and decide (:meth:`DeviceRegistry.assign`).
Phones hold valid credentials, not the right to every line: "newest report wins" let any
phone take a colleague's line, its calls and its events.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field


@dataclass(frozen=True, slots=True)
class Device:
    """One line: ``device_id`` is what the owning phone calls it (as clients see it);
    ``aliases`` other names the phone lists for it (a Yealink account's ``;tel=`` URI)."""

    device_id: str
    phone: str
    aliases: tuple[str, ...] = field(default=(), compare=False)

    @property
    def extension(self) -> str | None:
        return extension_of(self.device_id)


@dataclass(frozen=True, slots=True)
class LineConflict:
    """``claimant`` reported ``device_id``, a line ``owner`` keeps."""

    device_id: str
    claimant: str
    owner: str


def extension_of(device_id: str) -> str | None:
    """User part / number of a device ID: ``sip:100@h`` → ``100``, ``tel:+49 89`` → ``+4989``."""
    text = device_id.strip()
    lower = text.lower()
    if lower.startswith(("sip:", "sips:")):
        rest = text.split(":", 1)[1]
        user, at, _ = rest.partition("@")
        if not at:
            return None
        return user.split(";")[0] or None
    if lower.startswith("tel:"):
        text = text[4:].split(";")[0]
    compact = "".join(ch for ch in text if ch not in " -.()")
    return compact or None


_SEPARATORS = str.maketrans("", "", " -.()")
_OPENSCAPE = re.compile(r"^[Nn]<([^>]*)>")


@dataclass(frozen=True, slots=True)
class _Name:
    """A device string taken apart for resolution (see the module docstring)."""

    #: ``user@host`` of a SIP URI (host lower-cased), else None.
    account: str | None = None
    port: int | None = None
    #: The user part of a SIP URI, or the number of a tel:/OpenScape/bare name.
    user: str | None = None
    #: True for tel: and OpenScape numbers: matched against the lines' numbers first.
    number: bool = False


def _parse(text: str) -> _Name:
    name = text.strip()
    if "<" in name and ">" in name and not _OPENSCAPE.match(name):
        name = name[name.index("<") + 1 : name.index(">")].strip()  # name-addr
    lower = name[:5].lower()
    if lower.startswith(("sip:", "sips:")):
        rest = name.split(":", 1)[1]
        user, at, hostport = rest.partition("@")
        if not at or not user:
            return _Name()
        hostport = re.split(r"[;?]", hostport, maxsplit=1)[0].lower()
        host, port = hostport, None
        if hostport.startswith("["):
            close = hostport.find("]")
            host, tail = hostport[: close + 1], hostport[close + 1 :]
            port = int(tail[1:]) if tail[1:].isdigit() else None
        elif ":" in hostport:
            host, _, digits = hostport.partition(":")
            port = int(digits) if digits.isdigit() else None
        user = user.split(";")[0]
        return _Name(account=f"{user}@{host}", port=port, user=user)
    if lower.startswith("tel:"):
        number = name[4:].split(";")[0].translate(_SEPARATORS)
        return _Name(user=number or None, number=True)
    openscape = _OPENSCAPE.match(name)
    if openscape:
        number = openscape.group(1).translate(_SEPARATORS)
        return _Name(user=number or None, number=True)
    user, at, host = name.partition("@")
    if at and user and host and ":" not in user:
        return _parse(f"sip:{name}")  # BroadWorks documents: user@host without a scheme
    bare = name.translate(_SEPARATORS)
    return _Name(user=bare or None)


def _names(device: Device) -> list[str]:
    """Every name of a line: its ID, its aliases, a ``;tel=`` parameter of its SIP URI."""
    tels = [
        value if value[:4].lower() == "tel:" else f"tel:{value}"
        for param in device.device_id.split(";")[1:]
        for key, _, value in [param.partition("=")]
        if key.strip().lower() == "tel" and value
    ]
    return list(dict.fromkeys((device.device_id, *device.aliases, *tels)))


def _exact_key(device_id: str) -> str:
    """Case-insensitive scheme/host, case-sensitive user part (RFC 3261 §19.1.4)."""
    text = device_id.strip()
    lower = text.lower()
    if lower.startswith(("sip:", "sips:")):
        _scheme, rest = text.split(":", 1)
        user, at, host = rest.partition("@")
        if at:
            host = host.split(";")[0].split(">")[0].lower()
            return f"sip:{user}@{host}"
        return f"sip:{rest.split(';')[0].lower()}"
    if lower.startswith("tel:"):
        return "tel:" + (extension_of(text) or "")
    return text


class DeviceRegistry:
    """Lines by phone, and an alias index for resolution in O(1)."""

    def __init__(self) -> None:
        self._by_phone: dict[str, list[Device]] = {}
        self._exact: dict[str, Device] = {}
        #: Resolution indexes (module docstring): user@host → (device, port), numbers, users.
        self._accounts: dict[str, list[tuple[Device, int | None]]] = {}
        self._numbers: dict[str, list[Device]] = {}
        self._users: dict[str, list[Device]] = {}
        #: Refused claims by claimant, keyed like ``_exact``: what the operator is shown.
        self._claims: dict[str, dict[str, LineConflict]] = {}
        #: Lines an operator gave to a phone (exact key → phone): no report moves them.
        self._assigned: dict[str, str] = {}

    def __len__(self) -> int:
        return len(self._exact)

    def devices(self) -> list[Device]:
        return [d for devices in self._by_phone.values() for d in devices]

    def by_phone(self, phone: str) -> list[Device]:
        return list(self._by_phone.get(phone, ()))

    def phones(self) -> list[str]:
        return list(self._by_phone)

    def set_phone_lines(
        self,
        phone: str,
        device_ids: Iterable[str],
        *,
        owner_keeps: Callable[[str], bool] = lambda owner: False,
        aliases: Mapping[str, Iterable[str]] | None = None,
    ) -> tuple[list[Device], list[Device], list[LineConflict]]:
        """Replace a phone's lines; returns (added, removed, new conflicts).

        ``aliases`` maps a device ID to other names the phone gives the line (``tel:…``).

        A line another phone owns moves only when ``owner_keeps(owner)`` is False and no
        operator assigned it elsewhere; the owner's device is then among ``removed``.
        Otherwise the claim is recorded as a conflict (returned when it is new)."""
        old = {d.device_id: d for d in self._by_phone.get(phone, ())}
        new_ids = list(dict.fromkeys(d for d in device_ids if d))
        wanted = set(new_ids)
        removed = [d for key, d in old.items() if key not in wanted]
        added: list[Device] = []
        for device in removed:
            self._unindex(device)
        devices: list[Device] = []
        before = self._claims.pop(phone, {})
        claims: dict[str, LineConflict] = {}
        conflicts: list[LineConflict] = []
        names = aliases or {}
        for device_id in new_ids:
            known = old.get(device_id)
            also = tuple(dict.fromkeys(a for a in names.get(device_id, ()) if a))
            if known is not None:
                if known.aliases != also:
                    self._unindex(known)
                    known = Device(device_id, phone, also)
                    self._index(known)
                devices.append(known)
                continue
            key = _exact_key(device_id)
            other = self._exact.get(key)
            assigned = self._assigned.get(key)
            if other is not None and other.phone != phone:
                if assigned == other.phone or (assigned != phone and owner_keeps(other.phone)):
                    conflict = LineConflict(device_id, phone, other.phone)
                    claims[key] = conflict
                    if before.get(key) != conflict:
                        conflicts.append(conflict)
                    continue
                self._remove_device(other)
                removed.append(other)
            elif assigned is not None and assigned != phone:
                # Assigned to a phone that has not reported it (yet): not this one's.
                conflict = LineConflict(device_id, phone, assigned)
                claims[key] = conflict
                if before.get(key) != conflict:
                    conflicts.append(conflict)
                continue
            device = Device(device_id, phone, also)
            self._index(device)
            added.append(device)
            devices.append(device)
        if claims:
            self._claims[phone] = claims
        if devices:
            self._by_phone[phone] = devices
        else:
            self._by_phone.pop(phone, None)
        return added, removed, conflicts

    def remove_phone(self, phone: str) -> list[Device]:
        removed = self._by_phone.pop(phone, [])
        for device in removed:
            self._unindex(device)
        self._claims.pop(phone, None)
        for key in [k for k, p in self._assigned.items() if p == phone]:
            del self._assigned[key]
        return removed

    def owner_lost(
        self, owner: str, claimant_ready: Callable[[str], bool]
    ) -> tuple[list[Device], list[Device]]:
        """``owner`` lost its link: each of its lines that a ready phone claimed moves to that
        phone (first claim first), unless an operator assigned it; (added, removed)."""
        added: list[Device] = []
        removed: list[Device] = []
        for claimant, claims in list(self._claims.items()):
            if not claimant_ready(claimant):
                continue
            for key, claim in list(claims.items()):
                current = self._exact.get(key)
                if claim.owner != owner or self._assigned.get(key) not in (None, claimant):
                    continue
                if current is None or current.phone != owner:
                    continue
                self._remove_device(current)
                removed.append(current)
                del claims[key]
                device = Device(claim.device_id, claimant)
                self._by_phone.setdefault(claimant, []).append(device)
                self._index(device)
                added.append(device)  # the old owner, when back, is the one refused
            if not claims:
                del self._claims[claimant]
        return added, removed

    def conflicts(self, phone: str | None = None) -> list[LineConflict]:
        """Refused claims (of one phone, or all), for the operator."""
        if phone is not None:
            return list(self._claims.get(phone, {}).values())
        return [c for claims in self._claims.values() for c in claims.values()]

    def assigned_to(self, device_id: str) -> str | None:
        """The phone an operator gave the line to, if any."""
        return self._assigned.get(_exact_key(device_id))

    def assign(self, device_id: str, phone: str) -> tuple[list[Device], list[Device]]:
        """An operator's decision: ``device_id`` belongs to ``phone`` from now on.

        When ``phone`` claimed the line, it gets it now (returned as added, the previous
        owner's device as removed); otherwise it gets it when it reports it. Later reports
        by other phones are refused whatever the state of their owner."""
        key = _exact_key(device_id)
        self._assigned[key] = phone
        claim = self._claims.get(phone, {}).pop(key, None)
        if not self._claims.get(phone, True):
            del self._claims[phone]
        current = self._exact.get(key)
        if claim is None or (current is not None and current.phone == phone):
            return [], []
        removed: list[Device] = []
        if current is not None:
            self._remove_device(current)
            removed.append(current)
            # The previous owner still reports the line: now it is the one refused.
            self._claims.setdefault(current.phone, {})[key] = LineConflict(
                current.device_id, current.phone, phone
            )
        device = Device(claim.device_id, phone)
        self._by_phone.setdefault(phone, []).append(device)
        self._index(device)
        return [device], removed

    def resolve(self, text: str | None) -> Device | None:
        """The device a client means by ``text``, or None when unknown or ambiguous."""
        found = self.resolve_all(text)
        return found[0] if len(found) == 1 else None

    def resolve_all(self, text: str | None) -> list[Device]:
        """Every line ``text`` may name, by the rules of the module docstring: one is the
        answer, none unknown, several ambiguous (refused, never one of them picked)."""
        if not text:
            return []
        name = _parse(text)
        if name.account is not None:
            hits = [
                device
                for device, port in self._accounts.get(name.account, ())
                if name.port is None or port is None or port == name.port
            ]
            if hits:
                return list(dict.fromkeys(hits))
        if name.user is None:
            return []
        if name.number:
            hits = self._numbers.get(name.user) or self._users.get(name.user, [])
        else:
            hits = [*self._users.get(name.user, ()), *self._numbers.get(name.user, ())]
        return list(dict.fromkeys(hits))

    def _remove_device(self, device: Device) -> None:
        devices = self._by_phone.get(device.phone, [])
        if device in devices:
            devices.remove(device)
            if not devices:
                self._by_phone.pop(device.phone, None)
        self._unindex(device)

    def _index(self, device: Device) -> None:
        self._exact[_exact_key(device.device_id)] = device
        for text in _names(device):
            name = _parse(text)
            if name.account is not None:
                self._accounts.setdefault(name.account, []).append((device, name.port))
            if name.user is not None:
                index = self._numbers if name.number else self._users
                index.setdefault(name.user, []).append(device)

    def _unindex(self, device: Device) -> None:
        key = _exact_key(device.device_id)
        if self._exact.get(key) == device:
            del self._exact[key]
        for text in _names(device):
            name = _parse(text)
            if name.account is not None:
                kept = [e for e in self._accounts.get(name.account, ()) if e[0] is not device]
                if kept:
                    self._accounts[name.account] = kept
                else:
                    self._accounts.pop(name.account, None)
            if name.user is not None:
                index = self._numbers if name.number else self._users
                lst = [d for d in index.get(name.user, ()) if d is not device]
                if lst:
                    index[name.user] = lst
                else:
                    index.pop(name.user, None)
