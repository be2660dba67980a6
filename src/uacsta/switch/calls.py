"""The call tracker: the calls of each line, built from the CSTA events its phone reports.

Owns what uacsta knows about calls (ECMA-269's call model: a call, its connections, their
local connection states, changed by the call-control events): per line and call, the parties,
the direction, the state, hold, the times, the links between calls (consultation, transfer,
conference, diversion) and how the call ended. It turns that into journal rows
(:class:`~uacsta.switch.callrecord.CallRecord`, one per call per line, written once when the
call ends there) and plain-words notices (:class:`~uacsta.switch.callrecord.CallNotice`).

Sans-IO: events and ``now`` (epoch seconds) go in, records, notices and synthesized
ConnectionCleared events come out; ``get_timer``/``handle_timer`` end calls that no event
ended. Events arrive after the switching function put their call IDs in the clients' space,
so a call ID is the one clients know, and a Yealink conference's ``a|b`` names both calls.

The rules follow ECMA-269's call flows where the phones do, and the phones where they do
not (``reference/yealink-uacsta-behaviour.md``, read from the firmware): Yealink names itself
as the releasing device, sends no ConnectionCleared after a diversion or a transfer, sends
FailedEvent with cause ``callCancelled`` whatever failed, and re-sends Established. A call
that ends by a plain clearing gets its outcome from :meth:`CallTracker._natural_outcome`, a
diverted or failed one from :func:`_diverted_outcome` / :func:`_failed_outcome`; transfer,
answer elsewhere, a lost phone and the idle timer set theirs where they happen.
"""

from __future__ import annotations

import functools
import logging
import uuid
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass, field

from uacsta.csta import messages as m
from uacsta.csta.types import (
    ConnectionID,
    DeviceIdentifier,
    EventCause,
    LocalConnectionState,
    SnapshotCallResponseInfo,
    SnapshotDeviceResponseInfo,
)
from uacsta.switch.callrecord import CallNotice, CallRecord, Direction, NoticeType, Outcome

__all__ = ["LOST_CAUSE", "CallTracker", "CallView", "TrackerOutput", "device_number"]

_NULL_LOGGER = logging.getLogger("uacsta.switch.calls")
_NULL_LOGGER.addHandler(logging.NullHandler())

#: The cause of the ConnectionCleared uacsta writes for a call lost with its phone. ECMA-285
#: has no "link lost" value; ``networkOutOfOrder`` (77) says the call met a network that is
#: out of order, which is what happened: the path to the phone failed. ``switchingFunction
#: Terminated`` would claim the phone ended the call, which nobody knows; ``destOutOfOrder``
#: names the far end, not ours.
LOST_CAUSE = EventCause.NETWORK_OUT_OF_ORDER
#: ``call.ended`` cause of a call that no event ended (timer) or that made room for a new one.
NO_EVENTS = "no events"
TOO_MANY_CALLS = "too many calls"

#: FailedEvent causes that make a call BUSY. ``userBusy`` is not ECMA-285 (Q.850 wording some
#: PBXs pass through); ``busy`` is.
_BUSY = frozenset({EventCause.BUSY.value, "userBusy"})
#: Causes that say the caller gave up or nobody answered in time: an incoming call is MISSED.
_GAVE_UP = frozenset(
    {
        EventCause.CALL_CANCELLED.value,
        EventCause.CALL_NOT_ANSWERED.value,
        EventCause.ALERT_TIME_EXPIRED.value,
    }
)
#: Clearing causes that say the ringing line refused the call (``callRejected`` is not
#: ECMA-285: Q.850 "call rejected" as some PBXs pass it on).
_DECLINED = _BUSY | {"callRejected"}
#: The conference form of a call ID (Yealink ``held|active``, see switch.callids).
_CONFERENCE_SEPARATOR = "|"


@dataclass(frozen=True, kw_only=True, slots=True)
class TrackerOutput:
    """What one input produced: finished calls, notices, and ConnectionCleared events uacsta
    made up for clients (``(line, event)``: fan it out to that line's monitors)."""

    records: tuple[CallRecord, ...] = ()
    notices: tuple[CallNotice, ...] = ()
    cleared: tuple[tuple[str, m.ConnectionClearedEvent], ...] = ()


@dataclass(frozen=True, kw_only=True, slots=True)
class CallView:
    """A call still up on a line (REST view, snapshots)."""

    call_id: str
    line: str
    phone: str
    #: None until an event tells (a call first seen on hold).
    direction: Direction | None
    state: LocalConnectionState | str
    remote_number: str | None
    remote_name: str | None
    #: The far end as the phone wrote it (``sip:+4930123@carrier.example``).
    remote_device: str | None
    started: float
    answered: float | None
    held: bool
    related: tuple[str, ...]
    #: The remote party is another line the tracker knows.
    internal: bool


