"""Shared monitor points: one monitor in the phone per line, any number of client monitors.

Each client monitor has its own monitorCrossRefID (ours, unique across the server); the phone's
monitorCrossRefID for the shared point is mapped back to the device so an event from the phone
fans out to every client monitor on that line in O(clients on the line).
"""

from __future__ import annotations

import enum
import itertools
from collections.abc import Hashable
from dataclasses import dataclass, field

from uacsta.switch.devices import Device

ClientId = Hashable


class PointState(enum.Enum):
    #: No MonitorStart sent (phone not ready).
    DOWN = "down"
    #: MonitorStart sent to the phone, no answer yet.
    STARTING = "starting"
    ACTIVE = "active"


@dataclass(eq=False, slots=True)
class ClientMonitor:
    cross_ref_id: str
    client: ClientId
    device: Device
    #: What the client was last told of the line: True BackInService, False OutOfService,
    #: None nothing yet. OutOfService is sent once per outage, not on every failed relink.
    in_service: bool | None = None


@dataclass(eq=False, slots=True)
class MonitorPoint:
    """The phone-side monitor of one device, shared by its client monitors."""

    device: Device
    state: PointState = PointState.DOWN
    phone_cross_ref_id: str | None = None
    clients: dict[str, ClientMonitor] = field(default_factory=dict)
    #: Client MonitorStarts not answered yet (xref → invoke): the phone's answer to its own
    #: MonitorStart decides theirs, so a phone's error reaches the client that asked.
    waiting: dict[str, object] = field(default_factory=dict)


class MonitorTable:
    def __init__(self, prefix: str = "") -> None:
        self._ids = itertools.count(1)
        self._prefix = prefix
        self.points: dict[Device, MonitorPoint] = {}
        self.client_monitors: dict[str, ClientMonitor] = {}
        self._by_client: dict[ClientId, dict[str, ClientMonitor]] = {}
        self._by_phone_ref: dict[tuple[str, str], MonitorPoint] = {}
        self._points_by_phone: dict[str, dict[Device, MonitorPoint]] = {}

    def add_client_monitor(self, client: ClientId, device: Device) -> tuple[ClientMonitor, bool]:
        """Add a client monitor; True when the device had no monitor point yet."""
        xref = f"{self._prefix}{next(self._ids)}"
        monitor = ClientMonitor(xref, client, device)
        point = self.points.get(device)
        created = point is None
        if point is None:
            point = self.points[device] = MonitorPoint(device)
            self._points_by_phone.setdefault(device.phone, {})[device] = point
        point.clients[xref] = monitor
        self.client_monitors[xref] = monitor
        self._by_client.setdefault(client, {})[xref] = monitor
        return monitor, created

    def remove_client_monitor(self, xref: str) -> tuple[ClientMonitor, MonitorPoint | None] | None:
        """Remove one client monitor; returns the point too when it lost its last client."""
        monitor = self.client_monitors.pop(xref, None)
        if monitor is None:
            return None
        owned = self._by_client.get(monitor.client)
        if owned is not None:
            owned.pop(xref, None)
            if not owned:
                del self._by_client[monitor.client]
        point = self.points.get(monitor.device)
        if point is None:
            return monitor, None
        point.clients.pop(xref, None)
        point.waiting.pop(xref, None)
        if point.clients:
            return monitor, None
        del self.points[monitor.device]
        of_phone = self._points_by_phone.get(monitor.device.phone)
        if of_phone is not None:
            of_phone.pop(monitor.device, None)
            if not of_phone:
                del self._points_by_phone[monitor.device.phone]
        if point.phone_cross_ref_id is not None:
            self._by_phone_ref.pop((monitor.device.phone, point.phone_cross_ref_id), None)
        return monitor, point

    def monitors_of(self, client: ClientId) -> list[ClientMonitor]:
        return list(self._by_client.get(client, {}).values())

    def count_of(self, client: ClientId) -> int:
        """How many monitors ``client`` holds (the per-client limit counts these)."""
        owned = self._by_client.get(client)
        return len(owned) if owned is not None else 0

    def set_active(self, point: MonitorPoint, phone_cross_ref_id: str) -> None:
        self.clear_phone_ref(point)
        point.state = PointState.ACTIVE
        point.phone_cross_ref_id = phone_cross_ref_id
        self._by_phone_ref[(point.device.phone, phone_cross_ref_id)] = point

    def clear_phone_ref(self, point: MonitorPoint) -> None:
        if point.phone_cross_ref_id is not None:
            self._by_phone_ref.pop((point.device.phone, point.phone_cross_ref_id), None)
        point.phone_cross_ref_id = None
        point.state = PointState.DOWN

    def point_for_phone_ref(self, phone: str, phone_cross_ref_id: str) -> MonitorPoint | None:
        return self._by_phone_ref.get((phone, phone_cross_ref_id))

    def points_of_phone(self, phone: str) -> list[MonitorPoint]:
        return list(self._points_by_phone.get(phone, {}).values())
