"""The SIP user-agent core, sans-IO: the transaction layer and the dialog set, driven together.

This module owns the user-agent rules above single transactions and dialogs:

- in-dialog dispatch (RFC 3261 §12.2.2): a request for a known dialog goes to that dialog's
  owner; an unknown dialog, or a known dialog from another flow than its peer's
  (:func:`flow_peer`), is answered 481 before it touches the dialog;
- a per-peer limit on open server transactions (503 + Retry-After): one peer may not use up
  the transaction table of everyone;
- the 2xx to an INVITE re-sent over UDP until its ACK (§13.3.1.4: T1, 2T1... capped at T2, for
  64*T1), the ACK for a 2xx to our (re-)INVITE (§13.2.2.4) and its re-sending when the 2xx
  is retransmitted after the transaction ended;
- callers' own deadlines (a CSTA answer in 5 s, shorter than Timer F);
- registration expiry of a :class:`~uacsta.sip.registrar.Registrar`, if one is attached.

Shape (the same as :class:`~uacsta.sip.transaction.TransactionLayer`)::

    key, events = core.send_request(request, flow, reliable=r, now=now, timeout=5.0)
    events = core.receive(message, flow, now)     # from the transport
    events = core.respond(key, response, now)     # the answer to a DeliverRequest
    deadline = core.get_timer()                   # one loop timer follows this
    events = core.handle_timer(now)

Events, dispatched with ``match``: :class:`Transmit` (bytes for a flow), :class:`DeliverRequest`
(to the out-of-dialog handler, or to a dialog's owner), :class:`FinalResponse` /
:class:`Timeout` (for a request's key), :class:`Busy` (a peer over its limit: the adapter logs
it, rate-limited) and :class:`BindingsExpired`. The core knows flows only as opaque objects
offering ``transport``, ``remote`` and ``connection_id`` (:class:`FlowLike`).
"""

from __future__ import annotations

import heapq
import itertools
import logging
from collections import Counter
from dataclasses import dataclass
from typing import Generic, Protocol, TypeVar

from uacsta.sip.dialog import Dialog, DialogCheck, DialogId, DialogSet
from uacsta.sip.helpers import build_response, generate_branch
from uacsta.sip.message import Message, Request, Response
from uacsta.sip.registrar import Binding, Registrar
from uacsta.sip.transaction import DeliverRequest as _LayerDeliverRequest
from uacsta.sip.transaction import (
    DeliverResponse,
    LayerAction,
    Terminated,
    TimerSettings,
    TransactionKey,
    TransactionLayer,
    TransactionTimeout,
    TransportFailed,
    server_key,
)
from uacsta.sip.transaction import Transmit as _LayerTransmit
from uacsta.sip.uri import Via

__all__ = [
    "BindingsExpired",
    "Busy",
    "DeliverRequest",
    "Event",
    "FinalResponse",
    "FlowLike",
    "Timeout",
    "Transmit",
    "UserAgentCore",
    "flow_peer",
]

_NULL_LOGGER = logging.getLogger("uacsta.sip.useragent.null")
_NULL_LOGGER.addHandler(logging.NullHandler())
_NULL_LOGGER.propagate = False

#: A registration is ended this long after its binding expired: a re-REGISTER sent at the
#: last moment still lands in time.
REGISTRATION_GRACE = 1.0
#: Answer to a peer over its limit of open transactions.
RETRY_AFTER = "5"


class FlowLike(Protocol):
    """What the core needs to know of the adapter's flow."""

    @property
    def transport(self) -> str: ...

    @property
    def remote(self) -> tuple[str, int]: ...

    @property
    def connection_id(self) -> int | None: ...


F = TypeVar("F", bound=FlowLike)
#: The owner of a dialog (the adapter's usage: who handles requests in it).
O = TypeVar("O")  # noqa: E741


def flow_peer(flow: FlowLike) -> tuple[str, object]:
    """Who is at the other end of ``flow``, for tying a dialog to it: the TCP/TLS connection,
    or for UDP the source address and port (a phone behind NAT whose mapping changes is a new
    peer: its dialog answers 481 and the link is set up again)."""
    if flow.connection_id is not None:
        return (flow.transport, flow.connection_id)
    return (flow.transport, flow.remote)