@dataclass(slots=True)
class _Call:
    call_id: str
    line: str
    phone: str
    started: float
    last_event: float
    direction: Direction | None = None
    state: LocalConnectionState | str = LocalConnectionState.NULL
    held: bool = False
    answered: float | None = None
    remote_device: str | None = None
    remote_number: str | None = None
    remote_name: str | None = None
    related: list[str] = field(default_factory=list)
    #: The other calls of a conference this call is in (one per other party).
    conference: list[str] = field(default_factory=list)
    #: Decided before the end (diverted, transferred, failed in the ``fail`` state).
    outcome: Outcome | None = None
    target: str | None = None
    cause: str | None = None
    #: A FailedEvent said the caller cancelled (Yealink's form of "the caller gave up").
    gave_up: bool = False
    #: Notices given once per call (ringing, dialing, answered).
    told: set[NoticeType] = field(default_factory=set)

    def relate(self, call_id: str) -> None:
        if call_id != self.call_id and call_id not in self.related:
            self.related.append(call_id)


@dataclass(slots=True)
class _Line:
    line: str
    phone: str
    #: Registered with line_added: a party on it makes a call internal.
    known: bool = False
    calls: dict[str, _Call] = field(default_factory=dict)
    #: Another call ID (a conference's or transfer's new connection) -> the calls it names.
    aliases: dict[str, tuple[str, ...]] = field(default_factory=dict)
    #: Call IDs that ended here (bounded): a repeated or late event must not revive them.
    ended: OrderedDict[str, None] = field(default_factory=OrderedDict)
    dnd: bool | None = None
    forwarding: dict[str, tuple[bool | None, str | None]] = field(default_factory=dict)
    #: The phone's ConnectionCleared says who hung up (see :meth:`CallTracker.line_added`).
    names_releasing_device: bool = True


@dataclass(slots=True)
class _Out:
    records: list[CallRecord] = field(default_factory=list)
    notices: list[CallNotice] = field(default_factory=list)
    cleared: list[tuple[str, m.ConnectionClearedEvent]] = field(default_factory=list)

    def result(self) -> TrackerOutput:
        return TrackerOutput(
            records=tuple(self.records), notices=tuple(self.notices), cleared=tuple(self.cleared)
        )


