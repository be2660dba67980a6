"""The adapter around the switching function: gateways on one side, phone links on the other.

It runs the pure :class:`SwitchingFunction` and carries out its actions: ``ToClient`` to the
client's gateway sink, ``FanOut`` to every monitoring client's sink (``deliver_event``: the
event object shared by all, each with its cross-ref), ``ToPhone`` to the phone's channel, whose
answer (or failure) is fed back. Adding a gateway never touches this module or the switch.
"""

from __future__ import annotations

import functools
import logging
import time
from collections.abc import Callable, Hashable, Iterable, Mapping
from typing import Protocol, cast

from uacsta.csta import messages as m
from uacsta.ratelog import RateLimitedLog
from uacsta.switch.callrecord import CallNotice, CallRecord
from uacsta.switch.devices import LineConflict
from uacsta.switch.function import (
    FanOut,
    Journal,
    Notify,
    SwitchAction,
    SwitchingFunction,
    ToClient,
    ToPhone,
)

log = logging.getLogger("uacsta.hub")
#: Line conflicts are reported by phones, which an attacker may hold: rate-limited per phone.
conflict_log = RateLimitedLog(log)


class ClientSink(Hashable, Protocol):
    """What a gateway gives the hub for each connected client (hashable: it is the client ID)."""

    def deliver(self, action: ToClient) -> None:
        """An answer to the client's invoke, or a message of the switch (events included)."""

    def deliver_event(self, event: m.CstaEvent, xref: str) -> None:
        """A fanned-out phone event and the client's monitorCrossRefID for it: ``event`` is the
        same object for every client of the fan-out (encode it once, put in each cross-ref).
        A sink that wants whole actions delivers ``event_to_client(self, event, xref)``."""

    def deliver_notice(self, notice: CallNotice) -> None:
        """A normalized notice (``call.*``...) about a line the client monitors (a gateway
        without such events ignores it)."""


class PhoneChannel(Protocol):
    """A ready phone link, as the hub relays requests through it."""

    def refusal(self, request: m.CstaRequest) -> tuple[m.CSTAErrorCode, str] | None:
        """The error and its reason (the client's detail) for a request answered without
        sending it (a service the phone lacks, a request its vendor leaves unanswered)."""

    def csta_request_then(
        self, request: m.CstaRequest, done: Callable[[m.CstaMessage], None]
    ) -> None:
        """Send ``request``; call ``done`` once with the answer or a ``CSTAErrorCode`` (also
        for a timeout), as soon as the phone's answer is read, before the phone's later
        events: clients get the answer first, and no task is needed per request."""


class PhoneObserver(Protocol):
    """Who learns of every phone's lifecycle and events besides the switch (the cluster node,
    which shares them with the other nodes), and says which phones this node owns."""

    def is_local(self, phone: str) -> bool:
        """The phone is linked here (not mirrored from another node): its calls are journaled
        and its notices published here."""

    def phone_ready(
        self,
        phone: str,
        channel: PhoneChannel,
        lines: list[str],
        aliases: Mapping[str, Iterable[str]] | None,
    ) -> None: ...

    def phone_lines_changed(
        self, phone: str, lines: list[str], aliases: Mapping[str, Iterable[str]] | None
    ) -> None: ...

    def phone_lost(self, phone: str, reason: str) -> None: ...

    def phone_event(self, phone: str, event: m.CstaEvent) -> None: ...


