"""The switching function: devices, shared monitors, request routing and event fan-out.

Pure logic (sans-IO). Gateways feed it client requests, phone links feed it phone lifecycle,
responses and events; it answers with actions: :class:`ToPhone` (send a CSTA request to a phone
and report the answer back with ``phone_response``/``phone_failed`` and the same token) and
:class:`ToClient` (a response to one invoke, or an unsolicited event/request when ``invoke`` is
None). Timeouts live in the phone link, which reports them as ``phone_failed(token, timeout)``.

Behaviour follows the estos uaCSTA server (manual §4.1.1): several clients on one line share
one monitor point in the phone; OutOfService when the phone is lost (once per outage, however
often its relinks fail), BackInService when it is back. A MonitorStart on a line whose point
is active, or whose phone is not connected, is answered at once (then BackInService or
OutOfService); otherwise its answer waits for the phone's answer to the point's MonitorStart,
so that a phone refusing the monitor (a CSTA error, e.g. ``invalidDeviceID``) refuses it to
the client that asked, under its invoke ID, and ends the monitors of clients already sharing
the point (MonitorEnded). A timeout or ``outOfService`` is the phone's trouble, not the
line's: the monitors stay, with OutOfService, and are restored when the phone is back.

Call IDs cross it in one space (:mod:`uacsta.switch.callids`): a phone's events and answers
go to clients with the phone's prefix on every call ID, requests go to the phone without it.
A line belongs to one phone (:mod:`uacsta.switch.devices`): another phone reporting it is
refused while the owner is ready, and its events reach no client monitor of that line.
"""

from __future__ import annotations

import itertools
import logging
from collections.abc import Callable, Hashable, Iterable, Mapping
from dataclasses import dataclass, field, replace
from typing import Final, Literal

from uacsta.csta import messages as m
from uacsta.csta.services import EVENTS, RELAYED_SERVICES, SERVICES, SUBJECT_FIELDS, SWITCH_SERVICES
from uacsta.csta.types import ConnectionID, DeviceEntry, DeviceIdentifier
from uacsta.switch.callids import CallIdSpace
from uacsta.switch.callrecord import CallNotice, CallRecord, NoticeType
from uacsta.switch.calls import CallTracker, TrackerOutput
from uacsta.switch.devices import Device, DeviceRegistry, LineConflict
from uacsta.switch.monitors import ClientMonitor, MonitorPoint, MonitorTable, PointState
from uacsta.switch.router import rewrite_subject, service_name, subject_of

ClientId = Hashable

_NULL_LOGGER = logging.getLogger("uacsta.switch")
_NULL_LOGGER.addHandler(logging.NullHandler())

#: GetCSTAFeaturesResponse's spelling of each service name (``MakeCall`` -> ``makeCall``).
_FEATURE_NAMES = {s.name: s.feature_name for s in SERVICES.values()}
#: Services answered by the switching function itself: offered whatever the phones offer.
_SWITCH_FEATURES = frozenset(_FEATURE_NAMES[name] for name in SWITCH_SERVICES)
_RELAYED_EVENT_FEATURES = frozenset(e.feature_name for e in EVENTS.values() if e.relayed)


@dataclass(frozen=True, kw_only=True, slots=True)
class SwitchAction:
    """Base of what the switching function asks its adapters to do."""


@dataclass(frozen=True, kw_only=True, slots=True)
class ToPhone(SwitchAction):
    phone: str
    token: int
    request: m.CstaRequest


@dataclass(frozen=True, kw_only=True, slots=True)
class ToClient(SwitchAction):
    client: ClientId
    message: m.CstaMessage
    #: The client's invoke this answers; None for events and requests from the switch.
    invoke: object | None = None
    #: Human-readable reason for an error response (logs, JSON API).
    detail: str | None = None


@dataclass(frozen=True, kw_only=True, slots=True)
class FanOut(SwitchAction):
    """A phone's event for every client monitoring its line: ``event`` as the phone sent it,
    ``targets`` each client with its own monitorCrossRefID.

    One action for the whole fan-out rather than one per client: with a hundred monitoring
    clients, building a message copy and an action per client was a large part of each
    event's cost. An adapter hands a client the event and its cross-ref when the client can
    take them so (and encode the event once for all), else :meth:`to_client`."""

    event: m.CstaEvent
    targets: tuple[tuple[ClientId, str], ...]

    def to_client(self, client: ClientId, xref: str) -> ToClient:
        return event_to_client(client, self.event, xref)

    def to_clients(self) -> list[ToClient]:
        return [self.to_client(client, xref) for client, xref in self.targets]


@dataclass(frozen=True, kw_only=True, slots=True)
class Journal(SwitchAction):
    """A call ended on a line: its journal row."""

    record: CallRecord


