"""What an operator may do to a running server, in one place for every edge.

The CLI's control socket, the web admin pages and the JSON management API each used to list,
enable and delete phones and report status with their own checks and error shapes; they now
call :class:`Operations`, and each edge maps :class:`OperationError` to its own form (the
control socket's ``{"ok": false, "error": ...}``, the admin's flash or field error, the API's
error JSON with :attr:`OperationError.status`).

Operations reach the running parts through :class:`Components`, a Protocol the server
satisfies, so nothing here (nor in the edges) imports :mod:`uacsta.server`.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import asdict
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

from uacsta.config import ConfigError, Settings
from uacsta.phones.mac import normalize_mac
from uacsta.switch.devices import extension_of
from uacsta.switch.function import SWITCH

if TYPE_CHECKING:
    from uacsta.hub import SwitchHub
    from uacsta.net.guard import ConnectionGate
    from uacsta.phones.inventory import Inventory
    from uacsta.phones.service import PhoneService
    from uacsta.store.db import PhoneRecord, Store
    from uacsta.switch.devices import Device, LineConflict

log = logging.getLogger("uacsta.operations")


# ---------------------------------------------------------------------------- errors
class OperationError(Exception):
    """An operation refused, with what to fix; :attr:`status` is the HTTP status an edge
    that speaks HTTP answers with."""

    status = 400


class NotFound(OperationError):
    """The thing named does not exist (``no phone with MAC 001565aabbcc in the inventory``)."""

    status = 404


class Invalid(OperationError):
    """A value the operator gave is wrong: :attr:`field` names it (``mac``, ``log.level``)."""

    status = 422

    def __init__(self, field: str, message: str) -> None:
        super().__init__(message)
        self.field = field


class InvalidSetting(Invalid, ConfigError):
    """A settings value refused (the field is its dotted key); a :class:`ConfigError` too,
    like the same value refused in the settings file."""


class Forbidden(OperationError):
    """The principal may not use what it named (another user's extension)."""

    status = 403


class Conflict(OperationError):
    """The request contradicts the current state (a name that exists already)."""

    status = 409


# ---------------------------------------------------------------------------- components
class Principal(Protocol):
    """Who asks (a web session or API token; :class:`uacsta.web.auth.Principal`)."""

    @property
    def is_admin(self) -> bool: ...

    @property
    def extension(self) -> str | None: ...


class LogSource(Protocol):
    """The captured log records (:class:`uacsta.web.logbuffer.LogCapture`)."""

    def select(
        self, *, min_level: int, text: str, macs: Iterable[str], limit: int | None
    ) -> list[Any]: ...


class Components(Protocol):
    """The running parts operations need: what :class:`uacsta.server.Server` assembles."""

    settings: Settings
    started_at: float
    data_dir: Path
    listening: list[str]
    #: Where to open the web listener (``http://127.0.0.1:8080/``); None: not listening.
    web_url: str | None
    hub: SwitchHub
    store: Store | None
    inventory: Inventory | None
    phones: PhoneService | None

    def gates(self) -> dict[str, ConnectionGate]:
        """Each listener kind's connection gate (``web``, ``phones``, ``csta``, ``tr87``)."""
        ...

    async def reconfigure(self, old: Settings, new: Settings) -> list[str]:
        """Hand ``new`` settings to the components; returns what was restarted."""
        ...


#: Seconds a phone's trace keeps full messages after someone last looked at it.
TRACE_WATCH = 600.0

#: Store key of the settings changed in the web admin (they override the file).
ADMIN_CHANGES = "admin_changes"


# ---------------------------------------------------------------------------- records
def trace_entry(
    t: float, direction: str, kind: str, text: str, detail: str | None = None
) -> dict[str, Any]:
    return {
        "time": t,
        "clock": datetime.fromtimestamp(t).strftime("%H:%M:%S.%f")[:-3],
        "dir": direction,
        "kind": kind,
        "text": text,
        "detail": detail,
    }


def parse_mac(text: str) -> str:
    """The normalized MAC (12 uppercase hex digits), or :class:`Invalid`."""
    mac = normalize_mac(text)
    if mac is None:
        raise Invalid("mac", f"{text!r} is not a MAC address (12 hex digits)")
    return mac


class Operations:
    """Phones, status, devices a principal sees, settings and logs of one running server."""

    def __init__(
        self, parts: Components, *, log_source: Callable[[], LogSource | None] = lambda: None
    ) -> None:
        self.parts = parts
        self._log_source = log_source

    @property
    def settings(self) -> Settings:
        """The settings in force (they change when the admin saves some)."""
        return self.parts.settings

    # ------------------------------------------------------------------ phones
    def phones(self) -> list[PhoneRecord]:
        """The inventory, in its order."""
        inventory = self.parts.inventory
        return inventory.all() if inventory is not None else []

    def phone(self, mac: str) -> PhoneRecord:
        """One phone of the inventory by MAC (any spelling), else :class:`NotFound`."""
        normalized = parse_mac(mac)
        inventory = self.parts.inventory
        record = inventory.get(normalized) if inventory is not None else None
        if record is None:
            raise NotFound(f"no phone with MAC {normalized} in the inventory")
        return record

    def phone_counts(self) -> dict[str, int]:
        inventory = self.parts.inventory
        return inventory.counts() if inventory is not None else {}

    def conflicts(self, mac: str | None = None) -> list[LineConflict]:
        """Line conflicts (of one phone, as claimant or owner, when ``mac`` is given)."""
        found = self.parts.hub.switch.devices.conflicts()
        return [c for c in found if mac is None or mac in (c.claimant, c.owner)]

    async def set_enabled(self, mac: str, enabled: bool, *, by: str = "") -> PhoneRecord:
        record = self.phone(mac)
        assert self.parts.phones is not None
        if not await self.parts.phones.set_enabled(record.mac, enabled):
            raise NotFound(f"no phone with MAC {record.mac} in the inventory")
        if by:
            log.info("phone %s %s by %s", record.mac, "enabled" if enabled else "disabled", by)
        return record

    async def delete_phone(self, mac: str, *, by: str = "") -> PhoneRecord:
        record = self.phone(mac)
        assert self.parts.phones is not None
        if not await self.parts.phones.delete(record.mac):
            raise NotFound(f"no phone with MAC {record.mac} in the inventory")
        if by:
            log.info("phone %s deleted from the inventory by %s", record.mac, by)
        return record

    def assign_line(self, mac: str, device: str, *, by: str = "") -> PhoneRecord:
        """The operator's decision in a line conflict: ``device`` belongs to this phone."""
        record = self.phone(mac)
        if not device:
            raise Invalid("device", "name the line to assign")
        self.parts.hub.assign_line(device, record.mac)
        log.warning("line %s assigned to phone %s by %s", device, record.mac, by or "?")
        return record

    def phone_devices(self, mac: str) -> list[Device]:
        """The phone's live lines in the switching function."""
        return self.parts.hub.switch.devices.by_phone(self.phone(mac).mac)

    def trace(self, mac: str, limit: int | None = None) -> list[tuple[float, str, str, str]]:
        """The last SIP and CSTA messages exchanged with the phone, oldest first."""
        record = self.phone(mac)
        phones = self.parts.phones
        buffer = phones.traces.get(record.mac) if phones is not None else None
        entries = list(buffer.entries) if buffer is not None else []
        return entries[-limit:] if limit else entries

    def trace_details(self, mac: str) -> list[tuple[float, str, str, str, str | None]]:
        """:meth:`trace` with each message's full text where the trace keeps it: the newest
        ones since someone started watching this phone's trace (this call starts or renews
        that for :data:`TRACE_WATCH` seconds): the SIP message with its body, the CSTA XML."""
        record = self.phone(mac)
        phones = self.parts.phones
        buffer = phones.traces[record.mac] if phones is not None else None
        if buffer is None:
            return []
        buffer.watch(TRACE_WATCH)
        return buffer.full_entries()

    # ------------------------------------------------------------------ status
    def status(self) -> dict[str, Any]:
        """The one status the control socket, the admin and the API show."""
        parts = self.parts
        sf = parts.hub.switch
        phones = parts.phones
        server_monitors = sf.monitors.count_of(SWITCH)  # the switch's own (the journal's)
        cluster = getattr(parts, "cluster", None)
        status: dict[str, Any] = {
            "uptime": round(time.time() - parts.started_at, 1),
            "listening": parts.listening,
            "web_url": parts.web_url,
            "phones": self.phone_counts(),
            "devices": len(sf.devices),
            "clients": len(sf.clients),
            "monitors": len(sf.monitors.client_monitors) - server_monitors,
            "server_monitors": server_monitors,
            "phone_monitors": len(sf.monitors.points),
            "requests_relayed": parts.hub.requests_relayed,
            "events_relayed": parts.hub.events_relayed,
            "connections": {
                kind: {"open": gate.open, "refused": gate.refused, "timed_out": gate.timed_out}
                for kind, gate in parts.gates().items()
            },
            "sip_flood": {
                "dropped": phones.ua.transport.flood_dropped if phones else 0,
                "paused": phones.ua.transport.flood_pauses if phones else 0,
            },
        }
        if cluster is not None:
            status["cluster"] = cluster.status()
        return status

    # ------------------------------------------------------------------ devices
    def own_devices(self, principal: Principal) -> list[Device]:
        """The devices a principal may use: every one for an admin, else the lines that
        resolve to the user's extension."""
        registry = self.parts.hub.switch.devices
        if principal.is_admin:
            return registry.devices()
        if not principal.extension:
            return []
        ext = extension_of(principal.extension)
        exact = registry.resolve(principal.extension)
        return [d for d in registry.devices() if d == exact or (ext and d.extension == ext)]

    def allowed_devices(self, principal: Principal) -> list[str]:
        """``allowed_devices`` for the switching function (empty: every device)."""
        if principal.is_admin:
            return []
        # Never empty for a user: an empty list would mean "everything" to the switch.
        return [principal.extension or "", *(d.device_id for d in self.own_devices(principal))]

    def device(self, principal: Principal, text: str) -> Device:
        """The device a request names, or :class:`Forbidden`/:class:`NotFound` saying why."""
        registry = self.parts.hub.switch.devices
        device = registry.resolve(text)
        if not principal.is_admin and (device is None or device not in self.own_devices(principal)):
            own = principal.extension and extension_of(text) == extension_of(principal.extension)
            if not (device is None and own):
                raise Forbidden(
                    f"this account may only use extension {principal.extension or '(none)'}, "
                    f"not {text!r}"
                )
        if device is None:
            fits = sorted(d.device_id for d in registry.resolve_all(text))
            if fits:
                raise NotFound(
                    f"{text!r} is ambiguous: it names {', '.join(fits)}; use the full sip: URI"
                )
            raise NotFound(f"unknown device {text!r}: no phone has this line")
        return device

    # ------------------------------------------------------------------ settings
    async def update_settings(self, changes: dict[str, Any], *, by: str = "") -> list[str]:
        """Validate, persist and apply changed settings; returns what was restarted.

        Raises :class:`InvalidSetting` (field: the settings key) when a value is refused;
        nothing is stored then. Listeners restart only when their addresses (or the TLS certificate)
        changed; everything else applies in place, for new links and logins.
        """
        import asyncio

        from uacsta.config import apply_changes, merge

        parts = self.parts
        assert parts.store is not None
        stored = (await asyncio.to_thread(parts.store.get_settings)).get(ADMIN_CHANGES, {})
        merged = merge(stored, changes)
        try:
            new = apply_changes(parts.settings, changes)
        except ConfigError as exc:
            raise InvalidSetting(_field_of(str(exc)), str(exc)) from exc
        await asyncio.to_thread(parts.store.set_setting, ADMIN_CHANGES, merged)
        old = parts.settings
        parts.settings = new
        restarted = await parts.reconfigure(old, new)
        log.info("settings changed in the admin: %s", ", ".join(sorted(_keys(changes))))
        if by:
            log.info("settings changed by %s: %s", by, describe(changed_keys(old, new)))
        return restarted

    async def restore_settings(self) -> bool:
        """At start: the settings changed in the admin earlier override the file's (a set
        that no longer applies is logged and ignored). True when there were some."""
        import asyncio

        from uacsta.config import apply_changes

        parts = self.parts
        assert parts.store is not None
        stored = (await asyncio.to_thread(parts.store.get_settings)).get(ADMIN_CHANGES)
        if not stored:
            return False
        try:
            parts.settings = apply_changes(parts.settings, stored)
        except ConfigError as exc:
            log.error("ignoring settings changed in the admin: %s", exc)
        return True

    # ------------------------------------------------------------------ logs
    def logs(
        self,
        *,
        level: str = "DEBUG",
        text: str = "",
        only_filter: bool = False,
        limit: int | None = 200,
    ) -> list[Any]:
        """Captured log records at ``level`` or above containing ``text`` (and naming a MAC
        of ``log.mac_filter`` when ``only_filter``), the newest ``limit``."""
        capture = self._log_source()
        if capture is None:
            return []
        return capture.select(
            min_level=getattr(logging, level.upper(), logging.DEBUG),
            text=text,
            macs=self.parts.settings.log.mac_filter if only_filter else (),
            limit=limit,
        )


# ---------------------------------------------------------------------------- helpers
def _field_of(message: str) -> str:
    """The settings key a :class:`ConfigError` message starts with (``phones.listen: ...``)."""
    head, sep, _ = message.partition(":")
    return head.strip() if sep and " " not in head.strip() else ""


def _keys(changes: dict[str, Any], prefix: str = "") -> list[str]:
    out: list[str] = []
    for key, value in changes.items():
        name = f"{prefix}{key}"
        out += _keys(value, name + ".") if isinstance(value, dict) else [name]
    return out


def changed_keys(before: Any, after: Any, prefix: str = "") -> list[str]:
    """The dotted keys whose values differ between two settings objects."""
    import dataclasses

    if dataclasses.is_dataclass(before) and not isinstance(before, type):
        out: list[str] = []
        for f in dataclasses.fields(before):
            key = f"{prefix}.{f.name}" if prefix else f.name
            out += changed_keys(getattr(before, f.name), getattr(after, f.name), key)
        return out
    return [prefix] if before != after else []


def describe(keys: Sequence[str]) -> str:
    return ", ".join(keys) if keys else "nothing"


def phone_dict(record: PhoneRecord) -> dict[str, Any]:
    """A phone record as the control socket sends it."""
    return asdict(record)


__all__ = [
    "ADMIN_CHANGES",
    "Components",
    "Conflict",
    "Forbidden",
    "Invalid",
    "InvalidSetting",
    "NotFound",
    "OperationError",
    "Operations",
    "changed_keys",
    "describe",
    "parse_mac",
    "phone_dict",
    "trace_entry",
]