class CallTracker:
    """The calls of every line, fed with the events the switching function relays."""

    def __init__(
        self,
        *,
        id_factory: Callable[[], str] | None = None,
        max_calls_per_line: int = 16,
        max_idle: float = 12 * 3600.0,
        logger: logging.Logger | logging.LoggerAdapter[logging.Logger] | None = None,
    ) -> None:
        self._new_id = id_factory or _uuid_hex
        self.max_calls_per_line = max_calls_per_line
        self.max_idle = max_idle
        self.log = logger or _NULL_LOGGER
        self._lines: dict[str, _Line] = {}
        #: Number (user part, tel alias) -> known lines with it, for internal calls.
        self._numbers: dict[str, set[str]] = {}

    # ------------------------------------------------------------------ lines and phones
    def line_added(self, phone: str, line: str, *, names_releasing_device: bool = True) -> None:
        """``line`` belongs to ``phone``; calls to or from it are internal.

        ``names_releasing_device=False``: the phone's ConnectionCleared names the line as
        releasing device whoever hung up (Yealink), so it does not tell a declined call from
        one the caller gave up: an unanswered incoming call it clears counts as missed."""
        st = self._line(phone, line)
        st.phone = phone
        st.names_releasing_device = names_releasing_device
        if not st.known:
            st.known = True
            for number in _line_numbers(line):
                self._numbers.setdefault(number, set()).add(line)

    def line_removed(self, line: str, now: float) -> TrackerOutput:
        """The line left the switching function: its calls end as lost, its state goes."""
        out = _Out()
        st = self._lines.pop(line, None)
        if st is not None:
            for call in list(st.calls.values()):
                self._lost(st, call, now, out)
            for number in _line_numbers(line):
                lines = self._numbers.get(number)
                if lines is not None:
                    lines.discard(line)
                    if not lines:
                        del self._numbers[number]
        return out.result()

    def phone_lost(self, phone: str, now: float) -> TrackerOutput:
        """The phone's link is gone: every call on its lines ends (LOST_WITH_PHONE), and
        clients get a ConnectionCleared per call, since the phone will not send one."""
        out = _Out()
        for st in self._lines.values():
            for call in list(st.calls.values()):
                if call.phone == phone:
                    self._lost(st, call, now, out)
        return out.result()

    # ------------------------------------------------------------------ events
    def event(self, phone: str, line: str, event: m.CstaEvent, now: float) -> TrackerOutput:
        """One event the phone reported for ``line`` (call IDs in the clients' space)."""
        out = _Out()
        st = self._line(phone, line)
        st.phone = phone  # the switch relays a line's events from its owner only
        match event:
            case m.DeliveredEvent():
                self._delivered(st, event, now, out)
            case m.EstablishedEvent():
                self._established(st, event, now, out)
            case m.ServiceInitiatedEvent():
                self._outgoing(st, event.initiated_connection, None, now, out, dialing=False)
            case m.OriginatedEvent():
                self._outgoing(st, event.originated_connection, event.called_device, now, out)
            case m.NetworkReachedEvent():
                self._outgoing(st, event.outbound_connection, event.called_device, now, out)
            case m.ConnectionClearedEvent():
                self._connection_cleared(st, event, now, out)
            case m.CallClearedEvent():
                for call in self._find(st, event.cleared_call):
                    self._end(st, call, now, out, cause=_text(event.cause))
            case m.HeldEvent():
                self._held(st, event, now, out)
            case m.RetrievedEvent():
                self._retrieved(st, event, now, out)
            case m.DivertedEvent():
                self._diverted(st, event, now, out)
            case m.FailedEvent():
                self._failed(st, event, now, out)
            case m.TransferredEvent():
                self._transferred(st, event, now, out)
            case m.ConferencedEvent():
                self._conferenced(st, event, now, out)
            case m.DoNotDisturbEvent():
                self._dnd(st, event, now, out)
            case m.ForwardingEvent():
                self._forwarding(st, event, now, out)
            case _:
                pass  # other events say nothing about the journal (DigitsGenerated, MWI...)
        return out.result()

    # ------------------------------------------------------------------ views
    def calls(self, line: str | None = None) -> list[CallView]:
        """The calls up now, on ``line`` or on every line (in the order they started)."""
        lines = self._lines.values() if line is None else [self._lines.get(line)]
        return [self._view(c) for st in lines if st is not None for c in st.calls.values()]

    def snapshot_device(self, line: str) -> m.SnapshotDeviceResponse:
        """SnapshotDevice answered from tracked state (ECMA-269 §16): one item per call,
        with the line's connection, the far end and the line's connection state."""
        st = self._lines.get(line)
        calls = st.calls.values() if st is not None else ()
        return m.SnapshotDeviceResponse(
            snapshot_data=tuple(
                SnapshotDeviceResponseInfo(
                    connection_identifier=ConnectionID(call.call_id, line),
                    endpoint_device=_device(call.remote_device),
                    local_connection_state=call.state,
                )
                for call in calls
            )
        )

    def snapshot_call(self, call_id: str) -> m.SnapshotCallResponse | None:
        """SnapshotCall answered from tracked state (ECMA-269 §16): each tracked line on
        the call, then the far end with the state it must be in; None for an unknown call."""
        infos: list[SnapshotCallResponseInfo] = []
        remotes: list[SnapshotCallResponseInfo] = []
        for st in self._lines.values():
            call = st.calls.get(call_id)
            if call is None:
                continue
            infos.append(
                SnapshotCallResponseInfo(
                    device_on_call=DeviceIdentifier(st.line),
                    call_identifier=ConnectionID(call_id, st.line),
                    local_connection_state=call.state,
                )
            )
            remote_state = _remote_state(call)
            if call.remote_device and remote_state is not None:
                remotes.append(
                    SnapshotCallResponseInfo(
                        device_on_call=DeviceIdentifier(call.remote_device),
                        call_identifier=ConnectionID(call_id, call.remote_device),
                        local_connection_state=remote_state,
                    )
                )
        if not infos:
            return None
        # A call between two tracked lines names each line once, not also as a far end.
        lines = {i.device_on_call for i in infos}
        infos.extend(r for r in remotes if r.device_on_call not in lines)
        return m.SnapshotCallResponse(snapshot_data=tuple(infos))

    # ------------------------------------------------------------------ timer
    def get_timer(self) -> float | None:
        """When the longest-idle call is to be given up, or None with no calls."""
        lasts = [c.last_event for st in self._lines.values() for c in st.calls.values()]
        return min(lasts) + self.max_idle if lasts else None

    def handle_timer(self, now: float) -> TrackerOutput:
        """End calls with no event for ``max_idle``: a missed ConnectionCleared must not keep
        a call (and a line's slot) forever. The record ends at the last event seen, the last
        moment the call was known to exist, so its durations are not inflated by the wait."""
        out = _Out()
        for st in self._lines.values():
            for call in list(st.calls.values()):
                if now >= call.last_event + self.max_idle:
                    self.log.info(
                        "call %s on %s: no event for %ss",
                        call.call_id,
                        st.line,
                        now - call.last_event,
                    )
                    idle = call.outcome is None
                    self._end(
                        st,
                        call,
                        now,
                        out,
                        outcome=Outcome.FAILED if idle else None,
                        cause=NO_EVENTS if idle else None,
                        ended=call.last_event,
                    )
        return out.result()

    # ------------------------------------------------------------------ call events
    def _delivered(self, st: _Line, e: m.DeliveredEvent, now: float, out: _Out) -> None:
        # Yealink: incoming = alerting device local, state alerting; ringback of an outgoing
        # call = alerting device remote, state connected (behaviour doc, "Events").
        alerting = _value(e.alerting_device)
        if alerting is not None:
            incoming = _is_self(st.line, alerting)
        elif e.local_connection_info is not None:
            incoming = e.local_connection_info == LocalConnectionState.ALERTING
        else:
            incoming = not _is_self(st.line, _value(e.calling_device))
        if not incoming:
            self._outgoing(st, e.connection, e.called_device or e.alerting_device, now, out)
            return
        call = self._call(st, e.connection, now, out, create=True)
        if call is None or call.answered is not None:
            return  # a recall or a re-sent state of an answered call rings nothing here
        if call.direction is None:
            call.direction = Direction.INCOMING
        if call.direction is not Direction.INCOMING:
            return
        call.state = LocalConnectionState.ALERTING
        self._remote(call, e.calling_device)
        self._once(call, NoticeType.CALL_RINGING, now, out)

    def _outgoing(
        self,
        st: _Line,
        connection: ConnectionID | None,
        called: DeviceIdentifier | None,
        now: float,
        out: _Out,
        *,
        dialing: bool = True,
    ) -> None:
        call = self._call(st, connection, now, out, create=True)
        if call is None or call.answered is not None:
            return
        if call.direction is None:
            call.direction = Direction.OUTGOING
            # A new call while another is held on the line is a consultation (ECMA-269
            # ConsultationCall holds one call and originates another).
            for other in st.calls.values():
                if other is not call and other.held:
                    other.relate(call.call_id)
                    call.relate(other.call_id)
        if call.direction is not Direction.OUTGOING:
            return
        if dialing:
            call.state = LocalConnectionState.CONNECTED  # the caller's side during ringback
        elif call.state == LocalConnectionState.NULL:
            call.state = LocalConnectionState.INITIATED  # off-hook, nothing dialled yet
        self._remote(call, called)
        if dialing:
            self._once(call, NoticeType.CALL_DIALING, now, out)

    def _established(self, st: _Line, e: m.EstablishedEvent, now: float, out: _Out) -> None:
        answering = _value(e.answering_device)
        call = self._call(st, e.established_connection, now, out, create=True)
        if call is None:
            return
        answered_here = answering is None or _is_self(st.line, answering)
        if call.direction is None:
            if answering is not None:
                call.direction = Direction.INCOMING if answered_here else Direction.OUTGOING
            elif _is_self(st.line, _value(e.calling_device)):
                call.direction = Direction.OUTGOING
            else:
                call.direction = Direction.INCOMING
        if (
            call.direction is Direction.INCOMING
            and call.answered is None
            and not answered_here
            and answering is not None
        ):
            # Rang here, answered by another device (group call, pickup): ECMA-269 reports
            # Established with the answering device at every monitor of the call.
            call.outcome = Outcome.ANSWERED_ELSEWHERE
            call.target = device_number(answering)
            self._end(st, call, now, out, cause=_text(e.cause))
            return
        if call.direction is Direction.INCOMING:
            self._remote(call, e.calling_device)
        else:
            self._remote(call, e.called_device or e.answering_device)
        call.state = LocalConnectionState.CONNECTED
        call.held = False
        if call.answered is None:
            call.answered = now
        self._once(call, NoticeType.CALL_ANSWERED, now, out)

    def _connection_cleared(
        self, st: _Line, e: m.ConnectionClearedEvent, now: float, out: _Out
    ) -> None:
        calls = self._find(st, e.dropped_connection)
        if not calls:
            return
        dropped = e.dropped_connection.device_id if e.dropped_connection else None
        releasing = _value(e.releasing_device)
        cause = _text(e.cause)
        if dropped is not None and not _is_self(st.line, dropped):
            # Another party's connection ended (ECMA-269: the far end hung up). In a
            # conference only the call to that party ends (Yealink sends this for a member
            # leaving: dropped = the conference ID with the member's URI; ECMA-269 keeps the
            # conference under one call ID); in a two-party call the line's call is over.
            members = _unique(
                calls + [st.calls[k] for c in calls for k in c.conference if k in st.calls]
            )
            if len(members) > 1:
                calls = [c for c in members if _same_party(c, dropped)]
            for call in calls:
                self._end(st, call, now, out, by_line=False, cause=cause)
            return
        if releasing is None or not st.names_releasing_device:
            by_line = None  # nobody says (or the phone always names itself): the cause decides
        else:
            by_line = _is_self(st.line, releasing)
        # The line's own connection ended: it left the whole call, a conference's every
        # member call included (ECMA-269: one connection of the device in the conference).
        members = _unique(
            calls + [st.calls[k] for c in calls for k in c.conference if k in st.calls]
        )
        for call in members:
            self._end(st, call, now, out, by_line=by_line, cause=cause)

    def _held(self, st: _Line, e: m.HeldEvent, now: float, out: _Out) -> None:
        holder = _value(e.holding_device)
        call = self._call(st, e.held_connection, now, out, create=True, seen_connected=True)
        if call is None or (holder is not None and not _is_self(st.line, holder)):
            return  # the far end holding us leaves our connection connected
        call.state = LocalConnectionState.HOLD
        if not call.held:
            call.held = True
            out.notices.append(self._notice(NoticeType.CALL_HELD, call, now))

    def _retrieved(self, st: _Line, e: m.RetrievedEvent, now: float, out: _Out) -> None:
        retriever = _value(e.retrieving_device)
        call = self._call(st, e.retrieved_connection, now, out, create=True, seen_connected=True)
        if call is None or (retriever is not None and not _is_self(st.line, retriever)):
            return
        call.state = LocalConnectionState.CONNECTED
        if call.held:
            call.held = False
            out.notices.append(self._notice(NoticeType.CALL_RETRIEVED, call, now))

    def _diverted(self, st: _Line, e: m.DivertedEvent, now: float, out: _Out) -> None:
        diverting = _value(e.diverting_device)
        if diverting is not None and not _is_self(st.line, diverting):
            # Diverted elsewhere (our outgoing call forwarded by the far end, or a call
            # forwarded to us): our connection goes on.
            for call in self._find(st, e.connection):
                call.last_event = now
            return
        calls = self._find(st, e.connection)
        if not calls:
            # Forwarded at once (ECMA-269: DivertedEvent without a Delivered here first).
            new = self._call(st, e.connection, now, out, create=True)
            if new is None:
                return
            new.direction = Direction.INCOMING
            self._remote(new, e.calling_device)
            calls = [new]
        for call in calls:
            # ECMA-269: the diverting device's connection is cleared by the diversion; Yealink
            # sends no ConnectionCleared after it.
            call.outcome = _diverted_outcome(e.cause)
            call.target = device_number(_value(e.new_destination))
            self._end(st, call, now, out, cause=_text(e.cause))

    def _failed(self, st: _Line, e: m.FailedEvent, now: float, out: _Out) -> None:
        cause = _text(e.cause)
        # Yealink sends FailedEvent (cause callCancelled) in the incoming form whatever the
        # direction, so a FailedEvent creates a call only when it says busy (Yealink never
        # does): the standard report of a call refused by a busy device.
        create = cause in _BUSY
        call = self._call(st, e.failed_connection, now, out, create=create)
        if call is None:
            return
        if call.direction is None:
            outgoing = _is_self(st.line, _value(e.calling_device))
            call.direction = Direction.OUTGOING if outgoing else Direction.INCOMING
            self._remote(call, e.called_device if outgoing else e.calling_device)
        call.outcome = _failed_outcome(call, cause)
        call.gave_up = cause in _GAVE_UP
        call.cause = cause
        if e.local_connection_info == LocalConnectionState.FAIL:
            # ECMA-269: the connection stays in Fail until the user hangs up (busy tone);
            # the ConnectionCleared that follows ends the call with this outcome.
            call.state = LocalConnectionState.FAIL
            return
        self._end(st, call, now, out, cause=cause)

    def _transferred(self, st: _Line, e: m.TransferredEvent, now: float, out: _Out) -> None:
        calls = _unique(self._find(st, e.primary_old_call) + self._find(st, e.secondary_old_call))
        transferring = _value(e.transferring_device)
        if transferring is not None and not _is_self(st.line, transferring):
            # Someone transferred us: our connection goes on, maybe under a new call ID.
            for call in calls:
                call.last_event = now
                for old in (e.primary_old_call, e.secondary_old_call):
                    if old is not None and old.call_id:
                        call.relate(old.call_id)
            self._alias(st, calls, e.transferred_connections)
            return
        to = device_number(_value(e.transferred_to_device))
        for call in calls:
            others = [c for c in calls if c is not call]
            for other in others:
                call.relate(other.call_id)
            # Attended: each call went to the party of the other one (whichever Yealink
            # names primary); blind: to the transferred-to device.
            targets = [o.remote_number for o in others if o.remote_number]
            call.outcome = Outcome.TRANSFERRED
            call.target = targets[0] if targets else to
            # Yealink sends no ConnectionCleared for a transferred call: it ends here.
            self._end(st, call, now, out, cause=_text(e.cause))

    def _conferenced(self, st: _Line, e: m.ConferencedEvent, now: float, out: _Out) -> None:
        calls = _unique(self._find(st, e.primary_old_call) + self._find(st, e.secondary_old_call))
        for call in calls:
            call.last_event = now
            for other in calls:
                call.relate(other.call_id)
                if other is not call and other.call_id not in call.conference:
                    call.conference.append(other.call_id)
            call.state = LocalConnectionState.CONNECTED
            if call.answered is None:
                call.answered = now
            if call.held:
                # The held call joins the conference: it is no longer held.
                call.held = False
                out.notices.append(self._notice(NoticeType.CALL_RETRIEVED, call, now))
        self._alias(st, calls, e.conference_connections)

    # ------------------------------------------------------------------ device features
    def _dnd(self, st: _Line, e: m.DoNotDisturbEvent, now: float, out: _Out) -> None:
        on = e.do_not_disturb_on
        if on is None or on == st.dnd:
            return  # nothing said, or the state the phone already reported
        st.dnd = on
        out.notices.append(
            CallNotice(
                type=NoticeType.DND_CHANGED, at=now, line=st.line, phone=st.phone, data={"on": on}
            )
        )

    def _forwarding(self, st: _Line, e: m.ForwardingEvent, now: float, out: _Out) -> None:
        kind = _text(e.forwarding_type)
        to = device_number(e.forward_to)  # Yealink writes "tel:" + target ("tel:" when none)
        key = kind or ""
        state = (e.forward_status, to)
        if st.forwarding.get(key) == state:
            return
        st.forwarding[key] = state
        out.notices.append(
            CallNotice(
                type=NoticeType.FORWARDING_CHANGED,
                at=now,
                line=st.line,
                phone=st.phone,
                data={"type": kind, "on": e.forward_status, "to": to},
            )
        )

    # ------------------------------------------------------------------ the end of a call
    def _end(
        self,
        st: _Line,
        call: _Call,
        now: float,
        out: _Out,
        *,
        outcome: Outcome | None = None,
        by_line: bool | None = None,
        cause: str | None = None,
        ended: float | None = None,
    ) -> CallRecord:
        """The call is over on this line: its one record, ``call.missed`` for a missed call,
        then ``call.ended`` for every call (missed ones included)."""
        del st.calls[call.call_id]
        st.ended[call.call_id] = None
        while len(st.ended) > 4 * self.max_calls_per_line:
            st.ended.popitem(last=False)
        for alias, keys in list(st.aliases.items()):
            rest = tuple(k for k in keys if k in st.calls)
            if rest:
                st.aliases[alias] = rest
            else:
                del st.aliases[alias]
        final = outcome or call.outcome or self._natural_outcome(call, by_line, cause)
        record = CallRecord(
            id=self._new_id(),
            line=call.line,
            phone=call.phone,
            call_id=call.call_id,
            direction=call.direction or Direction.OUTGOING,
            remote_number=call.remote_number,
            remote_name=call.remote_name,
            started=call.started,
            answered=call.answered,
            ended=now if ended is None else ended,
            outcome=final,
            target=call.target,
            # A cause that decided the outcome (busy) beats the plain clearing's that follows.
            cause=call.cause if call.outcome is not None and call.cause else cause,
            related=tuple(call.related),
            internal=self._internal(call),
        )
        out.records.append(record)
        if final is Outcome.MISSED:
            out.notices.append(self._notice(NoticeType.CALL_MISSED, call, now, record))
        out.notices.append(self._notice(NoticeType.CALL_ENDED, call, now, record))
        return record

    @staticmethod
    def _natural_outcome(call: _Call, by_line: bool | None, cause: str | None) -> Outcome:
        """How a call ended by a plain clearing went, when no event decided it before.

        Answered: ANSWERED (a conference stays answered). Incoming, unanswered: REJECTED
        when the line released it while it rang (ECMA-269: ClearConnection on the alerting
        connection; Yealink names itself releasing device for a declined call), or when
        nobody says who released it but the cause is a refusal (``busy``, ``userBusy``,
        ``callRejected``: a phone declining with 486/603), unless a FailedEvent said the
        caller cancelled; else MISSED (the caller's connection cleared, or nobody says who).
        Outgoing, unanswered: CANCELLED when the line released it, else UNANSWERED. An
        unknown direction counts as outgoing, so that a call of unknown origin never raises a
        false missed-call alert.
        """
        if call.answered is not None:
            return Outcome.ANSWERED
        if call.direction is Direction.INCOMING:
            declined = by_line if by_line is not None else cause in _DECLINED
            return Outcome.REJECTED if declined and not call.gave_up else Outcome.MISSED
        return Outcome.CANCELLED if by_line else Outcome.UNANSWERED

    def _lost(self, st: _Line, call: _Call, now: float, out: _Out) -> None:
        self._end(st, call, now, out, outcome=Outcome.LOST_WITH_PHONE, cause=LOST_CAUSE.value)
        out.cleared.append(
            (
                st.line,
                m.ConnectionClearedEvent(
                    dropped_connection=ConnectionID(call.call_id, st.line),
                    releasing_device=DeviceIdentifier(st.line),
                    local_connection_info=LocalConnectionState.NULL,
                    cause=LOST_CAUSE,
                ),
            )
        )

    # ------------------------------------------------------------------ helpers
    def _line(self, phone: str, line: str) -> _Line:
        st = self._lines.get(line)
        if st is None:
            st = self._lines[line] = _Line(line=line, phone=phone)
        return st

    def _find(self, st: _Line, connection: ConnectionID | None) -> list[_Call]:
        """The live calls a connection names: its call ID, each part of a conference ID
        ``a|b``, or an alias; the line's only call when the phone left the call ID out."""
        call_id = connection.call_id if connection is not None else None
        if not call_id:
            return list(st.calls.values()) if len(st.calls) == 1 else []
        found: list[_Call] = []
        for part in call_id.split(_CONFERENCE_SEPARATOR):
            call = st.calls.get(part)
            if call is not None:
                found.append(call)
            else:
                found.extend(st.calls[k] for k in st.aliases.get(part, ()) if k in st.calls)
        return _unique(found)

    def _call(
        self,
        st: _Line,
        connection: ConnectionID | None,
        now: float,
        out: _Out,
        *,
        create: bool,
        seen_connected: bool = False,
    ) -> _Call | None:
        """The call an event is about (``last_event`` updated), a new one when ``create``
        and the ID is new here; None for an event about no call we keep."""
        found = self._find(st, connection)
        if found:
            for call in found:
                call.last_event = now
            return found[0]
        call_id = connection.call_id if connection is not None else None
        if (
            not create
            or not call_id
            or _CONFERENCE_SEPARATOR in call_id
            or call_id in st.ended  # a repeated or late event of a call that ended here
        ):
            return None
        if len(st.calls) >= self.max_calls_per_line:
            oldest = min(st.calls.values(), key=lambda c: c.last_event)
            self.log.warning(
                "line %s has %d calls: call %s ends to make room for %s",
                st.line,
                len(st.calls),
                oldest.call_id,
                call_id,
            )
            self._end(st, oldest, now, out, outcome=Outcome.FAILED, cause=TOO_MANY_CALLS)
        call = _Call(call_id=call_id, line=st.line, phone=st.phone, started=now, last_event=now)
        if seen_connected:
            # First seen on hold or retrieved (monitor started mid-call): it was answered.
            call.answered = now
            call.state = LocalConnectionState.CONNECTED
        st.calls[call_id] = call
        return call

    @staticmethod
    def _alias(st: _Line, calls: list[_Call], items: tuple[object, ...]) -> None:
        """New call IDs of a conference or transfer's connection list name the old calls."""
        keys = tuple(c.call_id for c in calls)
        for item in items:
            new = getattr(item, "new_connection", None)
            new_id = new.call_id if isinstance(new, ConnectionID) else None
            if keys and new_id and new_id not in st.calls and _CONFERENCE_SEPARATOR not in new_id:
                st.aliases[new_id] = keys

    @staticmethod
    def _remote(call: _Call, device: DeviceIdentifier | None) -> None:
        """Take the far end from the first event that names it."""
        value = _value(device)
        if call.remote_device is not None or value is None or _is_self(call.line, value):
            return
        call.remote_device = value
        call.remote_number, call.remote_name = split_device(value)

    def _once(self, call: _Call, kind: NoticeType, now: float, out: _Out) -> None:
        if kind not in call.told:
            call.told.add(kind)
            out.notices.append(self._notice(kind, call, now))

    def _notice(
        self, kind: NoticeType, call: _Call, now: float, record: CallRecord | None = None
    ) -> CallNotice:
        return CallNotice(
            type=kind,
            at=now,
            line=call.line,
            phone=call.phone,
            call_id=call.call_id,
            direction=call.direction,
            remote_number=call.remote_number,
            remote_name=call.remote_name,
            record=record,
        )

    def _internal(self, call: _Call) -> bool:
        lines = self._numbers.get(call.remote_number or "")
        return bool(lines) and any(line != call.line for line in lines or ())

    def _view(self, call: _Call) -> CallView:
        return CallView(
            call_id=call.call_id,
            line=call.line,
            phone=call.phone,
            direction=call.direction,
            state=call.state,
            remote_number=call.remote_number,
            remote_name=call.remote_name,
            remote_device=call.remote_device,
            started=call.started,
            answered=call.answered,
            held=call.held,
            related=tuple(call.related),
            internal=self._internal(call),
        )