@dataclass(frozen=True, kw_only=True, slots=True)
class Notify(SwitchAction):
    """A normalized notice (``call.*``, ``phone.*``...) for the server's listeners (webhooks)
    and for ``targets``: the clients monitoring the line it is about."""

    notice: CallNotice
    targets: tuple[ClientId, ...] = ()


class _Switch:
    """The switching function itself as a client: its own monitor on every line (when it
    tracks calls) so calls on lines no client monitors reach the journal. Shared with
    clients' monitors like any other (one monitor point in the phone)."""

    def __repr__(self) -> str:
        return "<switch>"


#: The client ID of the switching function's own monitors; nothing is ever delivered to it.
SWITCH: Final = _Switch()


def event_to_client(client: ClientId, event: m.CstaEvent, xref: str) -> ToClient:
    """A fanned-out event as one client's own action: a copy with its monitorCrossRefID."""
    return ToClient(client=client, message=replace(event, monitor_cross_ref_id=xref))


@dataclass(slots=True)
class PhoneState:
    phone: str
    ready: bool = False
    #: Services the phone implements (None: unknown, try everything).
    services: frozenset[str] | None = None
    #: AlternateCall done as HoldCall + RetrieveCall (phones without native AlternateCall).
    emulate_alternate_call: bool = True
    #: Services the phone's vendor profile offers, for GetCSTAFeatures (None: every one).
    #: Unlike ``services`` nothing is refused by it: the link refuses, with its reason.
    offered: frozenset[str] | None = None
    #: Its ConnectionCleared names who hung up (False: it always names itself).
    names_releasing_device: bool = True
    #: Linked at another node of a cluster, relayed through it: the switch keeps no monitor
    #: of its own on its lines (the owner's switch journals its calls).
    mirrored: bool = False


@dataclass(slots=True)
class ClientState:
    client: ClientId
    allowed: frozenset[str] = frozenset()
    system_registrations: set[str] = field(default_factory=set)


PendingKind = Literal[
    "relay", "monitor_start", "monitor_stop", "alternate_hold", "alternate_retrieve"
]


@dataclass(slots=True)
class _Pending:
    kind: PendingKind
    phone: str
    client: ClientId | None = None
    invoke: object | None = None
    request: m.CstaRequest | None = None
    point: MonitorPoint | None = None


