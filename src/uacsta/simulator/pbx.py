"""The simulated PBX: connects simulated phones by number and produces the CSTA events.

Sans-IO: time comes in as ``now``; the PBX's own timers (an outside number answering after a
delay, forwarding on no answer) are data: :meth:`SimPbx.get_timer` says when, and the adapter
calls :meth:`SimPbx.handle_timer`.

Event flows (ECMA-269 §17.2/§17.3; connection IDs in each phone's own callIDs, see
:mod:`uacsta.simulator.callmodel`):

- call set-up, caller: ServiceInitiated (initiated, cause makeCall / newCall / consultation),
  Originated (connected), Delivered (connection = far end, localConnectionInfo connected),
  Established (connected); callee: Delivered (alerting), Established (connected).
- release: the releasing phone gets ConnectionCleared of its own connection (null); in a
  two-party call the far phone's call ends as well (SIP BYE): ConnectionCleared of the
  releasing device's connection with localConnectionInfo null. In a conference the others
  stay (localConnectionInfo their own state) and the call goes on.
- ClearCall: CallCleared (null, normalClearing) on every phone in the call.
- hold/retrieve: HeldEvent / RetrievedEvent on every phone in the call (ECMA-269 §17.2.11:
  monitors of all devices in the call see it), heldConnection = the holding device's
  connection, localConnectionInfo = the receiving phone's own state.
- DND / busy at the callee: FailedEvent on the caller (failing device = callee, cause
  doNotDisturb / busy, localConnectionInfo fail); the caller's connection stays in fail until
  it hangs up. Nothing on the callee.
- forwarding (immediate / busy / no answer) and DeflectCall: DivertedEvent on the diverting
  phone (its own connection, null) and on the caller (the diverting device's connection,
  caller's state), then Delivered at the new destination with lastRedirectionDevice set and
  cause callForwardImmediate / callForwardBusy / callForwardNoAnswer / redirected.
- TransferCall: TransferredEvent on all three (transferring: primary/secondaryOldCall its two
  connections, null; the others: primaryOldCall their connection to the transferring device,
  transferredConnections the new far end, their own state). SingleStepTransferCall: the same
  on the two, cause singleStepTransfer, then the transferred party's call is delivered to the
  new destination. ConferenceCall: ConferencedEvent on all three.
"""

from __future__ import annotations

from dataclasses import dataclass

from uacsta.csta import messages as m
from uacsta.csta.types import (
    ConnectionID,
    ConnectionListItem,
    DeviceIdentifier,
    EventCause,
    ForwardingType,
    LocalConnectionState,
)
from uacsta.simulator.callmodel import Call, ExternalParty, Leg, Line, Party, SimPhone

__all__ = ["MAX_REDIRECTIONS", "SimPbx", "Timer"]

LCS = LocalConnectionState
NORMAL = EventCause.NORMAL_CLEARING
#: Forwarding chains longer than this fail (destNotObtainable) instead of looping.
MAX_REDIRECTIONS = 5


def _dev(device: str | None) -> DeviceIdentifier | None:
    return None if device is None else DeviceIdentifier(device)


@dataclass(eq=False)
class Timer:
    """A scheduled PBX action: ``kind`` is ``"answer"`` (outside party) or ``"no_answer"``."""

    at: float
    kind: str
    party: Party


