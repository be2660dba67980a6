"""Device registry: every line of every ready phone, and the aliases clients may use for it.

A phone reports its lines as device IDs of its own choosing (``sip:100@pbx.example``, ``100``,
``tel:+4989123``). Clients address the same line as the phone does, as ``sip:user@domain``, as
``tel:``/number, or by the extension alone. All resolve to one :class:`Device`. An extension
shared by lines of two phones (same number on two domains) is ambiguous and not resolvable by
the bare number: the client must use the full form.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class Device:
    """One line: ``device_id`` is exactly what the owning phone calls it."""

    device_id: str
    phone: str

    @property
    def extension(self) -> str | None:
        return extension_of(self.device_id)


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

    def __len__(self) -> int:
        return len(self._exact)

    def devices(self) -> list[Device]:
        return [d for devices in self._by_phone.values() for d in devices]

    def by_phone(self, phone: str) -> list[Device]:
        return list(self._by_phone.get(phone, ()))

    def phones(self) -> list[str]:
        return list(self._by_phone)

    def set_phone_lines(
        self, phone: str, device_ids: Iterable[str]
    ) -> tuple[list[Device], list[Device]]:
        """Replace a phone's lines; returns (added, removed) devices."""
        old = {d.device_id: d for d in self._by_phone.get(phone, ())}
        new_ids = list(dict.fromkeys(d for d in device_ids if d))
        wanted = set(new_ids)
        removed = [d for key, d in old.items() if key not in wanted]
        added: list[Device] = []
        for device in removed:
            self._unindex(device)
        devices: list[Device] = []
        for device_id in new_ids:
            known = old.get(device_id)
            if known is not None:
                devices.append(known)
                continue
            device = Device(device_id, phone)
            other = self._exact.get(_exact_key(device_id))
            if other is not None and other.phone != phone:
                # Same line reported by two phones: the newest report wins.
                self._remove_device(other)
            self._index(device)
            added.append(device)
            devices.append(device)
        if devices:
            self._by_phone[phone] = devices
        else:
            self._by_phone.pop(phone, None)
        return added, removed

    def remove_phone(self, phone: str) -> list[Device]:
        removed = self._by_phone.pop(phone, [])
        for device in removed:
            self._unindex(device)
        return removed

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
