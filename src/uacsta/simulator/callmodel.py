"""A simulated uaCSTA phone: lines, calls, connection states, DND, forwarding, MWI, monitors.

Sans-IO (no clock, no sockets): CSTA requests go in through :meth:`SimPhone.handle_request`
with the current time, the positive response or ``CSTAErrorCode`` comes back in a
:class:`PhoneReply`, and everything the phone sends on its own is collected in two outboxes
the SIP side drains: :meth:`SimPhone.drain_events` (CSTA events, already stamped with the
monitorCrossRefID of the phone's monitor on the device) and :meth:`SimPhone.drain_requests`
(phone-originated requests such as ``SwitchingFunctionDevices``).

The call itself lives in the simulated PBX (:mod:`uacsta.simulator.pbx`), which connects the
phones' connections and produces the ECMA-269 events on every side; this module checks each
request against the phone's state (ECMA-269 §17 preconditions) and answers the errors.

Conventions (the phone's own view, as a SIP phone has it):

- Each phone numbers its calls itself (style per personality). Every connection ID a phone
  reports carries *its own* callID; the deviceID is the device the connection belongs to, so
  the phone's own connection is ``(callID, own line)`` and the far end's, as the phone sees it,
  is ``(callID, far device)`` (ECMA-269 §17.2.5: the Delivered ``connection`` is the alerting
  connection).
- One active call per phone: answering, dialling or retrieving puts the phone's other active
  call on hold first (HeldEvent), as desk phones do.
- A line with ``call_waiting = False`` is busy while it has any call.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from uacsta.csta import messages as m
from uacsta.csta.codec import Edition
from uacsta.csta.types import (
    ConnectionID,
    DeviceCategory,
    DeviceEntry,
    DeviceIdentifier,
    EventCause,
    ForwardingType,
    ForwardListItem,
    LocalConnectionState,
    SnapshotCallResponseInfo,
    SnapshotDeviceResponseInfo,
    SystemStatusValue,
)
from uacsta.simulator.personality import Personality

if TYPE_CHECKING:
    from uacsta.simulator.pbx import SimPbx

__all__ = [
    "FORWARDING_TYPES",
    "Call",
    "ExternalParty",
    "Leg",
    "Line",
    "Party",
    "PhoneReply",
    "SimPhone",
]

LCS = LocalConnectionState

#: Forwarding types the simulated phones implement (ECMA-269 §22.2.9).
FORWARDING_TYPES: tuple[ForwardingType, ...] = (
    ForwardingType.FORWARD_IMMEDIATE,
    ForwardingType.FORWARD_BUSY,
    ForwardingType.FORWARD_NO_ANS,
)

#: More calls than this on one line are refused (resourceBusy) and make the line busy.
MAX_CALLS_PER_LINE = 4


# --- the call model --------------------------------------------------------------------------


@dataclass(eq=False)
class Party:
    """One end of a :class:`Call`: a simulated phone's line (:class:`Leg`) or an outside party."""

    device_id: str
    state: LocalConnectionState
    call: Call | None = None


@dataclass(eq=False)
class Leg(Party):
    """A connection of a simulated phone: the phone's callID on one of its lines."""

    phone: SimPhone | None = None
    line: Line | None = None
    call_id: str = ""

    @property
    def own(self) -> ConnectionID:
        """This connection as the phone reports it: its callID and its line."""
        return ConnectionID(self.call_id, self.device_id)

    def of(self, device_id: str) -> ConnectionID:
        """The connection of ``device_id`` in this call, as this phone sees it."""
        return ConnectionID(self.call_id, device_id)


@dataclass(eq=False)
class ExternalParty(Party):
    """A party outside the simulation (a trunk number)."""

    number: str = ""


@dataclass(eq=False)
class Call:
    """A call in the PBX: its parties, who called whom, and why it reached where it is."""

    number: int
    parties: list[Party] = field(default_factory=list)
    calling: str = ""
    called: str = ""
    last_redirection: str | None = None
    cause: EventCause = EventCause.NEW_CALL

    def others(self, party: Party) -> list[Party]:
        return [p for p in self.parties if p is not party]

    def legs(self) -> list[Leg]:
        return [p for p in self.parties if isinstance(p, Leg)]