# --- events ----------------------------------------------------------------------------------
@dataclass(frozen=True, kw_only=True, slots=True)
class Event:
    """Base of what the core asks of its adapter."""


@dataclass(frozen=True, kw_only=True, slots=True)
class Transmit(Event, Generic[F]):
    """Send ``message`` (``data``: its bytes when already serialized) over ``flow``. ``flow``
    None: the first send of a request whose flow is not known yet (the adapter connects,
    then calls :meth:`UserAgentCore.connected`). ``key``: the transaction it belongs to, for
    :meth:`UserAgentCore.send_failed`."""

    message: Message
    data: bytes | None
    flow: F | None
    key: TransactionKey | None = None


@dataclass(frozen=True, kw_only=True, slots=True)
class DeliverRequest(Event, Generic[F, O]):
    """A request for the application: ``owner`` None = the out-of-dialog handler, else the
    owner of the dialog it belongs to. Answer with :meth:`UserAgentCore.respond` (``key``
    None: nothing to answer)."""

    request: Request
    flow: F
    key: TransactionKey | None
    owner: O | None = None


@dataclass(frozen=True, kw_only=True, slots=True)
class FinalResponse(Event):
    """The final response to the request sent as ``key`` (a 408/503 stands for a time-out or
    a transport failure). Once per request, and never after its :class:`Timeout`."""

    key: TransactionKey
    response: Response


@dataclass(frozen=True, kw_only=True, slots=True)
class Timeout(Event):
    """The caller's own time limit for ``key`` passed (its transaction goes on)."""

    key: TransactionKey


@dataclass(frozen=True, kw_only=True, slots=True)
class Busy(Event):
    """``peer`` has ``open`` server transactions, its limit: its request got a 503."""

    peer: str
    open: int


@dataclass(frozen=True, kw_only=True, slots=True)
class BindingsExpired(Event):
    """Registrations that ran out (already removed from the registrar)."""

    bindings: tuple[Binding, ...]


@dataclass(slots=True)
class _Unacked(Generic[F]):
    """A 2xx to an INVITE re-sent until its ACK (§13.3.1.4)."""

    response: Response
    flow: F
    interval: float
    elapsed: float
    due: float


@dataclass(slots=True)
class _DialogEntry(Generic[F, O]):
    owner: O
    flow: F
    last_ack: Request | None = None