# ---------------------------------------------------------------------- outcome rules
def _diverted_outcome(cause: object) -> Outcome:
    """A diversion away from the line (ECMA-285 causes): by the forwarding settings
    (``callForward*``, ``aCDForward``) FORWARDED; picked up elsewhere (``callPickup``)
    ANSWERED_ELSEWHERE; anything else, ``redirected`` and Yealink's ``normal`` for the
    DeflectCall it carried out included, DEFLECTED."""
    text = (_text(cause) or "").lower()
    if text.startswith(("callforward", "forward")) or text == "acdforward":
        return Outcome.FORWARDED
    if text == "callpickup":
        return Outcome.ANSWERED_ELSEWHERE
    return Outcome.DEFLECTED


def _failed_outcome(call: _Call, cause: str | None) -> Outcome:
    """A FailedEvent: BUSY for ``busy``/``userBusy`` either way; an outgoing call that
    failed before an answer is UNANSWERED; an incoming one MISSED when the caller gave up
    (``callCancelled``, ``callNotAnswered``, ``alertTimeExpired``); anything else FAILED."""
    if cause in _BUSY:
        return Outcome.BUSY
    if call.answered is not None:
        return Outcome.FAILED
    if call.direction is Direction.INCOMING:
        return Outcome.MISSED if cause in _GAVE_UP else Outcome.FAILED
    return Outcome.UNANSWERED