@dataclass(eq=False)
class Line:
    """One identity (line) of a phone and its logical-device features."""

    number: str
    device_id: str
    legs: list[Leg] = field(default_factory=list)
    dnd: bool = False
    #: forwarding type -> (active, destination)
    forwarding: dict[ForwardingType, tuple[bool, str | None]] = field(default_factory=dict)
    mwi: bool = False
    call_waiting: bool = True

    def forward_to(self, kind: ForwardingType) -> str | None:
        active, dn = self.forwarding.get(kind, (False, None))
        return dn if active else None

    @property
    def busy(self) -> bool:
        if len(self.legs) >= MAX_CALLS_PER_LINE:
            return True
        return bool(self.legs) and not self.call_waiting


@dataclass(frozen=True, slots=True)
class PhoneReply:
    """The phone's answer to one request: ``None`` when the phone stays silent (a quirk)."""

    response: m.CstaResponse | None
    edition: Edition = Edition.ED3


class _Refused(Exception):
    """Internal: a request is refused with ``error``."""

    def __init__(self, error: m.CSTAErrorCode) -> None:
        super().__init__(f"{error.category}: {error.value}")
        self.error = error


def _state(value: str) -> _Refused:
    return _Refused(m.CSTAErrorCode.state_incompatibility(value))


def _operation(value: str) -> _Refused:
    return _Refused(m.CSTAErrorCode.operation(value))


# --- the phone -------------------------------------------------------------------------------