class SwitchHub:
    def __init__(
        self,
        switch: SwitchingFunction | None = None,
        *,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.switch = switch if switch is not None else SwitchingFunction()
        self.switch.on_conflict = self._line_conflict
        self.channels: dict[str, PhoneChannel] = {}
        self.requests_relayed = 0
        self.events_relayed = 0
        #: The call tracker's clock (epoch seconds).
        self.clock = clock
        #: Who keeps finished calls (the journal writer); must not block.
        self.on_record: Callable[[CallRecord], None] | None = None
        #: Who gets every notice (the webhook service); must not block.
        self.notice_listeners: list[Callable[[CallNotice], object]] = []
        #: Several nodes as one switching function (uacsta.cluster); None: this node alone.
        self.observer: PhoneObserver | None = None

    # ------------------------------------------------------------------ phones
    def phone_ready(
        self,
        phone: str,
        channel: PhoneChannel,
        lines: Iterable[str],
        *,
        services: frozenset[str] | None = None,
        emulate_alternate_call: bool = True,
        offered: frozenset[str] | None = None,
        aliases: Mapping[str, Iterable[str]] | None = None,
        names_releasing_device: bool = True,
        mirrored: bool = False,
    ) -> None:
        """``mirrored``: linked at another node, ``channel`` relays to it (uacsta.cluster)."""
        self.channels[phone] = channel
        lines = list(lines)
        if self.observer is not None and not mirrored:
            self.observer.phone_ready(phone, channel, lines, aliases)
        self._run(
            self.switch.phone_ready(
                phone,
                lines,
                services=services,
                emulate_alternate_call=emulate_alternate_call,
                offered=offered,
                aliases=aliases,
                names_releasing_device=names_releasing_device,
                now=self.clock(),
                mirrored=mirrored,
            )
        )

    def phone_lines_changed(
        self,
        phone: str,
        lines: Iterable[str],
        *,
        aliases: Mapping[str, Iterable[str]] | None = None,
    ) -> None:
        lines = list(lines)
        if self.observer is not None:
            self.observer.phone_lines_changed(phone, lines, aliases)
        self._run(self.switch.phone_lines_changed(phone, lines, aliases=aliases))

    def phone_lost(self, phone: str, reason: str = "") -> None:
        self.channels.pop(phone, None)
        if self.observer is not None:
            self.observer.phone_lost(phone, reason)
        self._run(self.switch.phone_lost(phone, now=self.clock(), reason=reason))

    def phone_removed(self, phone: str) -> None:
        self.channels.pop(phone, None)
        self._run(self.switch.phone_removed(phone, now=self.clock()))

    def phone_event(self, phone: str, event: m.CstaEvent) -> None:
        if self.observer is not None:
            self.observer.phone_event(phone, event)
        self._run(self.switch.phone_event(phone, event, self.clock()))

    def assign_line(self, device_id: str, phone: str) -> None:
        """An operator's decision: the line belongs to ``phone``."""
        self._run(self.switch.assign_line(device_id, phone))

    @staticmethod
    def _line_conflict(conflict: LineConflict) -> None:
        conflict_log.warning(
            ("line-conflict", conflict.claimant),
            "phone %s reports line %s, which phone %s owns: refused (an operator may assign it)",
            conflict.claimant,
            conflict.device_id,
            conflict.owner,
        )

    # ------------------------------------------------------------------ clients
    def client_attach(self, client: ClientSink, *, allowed_devices: Iterable[str] = ()) -> None:
        self.switch.client_attach(client, allowed_devices=allowed_devices)

    def client_detach(self, client: ClientSink) -> None:
        self._run(self.switch.client_detach(client))

    def client_request(self, client: ClientSink, invoke: object, request: m.CstaMessage) -> None:
        self._run(self.switch.client_request(client, invoke, request))

    # ------------------------------------------------------------------ actions
    def _run(self, actions: list[SwitchAction]) -> None:
        for action in actions:
            match action:
                case FanOut():
                    self._fan_out(action)
                case ToClient():
                    sink = cast(ClientSink, action.client)  # the switch keeps clients as IDs
                    if isinstance(action.message, m.CstaEvent):
                        self.events_relayed += 1
                    try:
                        sink.deliver(action)
                    except Exception:  # a broken client must not stop the fan-out to others
                        log.exception(
                            "delivering %s to a client failed", type(action.message).__name__
                        )
                case ToPhone():
                    channel = self.channels.get(action.phone)
                    if channel is None:
                        self._run(
                            self.switch.phone_failed(
                                action.token,
                                m.CSTAErrorCode.system_resource_availability("outOfService"),
                                "the phone is not connected",
                            )
                        )
                        continue
                    refused = channel.refusal(action.request)
                    if refused is not None:
                        self._run(self.switch.phone_refused(action.token, *refused))
                        continue
                    self.requests_relayed += 1
                    try:
                        channel.csta_request_then(
                            action.request, functools.partial(self._answered, action)
                        )
                    except Exception as exc:
                        # A bug in the channel: the client still gets an answer.
                        log.exception("CSTA request to %s failed", action.phone)
                        self._run(
                            self.switch.phone_failed(
                                action.token,
                                m.CSTAErrorCode.system_resource_availability("generic"),
                                str(exc),
                            )
                        )
                case Notify():
                    self._notify(action)
                case Journal():
                    if self.on_record is not None and self._local(action.record.phone):
                        try:
                            self.on_record(action.record)
                        except Exception:
                            log.exception("keeping the journal row of %s failed", action.record.id)

    def _fan_out(self, action: FanOut) -> None:
        event = action.event
        self.events_relayed += len(action.targets)
        for sink, xref in action.targets:
            try:
                cast(ClientSink, sink).deliver_event(event, xref)
            except Exception:  # a broken client must not stop the fan-out to others
                log.exception("delivering %s to a client failed", type(event).__name__)

    def _notify(self, action: Notify) -> None:
        notice = action.notice
        # A mirrored phone's notices reach this node's clients; its owner publishes them.
        listeners = self.notice_listeners if self._notice_is_local(notice) else ()
        for listener in listeners:
            try:
                listener(notice)
            except Exception:  # one broken listener must not stop the others
                log.exception("a listener failed on %s", notice.type.value)
        for sink in action.targets:
            try:
                cast(ClientSink, sink).deliver_notice(notice)
            except Exception:
                log.exception("delivering %s to a client failed", notice.type.value)

    def _local(self, phone: str | None) -> bool:
        return self.observer is None or phone is None or self.observer.is_local(phone)

    def _notice_is_local(self, notice: CallNotice) -> bool:
        if self.observer is None:
            return True
        phone = notice.phone
        if phone is None and notice.line is not None:
            device = self.switch.devices.resolve(notice.line)
            phone = device.phone if device is not None else None
        return self._local(phone)

    def _answered(self, action: ToPhone, answer: m.CstaMessage) -> None:
        self._run(self.switch.phone_response(action.token, answer))

    async def close(self) -> None:
        """Nothing to wait for: relayed requests are callbacks the channels settle."""
