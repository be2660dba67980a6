"""Device registry: every line of every ready phone, and the aliases clients may use for it.

A phone reports its lines as device IDs of its own choosing (``sip:100@pbx.example``, ``100``,
``tel:+4989123``). Clients address the same line as the phone does, as ``sip:user@domain``, as
``tel:``/number, or by the extension alone. All resolve to one :class:`Device`. An extension
shared by lines of two phones (same number on two domains) is ambiguous and not resolvable by
the bare number: the client must use the full form.

A line has one owner. A phone that reports a line another phone owns does not get it while
the owner may keep it (the switching function says: while the owner's link is up), nor when
an operator assigned the line to another phone: the claim is kept as a
:class:`LineConflict` for the operator to see and decide (:meth:`DeviceRegistry.assign`).
Phones hold valid credentials, not the right to every line: "newest report wins" let any
phone take a colleague's line, its calls and its events.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class Device:
    """One line: ``device_id`` is exactly what the owning phone calls it."""

    device_id: str
    phone: str

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
        self._by_extension: dict[str, list[Device]] = {}
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
    ) -> tuple[list[Device], list[Device], list[LineConflict]]:
        """Replace a phone's lines; returns (added, removed, new conflicts).

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
        for device_id in new_ids:
            known = old.get(device_id)
            if known is not None:
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
            device = Device(device_id, phone)
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
        if not text:
            return None
        device = self._exact.get(_exact_key(text))
        if device is not None:
            return device
        ext = extension_of(text)
        if ext is None:
            return None
        candidates = self._by_extension.get(ext, [])
        if len(candidates) == 1:
            return candidates[0]
        return None

    def _remove_device(self, device: Device) -> None:
        devices = self._by_phone.get(device.phone, [])
        if device in devices:
            devices.remove(device)
            if not devices:
                self._by_phone.pop(device.phone, None)
        self._unindex(device)

    def _index(self, device: Device) -> None:
        self._exact[_exact_key(device.device_id)] = device
        ext = device.extension
        if ext is not None:
            self._by_extension.setdefault(ext, []).append(device)

    def _unindex(self, device: Device) -> None:
        key = _exact_key(device.device_id)
        if self._exact.get(key) == device:
            del self._exact[key]
        ext = device.extension
        if ext is not None:
            lst = self._by_extension.get(ext, [])
            if device in lst:
                lst.remove(device)
            if not lst:
                self._by_extension.pop(ext, None)