def _remote_state(call: _Call) -> LocalConnectionState | None:
    """The far end's connection state as the line's implies it (ECMA-269 call model)."""
    if call.answered is not None or call.direction is Direction.INCOMING:
        return LocalConnectionState.CONNECTED
    if call.state == LocalConnectionState.CONNECTED:
        return LocalConnectionState.ALERTING  # ringback: we are connected, they ring
    return None


# ---------------------------------------------------------------------- devices
def split_device(value: str | None) -> tuple[str | None, str | None]:
    """(number, name) of a device as phones write it.

    ``sip:200@pbx:5060`` -> ``200``; ``tel:+4930123;phone-context=x`` -> ``+4930123``;
    ``"Alice" <sip:200@pbx>`` -> ``("200", "Alice")``; OpenScape's
    ``N<302118840101>;displayNumber=...`` -> ``302118840101``; a bare ``200`` stays.
    """
    if not value:
        return None, None
    text = value.strip()
    name: str | None = None
    lt = text.find("<")
    gt = text.find(">", lt + 1) if lt >= 0 else -1
    if gt > lt >= 0:
        head = text[:lt].strip().strip('"').strip()
        if head and head != "N":
            name = head
        text = text[lt + 1 : gt]
    lower = text.lower()
    for scheme in ("sips:", "sip:", "tel:"):
        if lower.startswith(scheme):
            text = text[len(scheme) :]
            break
    number = text.split("@", 1)[0].split(";", 1)[0].strip()
    return number or None, name