class SimPbx:
    """Routes calls between simulated phones (by line number) and outside numbers."""

    def __init__(
        self,
        domain: str = "sim.invalid",
        *,
        external_answer_delay: float | None = None,
        no_answer_timeout: float = 20.0,
    ) -> None:
        self.domain = domain
        #: Seconds after which an outside number answers; ``None``: it rings forever.
        self.external_answer_delay = external_answer_delay
        #: Seconds of ringing before forwarding on no answer.
        self.no_answer_timeout = no_answer_timeout
        #: Outside numbers that answer busy.
        self.busy_numbers: set[str] = set()
        self.phones: list[SimPhone] = []
        self.calls: list[Call] = []
        self.timers: list[Timer] = []
        self._lines: dict[str, tuple[SimPhone, Line]] = {}
        self._calls = 0

    # --- set-up ------------------------------------------------------------------------------

    def add_phone(self, phone: SimPhone) -> SimPhone:
        for line in phone.lines:
            if line.number in self._lines:
                raise ValueError(f"number {line.number} is already taken")
        for line in phone.lines:
            self._lines[line.number] = (phone, line)
        phone.pbx = self
        self.phones.append(phone)
        return phone

    @staticmethod
    def number_of(dialled: str) -> str:
        """The user part of a dialled string: ``sip:101@x;user=phone`` and ``tel:101`` -> 101."""
        text = dialled.strip()
        for scheme in ("sips:", "sip:", "tel:"):
            if text.lower().startswith(scheme):
                text = text[len(scheme) :]
                break
        return text.split("@", 1)[0].split(";", 1)[0]

    def resolve(self, dialled: str) -> tuple[SimPhone, Line] | None:
        """The simulated line a dialled string reaches (by number or full device ID)."""
        found = self._lines.get(self.number_of(dialled))
        if found is not None:
            return found
        for phone, line in self._lines.values():
            if dialled == line.device_id:
                return phone, line
        return None

    def device_for(self, dialled: str) -> str:
        """The device ID the dialled string stands for (outside: ``sip:number@domain``)."""
        found = self.resolve(dialled)
        if found is not None:
            return found[1].device_id
        return f"sip:{self.number_of(dialled)}@{self.domain}"

    def _new_call(self, calling: str, called: str, cause: EventCause) -> Call:
        self._calls += 1
        call = Call(number=self._calls, calling=calling, called=called, cause=cause)
        self.calls.append(call)
        return call

    def _end_if_empty(self, call: Call) -> None:
        if not call.parties and call in self.calls:
            self.calls.remove(call)

    # --- timers --------------------------------------------------------------------------------

    def get_timer(self) -> float | None:
        """When :meth:`handle_timer` must next be called (``None``: nothing scheduled)."""
        return min((t.at for t in self.timers), default=None)

    def handle_timer(self, now: float) -> None:
        """Fire every timer due at ``now``."""
        while True:
            due = [t for t in self.timers if t.at <= now]
            if not due:
                return
            timer = min(due, key=lambda t: t.at)
            self.timers.remove(timer)
            party = timer.party
            if party.call is None or party.state != LCS.ALERTING:
                continue
            if timer.kind == "answer":
                self.answer(party, now)
            elif isinstance(party, Leg) and party.line is not None:
                dn = party.line.forward_to(ForwardingType.FORWARD_NO_ANS)
                if dn is not None:
                    self.deflect(party, dn, EventCause.CALL_FORWARD_NO_ANSWER, now)

    def _cancel_timers(self, party: Party) -> None:
        self.timers = [t for t in self.timers if t.party is not party]

    # --- scripted outside world --------------------------------------------------------------

    def incoming_call(self, to_number: str, from_number: str, now: float) -> Call:
        """An outside caller ``from_number`` calls ``to_number``."""
        caller = ExternalParty(
            device_id=self.device_for(from_number), state=LCS.CONNECTED, number=from_number
        )
        call = self._new_call(caller.device_id, self.device_for(to_number), EventCause.NEW_CALL)
        caller.call = call
        call.parties.append(caller)
        self._deliver(call, to_number, now, 0)
        return call

    def external_party(self, number: str) -> ExternalParty | None:
        """The outside party with ``number`` in a current call (the oldest one)."""
        for call in self.calls:
            for party in call.parties:
                if isinstance(party, ExternalParty) and self.number_of(party.number) == (
                    self.number_of(number)
                ):
                    return party
        return None

    def external_answer(self, number: str, now: float) -> bool:
        """The outside number, ringing, answers."""
        party = self.external_party(number)
        if party is None or party.state != LCS.ALERTING:
            return False
        self.answer(party, now)
        return True

    def external_hangup(self, number: str, now: float) -> bool:
        """The outside number hangs up."""
        party = self.external_party(number)
        if party is None:
            return False
        self.release(party, now)
        return True

    # --- call set-up -------------------------------------------------------------------------

    def originate(self, leg: Leg, dialled: str, cause: EventCause, now: float) -> None:
        """A phone's new connection (state initiated) dials ``dialled``."""
        assert leg.phone is not None and leg.line is not None
        called = self.device_for(dialled)
        call = self._new_call(leg.device_id, called, EventCause.NEW_CALL)
        leg.call = call
        call.parties.append(leg)
        leg.phone.emit(
            leg.line,
            m.ServiceInitiatedEvent(
                initiated_connection=leg.own,
                initiating_device=_dev(leg.device_id),
                local_connection_info=LCS.INITIATED,
                cause=cause,
            ),
        )
        leg.state = LCS.CONNECTED
        leg.phone.emit(
            leg.line,
            m.OriginatedEvent(
                originated_connection=leg.own,
                calling_device=_dev(leg.device_id),
                called_device=_dev(called),
                local_connection_info=LCS.CONNECTED,
                cause=cause,
            ),
        )
        self._deliver(call, dialled, now, 0)

    def _deliver(self, call: Call, dialled: str, now: float, depth: int) -> None:
        """Offer ``call`` (its parties are the calling side) to ``dialled``."""
        found = self.resolve(dialled)
        device = self.device_for(dialled)
        if depth > MAX_REDIRECTIONS:
            self._fail(call, device, EventCause.DEST_NOT_OBTAINABLE)
            return
        if found is None:
            number = self.number_of(dialled)
            if number in self.busy_numbers:
                self._fail(call, device, EventCause.BUSY)
                return
            party: Party = ExternalParty(
                device_id=device, state=LCS.ALERTING, call=call, number=number
            )
            call.parties.append(party)
            self._delivered(call, party)
            if self.external_answer_delay is not None:
                self.timers.append(Timer(now + self.external_answer_delay, "answer", party))
            return
        phone, line = found
        if not phone.online:
            self._fail(call, device, EventCause.DEST_OUT_OF_ORDER)
            return
        if any(isinstance(p, Leg) and p.line is line for p in call.parties):
            # A line calling itself (directly or via forwarding) gets busy, as on a real PBX.
            self._fail(call, device, EventCause.BUSY)
            return
        forward = line.forward_to(ForwardingType.FORWARD_IMMEDIATE)
        if forward is not None:
            self._divert_before_ringing(
                call,
                phone,
                line,
                forward,
                cause=EventCause.CALL_FORWARD_IMMEDIATE,
                now=now,
                depth=depth,
            )
            return
        if line.dnd:
            self._fail(call, device, EventCause.DO_NOT_DISTURB)
            return
        if line.busy:
            forward = line.forward_to(ForwardingType.FORWARD_BUSY)
            if forward is not None:
                self._divert_before_ringing(
                    call,
                    phone,
                    line,
                    forward,
                    cause=EventCause.CALL_FORWARD_BUSY,
                    now=now,
                    depth=depth,
                )
            else:
                self._fail(call, device, EventCause.BUSY)
            return
        leg = phone.new_leg(line, LCS.ALERTING)
        leg.call = call
        call.parties.append(leg)
        self._delivered(call, leg)
        if line.forward_to(ForwardingType.FORWARD_NO_ANS) is not None:
            self.timers.append(Timer(now + self.no_answer_timeout, "no_answer", leg))

    def _delivered(self, call: Call, alerting: Party) -> None:
        for party in call.parties:
            if not isinstance(party, Leg):
                continue
            assert party.phone is not None and party.line is not None
            party.phone.emit(
                party.line,
                m.DeliveredEvent(
                    connection=party.of(alerting.device_id),
                    alerting_device=_dev(alerting.device_id),
                    calling_device=_dev(call.calling),
                    called_device=_dev(call.called),
                    last_redirection_device=_dev(call.last_redirection),
                    local_connection_info=party.state,
                    cause=call.cause,
                ),
            )

    def _fail(self, call: Call, failing: str, cause: EventCause) -> None:
        """The call cannot reach ``failing``: the calling side hears busy / reorder."""
        for party in list(call.parties):
            party.state = LCS.FAIL
            if not isinstance(party, Leg):
                # An outside caller just gets a SIP error; it is gone.
                call.parties.remove(party)
                party.call = None
                continue
            assert party.phone is not None and party.line is not None
            party.phone.emit(
                party.line,
                m.FailedEvent(
                    failed_connection=party.of(failing),
                    failing_device=_dev(failing),
                    calling_device=_dev(call.calling),
                    called_device=_dev(call.called),
                    last_redirection_device=_dev(call.last_redirection),
                    local_connection_info=LCS.FAIL,
                    cause=cause,
                ),
            )
        self._end_if_empty(call)

    def _diverted(self, call: Call, diverting: Party, destination: str, cause: EventCause) -> None:
        for party in [*call.parties, diverting]:
            if not isinstance(party, Leg):
                continue
            assert party.phone is not None and party.line is not None
            own = party is diverting
            party.phone.emit(
                party.line,
                m.DivertedEvent(
                    connection=party.of(diverting.device_id),
                    diverting_device=_dev(diverting.device_id),
                    new_destination=_dev(destination),
                    calling_device=_dev(call.calling),
                    called_device=_dev(call.called),
                    last_redirection_device=_dev(call.last_redirection),
                    local_connection_info=LCS.NULL if own else party.state,
                    cause=cause,
                ),
            )

    def _divert_before_ringing(
        self,
        call: Call,
        phone: SimPhone,
        line: Line,
        forward: str,
        *,
        cause: EventCause,
        now: float,
        depth: int,
    ) -> None:
        """Forwarding immediate / busy: the phone turns the call away with its own callID."""
        leg = phone.new_leg(line, LCS.NULL)
        phone.drop_leg(leg)
        self._diverted(call, leg, self.device_for(forward), cause)
        call.last_redirection = line.device_id
        call.cause = cause
        self._deliver(call, forward, now, depth + 1)

    def deflect(self, leg: Leg, dialled: str, cause: EventCause, now: float) -> None:
        """The ringing ``leg`` sends its call on to ``dialled`` (DeflectCall, no-answer fwd)."""
        call = leg.call
        assert call is not None and leg.phone is not None
        self._cancel_timers(leg)
        call.parties.remove(leg)
        leg.call = None
        leg.phone.drop_leg(leg)
        self._diverted(call, leg, self.device_for(dialled), cause)
        call.last_redirection = leg.device_id
        call.cause = cause
        self._deliver(call, dialled, now, 0)

    def answer(self, party: Party, now: float) -> None:
        """The ringing ``party`` answers: Established on every phone in the call."""
        call = party.call
        assert call is not None and party.state == LCS.ALERTING
        self._cancel_timers(party)
        if isinstance(party, Leg):
            assert party.phone is not None
            party.phone.hold_others(party, now)
        party.state = LCS.CONNECTED
        for other in call.legs():
            assert other.phone is not None and other.line is not None
            other.phone.emit(
                other.line,
                m.EstablishedEvent(
                    established_connection=other.of(party.device_id),
                    answering_device=_dev(party.device_id),
                    calling_device=_dev(call.calling),
                    called_device=_dev(call.called),
                    last_redirection_device=_dev(call.last_redirection),
                    local_connection_info=other.state,
                    cause=call.cause,
                ),
            )

    # --- release -------------------------------------------------------------------------------

    def _remove(self, party: Party) -> None:
        self._cancel_timers(party)
        if party.call is not None and party in party.call.parties:
            party.call.parties.remove(party)
        party.call = None
        party.state = LCS.NULL
        if isinstance(party, Leg) and party.phone is not None:
            party.phone.drop_leg(party)

    def release(self, party: Party, now: float) -> None:
        """``party`` hangs up (ClearConnection); a two-party call ends for both."""
        call = party.call
        if call is None:
            return
        self._remove(party)
        if isinstance(party, Leg):
            self._cleared(party, party, LCS.NULL)
        remaining = list(call.parties)
        ends = len(remaining) == 1
        for other in remaining:
            if ends:
                self._remove(other)
            if isinstance(other, Leg):
                self._cleared(other, party, LCS.NULL if ends else other.state)
        self._end_if_empty(call)

    def _cleared(self, receiver: Leg, releasing: Party, state: LocalConnectionState) -> None:
        assert receiver.phone is not None and receiver.line is not None
        receiver.phone.emit(
            receiver.line,
            m.ConnectionClearedEvent(
                dropped_connection=receiver.of(releasing.device_id),
                releasing_device=_dev(releasing.device_id),
                local_connection_info=state,
                cause=NORMAL,
            ),
        )

    def clear_call(self, leg: Leg, now: float) -> None:
        """ClearCall: every connection of the call goes (CallCleared on every phone)."""
        call = leg.call
        if call is None:
            self.release(leg, now)
            return
        for party in list(call.parties):
            self._remove(party)
            if isinstance(party, Leg):
                assert party.phone is not None and party.line is not None
                party.phone.emit(
                    party.line,
                    m.CallClearedEvent(
                        cleared_call=ConnectionID(call_id=party.call_id),
                        cause=NORMAL,
                    ),
                )
        self._end_if_empty(call)

    # --- hold, retrieve ----------------------------------------------------------------------

    def hold(self, leg: Leg, now: float, cause: EventCause | None = None) -> None:
        assert leg.call is not None and leg.state == LCS.CONNECTED
        leg.state = LCS.HOLD
        for other in leg.call.legs():
            assert other.phone is not None and other.line is not None
            other.phone.emit(
                other.line,
                m.HeldEvent(
                    held_connection=other.of(leg.device_id),
                    holding_device=_dev(leg.device_id),
                    local_connection_info=other.state,
                    cause=cause,
                ),
            )

    def retrieve(self, leg: Leg, now: float, cause: EventCause | None = None) -> None:
        assert leg.call is not None and leg.state == LCS.HOLD
        leg.state = LCS.CONNECTED
        for other in leg.call.legs():
            assert other.phone is not None and other.line is not None
            other.phone.emit(
                other.line,
                m.RetrievedEvent(
                    retrieved_connection=other.of(leg.device_id),
                    retrieving_device=_dev(leg.device_id),
                    local_connection_info=other.state,
                    cause=cause,
                ),
            )

    # --- transfer, conference ------------------------------------------------------------------

    def transfer(self, held: Leg, active: Leg, now: float) -> None:
        """TransferCall at the phone of ``held``/``active``: its two far ends are joined."""
        primary, secondary = held.call, active.call
        assert primary is not None and secondary is not None
        (b,) = primary.others(held)
        (c,) = secondary.others(active)
        transferring = held.device_id
        self._remove(held)
        self._remove(active)
        self.calls.remove(secondary)
        primary.parties = [b, c]
        c.call = primary
        primary.calling, primary.called = b.device_id, c.device_id
        primary.last_redirection = transferring
        primary.cause = EventCause.TRANSFER
        assert held.phone is not None and held.line is not None
        held.phone.emit(
            held.line,
            m.TransferredEvent(
                primary_old_call=held.own,
                secondary_old_call=active.own,
                transferring_device=_dev(transferring),
                transferred_to_device=_dev(c.device_id),
                local_connection_info=LCS.NULL,
                cause=EventCause.TRANSFER,
            ),
        )
        for party, far in ((b, c), (c, b)):
            if not isinstance(party, Leg):
                continue
            assert party.phone is not None and party.line is not None
            party.phone.emit(
                party.line,
                m.TransferredEvent(
                    primary_old_call=party.of(transferring),
                    transferring_device=_dev(transferring),
                    transferred_to_device=_dev(c.device_id),
                    transferred_connections=(
                        ConnectionListItem(
                            new_connection=party.of(far.device_id),
                            old_connection=party.of(transferring),
                            endpoint=_dev(far.device_id),
                        ),
                    ),
                    local_connection_info=party.state,
                    cause=EventCause.TRANSFER,
                ),
            )

    def conference(self, held: Leg, active: Leg, now: float) -> tuple[ConnectionListItem, ...]:
        """ConferenceCall: the active call's far ends join the held call; all talk."""
        primary, secondary = held.call, active.call
        assert primary is not None and secondary is not None
        assert held.phone is not None and held.line is not None
        old_members = primary.others(held)
        added = secondary.others(active)
        conferencing = held.device_id
        self._remove(active)
        self.calls.remove(secondary)
        for party in added:
            party.call = primary
            primary.parties.append(party)
        held.state = LCS.CONNECTED
        items = tuple(
            ConnectionListItem(
                new_connection=held.of(p.device_id),
                old_connection=(active if p in added else held).of(p.device_id),
                endpoint=_dev(p.device_id),
            )
            for p in old_members + added
        )
        added_party = _dev(added[0].device_id) if added else None
        held.phone.emit(
            held.line,
            m.ConferencedEvent(
                primary_old_call=held.own,
                secondary_old_call=active.own,
                conferencing_device=_dev(conferencing),
                added_party=added_party,
                conference_connections=items,
                local_connection_info=LCS.CONNECTED,
                cause=EventCause.CONFERENCE,
            ),
        )
        for party in primary.legs():
            if party is held:
                continue
            assert party.phone is not None and party.line is not None
            party.phone.emit(
                party.line,
                m.ConferencedEvent(
                    primary_old_call=party.of(conferencing),
                    conferencing_device=_dev(conferencing),
                    added_party=added_party,
                    conference_connections=tuple(
                        ConnectionListItem(
                            new_connection=party.of(p.device_id), endpoint=_dev(p.device_id)
                        )
                        for p in primary.others(party)
                        if p is not held
                    ),
                    local_connection_info=party.state,
                    cause=EventCause.CONFERENCE,
                ),
            )
        return items

    def single_step_transfer(self, leg: Leg, dialled: str, now: float) -> str:
        """SingleStepTransferCall: ``leg`` leaves, its far end is delivered to ``dialled``."""
        call = leg.call
        assert call is not None and leg.phone is not None and leg.line is not None
        (far,) = call.others(leg)
        destination = self.device_for(dialled)
        transferring = leg.device_id
        self._remove(leg)
        cause = EventCause.SINGLE_STEP_TRANSFER
        leg.phone.emit(
            leg.line,
            m.TransferredEvent(
                primary_old_call=leg.own,
                transferring_device=_dev(transferring),
                transferred_to_device=_dev(destination),
                local_connection_info=LCS.NULL,
                cause=cause,
            ),
        )
        if isinstance(far, Leg):
            assert far.phone is not None and far.line is not None
            far.phone.emit(
                far.line,
                m.TransferredEvent(
                    primary_old_call=far.of(transferring),
                    transferring_device=_dev(transferring),
                    transferred_to_device=_dev(destination),
                    local_connection_info=far.state,
                    cause=cause,
                ),
            )
        call.calling, call.called = far.device_id, destination
        call.last_redirection = transferring
        call.cause = cause
        self._deliver(call, dialled, now, 0)
        return destination