class SimPhone:
    """A simulated SIP desk phone with uaCSTA (ECMA TR/87) support."""

    def __init__(
        self,
        mac: str,
        personality: Personality,
        lines: Sequence[str],
        domain: str = "sim.invalid",
        *,
        pbx: SimPbx | None = None,
    ) -> None:
        if not lines:
            raise ValueError("a phone needs at least one line")
        self.mac = mac.upper()
        self.personality = personality
        self.domain = domain
        self.lines: list[Line] = [
            Line(number=n, device_id=personality.device_id(n, domain)) for n in lines
        ]
        #: Stop answering requests (the SIP side leaves the INFO unanswered).
        self.silent = False
        #: Registered and reachable; an offline phone answers nothing and receives no calls.
        self.online = True
        #: monitorCrossRefID -> line
        self.monitors: dict[str, Line] = {}
        self.system_registrations: set[str] = set()
        self._xrefs = 0
        self._call_ids = 0
        self._events: list[m.CstaEvent] = []
        self._requests: list[m.CstaRequest] = []
        self.pbx: SimPbx | None = None
        #: Called when the phone queued an event or request (the SIP side sends them).
        self.on_outbox: Callable[[SimPhone], None] | None = None
        if pbx is not None:
            pbx.add_phone(self)

    def __repr__(self) -> str:
        return f"SimPhone({self.mac}, {self.personality.key}, {[ln.number for ln in self.lines]})"

    @property
    def user_agent(self) -> str:
        return self.personality.user_agent

    # --- outboxes ----------------------------------------------------------------------------

    def _notify(self) -> None:
        if self.on_outbox is not None:
            self.on_outbox(self)

    def drain_events(self) -> list[m.CstaEvent]:
        """Events the phone has sent since the last call (each stamped with its monitor)."""
        events, self._events = self._events, []
        return events

    def drain_requests(self) -> list[m.CstaRequest]:
        """Requests the phone has sent on its own (``SwitchingFunctionDevices``)."""
        requests, self._requests = self._requests, []
        return requests

    def emit(self, line: Line, event: m.CstaEvent) -> None:
        """Queue ``event`` once per monitor on ``line`` (no monitor: no event)."""
        for xref, monitored in self.monitors.items():
            if monitored is line:
                self._events.append(dataclasses.replace(event, monitor_cross_ref_id=xref))
                self._notify()

    # --- identities and connections ------------------------------------------------------------

    def line(self, key: str | None = None) -> Line:
        """A line by number or device ID (first line if ``key`` is None)."""
        if key is None:
            return self.lines[0]
        found = self.find_line(key)
        if found is None:
            raise KeyError(key)
        return found

    def find_line(self, key: str | None) -> Line | None:
        if key is None:
            return None
        for line in self.lines:
            if key in (line.number, line.device_id):
                return line
        return None

    def legs(self) -> list[Leg]:
        return [leg for line in self.lines for leg in line.legs]

    def new_leg(self, line: Line, state: LocalConnectionState) -> Leg:
        """A new connection on ``line`` with the phone's next callID."""
        self._call_ids += 1
        leg = Leg(
            device_id=line.device_id,
            state=state,
            phone=self,
            line=line,
            call_id=self.personality.call_id(self._call_ids),
        )
        line.legs.append(leg)
        return leg

    def drop_leg(self, leg: Leg) -> None:
        if leg.line is not None and leg in leg.line.legs:
            leg.line.legs.remove(leg)
        leg.state = LCS.NULL

    def _next_xref(self) -> str:
        self._xrefs += 1
        return self.personality.xref(self._xrefs)

    def _device_line(self, device: str | None) -> Line:
        line = self.find_line(device)
        if line is None:
            raise _operation(self.personality.unknown_device_error)
        return line

    def _leg(self, conn: ConnectionID | None) -> Leg:
        """The phone's connection named by ``conn`` (own or far-end device of the call)."""
        if conn is None or conn.call_id is None:
            raise _state("invalidConnectionID")
        for leg in self.legs():
            if leg.call_id != conn.call_id:
                continue
            devices = {leg.device_id}
            if leg.call is not None:
                devices.update(p.device_id for p in leg.call.parties)
            if conn.device_id is None or conn.device_id in devices:
                return leg
        raise _state("invalidConnectionID")

    def _require_pbx(self) -> SimPbx:
        if self.pbx is None:
            from uacsta.simulator.pbx import SimPbx

            SimPbx(self.domain).add_phone(self)
        assert self.pbx is not None
        return self.pbx

    def _ringing(self) -> bool:
        return any(leg.state == LCS.ALERTING for leg in self.legs())

    def _active_legs(self, except_leg: Leg | None = None) -> list[Leg]:
        return [leg for leg in self.legs() if leg.state == LCS.CONNECTED and leg is not except_leg]

    def hold_others(self, keep: Leg | None, now: float) -> None:
        """Put every other active call of the phone on hold (one handset, one active call)."""
        pbx = self._require_pbx()
        for leg in self._active_legs(keep):
            pbx.hold(leg, now)

    # --- CSTA requests -----------------------------------------------------------------------

    def handle_request(
        self, request: m.CstaRequest, now: float, edition: Edition = Edition.ED3
    ) -> PhoneReply:
        """Answer one CSTA request that arrived (in an INFO or the INVITE) in ``edition``."""
        reply_edition = self.personality.reply_edition(edition)
        if self.silent or not self.online:
            return PhoneReply(None, reply_edition)
        service = type(request).__name__
        if service in self.personality.silent_while_ringing and self._ringing():
            return PhoneReply(None, reply_edition)
        handler = _HANDLERS.get(type(request))
        if handler is None or not self.personality.supports(service):
            return PhoneReply(m.CSTAErrorCode.operation("invalidFeature"), reply_edition)
        try:
            response = handler(self, request, now)
        except _Refused as refused:
            response = refused.error
        return PhoneReply(response, reply_edition)

    # monitoring and system services

    def _monitor_start(self, req: m.MonitorStart, now: float) -> m.CstaResponse:
        line = self._device_line(req.monitor_object)
        xref = self._next_xref()
        self.monitors[xref] = line
        return m.MonitorStartResponse(monitor_cross_ref_id=xref)

    def _monitor_stop(self, req: m.MonitorStop, now: float) -> m.CstaResponse:
        if req.monitor_cross_ref_id not in self.monitors:
            raise _operation("invalidCrossRefId")
        del self.monitors[req.monitor_cross_ref_id]
        return m.MonitorStopResponse()

    def _system_register(self, req: m.SystemRegister, now: float) -> m.CstaResponse:
        reg = self._next_xref()
        self.system_registrations.add(reg)
        return m.SystemRegisterResponse(sys_stat_register_id=reg)

    def _system_register_cancel(self, req: m.SystemRegisterCancel, now: float) -> m.CstaResponse:
        if req.sys_stat_register_id not in self.system_registrations:
            raise _operation("invalidCrossRefId")
        self.system_registrations.discard(req.sys_stat_register_id)
        return m.SystemRegisterCancelResponse()

    def _request_system_status(self, req: m.RequestSystemStatus, now: float) -> m.CstaResponse:
        return m.RequestSystemStatusResponse(system_status=SystemStatusValue.NORMAL)

    def _get_sf_devices(self, req: m.GetSwitchingFunctionDevices, now: float) -> m.CstaResponse:
        xref = self._next_xref()
        self._requests.append(
            m.SwitchingFunctionDevices(
                service_cross_ref_id=xref,
                segment_id=1,
                last_segment=True,
                device_list=tuple(
                    DeviceEntry(device_id=line.device_id, device_category=DeviceCategory.STATION)
                    for line in self.lines
                ),
            )
        )
        self._notify()
        return m.GetSwitchingFunctionDevicesResponse(service_cross_ref_id=xref)

    # snapshots

    def _snapshot_device(self, req: m.SnapshotDevice, now: float) -> m.CstaResponse:
        line = self._device_line(req.snapshot_object)
        return m.SnapshotDeviceResponse(
            snapshot_data=tuple(
                SnapshotDeviceResponseInfo(
                    connection_identifier=leg.own, local_connection_state=leg.state
                )
                for leg in line.legs
            )
        )

    def _snapshot_call(self, req: m.SnapshotCall, now: float) -> m.CstaResponse:
        leg = self._leg(req.snapshot_object)
        parties: list[Party] = list(leg.call.parties) if leg.call else [leg]
        return m.SnapshotCallResponse(
            snapshot_data=tuple(
                SnapshotCallResponseInfo(
                    device_on_call=DeviceIdentifier(p.device_id),
                    call_identifier=leg.of(p.device_id),
                    local_connection_state=p.state,
                )
                for p in parties
            )
        )

    # call control

    def _make_call(self, req: m.MakeCall, now: float) -> m.CstaResponse:
        line = self._device_line(req.calling_device)
        if not req.called_directory_number:
            raise _operation("invalidCalledDevice")
        leg = self._originate(line, req.called_directory_number, EventCause.MAKE_CALL, now)
        return m.MakeCallResponse(calling_device=leg.own)

    def _originate(self, line: Line, number: str, cause: EventCause, now: float) -> Leg:
        if len(line.legs) >= MAX_CALLS_PER_LINE:
            raise _Refused(m.CSTAErrorCode.system_resource_availability("resourceBusy"))
        pbx = self._require_pbx()
        self.hold_others(None, now)
        leg = self.new_leg(line, LCS.INITIATED)
        pbx.originate(leg, number, cause, now)
        return leg

    def _answer_call(self, req: m.AnswerCall, now: float) -> m.CstaResponse:
        leg = self._leg(req.call_to_be_answered)
        if leg.state != LCS.ALERTING:
            raise _state("noCallToAnswer")
        self._require_pbx().answer(leg, now)
        return m.AnswerCallResponse()

    def _clear_connection(self, req: m.ClearConnection, now: float) -> m.CstaResponse:
        leg = self._leg(req.connection_to_be_cleared)
        self._require_pbx().release(leg, now)
        return m.ClearConnectionResponse()

    def _clear_call(self, req: m.ClearCall, now: float) -> m.CstaResponse:
        leg = self._leg(req.call_to_be_cleared)
        self._require_pbx().clear_call(leg, now)
        return m.ClearCallResponse()

    def _hold_call(self, req: m.HoldCall, now: float) -> m.CstaResponse:
        leg = self._leg(req.call_to_be_held)
        if leg.state != LCS.CONNECTED:
            raise _state("noActiveCall")
        self._require_pbx().hold(leg, now)
        return m.HoldCallResponse()

    def _retrieve_call(self, req: m.RetrieveCall, now: float) -> m.CstaResponse:
        leg = self._leg(req.call_to_be_retrieved)
        if leg.state != LCS.HOLD:
            raise _state("noHeldCall")
        self.hold_others(leg, now)
        self._require_pbx().retrieve(leg, now)
        return m.RetrieveCallResponse()

    def _held_and_active(
        self, held: ConnectionID | None, active: ConnectionID | None
    ) -> tuple[Leg, Leg]:
        held_leg = self._leg(held)
        active_leg = self._leg(active)
        if held_leg.state != LCS.HOLD:
            raise _state("noHeldCall")
        if active_leg.state != LCS.CONNECTED or active_leg is held_leg:
            raise _state("noActiveCall")
        if held_leg.call is active_leg.call:
            raise _state("invalidObjectState")
        return held_leg, active_leg

    def _alternate_call(self, req: m.AlternateCall, now: float) -> m.CstaResponse:
        held, active = self._held_and_active(req.held_call, req.active_call)
        pbx = self._require_pbx()
        pbx.hold(active, now, EventCause.ALTERNATE)
        pbx.retrieve(held, now, EventCause.ALTERNATE)
        return m.AlternateCallResponse()

    def _consultation_call(self, req: m.ConsultationCall, now: float) -> m.CstaResponse:
        existing = self._leg(req.existing_call)
        if existing.state != LCS.CONNECTED:
            raise _state("noActiveCall")
        if not req.consulted_device:
            raise _operation("invalidCalledDevice")
        assert existing.line is not None
        if len(existing.line.legs) >= MAX_CALLS_PER_LINE:
            raise _Refused(m.CSTAErrorCode.system_resource_availability("resourceBusy"))
        pbx = self._require_pbx()
        pbx.hold(existing, now, EventCause.CONSULTATION)
        self.hold_others(None, now)
        leg = self.new_leg(existing.line, LCS.INITIATED)
        pbx.originate(leg, req.consulted_device, EventCause.CONSULTATION, now)
        return m.ConsultationCallResponse(initiated_call=leg.own)

    def _two_party_far(self, leg: Leg) -> Party:
        others = leg.call.others(leg) if leg.call else []
        if len(others) != 1:
            raise _state("invalidObjectState")
        return others[0]

    def _transfer_call(self, req: m.TransferCall, now: float) -> m.CstaResponse:
        held, active = self._held_and_active(req.held_call, req.active_call)
        held_far = self._two_party_far(held)
        far = self._two_party_far(active)
        if far.state not in (LCS.CONNECTED, LCS.ALERTING, LCS.HOLD):
            raise _state("invalidObjectState")
        if held_far.state not in (LCS.CONNECTED, LCS.HOLD):
            # Only an answered call can be handed over; two ringing ends cannot be joined.
            raise _state("invalidObjectState")
        self._require_pbx().transfer(held, active, now)
        return m.TransferCallResponse(transferred_call=held.of(far.device_id))

    def _conference_call(self, req: m.ConferenceCall, now: float) -> m.CstaResponse:
        held, active = self._held_and_active(req.held_call, req.active_call)
        assert held.call is not None and active.call is not None
        if any(p.state not in (LCS.CONNECTED, LCS.HOLD) for p in active.call.others(active)):
            raise _state("invalidObjectState")
        connections = self._require_pbx().conference(held, active, now)
        return m.ConferenceCallResponse(conference_call=held.own, connections=connections)

    def _single_step_transfer(self, req: m.SingleStepTransferCall, now: float) -> m.CstaResponse:
        leg = self._leg(req.active_call)
        if leg.state not in (LCS.CONNECTED, LCS.HOLD):
            raise _state("noActiveCall")
        far = self._two_party_far(leg)
        if far.state not in (LCS.CONNECTED, LCS.HOLD):
            raise _state("invalidObjectState")
        if not req.transferred_to:
            raise _operation("invalidDestination")
        call_id = leg.call_id
        destination = self._require_pbx().single_step_transfer(leg, req.transferred_to, now)
        return m.SingleStepTransferCallResponse(transferred_call=ConnectionID(call_id, destination))

    def _deflect_call(self, req: m.DeflectCall, now: float) -> m.CstaResponse:
        leg = self._leg(req.call_to_be_diverted)
        if leg.state != LCS.ALERTING:
            raise _state("invalidObjectState")
        if not req.new_destination:
            raise _operation("invalidDestination")
        self._require_pbx().deflect(leg, req.new_destination, EventCause.REDIRECTED, now)
        return m.DeflectCallResponse()

    def _generate_digits(self, req: m.GenerateDigits, now: float) -> m.CstaResponse:
        leg = self._leg(req.connection_to_send_digits)
        if leg.state != LCS.CONNECTED:
            raise _state("noActiveCall")
        if not req.characters_to_send:
            raise _operation("valueOutOfRange")
        assert leg.line is not None
        self.emit(
            leg.line,
            m.DigitsGeneratedEvent(connection=leg.own, digit_generated_list=req.characters_to_send),
        )
        return m.GenerateDigitsResponse()

    # logical and physical device features

    def _get_dnd(self, req: m.GetDoNotDisturb, now: float) -> m.CstaResponse:
        return m.GetDoNotDisturbResponse(do_not_disturb_on=self._device_line(req.device).dnd)

    def _set_dnd(self, req: m.SetDoNotDisturb, now: float) -> m.CstaResponse:
        line = self._device_line(req.device)
        if req.do_not_disturb_on is None:
            raise _operation("valueOutOfRange")
        self.set_dnd(line.number, req.do_not_disturb_on)
        return m.SetDoNotDisturbResponse()

    def _get_forwarding(self, req: m.GetForwarding, now: float) -> m.CstaResponse:
        line = self._device_line(req.device)
        items = []
        for kind in FORWARDING_TYPES:
            active, dn = line.forwarding.get(kind, (False, None))
            items.append(
                ForwardListItem(forwarding_type=kind, forward_status=active, forward_dn=dn)
            )
        return m.GetForwardingResponse(forwarding_list=tuple(items))

    def _set_forwarding(self, req: m.SetForwarding, now: float) -> m.CstaResponse:
        line = self._device_line(req.device)
        kind = ForwardingType.coerce(req.forwarding_type or "")
        if kind not in FORWARDING_TYPES or not isinstance(kind, ForwardingType):
            raise _operation("invalidFeature")
        if req.activate_forward is None:
            raise _operation("valueOutOfRange")
        if req.activate_forward and not req.forward_dn:
            raise _operation("invalidForwardingDestination")
        self.set_forwarding(line.number, kind, req.activate_forward, req.forward_dn)
        return m.SetForwardingResponse()

    def _get_mwi(self, req: m.GetMessageWaitingIndicator, now: float) -> m.CstaResponse:
        line = self._device_line(req.device)
        return m.GetMessageWaitingIndicatorResponse(message_waiting_on=line.mwi)

    def _set_mwi(self, req: m.SetMessageWaitingIndicator, now: float) -> m.CstaResponse:
        line = self._device_line(req.device)
        if req.message_waiting_on is None:
            raise _operation("valueOutOfRange")
        self.set_mwi(line.number, req.message_waiting_on)
        return m.SetMessageWaitingIndicatorResponse()

    # --- scripted user actions (keypad, handset) ---------------------------------------------

    def dial(self, number: str, now: float, line: str | None = None) -> Leg:
        """The user dials ``number`` (ServiceInitiated/Originated with cause newCall)."""
        try:
            return self._originate(self.line(line), number, EventCause.NEW_CALL, now)
        except _Refused as refused:
            raise RuntimeError(str(refused)) from None

    def answer(self, line: str | None = None, now: float = 0.0) -> bool:
        """The user lifts the handset: answer the oldest ringing call on ``line``."""
        for leg in self.line(line).legs:
            if leg.state == LCS.ALERTING:
                self._require_pbx().answer(leg, now)
                return True
        return False

    def hangup(self, line: str | None = None, now: float = 0.0) -> bool:
        """The user hangs up: clear the active call, else a ringing, dialling or failed one."""
        legs = self.line(line).legs
        for wanted in (LCS.CONNECTED, LCS.ALERTING, LCS.INITIATED, LCS.FAIL):
            for leg in legs:
                if leg.state == wanted:
                    self._require_pbx().release(leg, now)
                    return True
        return False

    def set_dnd(self, line: str | None, on: bool) -> None:
        ln = self.line(line)
        ln.dnd = on
        self.emit(
            ln, m.DoNotDisturbEvent(device=DeviceIdentifier(ln.device_id), do_not_disturb_on=on)
        )

    def set_forwarding(
        self, line: str | None, kind: ForwardingType, active: bool, destination: str | None
    ) -> None:
        ln = self.line(line)
        old = ln.forwarding.get(kind, (False, None))[1]
        dn = destination or old
        ln.forwarding[kind] = (active, dn)
        self.emit(
            ln,
            m.ForwardingEvent(
                device=DeviceIdentifier(ln.device_id),
                forwarding_type=kind,
                forward_status=active,
                forward_to=dn,
            ),
        )

    def set_mwi(self, line: str | None, on: bool) -> None:
        ln = self.line(line)
        ln.mwi = on
        self.emit(
            ln,
            m.MessageWaitingEvent(
                target_device=DeviceIdentifier(ln.device_id), message_waiting_on=on
            ),
        )


