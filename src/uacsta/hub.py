"""The asyncio adapter around the switching function: gateways on one side, phone links on the
other. It runs the pure :class:`SwitchingFunction` and carries out its actions: ``ToClient`` to
the client's gateway sink, ``FanOut`` to every monitoring client's sink (``deliver_event``
when the sink has it), ``ToPhone`` to the phone's link as an awaited CSTA request whose
answer (or failure) is fed back. Adding a gateway never touches this module or the switch.
"""

from __future__ import annotations

import asyncio
import functools
import logging
from collections.abc import Iterable, Mapping
from typing import Protocol

from uacsta.csta import messages as m
from uacsta.ratelog import RateLimitedLog
from uacsta.switch.devices import LineConflict
from uacsta.switch.function import FanOut, SwitchAction, SwitchingFunction, ToClient, ToPhone

log = logging.getLogger("uacsta.hub")
#: Line conflicts are reported by phones, which an attacker may hold: rate-limited per phone.
conflict_log = RateLimitedLog(log)


class ClientSink(Protocol):
    """What a gateway gives the hub for each connected client (hashable: it is the client ID).

    A sink may also offer ``deliver_event(event, xref)``: a fanned-out phone event and the
    client's monitorCrossRefID for it, with ``event`` the same object for every client of
    the fan-out (encode it once, put in each cross-ref). Sinks without it get ``deliver``
    with the event copied for them."""

    def deliver(self, action: ToClient) -> None: ...

    def __hash__(self) -> int: ...


class PhoneChannel(Protocol):
    """A ready phone link: sends one CSTA request and returns the phone's answer.

    Returns a ``CSTAErrorCode`` for a negative answer or a timeout; raises only on bugs.
    A channel may also offer ``csta_request_then(request, done)``, calling ``done(answer)``
    once, as soon as the phone's answer is read (before the phone's later events); the hub
    then relays without a task per request, and clients get the answer before the events
    the phone sent after it (a future's callback would run a loop iteration late).
    """

    async def csta_request(self, request: m.CstaRequest) -> m.CstaMessage: ...


# A channel may also offer ``refusal(request) -> (CSTAErrorCode, reason) | None``: requests it
# answers itself without sending (the reason reaches the client as the error's detail).


class SwitchHub:
    def __init__(self, switch: SwitchingFunction | None = None) -> None:
        self.switch = switch if switch is not None else SwitchingFunction()
        self.switch.on_conflict = self._line_conflict
        self.channels: dict[str, PhoneChannel] = {}
        self._tasks: set[asyncio.Task[None]] = set()
        self.requests_relayed = 0
        self.events_relayed = 0

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
    ) -> None:
        self.channels[phone] = channel
        self._run(
            self.switch.phone_ready(
                phone,
                lines,
                services=services,
                emulate_alternate_call=emulate_alternate_call,
                offered=offered,
                aliases=aliases,
            )
        )

    def phone_lines_changed(
        self,
        phone: str,
        lines: Iterable[str],
        *,
        aliases: Mapping[str, Iterable[str]] | None = None,
    ) -> None:
        self._run(self.switch.phone_lines_changed(phone, lines, aliases=aliases))

    def phone_lost(self, phone: str) -> None:
        self.channels.pop(phone, None)
        self._run(self.switch.phone_lost(phone))

    def phone_removed(self, phone: str) -> None:
        self.channels.pop(phone, None)
        self._run(self.switch.phone_removed(phone))

    def phone_event(self, phone: str, event: m.CstaEvent) -> None:
        self._run(self.switch.phone_event(phone, event))

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
                    sink = action.client
                    if isinstance(action.message, m.CstaEvent):
                        self.events_relayed += 1
                    try:
                        sink.deliver(action)  # type: ignore[attr-defined]
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
                    # A channel may refuse at once, with its reason (a service the phone
                    # lacks, a request its vendor leaves unanswered): no wait for a timeout.
                    refusal = getattr(channel, "refusal", None)
                    refused = refusal(action.request) if refusal is not None else None
                    if refused is not None:
                        self._run(self.switch.phone_failed(action.token, *refused))
                        continue
                    self.requests_relayed += 1
                    then = getattr(channel, "csta_request_then", None)
                    if then is not None:
                        # A callback, no task per relayed request, run in the phone's order.
                        then(action.request, functools.partial(self._answered, action))
                        continue
                    task = asyncio.get_running_loop().create_task(self._ask(channel, action))
                    self._tasks.add(task)
                    task.add_done_callback(self._tasks.discard)

    def _fan_out(self, action: FanOut) -> None:
        event = action.event
        self.events_relayed += len(action.targets)
        for sink, xref in action.targets:
            try:
                deliver_event = getattr(sink, "deliver_event", None)
                if deliver_event is not None:
                    deliver_event(event, xref)
                else:
                    sink.deliver(action.to_client(sink, xref))  # type: ignore[attr-defined]
            except Exception:  # a broken client must not stop the fan-out to others
                log.exception("delivering %s to a client failed", type(event).__name__)

    def _answered(self, action: ToPhone, answer: m.CstaMessage) -> None:
        self._run(self.switch.phone_response(action.token, answer))

    async def _ask(self, channel: PhoneChannel, action: ToPhone) -> None:
        try:
            answer = await channel.csta_request(action.request)
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            log.exception("CSTA request to %s failed", action.phone)
            self._run(
                self.switch.phone_failed(
                    action.token, m.CSTAErrorCode.system_resource_availability("generic"), str(exc)
                )
            )
            return
        self._run(self.switch.phone_response(action.token, answer))

    async def close(self) -> None:
        for task in list(self._tasks):
            task.cancel()
        if self._tasks:
            await asyncio.gather(*self._tasks, return_exceptions=True)