class SwitchingFunction:
    def __init__(
        self,
        *,
        segment_size: int = 100,
        max_monitors_per_client: int = 20000,
        logger: logging.Logger | logging.LoggerAdapter[logging.Logger] | None = None,
        calls: CallTracker | None = None,
        own_monitors: bool = False,
    ) -> None:
        self.devices = DeviceRegistry()
        #: The call tracker fed with every event of a monitored line (None: no call state).
        self.calls = calls
        #: Keep the switch's own monitor on every line of a ready phone (needs ``calls``).
        self.own_monitors = own_monitors and calls is not None
        self.monitors = MonitorTable()
        self.call_ids = CallIdSpace()
        #: Monitors one client may hold (every gateway's clients count alike).
        self.max_monitors_per_client = max_monitors_per_client
        #: Called for each new line conflict; the adapter rate-limits what it logs.
        self.on_conflict: Callable[[LineConflict], None] = self._log_conflict
        self.phones: dict[str, PhoneState] = {}
        self.clients: dict[ClientId, ClientState] = {}
        self.segment_size = segment_size
        self.log = logger or _NULL_LOGGER
        self._tokens = itertools.count(1)
        self._pending: dict[int, _Pending] = {}
        self._register_ids = itertools.count(1)
        self._service_xrefs = itertools.count(1)

    # ------------------------------------------------------------------ introspection
    @property
    def pending_count(self) -> int:
        return len(self._pending)

    def ready_devices(self) -> list[Device]:
        return [
            d for d in self.devices.devices() if self.phones.get(d.phone, PhoneState(d.phone)).ready
        ]

    # ------------------------------------------------------------------ phones
    def phone_ready(
        self,
        phone: str,
        device_ids: Iterable[str],
        *,
        services: frozenset[str] | None = None,
        emulate_alternate_call: bool = True,
        offered: frozenset[str] | None = None,
        aliases: Mapping[str, Iterable[str]] | None = None,
        names_releasing_device: bool = True,
        now: float = 0.0,
        mirrored: bool = False,
    ) -> list[SwitchAction]:
        """The phone's CSTA link is up and its lines are known: restore its monitors.

        ``aliases``: other names the phone gives a line (a Yealink account's ``tel:``);
        ``names_releasing_device``: its ConnectionCleared says who hung up (the call
        tracker's rule for missed and declined calls); ``now``: epoch seconds, the call
        tracker's clock; ``mirrored``: the phone is linked at another node of a cluster."""
        state = self.phones.setdefault(phone, PhoneState(phone))
        state.ready = True
        state.services = services
        state.emulate_alternate_call = emulate_alternate_call
        state.offered = offered
        state.names_releasing_device = names_releasing_device
        state.mirrored = mirrored
        actions = self._set_lines(phone, device_ids, aliases)
        self._own_monitors(phone)
        for point in self.monitors.points_of_phone(phone):
            if point.state is PointState.DOWN:
                actions.extend(self._start_point(point))
        actions.extend(self._devices_changed())
        if self.calls is not None:
            lines = [d.device_id for d in self.devices.by_phone(phone)]
            notice = CallNotice(
                type=NoticeType.PHONE_ONLINE, at=now, phone=phone, data={"lines": lines}
            )
            actions.append(Notify(notice=notice))
        return _deliverable(actions)

    def phone_lines_changed(
        self,
        phone: str,
        device_ids: Iterable[str],
        *,
        aliases: Mapping[str, Iterable[str]] | None = None,
    ) -> list[SwitchAction]:
        actions = self._set_lines(phone, device_ids, aliases)
        state = self.phones.get(phone)
        if state is not None and state.ready:
            self._own_monitors(phone)
            for point in self.monitors.points_of_phone(phone):
                if point.state is PointState.DOWN:
                    actions.extend(self._start_point(point))
        actions.extend(self._devices_changed())
        return _deliverable(actions)

    def phone_lost(self, phone: str, *, now: float = 0.0, reason: str = "") -> list[SwitchAction]:
        """The link is gone: its calls end (ConnectionCleared to the clients that were told
        of them, journal rows "lost with the phone"), OutOfService to every client monitor,
        pending requests fail."""
        state = self.phones.get(phone)
        if state is None or not state.ready:
            return []
        state.ready = False
        actions = self._fail_pending_of(phone)
        if self.calls is not None:
            actions.extend(self._tracked(self.calls.phone_lost(phone, now)))
            notice = CallNotice(
                type=NoticeType.PHONE_OFFLINE,
                at=now,
                phone=phone,
                data={"lines": [d.device_id for d in self.devices.by_phone(phone)],
                      "reason": reason},
            )  # fmt: skip
            actions.append(Notify(notice=notice))
        for point in self.monitors.points_of_phone(phone):
            self.monitors.clear_phone_ref(point)
            actions.extend(self._answer_waiting(point))
            for cm in point.clients.values():
                if cm.in_service is not False:  # once per outage, not per failed relink
                    actions.append(self._out_of_service(cm))
        # Its lines that another, ready phone reported move there now (a desk phone swapped).
        added, moved = self.devices.owner_lost(phone, self._owner_keeps)
        for device in added:
            self.log.warning(
                "line %s moves to phone %s: its owner %s was lost",
                device.device_id,
                device.phone,
                phone,
            )
        actions.extend(self._end_monitors(moved))
        actions.extend(self._devices_changed())
        return _deliverable(actions)

    def stop_tracking(self) -> None:
        """The server is stopping: the phones keep their calls, so none is ended here (no
        "lost with the phone" rows, no ``call.ended``, no ``phone.offline``)."""
        self.calls = None
        self.own_monitors = False

    def phone_removed(self, phone: str, *, now: float = 0.0) -> list[SwitchAction]:
        """Disabled or deleted: its lines leave the switching function."""
        actions = self.phone_lost(phone, now=now, reason="removed")
        actions.extend(self._set_lines(phone, ()))
        self.devices.remove_phone(phone)
        self.phones.pop(phone, None)
        self.call_ids.forget(phone)
        actions.extend(self._devices_changed())
        return actions

    def assign_line(self, device_id: str, phone: str) -> list[SwitchAction]:
        """An operator gives ``device_id`` to ``phone``: it moves now when ``phone`` claimed it
        (the previous owner's monitors end, the new owner's start), else on its next report."""
        added, removed = self.devices.assign(device_id, phone)
        if not added and not removed:
            return []
        self.log.warning("line %s assigned to phone %s by an operator", device_id, phone)
        actions = self._end_monitors(removed)
        actions.extend(self._devices_changed())
        return actions

    def _owner_keeps(self, owner: str) -> bool:
        state = self.phones.get(owner)
        return state is not None and state.ready

    def _log_conflict(self, conflict: LineConflict) -> None:
        self.log.warning(
            "phone %s reports line %s, which phone %s owns: refused (an operator may assign it)",
            conflict.claimant,
            conflict.device_id,
            conflict.owner,
        )

    def _set_lines(
        self,
        phone: str,
        device_ids: Iterable[str],
        aliases: Mapping[str, Iterable[str]] | None = None,
    ) -> list[SwitchAction]:
        _added, removed, conflicts = self.devices.set_phone_lines(
            phone, device_ids, owner_keeps=self._owner_keeps, aliases=aliases
        )
        for conflict in conflicts:
            self.on_conflict(conflict)
        return self._end_monitors(removed)

    def _end_monitors(self, removed: Iterable[Device]) -> list[SwitchAction]:
        actions: list[SwitchAction] = []
        for device in removed:
            point = self.monitors.points.get(device)
            if point is None:
                continue
            for cm in list(point.clients.values()):
                if cm.cross_ref_id in point.waiting:  # its MonitorStart is not answered yet
                    invoke = point.waiting[cm.cross_ref_id]
                    detail = f"{device.device_id} left phone {device.phone} before it answered"
                    error = m.CSTAErrorCode.operation("invalidDeviceID")
                    actions.append(self._error(cm.client, invoke, error, detail))
                else:
                    ended = m.MonitorEndedEvent(cause="resourcesNotAvailable")
                    actions.append(self._event(cm, ended))
                # The last one also stops the phone's monitor when that phone is still up
                # (a line an operator moved away from a ready phone).
                actions.extend(self._release(cm.cross_ref_id))
        return _deliverable(actions)

    def phone_event(self, phone: str, event: m.CstaEvent, now: float = 0.0) -> list[SwitchAction]:
        """Fan an event out to every client monitor of the line, each with its own xref, and
        feed it to the call tracker (``now``: epoch seconds)."""
        xref = event.monitor_cross_ref_id
        point = self.monitors.point_for_phone_ref(phone, xref) if xref is not None else None
        if point is None:
            self.log.debug(
                "event %s from %s for unknown monitor %r", service_name(event), phone, xref
            )
            return []
        if isinstance(event, m.MonitorEndedEvent):
            self.monitors.clear_phone_ref(point)
            state = self.phones.get(phone)
            if state is not None and state.ready:
                return self._start_point(point)
            return []  # restarted when the phone is ready; its clients keep their monitors
        if not point.clients:
            return []
        event = self.call_ids.message_to_client(phone, event)
        targets = tuple(
            (cm.client, cm.cross_ref_id) for cm in point.clients.values() if cm.client is not SWITCH
        )
        actions: list[SwitchAction] = [FanOut(event=event, targets=targets)] if targets else []
        if self.calls is not None:
            tracked = self.calls.event(phone, point.device.device_id, event, now)
            if tracked.records or tracked.notices or tracked.cleared:
                actions.extend(self._tracked(tracked))
        return actions

    def _tracked(self, out: TrackerOutput) -> list[SwitchAction]:
        """What the call tracker reported, as actions: ConnectionCleared it made up (a lost
        phone's calls) to the clients monitoring the line, notices, journal rows."""
        actions: list[SwitchAction] = []
        for line, cleared in out.cleared:
            targets = tuple((cm.client, cm.cross_ref_id) for cm in self._monitors_of_line(line))
            if targets:
                actions.append(FanOut(event=cleared, targets=targets))
        for notice in out.notices:
            about = notice.line
            clients = (
                tuple(dict.fromkeys(cm.client for cm in self._monitors_of_line(about)))
                if about is not None
                else ()
            )
            actions.append(Notify(notice=notice, targets=clients))
        actions.extend(Journal(record=record) for record in out.records)
        return actions

    def _monitors_of_line(self, line: str) -> list[ClientMonitor]:
        """The clients' monitors (not the switch's own) on ``line``."""
        device = self.devices.resolve(line)
        point = self.monitors.points.get(device) if device is not None else None
        if point is None:
            return []
        return [cm for cm in point.clients.values() if cm.client is not SWITCH]

    def _own_monitors(self, phone: str) -> None:
        """The switch's own monitor on each line of ``phone`` (when it keeps them), and the
        tracker told which lines are ours (a call between two of them is internal)."""
        if self.calls is None:
            return
        state = self.phones.get(phone)
        trusted = state.names_releasing_device if state is not None else True
        mirrored = state is not None and state.mirrored
        for device in self.devices.by_phone(phone):
            self.calls.line_added(phone, device.device_id, names_releasing_device=trusted)
            point = self.monitors.points.get(device)
            if mirrored and point is not None:
                # Linked elsewhere now (it was ours): the owner's switch keeps its monitor.
                for cm in [cm for cm in point.clients.values() if cm.client is SWITCH]:
                    self.monitors.remove_client_monitor(cm.cross_ref_id)
                continue
            if not self.own_monitors or mirrored:
                continue
            if point is None or not any(cm.client is SWITCH for cm in point.clients.values()):
                self.monitors.add_client_monitor(SWITCH, device)

    def phone_response(self, token: int, response: m.CstaMessage) -> list[SwitchAction]:
        pending = self._pending.pop(token, None)
        if pending is None:
            return []
        if isinstance(response, m.CSTAErrorCode):
            value = f"{response.category}/{response.value}" if response.value else "an error"
            return self._failed(pending, response, f"the phone answered {value}")
        match pending.kind:
            case "relay":
                return self._answer(pending, response)
            case "monitor_start":
                return self._monitor_started(pending, response)
            case "monitor_stop":
                return []
            case "alternate_hold":
                assert isinstance(pending.request, m.AlternateCall)
                retrieve = m.RetrieveCall(call_to_be_retrieved=pending.request.held_call)
                return [self._to_phone(replace(pending, kind="alternate_retrieve"), retrieve)]
            case "alternate_retrieve":
                return self._answer(pending, m.AlternateCallResponse())
        return []  # pragma: no cover - exhaustive match

    def phone_refused(
        self, token: int, error: m.CSTAErrorCode, detail: str = ""
    ) -> list[SwitchAction]:
        """The phone's link refused to send the request (a service its vendor lacks): a
        snapshot of a line the switch watches (an active monitor point: it has seen every
        event since) is answered from the calls it tracks, anything else fails."""
        pending = self._pending.get(token)
        if (
            self.calls is not None
            and pending is not None
            and pending.kind == "relay"
            and pending.client is not None
            and isinstance(pending.request, m.SnapshotDevice | m.SnapshotCall)
            and self._watched(pending.request)
        ):
            del self._pending[token]
            request = self.call_ids.message_to_client(pending.phone, pending.request)
            answer: m.CstaMessage | None = None
            if isinstance(request, m.SnapshotDevice) and request.snapshot_object:
                answer = self.calls.snapshot_device(request.snapshot_object)
            elif isinstance(request, m.SnapshotCall) and request.snapshot_object is not None:
                call_id = request.snapshot_object.call_id
                answer = self.calls.snapshot_call(call_id) if call_id else None
            if answer is None:
                error = m.CSTAErrorCode.operation("invalidCallID")
                return [self._error(pending.client, pending.invoke, error, "no such call")]
            return [self._reply(pending.client, pending.invoke, answer)]
        return self.phone_failed(token, error, detail)

    def _watched(self, request: m.SnapshotDevice | m.SnapshotCall) -> bool:
        """Whether the snapshot's line has an active monitor point (its calls are known)."""
        if isinstance(request, m.SnapshotDevice):
            line = request.snapshot_object
        else:
            line = request.snapshot_object.device_id if request.snapshot_object else None
        device = self.devices.resolve(line)
        point = self.monitors.points.get(device) if device is not None else None
        return point is not None and point.state is PointState.ACTIVE

    def phone_failed(
        self, token: int, error: m.CSTAErrorCode, detail: str = ""
    ) -> list[SwitchAction]:
        """No usable answer (timeout, transport failure): the requester gets ``error``."""
        pending = self._pending.pop(token, None)
        if pending is None:
            return []
        return self._failed(pending, error, detail or "the phone did not answer")

    # ------------------------------------------------------------------ clients
    def client_attach(self, client: ClientId, *, allowed_devices: Iterable[str] = ()) -> None:
        self.clients[client] = ClientState(client, frozenset(allowed_devices))

    def client_detach(self, client: ClientId) -> list[SwitchAction]:
        """The client left: its monitors are released, phone monitors stopped when unused."""
        self.clients.pop(client, None)
        actions: list[SwitchAction] = []
        for cm in self.monitors.monitors_of(client):
            actions.extend(self._release(cm.cross_ref_id))
        for pending in self._pending.values():
            if pending.client == client:
                pending.client = None
        return actions

    def client_request(
        self, client: ClientId, invoke: object, request: m.CstaMessage
    ) -> list[SwitchAction]:
        if client not in self.clients:
            self.client_attach(client)
        match request:
            case m.MonitorStart():
                return self._monitor_start(client, invoke, request)
            case m.MonitorStop():
                return self._monitor_stop(client, invoke, request)
            case m.GetSwitchingFunctionDevices():
                return self._get_devices(client, invoke, request)
            case m.SystemRegister():
                reg_id = f"sr{next(self._register_ids)}"
                self.clients[client].system_registrations.add(reg_id)
                return [
                    self._reply(
                        client, invoke, m.SystemRegisterResponse(sys_stat_register_id=reg_id)
                    )
                ]
            case m.SystemRegisterCancel():
                regs = self.clients[client].system_registrations
                if request.sys_stat_register_id not in regs:
                    return [
                        self._error(
                            client,
                            invoke,
                            m.CSTAErrorCode.operation("invalidCrossRefId"),
                            f"no SystemRegister {request.sys_stat_register_id!r}",
                        )
                    ]
                regs.discard(request.sys_stat_register_id or "")
                return [self._reply(client, invoke, m.SystemRegisterCancelResponse())]
            case m.RequestSystemStatus():
                return [
                    self._reply(
                        client, invoke, m.RequestSystemStatusResponse(system_status="normal")
                    )
                ]
            case m.GetCSTAFeatures():
                return [self._reply(client, invoke, self.features(client))]
            case m.CstaRequest() if type(request) in SUBJECT_FIELDS:
                return self._relay(client, invoke, request)
            case m.CstaResponse() | m.CstaEvent():
                return []  # answers to what we sent (SwFunctionDevicesChanged...): nothing to do
            case _:
                return [
                    self._error(
                        client,
                        invoke,
                        m.CSTAErrorCode.operation("invalidFeature"),
                        f"{service_name(request)} is not a service uacsta offers",
                    )
                ]

    def features(self, client: ClientId | None = None) -> m.GetCSTAFeaturesResponse:
        """What uacsta offers; for a client bound to some devices (a TR/87 session's line, a
        CSTA account's devices), what the phones of those devices offer."""
        relayed = list(RELAYED_SERVICES)
        state = self.clients.get(client) if client is not None else None
        if state is not None and state.allowed:
            offered: set[str] = set()
            for device in self.ready_devices():
                if self._allowed(client, device):
                    phone = self.phones.get(device.phone)
                    offers = phone.offered if phone is not None else None
                    offered.update(relayed if offers is None else offers)
            relayed = [s for s in relayed if s in offered]
        if self.calls is not None:  # answered from tracked calls where a phone lacks them
            relayed = list(dict.fromkeys([*relayed, "SnapshotDevice", "SnapshotCall"]))
        return m.GetCSTAFeaturesResponse(
            supported_services=frozenset(_FEATURE_NAMES[s] for s in relayed) | _SWITCH_FEATURES,
            supported_events=_RELAYED_EVENT_FEATURES,
        )

    # ------------------------------------------------------------------ internals
    def _allowed(self, client: ClientId, device: Device) -> bool:
        state = self.clients.get(client)
        if state is None or not state.allowed:
            return True
        return any(self.devices.resolve(a) == device for a in state.allowed)

    def _resolve_for(
        self, client: ClientId, invoke: object, text: str | None
    ) -> tuple[Device | None, list[SwitchAction]]:
        found = self.devices.resolve_all(text)
        if len(found) != 1:
            if len(found) > 1:
                lines = ", ".join(sorted(d.device_id for d in found))
                detail = f"{text!r} is ambiguous: it names {lines}; use the full SIP URI"
            else:
                detail = f"unknown device {text!r}" if text else "the request names no device"
            return None, [
                self._error(client, invoke, m.CSTAErrorCode.operation("invalidDeviceID"), detail)
            ]
        device = found[0]
        if not self._allowed(client, device):
            return None, [
                self._error(
                    client,
                    invoke,
                    m.CSTAErrorCode.operation("privilegeViolationOnSpecifiedDevice"),
                    f"this account may not use {device.device_id}",
                )
            ]
        return device, []

    def _relay(
        self, client: ClientId, invoke: object, request: m.CstaRequest
    ) -> list[SwitchAction]:
        device, errors = self._resolve_for(client, invoke, subject_of(request))
        if device is None:
            return errors
        phone = self.phones.get(device.phone)
        if phone is None or not phone.ready:
            return [
                self._error(
                    client,
                    invoke,
                    m.CSTAErrorCode.system_resource_availability("outOfService"),
                    f"the phone of {device.device_id} is not connected",
                )
            ]
        service = service_name(request)
        emulated = isinstance(request, m.AlternateCall) and phone.emulate_alternate_call
        if not emulated and phone.services is not None and service not in phone.services:
            return [
                self._error(
                    client,
                    invoke,
                    m.CSTAErrorCode.operation("invalidFeature"),
                    f"the phone of {device.device_id} does not support {service}",
                )
            ]
        for name, kind in SUBJECT_FIELDS[type(request)]:
            value = getattr(request, name)
            if kind != "connection" or not isinstance(value, ConnectionID) or not value.call_id:
                continue
            owner, _local = self.call_ids.to_phone(value.call_id)
            if owner is not None and owner != device.phone:
                return [
                    self._error(
                        client,
                        invoke,
                        m.CSTAErrorCode.operation(_CALL_ID_ERRORS.get(name, "invalidCallID")),
                        f"call {value.call_id!r} is not a call at {device.device_id}",
                    )
                ]
        rewritten = rewrite_subject(self.call_ids.message_to_phone(request), device.device_id)
        pending = _Pending("relay", device.phone, client, invoke, rewritten)
        if isinstance(rewritten, m.AlternateCall) and emulated:
            hold = m.HoldCall(call_to_be_held=rewritten.active_call)
            return [self._to_phone(replace(pending, kind="alternate_hold"), hold)]
        return [self._to_phone(pending, rewritten)]

    def _monitor_start(
        self, client: ClientId, invoke: object, request: m.MonitorStart
    ) -> list[SwitchAction]:
        device, errors = self._resolve_for(client, invoke, request.monitor_object)
        if device is None:
            return errors
        if self.monitors.count_of(client) >= self.max_monitors_per_client:
            return [
                self._error(
                    client,
                    invoke,
                    m.CSTAErrorCode.system_resource_availability("overallMonitorLimitExceeded"),
                    f"this client holds {self.max_monitors_per_client} monitors, "
                    "the most clients.max_monitors allows",
                )
            ]
        cm, _created = self.monitors.add_client_monitor(client, device)
        point = self.monitors.points[device]
        phone = self.phones.get(device.phone)
        if phone is None or not phone.ready:
            return [self._started(cm, invoke), self._out_of_service(cm)]
        if point.state is PointState.ACTIVE:
            return [self._started(cm, invoke), self._back_in_service(cm)]
        # The phone's answer to the point's MonitorStart decides this one's.
        point.waiting[cm.cross_ref_id] = invoke
        return self._start_point(point) if point.state is PointState.DOWN else []

    def _monitor_stop(
        self, client: ClientId, invoke: object, request: m.MonitorStop
    ) -> list[SwitchAction]:
        xref = request.monitor_cross_ref_id or ""
        cm = self.monitors.client_monitors.get(xref)
        if cm is None or cm.client != client:
            return [
                self._error(
                    client,
                    invoke,
                    m.CSTAErrorCode.operation("invalidCrossRefId"),
                    f"no monitor {xref!r} of this client",
                )
            ]
        return [self._reply(client, invoke, m.MonitorStopResponse()), *self._release(xref)]

    def _release(self, xref: str) -> list[SwitchAction]:
        removed = self.monitors.remove_client_monitor(xref)
        if removed is None:
            return []
        _cm, point = removed
        if (
            point is None
            or point.state is not PointState.ACTIVE
            or point.phone_cross_ref_id is None
        ):
            return []
        phone = self.phones.get(point.device.phone)
        if phone is None or not phone.ready:
            return []
        if phone.services is not None and "MonitorStop" not in phone.services:
            return []
        stop = m.MonitorStop(monitor_cross_ref_id=point.phone_cross_ref_id)
        return [self._to_phone(_Pending("monitor_stop", point.device.phone), stop)]

    def _start_point(self, point: MonitorPoint) -> list[SwitchAction]:
        point.state = PointState.STARTING
        request = m.MonitorStart(monitor_object=point.device.device_id)
        return [self._to_phone(_Pending("monitor_start", point.device.phone, point=point), request)]

    def _monitor_started(self, pending: _Pending, response: m.CstaMessage) -> list[SwitchAction]:
        point = pending.point
        xref = (
            response.monitor_cross_ref_id if isinstance(response, m.MonitorStartResponse) else None
        )
        if point is None or xref is None:
            return []
        if self.monitors.points.get(point.device) is not point:
            # Every client left while the phone was starting the monitor: stop it again.
            stop = m.MonitorStop(monitor_cross_ref_id=xref)
            return [self._to_phone(_Pending("monitor_stop", pending.phone), stop)]
        self.monitors.set_active(point, xref)
        actions = self._answer_waiting(point)
        actions.extend(self._back_in_service(cm) for cm in point.clients.values())
        return _deliverable(actions)

    def _monitor_refused(
        self, point: MonitorPoint, error: m.CSTAErrorCode, detail: str
    ) -> list[SwitchAction]:
        """The phone refused or could not start the point's monitor.

        Its trouble (a timeout, ``outOfService``: the link fails or is failing) keeps the
        client monitors, told OutOfService once, and the point is restored when the phone is
        ready again. Any other error is the phone's verdict on the line: the clients waiting
        for their MonitorStart get it under their invoke ID, the others MonitorEnded, and the
        point is gone."""
        if self.monitors.points.get(point.device) is not point:
            return []  # every client left meanwhile
        self.monitors.clear_phone_ref(point)
        if error.is_timeout or error.is_out_of_service:
            actions = self._answer_waiting(point)
            for cm in point.clients.values():
                if cm.in_service is not False:
                    actions.append(self._out_of_service(cm))
            return _deliverable(actions)
        self.log.warning(
            "phone %s refused MonitorStart on %s: %s",
            point.device.phone,
            point.device.device_id,
            detail,
        )
        waiting = point.waiting
        point.waiting = {}
        actions = []
        for cm in list(point.clients.values()):
            if cm.cross_ref_id in waiting:
                refusal = f"the phone refused to monitor {point.device.device_id}: {detail}"
                actions.append(self._error(cm.client, waiting[cm.cross_ref_id], error, refusal))
            else:
                actions.append(self._event(cm, m.MonitorEndedEvent(cause="resourcesNotAvailable")))
            self.monitors.remove_client_monitor(cm.cross_ref_id)
        return _deliverable(actions)

    def _answer_waiting(self, point: MonitorPoint) -> list[SwitchAction]:
        waiting = point.waiting
        point.waiting = {}
        return [
            self._started(point.clients[xref], invoke)
            for xref, invoke in waiting.items()
            if xref in point.clients
        ]

    def _started(self, cm: ClientMonitor, invoke: object) -> ToClient:
        response = m.MonitorStartResponse(monitor_cross_ref_id=cm.cross_ref_id)
        return self._reply(cm.client, invoke, response)

    def _out_of_service(self, cm: ClientMonitor) -> ToClient:
        cm.in_service = False
        return self._event(cm, m.OutOfServiceEvent(device=_dev(cm.device)))

    def _back_in_service(self, cm: ClientMonitor) -> ToClient:
        cm.in_service = True
        return self._event(cm, m.BackInServiceEvent(device=_dev(cm.device)))

    def _get_devices(
        self, client: ClientId, invoke: object, request: m.GetSwitchingFunctionDevices
    ) -> list[SwitchAction]:
        devices = self.ready_devices()
        if request.requested_device_id:
            wanted = self.devices.resolve(request.requested_device_id)
            devices = [d for d in devices if d == wanted]
        devices = [d for d in devices if self._allowed(client, d)]
        xref = f"sfd{next(self._service_xrefs)}"
        actions: list[SwitchAction] = [
            self._reply(
                client, invoke, m.GetSwitchingFunctionDevicesResponse(service_cross_ref_id=xref)
            )
        ]
        size = max(1, self.segment_size)
        chunks = [devices[i : i + size] for i in range(0, len(devices), size)] or [[]]
        for number, chunk in enumerate(chunks, start=1):
            entries = tuple(
                DeviceEntry(device_id=d.device_id, device_category="station") for d in chunk
            )
            segment = m.SwitchingFunctionDevices(
                service_cross_ref_id=xref,
                segment_id=number,
                last_segment=number == len(chunks),
                device_list=entries,
            )
            actions.append(ToClient(client=client, message=segment))
        return actions

    def _devices_changed(self) -> list[SwitchAction]:
        return [
            ToClient(client=c.client, message=m.SwFunctionDevicesChanged(sys_stat_register_id=reg))
            for c in self.clients.values()
            for reg in sorted(c.system_registrations)
        ]

    def _fail_pending_of(self, phone: str) -> list[SwitchAction]:
        actions: list[SwitchAction] = []
        for token in [t for t, p in self._pending.items() if p.phone == phone]:
            pending = self._pending.pop(token)
            actions.extend(
                self._failed(
                    pending,
                    m.CSTAErrorCode.system_resource_availability("outOfService"),
                    "the phone was lost before it answered",
                )
            )
        return actions

    def _failed(self, pending: _Pending, error: m.CSTAErrorCode, detail: str) -> list[SwitchAction]:
        if pending.kind == "monitor_start" and pending.point is not None:
            return self._monitor_refused(pending.point, error, detail)
        if pending.kind == "monitor_stop" or pending.client is None:
            return []
        return [self._error(pending.client, pending.invoke, error, detail)]

    def _answer(self, pending: _Pending, response: m.CstaMessage) -> list[SwitchAction]:
        if pending.client is None:
            return []
        response = self.call_ids.message_to_client(pending.phone, response)
        return [self._reply(pending.client, pending.invoke, response)]

    def _to_phone(self, pending: _Pending, request: m.CstaRequest) -> ToPhone:
        token = next(self._tokens)
        self._pending[token] = pending
        return ToPhone(phone=pending.phone, token=token, request=request)

    @staticmethod
    def _reply(client: ClientId, invoke: object, message: m.CstaMessage) -> ToClient:
        return ToClient(client=client, message=message, invoke=invoke)

    @staticmethod
    def _error(client: ClientId, invoke: object, error: m.CSTAErrorCode, detail: str) -> ToClient:
        return ToClient(client=client, message=error, invoke=invoke, detail=detail)

    @staticmethod
    def _event(cm: ClientMonitor, event: m.CstaEvent) -> ToClient:
        return ToClient(
            client=cm.client, message=replace(event, monitor_cross_ref_id=cm.cross_ref_id)
        )


#: The error naming the request field whose call ID is not at the device addressed.
_CALL_ID_ERRORS = {"active_call": "invalidActiveCallID", "held_call": "invalidHeldCallID"}


def _dev(device: Device) -> DeviceIdentifier:
    return DeviceIdentifier(device.device_id)


def _deliverable(actions: list[SwitchAction]) -> list[SwitchAction]:
    """``actions`` without what is addressed to the switch's own monitors (their answers,
    OutOfService/BackInService, MonitorEnded): nobody is there to take them."""
    return [a for a in actions if not (isinstance(a, ToClient) and a.client is SWITCH)]