def device_number(value: str | None) -> str | None:
    """The number of a device (see :func:`split_device`)."""
    return split_device(value)[0]


def _host(value: str) -> str | None:
    text = value.strip()
    lt = text.find("<")
    if lt >= 0:
        text = text[lt + 1 :].split(">", 1)[0]
    if "@" not in text:
        return None
    host = text.split("@", 1)[1]
    for stop in (":", ";", ">"):
        host = host.split(stop, 1)[0]
    return host.lower() or None


@functools.lru_cache(maxsize=4096)
def _line_numbers(line: str) -> frozenset[str]:
    """The numbers a line answers to: its user part and a Yealink ``;tel=`` alias."""
    numbers = {n for n in (device_number(line),) if n}
    for param in line.split(";")[1:]:
        key, _, value = param.partition("=")
        if key.strip().lower() == "tel":
            tel = device_number(value)
            if tel:
                numbers.add(tel)
    return frozenset(numbers)


def _is_self(line: str, value: str | None) -> bool:
    """Whether ``value`` names the line: the same string, or the same number on the same
    host (either side may leave the host or a port out; Yealink cuts ``;tel=``)."""
    if value is None:
        return False
    if value == line:
        return True
    number = device_number(value)
    if number is None or number not in _line_numbers(line):
        return False
    host, line_host = _host(value), _host(line)
    return host is None or line_host is None or host == line_host


def _same_party(call: _Call, device: str) -> bool:
    if call.remote_device is None:
        return False
    return call.remote_device == device or device_number(device) == call.remote_number


def _value(device: DeviceIdentifier | None) -> str | None:
    return device.value if device is not None and device.is_known else None


def _device(value: str | None) -> DeviceIdentifier | None:
    return DeviceIdentifier(value) if value else None


def _text(value: object) -> str | None:
    return None if value is None else str(value)


def _unique(calls: list[_Call]) -> list[_Call]:
    seen: set[str] = set()
    result = []
    for call in calls:
        if call.call_id not in seen:
            seen.add(call.call_id)
            result.append(call)
    return result


def _uuid_hex() -> str:
    return uuid.uuid4().hex