_Handler = Callable[[SimPhone, m.CstaRequest, float], m.CstaResponse]


def _table() -> dict[type[m.CstaRequest], _Handler]:
    pairs: list[tuple[type[m.CstaRequest], Callable[..., m.CstaResponse]]] = [
        (m.MonitorStart, SimPhone._monitor_start),
        (m.MonitorStop, SimPhone._monitor_stop),
        (m.SystemRegister, SimPhone._system_register),
        (m.SystemRegisterCancel, SimPhone._system_register_cancel),
        (m.RequestSystemStatus, SimPhone._request_system_status),
        (m.GetSwitchingFunctionDevices, SimPhone._get_sf_devices),
        (m.SnapshotDevice, SimPhone._snapshot_device),
        (m.SnapshotCall, SimPhone._snapshot_call),
        (m.MakeCall, SimPhone._make_call),
        (m.AnswerCall, SimPhone._answer_call),
        (m.ClearConnection, SimPhone._clear_connection),
        (m.ClearCall, SimPhone._clear_call),
        (m.HoldCall, SimPhone._hold_call),
        (m.RetrieveCall, SimPhone._retrieve_call),
        (m.AlternateCall, SimPhone._alternate_call),
        (m.ConsultationCall, SimPhone._consultation_call),
        (m.TransferCall, SimPhone._transfer_call),
        (m.ConferenceCall, SimPhone._conference_call),
        (m.SingleStepTransferCall, SimPhone._single_step_transfer),
        (m.DeflectCall, SimPhone._deflect_call),
        (m.GenerateDigits, SimPhone._generate_digits),
        (m.GetDoNotDisturb, SimPhone._get_dnd),
        (m.SetDoNotDisturb, SimPhone._set_dnd),
        (m.GetForwarding, SimPhone._get_forwarding),
        (m.SetForwarding, SimPhone._set_forwarding),
        (m.GetMessageWaitingIndicator, SimPhone._get_mwi),
        (m.SetMessageWaitingIndicator, SimPhone._set_mwi),
    ]
    return dict(pairs)


#: Request class -> handler: the services a simulated phone can implement at all.
_HANDLERS: dict[type[m.CstaRequest], _Handler] = _table()