# --- the core --------------------------------------------------------------------------------
class UserAgentCore(Generic[F, O]):
    """Transactions + dialogs + the user-agent rules, with one timer (sans-IO)."""

    def __init__(
        self,
        *,
        timers: TimerSettings | None = None,
        max_transactions: int = 50_000,
        max_transactions_per_peer: int = 1000,
        user_agent: str = "uacsta",
        registrar: Registrar | None = None,
        logger: logging.Logger | None = None,
    ) -> None:
        self._log = logger if logger is not None else _NULL_LOGGER
        self.layer = TransactionLayer(timers=timers, max_transactions=max_transactions)
        self.dialogs = DialogSet()
        self.user_agent = user_agent
        self.max_transactions_per_peer = max_transactions_per_peer
        self.registrar = registrar
        self._usages: dict[DialogId, _DialogEntry[F, O]] = {}
        self._flows: dict[TransactionKey, F] = {}
        self._per_peer: Counter[str] = Counter()
        self._peer_of: dict[TransactionKey, str] = {}
        #: Requests whose final response (or Timeout) the caller has not had yet.
        self._pending: set[TransactionKey] = set()
        #: Pending requests sent in a dialog: the dialog and our Via for the ACK of a 2xx.
        self._in_dialog: dict[TransactionKey, tuple[Dialog, Via | None]] = {}
        #: Callers' time limits: (deadline, seq, key), entries of answered requests skipped.
        self._deadlines: list[tuple[float, int, TransactionKey]] = []
        self._unacked: dict[tuple[str, int], _Unacked[F]] = {}
        self._unacked_heap: list[tuple[float, int, tuple[str, int]]] = []
        self._seq = itertools.count()

    # --- dialogs -----------------------------------------------------------------------------
    @property
    def usages(self) -> dict[DialogId, O]:
        """Owners of the dialogs, by dialog ID (a copy)."""
        return {dialog_id: entry.owner for dialog_id, entry in self._usages.items()}

    def add_dialog(self, dialog: Dialog, owner: O, flow: F) -> None:
        """Register a dialog; from now on only ``flow``'s peer may send requests in it."""
        dialog.peer = flow_peer(flow)
        self.dialogs.add(dialog)
        self._usages[dialog.id] = _DialogEntry(owner, flow)

    def remove_dialog(self, dialog: Dialog) -> None:
        dialog.terminate()
        self.dialogs.remove(dialog.id)
        self._usages.pop(dialog.id, None)

    def last_ack(self, dialog: Dialog) -> Request | None:
        """The ACK last sent for a 2xx in ``dialog`` (re-sent if that 2xx comes again)."""
        entry = self._usages.get(dialog.id)
        return entry.last_ack if entry is not None else None

    def ack_2xx(self, dialog: Dialog, response: Response, via: Via | None = None) -> Transmit[F]:
        """The ACK for a 2xx to our (re-)INVITE in ``dialog`` (outside any transaction,
        §13.2.2.4), remembered so a retransmitted 2xx gets it again."""
        ack = dialog.create_ack(response, branch=generate_branch(), via=via)
        entry = self._usages.get(dialog.id)
        if entry is None:
            raise KeyError(f"dialog {dialog.id} is not registered")
        entry.last_ack = ack
        return Transmit(message=ack, data=None, flow=entry.flow)

    # --- client side -------------------------------------------------------------------------
    def send_request(
        self,
        request: Request,
        flow: F | None,
        *,
        reliable: bool,
        now: float,
        timeout: float | None = None,
    ) -> tuple[TransactionKey, list[Event]]:
        """Start a client transaction for ``request`` (its Via carries a fresh branch). The
        caller gets one :class:`FinalResponse` or :class:`Timeout` for the key; ``timeout``:
        the caller's own limit, in seconds."""
        if not request.has_header("User-Agent"):
            request = request.with_header("User-Agent", self.user_agent)
        key, actions = self.layer.new_client(request, reliable=reliable, now=now)
        self._pending.add(key)
        if flow is not None:
            self._flows[key] = flow
        if timeout is not None:
            self._add_deadline(now + timeout, key)
        return key, self._absorb(actions, None, now)

    def send_in_dialog(
        self,
        dialog: Dialog,
        method: str,
        *,
        now: float,
        via: Via | None = None,
        body: bytes = b"",
        content_type: str | None = None,
        extra_headers: tuple[tuple[str, str], ...] = (),
        timeout: float | None = None,
    ) -> tuple[TransactionKey, list[Event]]:
        """:meth:`send_request` for a request built in ``dialog`` (registered with
        :meth:`add_dialog`), over its flow. The dialog sees the final response before the
        :class:`FinalResponse` goes out, and a 2xx to a re-INVITE is ACKed here."""
        entry = self._usages[dialog.id]
        request = dialog.create_request(
            method,
            branch=generate_branch(),
            body=body,
            content_type=content_type,
            extra_headers=(*extra_headers, ("User-Agent", self.user_agent)),
            via=via,
        )
        reliable = entry.flow.transport != "udp"
        key, actions = self.layer.new_client(request, reliable=reliable, now=now)
        self._pending.add(key)
        self._in_dialog[key] = (dialog, via)
        self._flows[key] = entry.flow
        if timeout is not None:
            self._add_deadline(now + timeout, key)
        return key, self._absorb(actions, None, now)

    def connected(self, key: TransactionKey, flow: F) -> None:
        """The first send of ``key`` (a :class:`Transmit` with no flow) went out on ``flow``."""
        if key in self.layer:
            self._flows[key] = flow

    def send_failed(self, transmit: Transmit[F], now: float) -> list[Event]:
        """The adapter could not send ``transmit``: its transaction fails (§17.1.4), a 2xx
        re-send stops."""
        message = transmit.message
        if transmit.key is not None:
            return self._absorb(self.layer.transport_error(transmit.key, now), None, now)
        if isinstance(message, Response):
            self._unacked.pop((message.call_id, message.cseq.seq), None)
        return []

    def abandon(self) -> list[TransactionKey]:
        """Closing: the keys of requests still waiting (their callers hear of it from the
        adapter); nothing is re-sent any more."""
        pending = list(self._pending)
        self._pending.clear()
        self._in_dialog.clear()
        self._deadlines.clear()
        self._unacked.clear()
        self._unacked_heap.clear()
        return pending

    # --- server side -------------------------------------------------------------------------
    def receive(self, message: Message, flow: F, now: float) -> list[Event]:
        """A message from the transport, read on ``flow``."""
        if isinstance(message, Response):
            return self._absorb(self.layer.receive_response(message, now), flow, now)
        peer = flow.remote[0]
        if (
            message.method != "ACK"
            and self._per_peer[peer] >= self.max_transactions_per_peer
            and server_key(message) not in self.layer
        ):
            busy = build_response(message, 503, headers=(("Retry-After", RETRY_AFTER),))
            return [
                Busy(peer=peer, open=self._per_peer[peer]),
                Transmit(message=busy, data=None, flow=flow),
            ]
        reliable = flow.connection_id is not None
        return self._absorb(
            self.layer.receive_request(message, reliable=reliable, now=now), flow, now
        )

    def respond(self, key: TransactionKey, response: Response, now: float) -> list[Event]:
        """The application's response to the request delivered as ``key``; a 2xx to an
        INVITE over UDP is re-sent until its ACK."""
        if not response.has_header("Server"):
            response = response.with_header("Server", self.user_agent)
        flow = self._flows.get(key)
        events = self._absorb(self.layer.send_response(key, response, now), None, now)
        if (
            key[1] == "INVITE"
            and response.is_success
            and flow is not None
            and flow.connection_id is None
        ):
            self._await_ack(response, flow, now)
        return events

    # --- timers ------------------------------------------------------------------------------
    def get_timer(self) -> float | None:
        """The earliest deadline of all: transactions, callers, 2xx re-sends, bindings."""
        deadline = self.layer.get_timer()
        heap = self._deadlines
        while heap and heap[0][2] not in self._pending:
            heapq.heappop(heap)
        if heap and (deadline is None or heap[0][0] < deadline):
            deadline = heap[0][0]
        unacked = self._unacked_heap
        while unacked and not self._unacked_live(unacked[0]):
            heapq.heappop(unacked)
        if unacked and (deadline is None or unacked[0][0] < deadline):
            deadline = unacked[0][0]
        if self.registrar is not None:
            expiry = self.registrar.get_timer()
            if expiry is not None and (deadline is None or expiry + REGISTRATION_GRACE < deadline):
                deadline = expiry + REGISTRATION_GRACE
        return deadline

    def handle_timer(self, now: float) -> list[Event]:
        """Everything due at ``now``."""
        events: list[Event] = []
        heap = self._deadlines
        while heap and heap[0][0] <= now:
            _, _, key = heapq.heappop(heap)
            if key in self._pending:
                self._pending.discard(key)
                self._in_dialog.pop(key, None)
                events.append(Timeout(key=key))
        events.extend(self._absorb(self.layer.handle_timer(now), None, now))
        events.extend(self._resend_2xx(now))
        if self.registrar is not None:
            expired = self.registrar.handle_timer(now - REGISTRATION_GRACE)
            if expired:
                events.append(BindingsExpired(bindings=tuple(expired)))
        return events

    # --- plumbing ----------------------------------------------------------------------------
    def _absorb(self, actions: list[LayerAction], source: F | None, now: float) -> list[Event]:
        """Layer actions → events, applying the user-agent rules on the way."""
        events: list[Event] = []
        for key, action in actions:
            match action:
                case _LayerTransmit():
                    flow = self._flows.get(key) if key is not None else None
                    events.append(
                        Transmit(
                            message=action.message,
                            data=action.data,
                            flow=flow if flow is not None else source,
                            key=key,
                        )
                    )
                case _LayerDeliverRequest():
                    assert source is not None  # requests come from the transport
                    if key is not None:
                        self._flows[key] = source
                        if key[3] and key not in self._peer_of:  # a server transaction
                            peer = source.remote[0]
                            self._peer_of[key] = peer
                            self._per_peer[peer] += 1
                    events.extend(self._deliver(key, action.request, source, now))
                case DeliverResponse():
                    if key is None:
                        events.extend(self._reack(action.response))
                    elif action.response.status_code >= 200:
                        events.extend(self._final(key, action.response))
                case TransactionTimeout() | TransportFailed():
                    if action.response is not None and key is not None:
                        events.extend(self._final(key, action.response))
                case Terminated():
                    if key is not None:
                        self._forget(key)
        return events

    def _final(self, key: TransactionKey, response: Response) -> list[Event]:
        if key not in self._pending:
            return []
        self._pending.discard(key)
        events: list[Event] = []
        sent_in = self._in_dialog.pop(key, None)
        if sent_in is not None:
            dialog, via = sent_in
            dialog.receive_response(response)
            if key[1] == "INVITE" and response.is_success and dialog.id in self._usages:
                events.append(self.ack_2xx(dialog, response, via))
        events.append(FinalResponse(key=key, response=response))
        return events

    def _forget(self, key: TransactionKey) -> None:
        self._flows.pop(key, None)
        peer = self._peer_of.pop(key, None)
        if peer is not None:
            self._per_peer[peer] -= 1
            if self._per_peer[peer] <= 0:
                del self._per_peer[peer]

    def _reack(self, response: Response) -> list[Event]:
        """A 2xx to an INVITE whose transaction is gone (retransmitted): our ACK again."""
        dialog = self.dialogs.find_for_response(response)
        entry = self._usages.get(dialog.id) if dialog is not None else None
        if entry is None or entry.last_ack is None:
            return []
        return [Transmit(message=entry.last_ack, data=None, flow=entry.flow)]

    def _deliver(
        self, key: TransactionKey | None, request: Request, source: F, now: float
    ) -> list[Event]:
        if request.to.tag is None:
            if request.method == "ACK":
                return []
            return [DeliverRequest(request=request, flow=source, key=key)]
        dialog, check = self.dialogs.check_request(request, peer=flow_peer(source))
        if check is not DialogCheck.ACCEPT or dialog is None:
            if request.method == "ACK" or key is None:
                return []
            return self._answer(key, request, check.status_code or 481, now)
        if request.method == "ACK":  # only the peer's ACK ends the 2xx re-sends
            self._unacked.pop((request.call_id, request.cseq.seq), None)
            return []
        entry = self._usages.get(dialog.id)
        if entry is None:
            if key is None:
                return []
            return self._answer(key, request, 200, now)
        return [DeliverRequest(request=request, flow=source, key=key, owner=entry.owner)]

    def _answer(
        self, key: TransactionKey, request: Request, status: int, now: float
    ) -> list[Event]:
        """Our own answer to a request the application never sees."""
        return self.respond(key, build_response(request, status), now)

    # --- 2xx re-sends ------------------------------------------------------------------------
    def _await_ack(self, response: Response, flow: F, now: float) -> None:
        t1 = self.layer.timers.t1
        key = (response.call_id, response.cseq.seq)
        entry = _Unacked(response, flow, interval=t1, elapsed=t1, due=now + t1)
        self._unacked[key] = entry
        heapq.heappush(self._unacked_heap, (entry.due, next(self._seq), key))

    def _unacked_live(self, item: tuple[float, int, tuple[str, int]]) -> bool:
        entry = self._unacked.get(item[2])
        return entry is not None and entry.due == item[0]

    def _resend_2xx(self, now: float) -> list[Event]:
        """Re-send each due 2xx at T1, 2T1... (capped at T2) until ACK, for at most 64*T1."""
        timers = self.layer.timers
        events: list[Event] = []
        heap = self._unacked_heap
        while heap and heap[0][0] <= now:
            item = heapq.heappop(heap)
            if not self._unacked_live(item):
                continue
            key = item[2]
            entry = self._unacked[key]
            if entry.elapsed >= 64 * timers.t1:
                del self._unacked[key]
                self._log.info("no ACK for the 2xx to INVITE %s", entry.response.call_id)
                continue
            events.append(Transmit(message=entry.response, data=None, flow=entry.flow))
            entry.interval = min(entry.interval * 2, timers.t2)
            entry.elapsed += entry.interval
            entry.due += entry.interval
            heapq.heappush(heap, (entry.due, next(self._seq), key))
        return events

    # --- callers' deadlines ------------------------------------------------------------------
    def _add_deadline(self, deadline: float, key: TransactionKey) -> None:
        heap = self._deadlines
        if len(heap) > 1024 and len(heap) > 4 * len(self._pending):
            # Most entries belong to requests answered long ago: keep the heap small.
            heap[:] = [entry for entry in heap if entry[2] in self._pending]
            heapq.heapify(heap)
        heapq.heappush(heap, (deadline, next(self._seq), key))
